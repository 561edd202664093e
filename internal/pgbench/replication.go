package pgbench

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ghsync/ghsync/models"
)

// Replication is the logical replication anchor: a publisher database and
// a subscriber database on a Cluster, both with a registry's Tryton
// schema, a publication of some tables, a slot of its own on the
// publisher and a subscription that starts disabled. The caller makes its
// row changes on Pub; CatchUp then enables the subscription and times it
// until the subscriber shows the last change; Finish checks and removes
// everything.
type Replication struct {
	c                *Cluster
	PubName, PubURL  string
	SubName, SubURL  string
	Pub, Sub         *pgx.Conn // to the publisher and to the subscriber
	Slot             string
	publication      string
	subscription     string
	finished, caught bool
}

// Replication makes the anchor's two databases (anchor_pub_N and
// anchor_sub_N, with reg's Tryton schema) and the publication of tables
// (a slot made apart, pgoutput), and a disabled subscription with
// copy_data = false and synchronous_commit = on.
func (c *Cluster) Replication(tb testing.TB, reg *models.Registry, tables ...string) *Replication {
	tb.Helper()
	ctx := context.Background()
	r := &Replication{c: c, publication: "ghsync_anchor", subscription: "ghsync_anchor"}
	r.PubName, r.PubURL = c.Database(tb, "anchor_pub", reg)
	r.SubName, r.SubURL = c.Database(tb, "anchor_sub", reg)
	var err error
	if r.Pub, err = pgx.Connect(ctx, r.PubURL); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { r.Pub.Close(context.Background()) })
	if r.Sub, err = pgx.Connect(ctx, r.SubURL); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { r.Sub.Close(context.Background()) })
	r.Slot = "ghsync_anchor_" + fmt.Sprint(c.n)
	var list []string
	for _, t := range tables {
		list = append(list, pgx.Identifier{t}.Sanitize())
	}
	if len(list) == 0 {
		tb.Fatal("pgbench: Replication of no tables")
	}
	r.exec(tb, r.Pub, `CREATE PUBLICATION `+r.publication+` FOR TABLE `+strings.Join(list, ", "))
	// The slot is made apart from the subscription: CREATE SUBSCRIPTION
	// waits for a slot it creates on its own cluster to become consistent,
	// which needs its own transaction to end, and hangs.
	r.exec(tb, r.Pub, `SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, r.Slot)
	pubConnInfo := fmt.Sprintf("host=127.0.0.1 port=%s user=postgres dbname=%s", c.Port, r.PubName)
	// synchronous_commit on: the apply worker's commits are as durable as
	// ghsync's (PostgreSQL's default for subscriptions is off).
	r.exec(tb, r.Sub, fmt.Sprintf(`CREATE SUBSCRIPTION %s CONNECTION '%s' PUBLICATION %s
		WITH (create_slot = false, slot_name = '%s', copy_data = false, enabled = false, synchronous_commit = 'on')`,
		r.subscription, pubConnInfo, r.publication, r.Slot))
	return r
}

func (r *Replication) exec(tb testing.TB, conn *pgx.Conn, q string, args ...any) {
	tb.Helper()
	if _, err := conn.Exec(context.Background(), q, args...); err != nil {
		tb.Fatalf("%s: %v", q, err)
	}
}

// PendingWAL is how many bytes of WAL the slot holds back (what the
// walsender will decode).
func (r *Replication) PendingWAL(tb testing.TB) int64 {
	tb.Helper()
	var pending int64
	if err := r.Pub.QueryRow(context.Background(), `SELECT pg_current_wal_lsn() - restart_lsn FROM pg_replication_slots WHERE slot_name = $1`,
		r.Slot).Scan(&pending); err != nil {
		tb.Fatal(err)
	}
	return pending
}

// CatchUpResult is what CatchUp measured.
type CatchUpResult struct {
	Wall     time.Duration // from ENABLE until the last change showed
	WorkerAt time.Duration // from ENABLE until the apply worker ran
	// CPU is the time the walsender and the apply worker used (the
	// server processes of both databases, but for the Pub and Sub
	// connections' backends).
	CPU time.Duration
}

// Timer is a benchmark's timer: a *testing.B.
type Timer interface {
	StartTimer()
	StopTimer()
}

// Done reports whether the subscriber has applied the last change; see
// RowShows.
type Done func(ctx context.Context, sub *pgx.Conn) (bool, error)

// RowShows is a Done that runs query (one row, one column, read as text)
// on the subscriber and is true once it returns want; no row is not yet.
func RowShows(query, want string, args ...any) Done {
	return func(ctx context.Context, sub *pgx.Conn) (bool, error) {
		var got string
		err := sub.QueryRow(ctx, query, args...).Scan(&got)
		if errors.Is(err, pgx.ErrNoRows) {
			return false, nil
		}
		return err == nil && got == want, err
	}
}

// CatchUp is the anchor's timed part. Not timed: a CHECKPOINT. Timed: from
// ALTER SUBSCRIPTION ... ENABLE until done reports the last change
// applied, polled every 10 ms. The apply worker applies the publisher's
// transactions in commit order, so once the last change shows,
// everything before it is applied (and, with synchronous_commit on,
// flushed). If timer is not nil (a *testing.B), it runs during the timed
// part only: started after the checkpoint, stopped before returning.
func (r *Replication) CatchUp(tb testing.TB, timer Timer, done Done) CatchUpResult {
	tb.Helper()
	ctx := context.Background()
	if r.caught {
		tb.Fatal("pgbench: CatchUp twice on one Replication")
	}
	r.caught = true
	r.c.Checkpoint(tb)
	var subPID, pubPID int32
	if err := r.Sub.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&subPID); err != nil {
		tb.Fatal(err)
	}
	if err := r.Pub.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pubPID); err != nil {
		tb.Fatal(err)
	}
	meter := r.c.Meter(tb, false, []int{int(subPID), int(pubPID)}, r.PubName, r.SubName)

	if timer != nil {
		timer.StartTimer()
	}
	start := time.Now()
	r.exec(tb, r.Sub, `ALTER SUBSCRIPTION `+r.subscription+` ENABLE`)
	deadline := start.Add(5 * time.Minute)
	var res CatchUpResult
	for {
		if res.WorkerAt == 0 {
			var n int
			if err := r.Sub.QueryRow(ctx, `SELECT count(pid) FROM pg_stat_subscription`).Scan(&n); err != nil {
				tb.Fatal(err)
			}
			if n > 0 {
				res.WorkerAt = time.Since(start)
			}
		}
		ok, err := done(ctx, r.Sub)
		if err != nil {
			tb.Fatal(err)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			var state string
			r.Sub.QueryRow(ctx, `SELECT coalesce(string_agg(concat_ws(' ', pid, received_lsn, latest_end_lsn), '; '), 'no worker') FROM pg_stat_subscription`).Scan(&state)
			tb.Fatalf("the subscriber did not apply the last change within 5 minutes (pg_stat_subscription: %s)", state)
		}
		time.Sleep(10 * time.Millisecond) // ±10ms in ~1s; polling faster took CPU from the apply
	}
	res.Wall = time.Since(start)
	if timer != nil {
		timer.StopTimer()
	}
	res.CPU = meter.Stop(tb)
	tb.Logf("anchor: the apply worker ran %v after ENABLE; the last change showed after %v; walsender and apply worker used %v of CPU",
		res.WorkerAt.Round(time.Millisecond), res.Wall.Round(time.Millisecond), res.CPU.Round(time.Millisecond))
	return res
}

// Finish checks that the subscriber holds the same parties as the
// publisher, wantParties of them (PartyDigest), then stops the apply
// worker and the walsender (disable, SET (slot_name = NONE), drop the
// subscription, then the slot once the walsender has let go of it), so
// nothing decodes WAL while the caller measures something else, and drops
// both databases. It returns the subscriber's digest.
func (r *Replication) Finish(tb testing.TB, wantParties int) (digest string) {
	tb.Helper()
	ctx := context.Background()
	if r.finished {
		tb.Fatal("pgbench: Finish twice on one Replication")
	}
	r.finished = true
	pubRows, pubDigest := PartyDigest(tb, r.PubURL)
	subRows, subDigest := PartyDigest(tb, r.SubURL)
	if pubRows != wantParties || subRows != pubRows || subDigest != pubDigest {
		tb.Fatalf("the subscriber holds %d parties (digest %s), the publisher %d (%s), want %d equal",
			subRows, subDigest, pubRows, pubDigest, wantParties)
	}
	r.exec(tb, r.Sub, `ALTER SUBSCRIPTION `+r.subscription+` DISABLE`)
	r.exec(tb, r.Sub, `ALTER SUBSCRIPTION `+r.subscription+` SET (slot_name = NONE)`)
	r.exec(tb, r.Sub, `DROP SUBSCRIPTION `+r.subscription)
	for i := 0; ; i++ {
		_, err := r.Pub.Exec(ctx, `SELECT pg_drop_replication_slot($1)`, r.Slot)
		if err == nil {
			break
		}
		if i == 500 {
			tb.Fatalf("drop the anchor's slot: %v", err)
		}
		time.Sleep(10 * time.Millisecond) // the walsender is still exiting
	}
	r.Pub.Close(ctx)
	r.Sub.Close(ctx)
	r.c.Drop(tb, r.PubName)
	r.c.Drop(tb, r.SubName)
	return subDigest
}
