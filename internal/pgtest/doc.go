// Package pgtest gives tests a real PostgreSQL server and fresh, throwaway
// databases on it.
//
// ghsync's SQL tests are the product's proof that it works against GNU
// Health's PostgreSQL database, so they run against a real server, never a
// mock, and they are never skipped silently: when no server can be had, every
// test that asks for one FAILS with a message saying how to fix that.
//
// # Where the server comes from
//
// If the environment variable GHSYNC_TEST_PG is set, it is the admin URL of
// the server to use, for example
//
//	GHSYNC_TEST_PG=postgres://postgres@127.0.0.1:5432/postgres go test ./...
//
// The user must be allowed to CREATE DATABASE. If that server does not answer
// within about 5 seconds, the tests fail.
//
// Otherwise pgtest starts one throwaway cluster per test process from the
// local PostgreSQL binaries (found through pg_config --bindir, else the newest
// /usr/lib/postgresql/*/bin, else PATH): initdb into a temporary directory,
// then a postgres server on 127.0.0.1 at a free port, tuned for tests
// (fsync=off, synchronous_commit=off, full_page_writes=off). When running as
// root, as CI does, initdb and the server run as the user "postgres" (or
// "nobody"), since PostgreSQL refuses to run as root. The cluster is stopped
// and its directory removed when the tests end; on Linux a test process that
// dies takes its server with it, and a directory left behind by a killed
// process is removed by a later run.
//
// Without GHSYNC_TEST_PG, install PostgreSQL (apt-get install -y postgresql);
// the packaged server need not be running.
//
// # Use
//
// Every package whose tests use pgtest needs this TestMain, so that the
// throwaway cluster is stopped after its tests (a test asking for a server
// without it fails):
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
//
// Then, in a test:
//
//	dbURL := pgtest.NewDatabase(t) // postgres://.../ghsync_test_<16 hex>, dropped after the test
//	conn, err := pgx.Connect(ctx, dbURL)
//
// ServerURL returns the admin URL (database "postgres") for tests that need
// the server itself.
//
// NewCluster starts a separate throwaway cluster for one test or benchmark,
// with server settings of its own (for example wal_level=logical) and
// PostgreSQL's default durability (fsync and synchronous_commit on), so
// that figures measured on it are those of a durable server:
//
//	admin := pgtest.NewCluster(b, "wal_level=logical", "max_wal_senders=10")
package pgtest
