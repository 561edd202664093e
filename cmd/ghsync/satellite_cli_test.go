package main

import (
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ghsync/ghsync/clocks"
	"github.com/ghsync/ghsync/site"
)

// The administrator widens a running satellite's scope in place (central
// satellite set): its token keeps working, its next pull fetches what the
// local scope left out, and the cursor survives reaching central by
// another name. list says RECORDS IN SCOPE, not held.
func TestSatelliteScopeWidenedCLI(t *testing.T) {
	dir := t.TempDir()
	centralDB := generatedCentral(t, dir, 60)
	tok := addSatellite(t, centralDB, "2", "local")
	url, _ := serving(t, centralDB)
	sat := "sqlite:" + filepath.Join(dir, "sat2.db")
	t.Setenv("GHSYNC_TOKEN", tok)
	code, out, stderr := ghsync(t, "pull", "--ledger", sat, "--id", "2", "--central", url)
	if code != 0 || !strings.Contains(out, "position 60 of 60") || strings.Contains(out, "widened") {
		t.Fatalf("pull with scope local: exit %d\n%s%s", code, out, stderr)
	}
	if code, out, _ := ghsync(t, "central", "satellite", "list", "--ledger", centralDB); code != 0 || !strings.Contains(out, "RECORDS IN SCOPE") || strings.Contains(out, "HELD") || !strings.Contains(out, " + reference") {
		t.Fatalf("list: exit %d\n%s", code, out)
	}

	code, out, stderr = ghsync(t, "central", "satellite", "set", "2", "--scope", "all", "--ledger", centralDB)
	if code != 0 || !strings.Contains(out, "satellite 2 (Clinic 2): scope all, its token unchanged; widened from local") {
		t.Fatalf("central satellite set --scope all: exit %d\n%s%s", code, out, stderr)
	}
	code, out, stderr = ghsync(t, "pull", "--ledger", sat, "--id", "2", "--central", url)
	if code != 0 || !strings.Contains(out, "pulled 60 events") || !strings.Contains(out, "scope was widened to all") {
		t.Fatalf("pull after widening, with the same token: exit %d\n%s%s", code, out, stderr)
	}
	if code, out, _ := ghsync(t, "verify", "--ledger", sat, "--complete", "0"); code != 0 {
		t.Fatalf("the satellite lacks some of central's events:\n%s", out)
	}
	// The same central by another name: nothing is pulled again.
	other := strings.Replace(url, "127.0.0.1", "localhost", 1) + "/"
	if code, out, stderr := ghsync(t, "pull", "--ledger", sat, "--id", "2", "--central", other); code != 0 || !strings.Contains(out, "pulled 0 events") {
		t.Fatalf("pull through %s: exit %d\n%s%s", other, code, out, stderr)
	}
	if _, out, _ := ghsync(t, "central", "satellite", "list", "--ledger", centralDB); !strings.Contains(out, "Clinic 2  all    ") {
		t.Fatalf("list after widening:\n%s", out)
	}
	if code, out, _ := ghsync(t, "central", "satellite", "set", "2", "--name", "Portland HC", "--scope", "local", "--ledger", centralDB); code != 0 || !strings.Contains(out, "narrowed from all: it keeps every record it has") {
		t.Fatalf("narrow and rename: exit %d\n%s", code, out)
	}
	for _, bad := range [][]string{{"9", "--scope", "all"}, {"2"}, {"2", "--scope", "some"}} {
		if code, _, _ := ghsync(t, append([]string{"central", "satellite", "set", "--ledger", centralDB}, bad...)...); code == 0 {
			t.Errorf("central satellite set %v: exit 0", bad)
		}
	}
}

