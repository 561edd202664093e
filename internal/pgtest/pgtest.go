package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

const (
	// envURL names the environment variable holding the admin URL of an
	// existing server to test against.
	envURL = "GHSYNC_TEST_PG"

	// dbPrefix starts the name of every database NewDatabase creates.
	dbPrefix = "ghsync_test_"

	// fixHint tells how to give the tests a server.
	fixHint = "To fix: set " + envURL + "=postgres://user@host:port/postgres or install PostgreSQL (apt-get install -y postgresql)"

	// pingTimeout bounds the check that the GHSYNC_TEST_PG server answers.
	pingTimeout = 5 * time.Second

	// sqlTimeout bounds CREATE DATABASE and DROP DATABASE.
	sqlTimeout = 2 * time.Minute
)

var (
	mainCalled atomic.Bool

	serverOnce sync.Once
	serverURL  string
	serverErr  error

	// clusterMu guards cluster, the throwaway cluster if one was started.
	clusterMu sync.Mutex
	cluster   *throwaway
)

// Main runs the package's tests and afterwards stops the throwaway cluster if
// one was started. Use:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
func Main(m *testing.M) int {
	mainCalled.Store(true)
	code := m.Run()
	dropTemplates()
	if err := stopCluster(); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: stopping the throwaway PostgreSQL cluster: %v\n", err)
	}
	return code
}

// stopCluster stops the throwaway cluster, if one is running, and removes
// its directory.
func stopCluster() error {
	clusterMu.Lock()
	defer clusterMu.Unlock()
	if cluster == nil {
		return nil
	}
	err := cluster.stop()
	cluster = nil
	return err
}

// ServerURL returns an admin connection URL (a postgres:// URL to the
// "postgres" database) of the test server: the one GHSYNC_TEST_PG names, or
// else a throwaway cluster started once per test process. The test fails if
// there is no server.
func ServerURL(tb testing.TB) string {
	tb.Helper()
	if !mainCalled.Load() {
		tb.Fatalf("pgtest: this package's tests have no TestMain calling pgtest.Main, which stops the throwaway PostgreSQL cluster after the tests.\n" +
			"To fix: add  func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }  to a _test.go file of the package.")
	}
	serverOnce.Do(func() {
		if raw := strings.TrimSpace(os.Getenv(envURL)); raw != "" {
			serverURL, serverErr = checkExternal(raw)
			return
		}
		c, err := startThrowaway()
		if err != nil {
			serverErr = err
			return
		}
		clusterMu.Lock()
		cluster = c
		clusterMu.Unlock()
		serverURL = c.url
	})
	if serverErr != nil {
		tb.Fatalf("%v", serverErr)
	}
	return serverURL
}

// NewCluster starts a separate throwaway PostgreSQL cluster for tb alone and
// returns its admin URL (user postgres, database postgres). It is made like
// the shared throwaway cluster (initdb into a temporary directory, postgres
// on 127.0.0.1 at a free port, run as "postgres" or "nobody" when the test
// runs as root, killed if the test process dies), but it never uses
// GHSYNC_TEST_PG, and it is stopped and its directory removed when tb ends.
// If tb failed, the tail of the server's log is logged first.
//
// Each setting is a server parameter as "name=value", passed as -c to the
// server after pgtest's own (listen_addresses, max_connections=200,
// shared_buffers=128MB); a later setting of the same name wins. Durability
// is PostgreSQL's default (fsync, synchronous_commit and full_page_writes
// on), so timings taken on the cluster are those of a durable server;
// pass "fsync=off", "synchronous_commit=off", "full_page_writes=off" for
// the shared test cluster's speed instead. For example, a cluster that can
// publish logical replication:
//
//	admin := pgtest.NewCluster(b, "wal_level=logical", "max_replication_slots=10", "max_wal_senders=10")
//
// Starting one takes about a second; the test fails if it cannot be
// started.
func NewCluster(tb testing.TB, settings ...string) string {
	tb.Helper()
	for _, s := range settings {
		if name, _, ok := strings.Cut(s, "="); !ok || strings.TrimSpace(name) == "" {
			tb.Fatalf("pgtest: NewCluster setting %q is not name=value", s)
		}
	}
	c, err := startCluster(slices.Clone(settings), "pgtest: NewCluster could not start a throwaway PostgreSQL cluster: ",
		"To fix: if no binaries were found, install PostgreSQL (apt-get install -y postgresql; the packaged server need not be running); "+
			"if the server refused a setting, the log above says which, and NewCluster's caller passed it.")
	if err != nil {
		tb.Fatalf("%v", err)
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("pgtest: tail of the server log of the cluster at %s:\n%s", c.url, c.logTail(40))
		}
		if err := c.stop(); err != nil {
			tb.Errorf("pgtest: stopping the cluster at %s: %v", c.url, err)
		}
	})
	return c.url
}

// checkExternal checks that the server GHSYNC_TEST_PG names answers and lets
// its user create databases.
func checkExternal(raw string) (string, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("pgtest: "+format+"\n"+
			"To fix: start that PostgreSQL server or correct %s (postgres://user@host:port/postgres; the user must be allowed to CREATE DATABASE), "+
			"or unset %s to let the tests start a throwaway cluster from the local PostgreSQL binaries (apt-get install -y postgresql).",
			append(args, envURL, envURL)...)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fail("%s=%q is not a postgres:// URL", envURL, raw)
	}
	shown := u.Redacted()
	ctx, cancel := context.WithTimeout(context.Background(), pingTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, raw)
	if err != nil {
		return "", fail("the server %s=%s does not answer (tried to connect for %v): %v", envURL, shown, pingTimeout, err)
	}
	defer conn.Close(context.Background())
	var canCreate bool
	err = conn.QueryRow(ctx, "SELECT rolsuper OR rolcreatedb FROM pg_roles WHERE rolname = current_user").Scan(&canCreate)
	if err != nil {
		return "", fail("the server %s=%s does not answer a query (within %v): %v", envURL, shown, pingTimeout, err)
	}
	if !canCreate {
		return "", fail("the user of %s=%s may not CREATE DATABASE", envURL, shown)
	}
	return raw, nil
}

