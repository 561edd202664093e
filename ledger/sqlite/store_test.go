package sqlite_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"

	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/ledger/ledgertest"
	"github.com/ghsync/ghsync/ledger/sqlite"
)

var harness = ledgertest.Harness{
	Name: sqlite.Type,
	NewLocation: func(t testing.TB) string {
		return filepath.Join(t.TempDir(), "ledger.db")
	},
	Open: func(ctx context.Context, path string, opts ledgertest.Options) (ledger.Store, error) {
		return sqlite.Open(ctx, path, sqlite.Options{BeforeCommit: opts.BeforeCommit})
	},
	Corrupt: func(t testing.TB, path string, pos uint64) {
		t.Helper()
		db, err := sql.Open("sqlite", path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var payload []byte
		if err := db.QueryRow(`SELECT payload FROM ghsync_events WHERE position = ?`, pos).Scan(&payload); err != nil {
			t.Fatal(err)
		}
		payload[len(payload)/2] ^= 0x20
		if _, err := db.Exec(`UPDATE ghsync_events SET payload = ? WHERE position = ?`, payload, pos); err != nil {
			t.Fatal(err)
		}
	},
	SetColumn: func(t testing.TB, path string, pos uint64, column string, value any) {
		t.Helper()
		db, err := sql.Open("sqlite", path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.Exec(`UPDATE ghsync_events SET `+column+` = ? WHERE position = ?`, value, pos); err != nil {
			t.Fatal(err)
		}
	},
}

func TestMain(m *testing.M) {
	ledgertest.RunChild(harness)
	os.Exit(m.Run())
}

func TestStore(t *testing.T) { ledgertest.RunStoreSuite(t, harness) }

func TestOpen_NewerSchemaRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	s, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	db, _ := sql.Open("sqlite", path)
	if _, err := db.Exec(`UPDATE ghsync_meta SET value = 99 WHERE name = 'schema_version'`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := sqlite.Open(context.Background(), path, sqlite.Options{}); err == nil {
		t.Fatal("a ledger written by a newer ghsync was opened")
	}
}