// With the instance's GNU Health database known (--target, or [database]
// of --trytond-conf), new shows the patient in GNU Health at once, push
// first turns what users changed into events, and pull projects; the
// ledger is the one beside the database, never ./ghsync.db. Without a
// target they say what to run.
func TestSatelliteCommandsProject(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	centralDB := generatedCentral(t, dir, 80)
	tok2 := addSatellite(t, centralDB, "2", "local")
	tok3 := addSatellite(t, centralDB, "3", "all")
	url, _ := serving(t, centralDB)
	t.Setenv("GHSYNC_CENTRAL", url)
	health := filepath.Join(dir, "health.sqlite")
	target := "sqlite:" + health
	if code, out, stderr := ghsync(t, "schema", "--target", target); code != 0 {
		t.Fatalf("schema: %s%s", out, stderr)
	}
	if code, out, stderr := ghsync(t, "capture", "install", "--db", target); code != 0 {
		t.Fatalf("capture install: %s%s", out, stderr)
	}
	t.Setenv("GHSYNC_TOKEN", tok2)
	puid := findPUID(t, strings.TrimPrefix(centralDB, "sqlite:"))
	code, out, stderr := ghsync(t, "new", "--id", "2", "--patient", puid, "--target", target)
	if code != 0 || !strings.Contains(out, "records about it") || !strings.Contains(out, "the record is in GNU Health now") {
		t.Fatalf("new --patient %s --target: exit %d\n%s%s", puid, code, out, stderr)
	}
	db, err := sql.Open("sqlite", health)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM party_party WHERE ref = ?`, puid).Scan(&n); err != nil || n != 1 {
		t.Fatalf("party_party holds %d parties with PUID %s (%v), want 1", n, puid, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "health.ghsync.db")); err != nil {
		t.Fatalf("the ledger beside the database: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "ghsync.db")); err == nil {
		t.Fatal("new made ./ghsync.db")
	}

	if _, err := db.Exec(`INSERT INTO party_party (code, name, active) VALUES ('SAT2-1', 'Walk-in', 1)`); err != nil {
		t.Fatal(err)
	}
	code, out, stderr = ghsync(t, "push", "--id", "2", "--target", target)
	if code != 0 || !strings.Contains(out, "captured 1 local change; pushed 1 event") {
		t.Fatalf("push --target with a change waiting: exit %d\n%s%s", code, out, stderr)
	}
	if code, out, _ := ghsync(t, "capture", "status", "--db", target); code != 0 || !strings.Contains(out, "0 changes waiting") {
		t.Fatalf("capture status after push:\n%s", out)
	}

	// Satellite 3 pulls everything into its database; satellite 4's
	// ledger alone is told how to see it.
	t.Setenv("GHSYNC_TOKEN", tok3)
	target3 := "sqlite:" + filepath.Join(dir, "clinic3.sqlite")
	if code, out, stderr := ghsync(t, "schema", "--target", target3); code != 0 {
		t.Fatalf("schema: %s%s", out, stderr)
	}
	code, out, stderr = ghsync(t, "pull", "--id", "3", "--target", target3)
	if code != 0 || !strings.Contains(out, "pulled 81 events") || !strings.Contains(out, "; projected 81") {
		t.Fatalf("pull --target: exit %d\n%s%s", code, out, stderr)
	}
	code, out, stderr = ghsync(t, "pull", "--id", "3", "--ledger", "sqlite:"+filepath.Join(dir, "bare.db"))
	if code != 0 || !strings.Contains(out, "not projected (no --target") {
		t.Fatalf("pull without a target: exit %d\n%s%s", code, out, stderr)
	}
}

// With --trytond-conf naming a SQLite Tryton database and no --ledger,
// the ledger is NAME.ghsync.db beside the database; a sync that fails
// before appending anything (central unreachable) leaves no ledger behind,
// there or in the current directory.
func TestLedgerBesideTheDatabase(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	dbdir := filepath.Join(dir, "db")
	if err := os.Mkdir(dbdir, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "trytond.conf")
	if err := os.WriteFile(conf, []byte("[database]\nuri = sqlite://\npath = "+dbdir+"\n[synchronisation]\nid = 3\nurl = http://"+freeAddr(t)+"\ntoken = t\ndatabase = health\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, stderr := ghsync(t, "schema", "--target", "sqlite:"+filepath.Join(dbdir, "health.sqlite")); code != 0 {
		t.Fatalf("schema: %s%s", out, stderr)
	}
	code, out, stderr := ghsync(t, "sync", "--trytond-conf", conf)
	if code != 1 || !strings.Contains(out, "central could not be reached") {
		t.Fatalf("sync with central unreachable: exit %d\n%s%s", code, out, stderr)
	}
	for _, p := range []string{filepath.Join(dir, "ghsync.db"), filepath.Join(dbdir, "health.ghsync.db"), filepath.Join(dbdir, "health.ghsync.db-wal")} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("the failed sync left %s", p)
		}
	}
	// Offline (no central), the cycle succeeds and keeps its ledger there.
	if err := os.WriteFile(conf, []byte("[database]\nuri = sqlite://\npath = "+dbdir+"\n[synchronisation]\nid = 3\ndatabase = health\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, stderr := ghsync(t, "sync", "--trytond-conf", conf); code != 0 {
		t.Fatalf("offline sync: exit %d\n%s%s", code, out, stderr)
	}
	if _, err := os.Stat(filepath.Join(dbdir, "health.ghsync.db")); err != nil {
		t.Fatalf("the ledger beside the database: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "ghsync.db")); err == nil {
		t.Fatal("sync made ./ghsync.db")
	}
}

func TestLedgerBeside(t *testing.T) {
	for target, want := range map[string]string{
		"postgres://tryton@localhost/health":    "postgres://tryton@localhost/health",
		"sqlite:/var/lib/trytond/health.sqlite": "sqlite:/var/lib/trytond/health.ghsync.db",
		"sqlite:clinic.db":                      "sqlite:clinic.ghsync.db",
	} {
		if got, err := ledgerBeside(target); err != nil || got != want {
			t.Errorf("ledgerBeside(%q) = %q, %v; want %q", target, got, err, want)
		}
	}
}

// The cycle's line says how far merge states are compacted here (it never
// goes back) and, apart, when central's frontier is lower now.
func TestFrontierNote(t *testing.T) {
	const kept, lower = clocks.Timestamp(9 << 20), clocks.Timestamp(5 << 20)
	for _, c := range []struct {
		r    site.Report
		want string
	}{
		{site.Report{}, ""},
		{site.Report{Frontier: kept, Derived: kept, Answered: true}, "; merge states compacted up to " + kept.String()},
		{site.Report{Frontier: kept}, "; merge states compacted up to " + kept.String()},
		{site.Report{Frontier: kept, Derived: lower, Answered: true}, "; merge states compacted up to " + kept.String() + " (central's is back at " + lower.String() + ": an instance behind holds it; it stays here)"},
		{site.Report{Frontier: kept, Answered: true}, "; merge states compacted up to " + kept.String() + " (central has no frontier now: an instance has not reported since it registered or was revoked; it stays here)"},
		{site.Report{Derived: kept, Answered: true}, ""}, // no projector: nothing is compacted here
	} {
		if got := frontierNote(c.r); got != c.want {
			t.Errorf("%+v: %q, want %q", c.r, got, c.want)
		}
	}
}
