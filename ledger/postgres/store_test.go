package postgres_test

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/ghsync/ghsync/internal/pgtest"
	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/ledger/ledgertest"
	"github.com/ghsync/ghsync/ledger/postgres"
)

var harness = ledgertest.Harness{
	Name:        postgres.Type,
	NewLocation: func(t testing.TB) string { return pgtest.NewDatabase(t) },
	Open: func(ctx context.Context, url string, opts ledgertest.Options) (ledger.Store, error) {
		return postgres.Open(ctx, url, postgres.Options{BeforeCommit: opts.BeforeCommit})
	},
	Corrupt: func(t testing.TB, url string, pos uint64) {
		t.Helper()
		conn, err := pgx.Connect(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(context.Background(), `UPDATE ghsync.events
			SET payload = set_byte(payload, length(payload)/2, get_byte(payload, length(payload)/2) # 32)
			WHERE position = $1`, int64(pos)); err != nil {
			t.Fatal(err)
		}
	},
	SetColumn: func(t testing.TB, url string, pos uint64, column string, value any) {
		t.Helper()
		conn, err := pgx.Connect(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(context.Background(), `UPDATE ghsync.events SET `+column+` = $1 WHERE position = $2`, value, int64(pos)); err != nil {
			t.Fatal(err)
		}
	},
}

func TestMain(m *testing.M) {
	ledgertest.RunChild(harness)
	os.Exit(pgtest.Main(m))
}

func TestStore(t *testing.T) { ledgertest.RunStoreSuite(t, harness) }
