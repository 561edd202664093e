// Package pgbench is the machinery ghsync's benchmarks share to measure
// themselves against PostgreSQL's own logical replication (the "anchor"):
// a durable throwaway cluster able to publish logical replication,
// databases on it with the Tryton schema of a registry, a publisher and
// subscriber pair whose catch-up is timed, a meter of the CPU time the
// server processes and the benchmark process use, and a digest of
// party_party to check that two databases hold the same parties.
//
// It is used by the projections benchmarks (docs/projection-benchmarks.md)
// and the capture benchmarks (docs/capture-benchmarks.md). Like pgtest, it
// is for tests and benchmarks only: failures end the test (tb.Fatal).
//
//	c := pgbench.NewCluster(b)                   // wal_level=logical, durable
//	r := c.Replication(b, reg, "party_party")    // publisher, subscriber (disabled)
//	... make row changes on r.Pub ...
//	res := r.CatchUp(b, b, pgbench.RowShows(`SELECT lastname FROM party_party WHERE id = $1`, last, id))
//	digest := r.Finish(b, parties)               // same parties both sides; dropped
package pgbench

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"testing"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx", for fixtures.CreateTrytonSchema

	"github.com/ghsync/ghsync/fixtures"
	"github.com/ghsync/ghsync/internal/pgtest"
	"github.com/ghsync/ghsync/models"
)

// LogicalSettings are the server settings of a Cluster, before the
// caller's own: logical replication, and a launcher that starts a
// subscription's apply worker promptly.
//
// wal_retrieve_retry_interval: the logical replication launcher starts a
// subscription's apply worker at most once per interval (default 5s) after
// its last look at the subscriptions, which any subscription DDL triggers;
// at the default, ENABLE waited up to 5s for its worker, at random,
// depending on how long ago the subscription was created or the last one
// dropped.
var LogicalSettings = []string{"wal_level=logical", "max_replication_slots=10", "max_wal_senders=10",
	"wal_retrieve_retry_interval=50ms"}

// Cluster is a durable throwaway cluster for one benchmark (fsync,
// synchronous_commit and full_page_writes on), able to publish logical
// replication.
type Cluster struct {
	Admin string    // admin URL (database postgres)
	Port  string    // the server's port on 127.0.0.1
	Conn  *pgx.Conn // to the postgres database; closed when tb ends

	// Settings is the server's version and durability, for logs.
	Settings string

	n int // databases and slots made so far, for unique names
}

// NewCluster starts a Cluster with pgtest.NewCluster: LogicalSettings,
// then settings (a later setting of the same name wins; pass
// "wal_level=replica" for a server like a production one that publishes
// nothing). It is stopped and removed when tb ends.
func NewCluster(tb testing.TB, settings ...string) *Cluster {
	tb.Helper()
	admin := pgtest.NewCluster(tb, append(append([]string{}, LogicalSettings...), settings...)...)
	u, err := url.Parse(admin)
	if err != nil {
		tb.Fatal(err)
	}
	conn, err := pgx.Connect(context.Background(), admin)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close(context.Background()) })
	c := &Cluster{Admin: admin, Port: u.Port(), Conn: conn}
	if err := conn.QueryRow(context.Background(), `SELECT concat_ws(' ', version(), 'fsync=' || current_setting('fsync'),
		'synchronous_commit=' || current_setting('synchronous_commit'), 'full_page_writes=' || current_setting('full_page_writes'),
		'wal_level=' || current_setting('wal_level'), 'shared_buffers=' || current_setting('shared_buffers'),
		'wal_retrieve_retry_interval=' || current_setting('wal_retrieve_retry_interval'))`).Scan(&c.Settings); err != nil {
		tb.Fatal(err)
	}
	return c
}

// Database creates a database named prefix_N on the cluster, with reg's
// Tryton schema (fixtures.CreateTrytonSchema) if reg is not nil, and
// returns its name and URL.
func (c *Cluster) Database(tb testing.TB, prefix string, reg *models.Registry) (name, dbURL string) {
	tb.Helper()
	ctx := context.Background()
	c.n++
	name = fmt.Sprintf("%s_%d", prefix, c.n)
	if _, err := c.Conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE template0 ENCODING 'UTF8'"); err != nil {
		tb.Fatalf("create database %s: %v", name, err)
	}
	u, _ := url.Parse(c.Admin)
	u.Path = "/" + name
	dbURL = u.String()
	if reg != nil {
		db, err := sql.Open("pgx", dbURL)
		if err != nil {
			tb.Fatal(err)
		}
		defer db.Close()
		if err := fixtures.CreateTrytonSchema(ctx, db, reg, models.Postgres); err != nil {
			tb.Fatal(err)
		}
	}
	return name, dbURL
}

// Drop drops a database of the cluster, disconnecting whoever is connected.
func (c *Cluster) Drop(tb testing.TB, name string) {
	tb.Helper()
	if _, err := c.Conn.Exec(context.Background(), "DROP DATABASE "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		tb.Fatalf("drop database %s: %v", name, err)
	}
}

// Checkpoint flushes dirty pages so a timed run does not pay for the
// previous one's.
func (c *Cluster) Checkpoint(tb testing.TB) {
	tb.Helper()
	if _, err := c.Conn.Exec(context.Background(), "CHECKPOINT"); err != nil {
		tb.Fatalf("checkpoint: %v", err)
	}
}

// PartyDigest summarises party_party's content (not ids, not audit
// columns), to check that two databases hold the same parties.
func PartyDigest(tb testing.TB, dbURL string) (rows int, digest string) {
	tb.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close(ctx)
	err = conn.QueryRow(ctx, `SELECT count(*), coalesce(md5(string_agg(concat_ws('|', code, name, lastname, ref, dob, gender, active), ',' ORDER BY code)), '')
		FROM party_party`).Scan(&rows, &digest)
	if err != nil {
		tb.Fatalf("digest party_party: %v", err)
	}
	return rows, digest
}
