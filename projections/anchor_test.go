package projections_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ghsync/ghsync/clocks"
	"github.com/ghsync/ghsync/internal/pgbench"
	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/ledger/ledgertest"
	"github.com/ghsync/ghsync/models"
	"github.com/ghsync/ghsync/projections"
)

// Projection benchmarks against PostgreSQL's own logical replication (see
// docs/projection-benchmarks.md). Run:
//
//	GHSYNC_TEST_PG=postgres://postgres@127.0.0.1:5432/postgres \
//	  go test -run '^$' -bench 'CatchUp|Anchor|MergeOverhead' -benchtime 1x ./projections
//
// These benchmarks start clusters of their own (pgtest.NewCluster) with
// PostgreSQL's default durability (fsync, synchronous_commit and
// full_page_writes on), whatever GHSYNC_TEST_PG names; BenchmarkCatchUp
// uses the test server.

// anchorParties is how many parties the party-shaped history creates and
// then updates once each: 2×anchorParties row changes on either side.
const anchorParties = 50_000

// anchorTxRows is how many row changes one publisher transaction makes.
const anchorTxRows = 1000

// clinicMixEvents is how many events of the clinic workload the
// clinic-mix catch-up projects (about as many as the anchor's row changes).
const clinicMixEvents = 100_000

var lastnames = []string{"Brown", "Campbell", "Reid", "Smith", "Williams", "Clarke", "Grant", "Morgan"}

// partyEvents makes the party-shaped history, in chunks of chunk events
// passed to emit: parties creates of party.party (code, name, lastname,
// dob, gender, active), then one write of lastname to every party in a
// random order, each naming as Base the create it replaces, so no write
// is a conflict. One origin, a fixed seed: every call makes the same
// history, apart from event ids.
func partyEvents(parties, chunk int, emit func([]*ledger.Event) error) error {
	rng := rand.New(rand.NewPCG(7, 77))
	o := ledgertest.NewOrigin(1)
	created := make([]clocks.Timestamp, parties)
	last := make([]int, parties) // index into lastnames
	out := make([]*ledger.Event, 0, chunk)
	flush := func(force bool) error {
		if len(out) == 0 || (!force && len(out) < chunk) {
			return nil
		}
		err := emit(out)
		out = make([]*ledger.Event, 0, chunk)
		return err
	}
	for i := range parties {
		key := partyKey(i)
		last[i] = rng.IntN(len(lastnames))
		dob, err := ledger.Date(time.Date(1940+rng.IntN(80), time.Month(1+rng.IntN(12)), 1+rng.IntN(28), 0, 0, 0, 0, time.UTC))
		if err != nil {
			return err
		}
		e, err := o.Make("party.party", key, ledger.OpCreate, map[string]ledger.Value{
			"code": ledger.String(key), "name": ledger.String(givenNames[rng.IntN(len(givenNames))]),
			"lastname": ledger.String(lastnames[last[i]]), "dob": dob,
			"gender": ledger.String([]string{"f", "m"}[rng.IntN(2)]), "active": ledger.Bool(true),
		})
		if err != nil {
			return err
		}
		created[i] = e.HLC
		out = append(out, e)
		if err := flush(false); err != nil {
			return err
		}
	}
	for _, i := range rng.Perm(parties) {
		last[i] = (last[i] + 1 + rng.IntN(len(lastnames)-1)) % len(lastnames) // a different name
		e, err := o.Make("party.party", partyKey(i), ledger.OpWrite, map[string]ledger.Value{"lastname": ledger.String(lastnames[last[i]])})
		if err != nil {
			return err
		}
		// Reseal with the real Base: the writer saw the create.
		e.Base = map[string]clocks.Timestamp{"lastname": created[i]}
		if err := e.Seal(e.PrevHash); err != nil {
			return err
		}
		o.ResumeAt(ledger.OriginHead{Seq: e.OriginSeq, Hash: e.Hash, MaxHLC: e.HLC})
		out = append(out, e)
		if err := flush(false); err != nil {
			return err
		}
	}
	return flush(true)
}

func partyKey(i int) string { return fmt.Sprintf("P%07d", i) }

// partyHistory is the whole party-shaped history in memory.
func partyHistory(tb testing.TB, parties int) []*ledger.Event {
	tb.Helper()
	var evs []*ledger.Event
	if err := partyEvents(parties, 10_000, func(c []*ledger.Event) error { evs = append(evs, c...); return nil }); err != nil {
		tb.Fatalf("make the party history: %v", err)
	}
	return evs
}

// fileLedger stores evs (in Appends of 5000) in a fresh SQLite ledger.
func fileLedger(tb testing.TB, evs []*ledger.Event) ledger.Store {
	tb.Helper()
	store := memLedger(tb)
	if err := ledgertest.AppendAll(context.Background(), store, evs, 5000); err != nil {
		tb.Fatalf("store %d events: %v", len(evs), err)
	}
	return store
}

// benchCluster is a durable throwaway cluster for one benchmark, able to
// publish logical replication (internal/pgbench, which the capture
// benchmarks share).
type benchCluster struct{ *pgbench.Cluster }

