package trytontest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/ghsync/ghsync/internal/pgtest"
)

const (
	// dbPrefix starts the name of every database NewDatabase and Clone
	// create.
	dbPrefix = "ghsync_test_tryton_"

	// sqlTimeout bounds CREATE DATABASE and DROP DATABASE.
	sqlTimeout = 2 * time.Minute
)

// DB is a database that real trytond initialised, on the test server. It is
// dropped when the test that made it ends. Its methods may be called from
// several goroutines; requests to trytond are served one at a time.
type DB struct {
	// URL is the postgres:// URL of the database, for Go code (pgx).
	URL string
	// Name is the database's name (ghsync_test_tryton_<16 hex>).
	Name string
	// Conf is the path of a trytond.conf for the database's server
	// ([database] uri and path), in a directory of its own, for running
	// trytond, trytond-admin or trytond-console against it (with -d Name).
	Conf string

	// user is the login that requests run as by default.
	user string
	// s is shared by the DB and the views As returns.
	s *dbState
}

// dbState is what a DB and its As views share.
type dbState struct {
	admin string // admin URL of the server

	mu     sync.Mutex // serialises requests, and Clone against them
	drv    *driver    // the trytond process, started by the first request
	closed bool       // the database was dropped
}

// NewDatabase returns a fresh database initialised by real trytond with
// Modules (and their dependencies) activated, the administrator "admin"
// with password "admin" and email admin@example.org, and nothing else (no
// countries or currencies imported). It is a clone of TemplateName, which
// the first call on a server builds (about a minute; a later process
// restores it from the dump cache in about a second); a clone takes a
// fraction of a second. The database is dropped, WITH (FORCE), when tb
// ends.
//
// The server is pgtest's (GHSYNC_TEST_PG or its throwaway cluster), so the
// package's tests need pgtest's TestMain. If Tryton is not installed
// (Available), the test is skipped with the install hint, or fails if the
// environment variable CI is set.
func NewDatabase(tb testing.TB) *DB {
	tb.Helper()
	v, err := probe()
	if err != nil {
		if os.Getenv("CI") != "" {
			tb.Fatalf("%v", err)
		}
		tb.Skipf("%v", err)
	}
	admin := pgtest.ServerURL(tb)
	if err := ensureTemplate(tb.Logf, admin, v); err != nil {
		tb.Fatalf("trytontest: preparing the template database %s: %v", TemplateName, err)
	}
	return newClone(tb, admin, TemplateName)
}

// Clone returns a new database copied from db (CREATE DATABASE ... TEMPLATE),
// dropped when tb ends: for example two sites that started from one
// template, so that their ids and party codes collide. Nobody else may be
// connected to db meanwhile: close Go connections to db.URL first (the
// trytond process of db holds none between requests).
func (db *DB) Clone(tb testing.TB) *DB {
	tb.Helper()
	db.s.mu.Lock()
	defer db.s.mu.Unlock()
	return newClone(tb, db.s.admin, db.Name)
}

// As returns a view of db whose requests run as the Tryton user login by
// default (one that UserCreate made, or "admin"). It shares db's database
// and trytond process.
func (db *DB) As(login string) *DB {
	view := *db
	view.user = login
	return &view
}

// newClone creates a database copied from source on the server at admin.
func newClone(tb testing.TB, admin, source string) *DB {
	tb.Helper()
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		tb.Fatalf("trytontest: random database name: %v", err)
	}
	name := dbPrefix + hex.EncodeToString(b[:])

	ctx, cancel := context.WithTimeout(context.Background(), sqlTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		tb.Fatalf("trytontest: connecting to the test server: %v", err)
	}
	defer conn.Close(context.Background())

	db := &DB{Name: name, URL: withDatabase(admin, name), user: AdminLogin, s: &dbState{admin: admin}}
	tb.Cleanup(func() {
		db.s.mu.Lock()
		defer db.s.mu.Unlock()
		db.s.closed = true
		if db.s.drv != nil {
			if err := db.s.drv.stop(); err != nil {
				tb.Logf("trytontest: stopping the trytond process of %s: %v", name, err)
			}
			db.s.drv = nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), sqlTimeout)
		defer cancel()
		conn, err := pgx.Connect(ctx, admin)
		if err == nil {
			err = dropDatabase(ctx, conn, name)
			conn.Close(context.Background())
		}
		if err != nil {
			tb.Errorf("trytontest: dropping %s: %v", name, err)
		}
	})
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident(name)+" TEMPLATE "+ident(source)); err != nil {
		var pgErr *pgconn.PgError
		hint := ""
		if errors.As(err, &pgErr) && pgErr.Code == "55006" { // object_in_use
			hint = "\nTo fix: close every connection to " + source + " (pgx pools, *sql.DB) before cloning it."
		}
		tb.Fatalf("trytontest: CREATE DATABASE %s TEMPLATE %s: %v%s", name, source, err, hint)
	}
	if db.Conf, err = writeConf(tb.TempDir(), admin); err != nil {
		tb.Fatalf("trytontest: writing trytond.conf: %v", err)
	}
	return db
}

// dropDatabase drops the database name, disconnecting whoever is still
// connected to it.
func dropDatabase(ctx context.Context, conn *pgx.Conn, name string) error {
	if serverMajor(conn) < 13 { // no WITH (FORCE) before PostgreSQL 13
		_, err := conn.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", name)
		if err == nil {
			_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident(name))
		}
		return err
	}
	_, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident(name)+" WITH (FORCE)")
	return err
}

// serverMajor returns the server's major version, or 0 if unknown.
func serverMajor(conn *pgx.Conn) int {
	v := conn.PgConn().ParameterStatus("server_version")
	end := strings.IndexFunc(v, func(r rune) bool { return r < '0' || r > '9' })
	if end >= 0 {
		v = v[:end]
	}
	n, _ := strconv.Atoi(v)
	return n
}

// ident quotes an SQL identifier.
func ident(name string) string { return pgx.Identifier{name}.Sanitize() }

// literal quotes an SQL string literal (standard_conforming_strings on).
func literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// String returns the database's name.
func (db *DB) String() string { return fmt.Sprintf("trytontest.DB(%s)", db.Name) }
