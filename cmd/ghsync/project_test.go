package main

import (
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/ghsync/ghsync/internal/pgtest"
)

// The generator's activity, projected into a Tryton-shaped database made
// by `ghsync schema`: every event applies, nothing waits, a rebuild gives
// the same tables, on both backends.
func TestProjectCommands(t *testing.T) {
	ledgerURL := "sqlite:" + generated(t)
	for name, target := range map[string]string{
		"sqlite":   "sqlite:" + filepath.Join(t.TempDir(), "tryton.db"),
		"postgres": pgtest.NewDatabase(t),
	} {
		t.Run(name, func(t *testing.T) {
			run := func(args ...string) string {
				t.Helper()
				code, out, stderr := ghsync(t, append(args, "--ledger", ledgerURL, "--target", target)...)
				if code != 0 {
					t.Fatalf("ghsync %s: exit %d\n%s%s", strings.Join(args, " "), code, out, stderr)
				}
				return out
			}
			run("schema")
			if out := run("project"); !strings.HasPrefix(out, "applied ") || strings.Contains(out, "set aside") || strings.Contains(out, "parked") {
				t.Fatalf("project: %s", out)
			}
			if out := run("parked"); !strings.HasSuffix(out, "0 parked\n") {
				t.Fatalf("parked after a complete catch-up:\n%s", out)
			}
			if out := run("rejected"); out != "0 rejected\n" {
				t.Fatalf("rejected: %s", out)
			}
			run("conflicts")
			dump := run("dump")
			for _, want := range []string{"gnuhealth.pathology \"I10\"", "gnuhealth.patient.evaluation", "diagnosis=→\"", "party.party"} {
				if !strings.Contains(dump, want) {
					t.Fatalf("dump lacks %q", want)
				}
			}
			hash := run("dump", "--hash-only")
			if !strings.HasSuffix(dump, hash) {
				t.Fatalf("dump ends %q, --hash-only says %q", dump[len(dump)-80:], hash)
			}
			run("rebuild")
			if again := run("dump", "--hash-only"); again != hash {
				t.Fatalf("rebuild changed the tables: %s became %s", hash, again)
			}
		})
	}
}

// project refuses a target that is not a GNU Health database (nothing
// created there) and a ledger other than the one the target was built
// from, naming both positions; a catch-up that leaves records parked says
// how many, and where to list them.
func TestProjectRefusesWrongTargetOrLedger(t *testing.T) {
	dir := t.TempDir()
	ledgerURL := "sqlite:" + generated(t)
	typo := filepath.Join(dir, "tyrton.db")
	refused(t, []string{"--target sqlite:" + typo, "not a GNU Health database", "ghsync schema --target sqlite:" + typo, "ghsync models check"},
		"project", "--ledger", ledgerURL, "--target", "sqlite:"+typo)
	if _, err := os.Stat(typo); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused target was created (%v)", err)
	}
	refused(t, []string{"not a GNU Health database", "ghsync schema"}, "project", "--ledger", ledgerURL, "--target", pgtest.NewDatabase(t))

	target := "sqlite:" + filepath.Join(dir, "tryton.db")
	mustRun(t, "schema", "--target", target)
	out := mustRun(t, "project", "--ledger", ledgerURL, "--target", target)
	m := regexp.MustCompile(`through position (\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("project: %s", out)
	}
	other := "sqlite:" + filepath.Join(dir, "other.db")
	head := regexp.MustCompile(`head position (\d+)`).FindStringSubmatch(mustRun(t, "generate", "--ledger", other, "--clinics", "1", "--events", "30"))
	if head == nil {
		t.Fatal("generate does not say its head position")
	}
	refused(t, []string{"--ledger " + other, "through " + m[1] + ", but the ledger ends at position " + head[1], "built from another ledger"},
		"project", "--ledger", other, "--target", target)
	if again := mustRun(t, "project", "--ledger", ledgerURL, "--target", target); !strings.HasPrefix(again, "applied 0 events") {
		t.Fatalf("project from its own ledger after a refusal: %s", again)
	}

	// A plain Tryton: parties only. Everything else waits, and the summary says so.
	plain := filepath.Join(dir, "plain.db")
	db, err := sql.Open("sqlite", plain)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE party_party (id INTEGER PRIMARY KEY AUTOINCREMENT, code VARCHAR, name VARCHAR,
		active BOOLEAN, create_uid INTEGER, create_date TIMESTAMP, write_uid INTEGER, write_date TIMESTAMP)`); err != nil {
		t.Fatal(err)
	}
	out = mustRun(t, "project", "--ledger", ledgerURL, "--target", "sqlite:"+plain)
	m = regexp.MustCompile(`(\d+) records are parked.*: see ghsync parked`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("project into a plain Tryton does not say records are parked:\n%s", out)
	}
	listed := mustRun(t, "parked", "--ledger", ledgerURL, "--target", "sqlite:"+plain)
	keys := map[string]bool{}
	for _, l := range strings.Split(listed, "\n")[1:] {
		if f := strings.Fields(l); len(f) > 2 {
			keys[f[0]+" "+f[1]] = true
		}
	}
	if n := len(keys); m[1] != strconv.Itoa(n) {
		t.Fatalf("project says %s records are parked, ghsync parked lists %d", m[1], n)
	}
}