func newBenchCluster(tb testing.TB) *benchCluster {
	tb.Helper()
	return &benchCluster{pgbench.NewCluster(tb)}
}

// database creates a database on the cluster, with reg's Tryton schema
// if reg is not nil, and returns its URL.
func (c *benchCluster) database(tb testing.TB, prefix string, reg *models.Registry) (name, dbURL string) {
	tb.Helper()
	return c.Database(tb, prefix, reg)
}

func (c *benchCluster) drop(tb testing.TB, name string) {
	tb.Helper()
	c.Drop(tb, name)
}

// checkpoint flushes dirty pages so a timed run does not pay for the
// previous one's.
func (c *benchCluster) checkpoint(tb testing.TB) {
	tb.Helper()
	c.Checkpoint(tb)
}

// partyDigest summarises party_party's content (not ids, not audit
// columns), to check that two databases hold the same parties.
func partyDigest(tb testing.TB, dbURL string) (rows int, digest string) {
	tb.Helper()
	return pgbench.PartyDigest(tb, dbURL)
}

// cpuMeter is pgbench.CPUMeter: the CPU time of this process (if self)
// and of the server processes of some databases over a timed window.
type cpuMeter struct{ *pgbench.CPUMeter }

func (c *benchCluster) meter(tb testing.TB, self bool, exclude []int, dbs ...string) *cpuMeter {
	tb.Helper()
	return &cpuMeter{c.Meter(tb, self, exclude, dbs...)}
}

// stop returns the CPU time used since the meter was made, by the
// processes alive now; call it before they exit.
func (m *cpuMeter) stop(tb testing.TB) time.Duration {
	tb.Helper()
	return m.Stop(tb)
}

// anchorRun is the logical replication anchor (pgbench.Replication): a
// publisher database and a subscriber database on the cluster, both with
// reg's Tryton schema; the publisher makes the row changes evs describe
// (creates as INSERTs, writes as UPDATEs, anchorTxRows per transaction)
// while the subscription is disabled; then the subscription is enabled
// and timed until the subscriber shows the last change.
func anchorRun(b *testing.B, c *benchCluster, reg *models.Registry, evs []*ledger.Event) (_ time.Duration, changes int, digest string, cpu time.Duration) {
	b.Helper()
	ctx := context.Background()
	r := c.Replication(b, reg, "party_party")
	pub := r.Pub

	// The publisher's row changes, the same the projector makes: ids in
	// creation order, create_uid 1 (admin), create_date the create's HLC;
	// an update sets lastname, write_uid and write_date.
	ids := map[string]int64{}
	var lastID int64
	var lastName string
	for lo := 0; lo < len(evs); lo += anchorTxRows {
		tx, err := pub.Begin(ctx)
		if err != nil {
			b.Fatal(err)
		}
		var batch pgx.Batch
		for _, e := range evs[lo:min(lo+anchorTxRows, len(evs))] {
			f := e.Fields
			str := func(name string) string { s, _ := f[name].AsString(); return s }
			switch e.Op {
			case ledger.OpCreate:
				id := int64(len(ids) + 1)
				ids[e.Key] = id
				dob, _ := f["dob"].AsDate()
				active, _ := f["active"].AsBool()
				batch.Queue(`INSERT INTO party_party (id, code, name, lastname, dob, gender, active, create_uid, create_date)
					VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8)`,
					id, str("code"), str("name"), str("lastname"), dob, str("gender"), active, e.HLC.Time())
			case ledger.OpWrite:
				lastID, lastName = ids[e.Key], str("lastname")
				batch.Queue(`UPDATE party_party SET lastname = $1, write_uid = 1, write_date = $2 WHERE id = $3`,
					lastName, e.HLC.Time(), lastID)
			default:
				b.Fatalf("the party history has a %s", e.Op)
			}
			changes++
		}
		if err := tx.SendBatch(ctx, &batch).Close(); err != nil {
			b.Fatalf("publisher changes %d..: %v", lo, err)
		}
		if err := tx.Commit(ctx); err != nil {
			b.Fatal(err)
		}
	}
	if lastID == 0 {
		b.Fatal("the party history has no writes")
	}
	b.Logf("anchor: %d row changes in %d publisher transactions, %.1f MiB of WAL behind the slot",
		changes, (len(evs)+anchorTxRows-1)/anchorTxRows, float64(r.PendingWAL(b))/(1<<20))

	res := r.CatchUp(b, b, pgbench.RowShows(`SELECT lastname FROM party_party WHERE id = $1`, lastName, lastID))
	digest = r.Finish(b, len(ids))
	return res.Wall, changes, digest, res.CPU
}

