package main

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ghsync/ghsync/central"
)

var tokenLine = regexp.MustCompile(`(?m)^ghsync_[A-Za-z0-9_-]{43}$`)

// addSatellite registers a satellite at the central ledger db and returns its token.
func addSatellite(t *testing.T, ledger, id, scope string) string {
	t.Helper()
	code, out, stderr := ghsync(t, "central", "satellite", "add", id, "--name", "Clinic "+id, "--scope", scope, "--ledger", ledger)
	tok := tokenLine.FindString(out)
	if code != 0 || tok == "" {
		t.Fatalf("central satellite add %s: exit %d\n%s%s", id, code, out, stderr)
	}
	return tok
}

func TestCentralSatelliteCommands(t *testing.T) {
	db := "sqlite:" + filepath.Join(t.TempDir(), "central.db")
	tok := addSatellite(t, db, "3", "local")
	if strings.Contains(tok, "=") || len(tok) != len(central.TokenPrefix)+43 {
		t.Fatalf("token %q is not 32 bytes of unpadded base64url after %s", tok, central.TokenPrefix)
	}
	if code, _, stderr := ghsync(t, "central", "satellite", "add", "3", "--name", "Again", "--ledger", db); code == 0 || !strings.Contains(stderr, "already exists") {
		t.Fatalf("adding 3 twice: exit %d %s", code, stderr)
	}
	for _, bad := range [][]string{{"0"}, {"512"}, {"4", "--scope", "some"}, {"4"}} {
		args := append([]string{"central", "satellite", "add", "--ledger", db}, bad...)
		if bad[0] != "4" || len(bad) > 1 {
			args = append(args, "--name", "x")
		}
		if code, _, _ := ghsync(t, args...); code == 0 {
			t.Errorf("ghsync %s: exit 0", strings.Join(args, " "))
		}
	}
	addSatellite(t, db, "4", "all")
	code, out, _ := ghsync(t, "central", "satellite", "list", "--ledger", db)
	if code != 0 || !strings.Contains(out, "Clinic 3") || !strings.Contains(out, "local") || !strings.Contains(out, "2 satellites") || strings.Contains(out, tok) {
		t.Fatalf("list: exit %d\n%s", code, out)
	}
	if code, out, _ := ghsync(t, "central", "satellite", "remove", "3", "--ledger", db); code != 0 || !strings.Contains(out, "satellite 3 removed") {
		t.Fatalf("remove: exit %d\n%s", code, out)
	}
	if code, _, stderr := ghsync(t, "central", "satellite", "remove", "3", "--ledger", db); code == 0 || !strings.Contains(stderr, "no active satellite 3") {
		t.Fatalf("remove twice: exit %d %s", code, stderr)
	}
	if _, out, _ := ghsync(t, "central", "satellite", "list", "--ledger", db); !strings.Contains(out, "revoked") {
		t.Fatalf("list after remove:\n%s", out)
	}
	// A removed id can be registered again (a new token).
	if tok2 := addSatellite(t, db, "3", "all"); tok2 == tok {
		t.Fatal("the same token twice")
	}
	for _, args := range [][]string{{"central", "held"}, {"central", "held", "--origin", "3"}, {"central", "held", "list"}} {
		if code, out, stderr := ghsync(t, append(args, "--ledger", db)...); code != 0 || !strings.Contains(out, "0 held events") {
			t.Fatalf("%s: exit %d\n%s%s", strings.Join(args, " "), code, out, stderr)
		}
	}
	if code, out, _ := ghsync(t, "central", "held", "release", "--origin", "3", "--ledger", db); code != 0 || !strings.Contains(out, "released 0") {
		t.Fatalf("release nothing: exit %d\n%s", code, out)
	}
	if code, _, stderr := ghsync(t, "central", "held", "release", "--ledger", db); code == 0 || !strings.Contains(stderr, "--origin") {
		t.Fatalf("release without --origin: exit %d %s", code, stderr)
	}
}
