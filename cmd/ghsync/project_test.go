package main

import (
	"path/filepath"
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
			if out := run("project"); !strings.HasPrefix(out, "applied ") || strings.Contains(out, "set aside") {
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
