package postgres_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ghsync/ghsync/internal/pgtest"
	"github.com/ghsync/ghsync/ledger/ledgertest"
)

// Run: GHSYNC_TEST_PG=postgres://... go test -run '^$' -bench . ./ledger/postgres
// (see docs/benchmarks.md).

func BenchmarkAppend(b *testing.B) { ledgertest.BenchAppend(b, harness) }

func BenchmarkReadAll(b *testing.B) { ledgertest.BenchReadAll(b, harness) }

// BenchmarkSubscribeLatency: the subscriber has its own Store (its own
// pool and LISTEN connection), as another process would, so it is woken
// by NOTIFY, not by the appending Store's in-process signal.
func BenchmarkSubscribeLatency(b *testing.B) {
	b.Run("handle=separate", func(b *testing.B) { ledgertest.BenchSubscribeLatency(b, harness, true, 0) })
}

// anchorRows is how many rows both sides of BenchmarkAppendVsAnchor write.
const anchorRows = 100_000

// anchorInsert is the physical anchor: one server-side statement writing
// the same number of rows, with the same column types, into the same table
// definition (ghsync.events of a fresh database: PK position, UNIQUE id,
// UNIQUE (origin, origin_seq), index (model, key, position), the CHECKs).
// Values are cheap to compute and shaped like ours: time-ordered ids
// (as UUIDv7 are), one origin with dense origin_seq, keys spread over
// BenchKeys patients, 32-byte hashes, and a payload of the events' mean
// size ($2 bytes, made distinct per row). It is one transaction, one commit.
const anchorInsert = `INSERT INTO ghsync.events (position, id, origin, origin_seq, hlc, model, key, tx, hash, prev_hash, payload)
	SELECT g,
		(lpad(to_hex(1790000000000 + g), 12, '0') || '7000' || '8000' || lpad(to_hex(g), 12, '0'))::uuid,
		1, g, g << 16, $3::text,
		'JM-' || ((hashint8(g) & 2147483647) % $4::int),
		g, sha256(int8send(g)), sha256(int8send(g - 1)),
		overlay($2::bytea PLACING int8send(g) FROM 1)
	FROM generate_series(1, $1::bigint) g`

// BenchmarkAppendVsAnchor compares ghsync's batched append (batch=1000,
// each batch one durable transaction, through Store.Append with all its
// checks) with the physical anchor above, each into a fresh database,
// anchorRows rows each, synchronous_commit as the server has it (on by
// default). A CHECKPOINT precedes each side so neither inherits the
// other's dirty pages. One op is one anchor run plus one ghsync run; the
// order alternates between ops.
func BenchmarkAppendVsAnchor(b *testing.B) {
	ctx := context.Background()
	evs, mean, err := ledgertest.BenchEvents(anchorRows)
	if err != nil {
		b.Fatal(err)
	}
	pad := make([]byte, int(math.Round(mean)))
	for i := range pad {
		pad[i] = byte(i*31 + 7)
	}
	admin, err := pgx.Connect(ctx, pgtest.ServerURL(b))
	if err != nil {
		b.Fatal(err)
	}
	defer admin.Close(ctx)
	var syncCommit string
	if err := admin.QueryRow(ctx, `SHOW synchronous_commit`).Scan(&syncCommit); err != nil {
		b.Fatal(err)
	}
	if syncCommit != "on" {
		b.Logf("warning: synchronous_commit=%s, commits are not durable", syncCommit)
	}
	checkpoint := func() {
		if _, err := admin.Exec(ctx, `CHECKPOINT`); err != nil {
			b.Fatalf("checkpoint: %v", err)
		}
	}

	runAnchor := func() time.Duration {
		url := pgtest.NewDatabase(b)
		s, err := harness.Open(ctx, url, ledgertest.Options{}) // creates the schema, tables empty
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close(ctx)
		checkpoint()
		b.StartTimer()
		start := time.Now()
		tag, err := conn.Exec(ctx, anchorInsert, int64(anchorRows), pad, ledgertest.BenchModel, ledgertest.BenchKeys)
		d := time.Since(start)
		b.StopTimer()
		if err != nil {
			b.Fatalf("anchor insert: %v", err)
		}
		if tag.RowsAffected() != anchorRows {
			b.Fatalf("anchor inserted %d rows", tag.RowsAffected())
		}
		return d
	}
	runOurs := func() time.Duration {
		s, err := harness.Open(ctx, pgtest.NewDatabase(b), ledgertest.Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		checkpoint()
		b.StartTimer()
		start := time.Now()
		err = ledgertest.AppendAll(ctx, s, evs, 1000)
		d := time.Since(start)
		b.StopTimer()
		if err != nil {
			b.Fatalf("append: %v", err)
		}
		return d
	}

	var ours, anchor time.Duration
	b.ResetTimer()
	b.StopTimer()
	for i := range b.N {
		if i%2 == 0 {
			anchor += runAnchor()
			ours += runOurs()
		} else {
			ours += runOurs()
			anchor += runAnchor()
		}
	}
	oursRate := float64(b.N*anchorRows) / ours.Seconds()
	anchorRate := float64(b.N*anchorRows) / anchor.Seconds()
	b.ReportMetric(oursRate, "ghsync_ev/s")
	b.ReportMetric(anchorRate, "anchor_rows/s")
	b.ReportMetric(oursRate/anchorRate, "ratio")
	b.ReportMetric(mean, "payload_B/event")
}
