// Package dbopen opens the databases ghsync keeps its own tables in from
// the locations users write: "sqlite:PATH" (or a bare path) for the
// embedded store, a postgres:// URL for PostgreSQL. One place, so every
// package opens a SQLite file with the same settings as the ledger's.
package dbopen

import (
	"database/sql"
	"fmt"
	"strings"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	_ "modernc.org/sqlite"             // database/sql driver "sqlite"
)

// The dialects a location opens.
const (
	Postgres = "postgres"
	SQLite   = "sqlite"
)

// Open opens location through database/sql. A SQLite file gets WAL,
// synchronous FULL, foreign keys, a 10 s busy timeout and write
// transactions that take the lock at BEGIN (so writers queue instead of
// failing on a lock upgrade). It returns the dialect and, for SQLite, the
// file's path.
func Open(location string) (db *sql.DB, dialect, path string, err error) {
	switch {
	case strings.HasPrefix(location, "postgres://"), strings.HasPrefix(location, "postgresql://"):
		db, err = sql.Open("pgx", location)
		return db, Postgres, "", err
	case strings.Contains(location, "://") && !strings.HasPrefix(location, "sqlite:"):
		return nil, "", "", fmt.Errorf("%q: unknown scheme (want sqlite:PATH or postgres://...)", location)
	}
	path = strings.TrimPrefix(strings.TrimPrefix(location, "sqlite:"), "//")
	if path == "" {
		return nil, "", "", fmt.Errorf("%q names no file", location)
	}
	name := strings.NewReplacer("%", "%25", "?", "%3F", "#", "%23").Replace(path)
	db, err = sql.Open("sqlite", "file:"+name+
		"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)&_txlock=immediate")
	return db, SQLite, path, err
}
