package dbopen

import (
	"path/filepath"
	"testing"
)

func TestOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a?b.db")
	for _, loc := range []string{"sqlite:" + path, path} {
		db, dialect, got, err := Open(loc)
		if err != nil || dialect != SQLite || got != path {
			t.Fatalf("Open(%q) = %s %s %v", loc, dialect, got, err)
		}
		var mode string
		if err := db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
			t.Fatalf("journal mode %q %v", mode, err)
		}
		db.Close()
	}
	if _, _, _, err := Open("mysql://x"); err == nil {
		t.Fatal("mysql:// accepted")
	}
	if _, _, _, err := Open("sqlite:"); err == nil {
		t.Fatal("a location without a file accepted")
	}
	if _, dialect, _, err := Open("postgres://u@127.0.0.1/db"); err != nil || dialect != Postgres {
		t.Fatalf("postgres: %s %v", dialect, err)
	}
}