// NewDatabase creates a fresh, uniquely named database (ghsync_test_<16 hex>)
// on the test server and returns its URL: the admin URL with the database
// replaced. The database is dropped, WITH (FORCE), when the test ends.
func NewDatabase(tb testing.TB) string {
	tb.Helper()
	return newDatabase(tb, createOptions)
}

// newDatabase is NewDatabase with the given CREATE DATABASE options.
func newDatabase(tb testing.TB, options string) string {
	tb.Helper()
	admin := ServerURL(tb)
	u, err := url.Parse(admin)
	if err != nil {
		tb.Fatalf("pgtest: parsing the server URL %q: %v", admin, err)
	}
	name, err := randomName("")
	if err != nil {
		tb.Fatal(err)
	}
	ident := pgx.Identifier{name}.Sanitize()

	ctx, cancel := context.WithTimeout(context.Background(), sqlTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		tb.Fatalf("pgtest: connecting to the test server %s: %v", u.Redacted(), err)
	}
	defer conn.Close(context.Background())

	tb.Cleanup(func() {
		tb.Helper()
		if err := dropDatabase(admin, ident); err != nil {
			tb.Errorf("pgtest: dropping test database %s on %s: %v", name, u.Redacted(), err)
		}
	})
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident+options); err != nil {
		tb.Fatalf("pgtest: creating test database %s on %s: %v", name, u.Redacted(), err)
	}
	return databaseURL(u, name)
}

// randomName is a new database name: dbPrefix, then kind, then 16 hex
// digits.
func randomName(kind string) (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("pgtest: random database name: %w", err)
	}
	return dbPrefix + kind + hex.EncodeToString(b[:]), nil
}

// databaseURL is the server URL u with its database replaced by name.
func databaseURL(u *url.URL, name string) string {
	v := *u
	v.Path = "/" + name
	v.RawPath = ""
	if q := v.Query(); q.Has("dbname") || q.Has("database") {
		// Either would override the path.
		q.Del("dbname")
		q.Del("database")
		v.RawQuery = q.Encode()
	}
	return v.String()
}

// createOptions are the options of CREATE DATABASE: a copy of template0,
// which no one can be connected to (CREATE DATABASE fails while anyone is
// connected to its template, and on a shared server someone may well be
// connected to template1), in UTF8, as GNU Health's databases are. The
// copy strategy is left to the server: on PostgreSQL 15 here, STRATEGY
// FILE_COPY was no faster than the default WAL_LOG on the throwaway cluster
// (fsync=off) and slower on a server with fsync on (its checkpoints sync).
const createOptions = " TEMPLATE template0 ENCODING 'UTF8'"

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

// dropDatabase drops the database ident (already quoted) on the admin URL,
// disconnecting whoever is still connected to it.
func dropDatabase(admin, ident string) error {
	ctx, cancel := context.WithTimeout(context.Background(), sqlTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if serverMajor(conn) < 13 { // no WITH (FORCE) before PostgreSQL 13
		_, err = conn.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
			strings.Trim(ident, `"`))
		if err == nil {
			_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident)
		}
		return err
	}
	_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)")
	return err
}

// NewOwnedDatabase creates a login role without superuser rights and a
// fresh database it owns, as a Tryton site's database user owns its
// database, and returns the role's URL to it. Both are dropped when the
// test ends. The test is skipped, saying why, when the server's user may
// not create roles (a GHSYNC_TEST_PG user that is not a superuser).
func NewOwnedDatabase(tb testing.TB) string {
	tb.Helper()
	admin := ServerURL(tb)
	ctx, cancel := context.WithTimeout(context.Background(), sqlTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		tb.Fatalf("pgtest: connecting to the test server: %v", err)
	}
	defer conn.Close(context.Background())
	var super bool
	if err := conn.QueryRow(ctx, `SELECT rolsuper FROM pg_roles WHERE rolname = current_user`).Scan(&super); err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	if !super {
		tb.Skipf("pgtest: the test server's user is not a superuser, so it cannot make a role without rights to own a database")
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		tb.Fatalf("pgtest: random role name: %v", err)
	}
	role := pgx.Identifier{dbPrefix + "role_" + hex.EncodeToString(b[:])}.Sanitize()
	if _, err := conn.Exec(ctx, "CREATE ROLE "+role+" LOGIN"); err != nil {
		tb.Fatalf("pgtest: creating role %s: %v", role, err)
	}
	tb.Cleanup(func() { // after the database's own cleanup, registered below
		ctx, cancel := context.WithTimeout(context.Background(), sqlTimeout)
		defer cancel()
		conn, err := pgx.Connect(ctx, admin)
		if err == nil {
			defer conn.Close(context.Background())
			_, err = conn.Exec(ctx, "DROP ROLE IF EXISTS "+role)
		}
		if err != nil {
			tb.Errorf("pgtest: dropping role %s: %v", role, err)
		}
	})
	dbURL := NewDatabase(tb)
	u, err := url.Parse(dbURL)
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	if _, err := conn.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{strings.TrimPrefix(u.Path, "/")}.Sanitize()+" OWNER TO "+role); err != nil {
		tb.Fatalf("pgtest: giving the database to %s: %v", role, err)
	}
	u.User = url.User(strings.Trim(role, `"`))
	return u.String()
}
