package main

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/ghsync/ghsync/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// The same commands against the production backend.
func TestPostgresLedger(t *testing.T) {
	url := pgtest.NewDatabase(t)
	if code, _, stderr := ghsync(t, "generate", "--ledger", url, "--clinics", "1", "--events", "150"); code != 0 {
		t.Fatalf("generate: exit %d: %s", code, stderr)
	}
	if code, out, _ := ghsync(t, "verify", "--ledger", url, "--complete", "0,1"); code != 0 || !strings.Contains(out, "verify: OK") {
		t.Fatalf("verify: exit %d\n%s", code, out)
	}
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), `UPDATE ghsync.events SET payload = set_byte(payload, 30, get_byte(payload, 30) # 4) WHERE position = 200`); err != nil {
		t.Fatal(err)
	}
	code, out, _ := ghsync(t, "verify", "--ledger", url)
	if code != 1 || !strings.Contains(out, "CORRUPT") || !strings.Contains(out, "(position 200)") {
		t.Fatalf("verify after a flipped byte: exit %d\n%s", code, out)
	}
	if code, _, stderr := ghsync(t, "log", "--ledger", url, "--after", "199", "--limit", "1"); code != 1 || !strings.Contains(stderr, "position 200") {
		t.Fatalf("log over a corrupt event must fail naming it: exit %d\n%s", code, stderr)
	}
}