// catchUpRun projects the events of store into a fresh Tryton database on
// the cluster, timing CatchUp only; check, if not nil, looks at the result
// before the database is dropped.
func catchUpRun(b *testing.B, c *benchCluster, reg *models.Registry, store ledger.Store,
	check func(p *projections.Projector, target string)) (time.Duration, projections.Stats, time.Duration) {
	b.Helper()
	name, target := c.database(b, "ghsync", reg)
	p, err := projections.Open(context.Background(), target, store, reg, projections.Options{BatchSize: projections.DefaultBatchSize})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	c.checkpoint(b)
	meter := c.meter(b, true, nil, name)
	b.StartTimer()
	start := time.Now()
	st, err := p.CatchUp(context.Background())
	d := time.Since(start)
	b.StopTimer()
	cpu := meter.stop(b)
	b.Logf("catch-up: %d events in %v; %v", st.Events, d.Round(time.Millisecond), meter)
	if err != nil {
		b.Fatalf("catch up: %v", err)
	}
	if check != nil {
		check(p, target)
	}
	p.Close()
	c.drop(b, name)
	return d, st, cpu
}

// BenchmarkCatchUpVsAnchor measures, on one durable throwaway cluster
// (fsync, synchronous_commit and full_page_writes on; wal_level=logical):
//
//   - anchor: PostgreSQL's logical replication applying 2×anchorParties
//     party row changes (inserts, then one update of each) from a
//     publisher database to a subscriber database: rows/s;
//   - party-shaped: the projector catching up on the same changes as
//     ledger events (creates, then writes), into the same table:
//     events/s, and x_anchor, its rate over the anchor's;
//   - clinic-mix: the projector catching up on clinicMixEvents events of
//     the four-instance clinic workload (BenchmarkCatchUp's): events/s and
//     x_anchor.
//
// Only the apply is timed: the publisher's changes, the ledger and the
// empty target are made first, and a CHECKPOINT precedes each timed run.
func BenchmarkCatchUpVsAnchor(b *testing.B) {
	reg := clinicRegistry(b)
	c := newBenchCluster(b)
	evs := partyHistory(b, anchorParties)
	var anchorRate, anchorCPU float64 // rows/s, CPU seconds a row
	var anchorDigest string           // of the subscriber's parties

	b.Run("anchor=logical-replication", func(b *testing.B) {
		b.StopTimer()
		b.Logf("cluster: %s", c.Settings)
		var wall, cpu time.Duration
		var changes int
		for range b.N {
			d, n, digest, used := anchorRun(b, c, reg, evs)
			anchorDigest = digest
			wall += d
			cpu += used
			changes += n
		}
		anchorRate = float64(changes) / wall.Seconds()
		anchorCPU = cpu.Seconds() / float64(changes)
		b.ReportMetric(anchorRate, "rows/s")
		b.ReportMetric(anchorCPU*1e6, "cpu_µs/row")
	})

	// x_anchor is the projector's events/s over the anchor's rows/s;
	// x_anchor_cpu the anchor's CPU time a row over the projector's an
	// event (both: above 1, the projector is ahead).
	report := func(b *testing.B, wall, cpu time.Duration, events int) {
		rate := float64(events) / wall.Seconds()
		perEvent := cpu.Seconds() / float64(events)
		b.ReportMetric(rate, "events/s")
		b.ReportMetric(perEvent*1e6, "cpu_µs/event")
		if anchorRate > 0 {
			b.ReportMetric(rate/anchorRate, "x_anchor")
			b.ReportMetric(anchorCPU/perEvent, "x_anchor_cpu")
		}
	}

	b.Run("ghsync=party-shaped", func(b *testing.B) {
		b.StopTimer()
		store := fileLedger(b, evs)
		var wall, cpu time.Duration
		events := 0
		for range b.N {
			d, st, used := catchUpRun(b, c, reg, store, func(p *projections.Projector, target string) {
				// The same parties as the anchor's subscriber, and the
				// same work: no conflict, nothing parked.
				rows, digest := partyDigest(b, target)
				if rows != anchorParties || (anchorDigest != "" && digest != anchorDigest) {
					b.Fatalf("the projection holds %d parties (digest %s), want %d (the anchor's digest %s)", rows, digest, anchorParties, anchorDigest)
				}
				conflicts, err := p.Conflicts(context.Background())
				if err != nil || len(conflicts) != 0 {
					b.Fatalf("the party history made %d conflicts (%v), want none", len(conflicts), err)
				}
				parked, err := p.Parked(context.Background())
				if err != nil || len(parked) != 0 {
					b.Fatalf("the party history parked %d records (%v), want none", len(parked), err)
				}
			})
			wall += d
			cpu += used
			events += st.Events
			if st.Events != len(evs) || st.Rejected != 0 {
				b.Fatalf("catch-up read %d events, rejected %d; want %d, 0", st.Events, st.Rejected, len(evs))
			}
		}
		report(b, wall, cpu, events)
	})

	b.Run("ghsync=clinic-mix", func(b *testing.B) {
		b.StopTimer()
		rng := ledgertest.Rand(b)
		w := newWorkload(b, reg, rng, 0, 1, 2, 3)
		w.build(b, clinicMixEvents*95/100) // about 1.05 events a step
		if len(w.events) > clinicMixEvents {
			w.events = w.events[:clinicMixEvents]
		}
		store := fileLedger(b, w.events)
		var wall, cpu time.Duration
		events := 0
		for range b.N {
			d, st, used := catchUpRun(b, c, reg, store, nil)
			wall += d
			cpu += used
			events += st.Events
		}
		report(b, wall, cpu, events)
	})
}
