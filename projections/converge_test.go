package projections_test

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/ledger/ledgertest"
	"github.com/ghsync/ghsync/models"
	"github.com/ghsync/ghsync/projections"
)

// appendAll appends evs in random chunks, repeating some chunks (a retried
// delivery), the way a satellite's ledger fills from pulls.
func appendAll(tb testing.TB, s ledger.Store, evs []*ledger.Event, rng *rand.Rand) {
	tb.Helper()
	for lo := 0; lo < len(evs); {
		hi := min(len(evs), lo+1+rng.IntN(60))
		if _, err := s.Append(context.Background(), evs[lo:hi]); err != nil {
			tb.Fatalf("append events %d..%d: %v", lo, hi, err)
		}
		if rng.IntN(4) == 0 {
			if _, err := s.Append(context.Background(), evs[lo:hi]); err != nil {
				tb.Fatalf("re-append events %d..%d: %v", lo, hi, err)
			}
		}
		lo = hi
	}
}

type outcome struct {
	dump      string
	hash      string
	conflicts []projections.Conflict
	parked    []projections.Parked
	rejected  []projections.Rejection
}

func project(tb testing.TB, p *projections.Projector) outcome {
	tb.Helper()
	ctx := context.Background()
	if _, err := p.CatchUp(ctx); err != nil {
		tb.Fatalf("catch up: %v", err)
	}
	return observe(tb, p)
}

func observe(tb testing.TB, p *projections.Projector) outcome {
	tb.Helper()
	ctx := context.Background()
	var o outcome
	var buf bytes.Buffer
	var err error
	if o.hash, err = p.Dump(ctx, &buf); err != nil {
		tb.Fatalf("dump: %v", err)
	}
	o.dump = buf.String()
	if o.conflicts, err = p.Conflicts(ctx); err != nil {
		tb.Fatal(err)
	}
	if o.parked, err = p.Parked(ctx); err != nil {
		tb.Fatal(err)
	}
	for i := range o.parked {
		o.parked[i].Position = 0 // positions are local to each ledger
	}
	if o.rejected, err = p.Rejected(ctx); err != nil {
		tb.Fatal(err)
	}
	return o
}

func sameOutcome(tb testing.TB, name string, got, want outcome) {
	tb.Helper()
	if got.hash != want.hash {
		tb.Errorf("%s: dump hash %s, want %s\n%s", name, got.hash, want.hash, firstDiff(got.dump, want.dump))
	}
	if !reflect.DeepEqual(got.conflicts, want.conflicts) {
		tb.Errorf("%s: %d conflicts, want %d (or they differ)", name, len(got.conflicts), len(want.conflicts))
	}
	if !reflect.DeepEqual(got.parked, want.parked) {
		tb.Errorf("%s: parked %v, want %v", name, got.parked, want.parked)
	}
}

func firstDiff(a, b string) string {
	al, bl := bytes.Split([]byte(a), []byte("\n")), bytes.Split([]byte(b), []byte("\n"))
	for i := 0; i < min(len(al), len(bl)); i++ {
		if !bytes.Equal(al[i], bl[i]) {
			return "first difference:\n got  " + string(al[i]) + "\n want " + string(bl[i])
		}
	}
	return "one dump is a prefix of the other"
}

// TestConvergence: four instances' interleaved work, delivered to separate
// ledgers in different orders and projected into separate databases,
// yields identical tables (canonical dump), conflicts and parked lists.
func TestConvergence(t *testing.T) {
	rng := ledgertest.Rand(t)
	reg := clinicRegistry(t)
	w := newWorkload(t, reg, rng, 0, 1, 2, 3)
	w.build(t, 700)

	byOrigin := slices.Clone(w.events)
	slices.SortStableFunc(byOrigin, func(a, b *ledger.Event) int {
		if c := cmp.Compare(b.Origin, a.Origin); c != 0 { // satellites first: references before their targets
			return c
		}
		return cmp.Compare(a.OriginSeq, b.OriginSeq)
	})
	shuffled := slices.Clone(w.events)
	rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	reversed := slices.Clone(w.events)
	slices.Reverse(reversed)
	orders := []struct {
		name string
		evs  []*ledger.Event
	}{{"as made", w.events}, {"by origin", byOrigin}, {"shuffled", shuffled}, {"reversed", reversed}}

	var want outcome
	for i, o := range orders {
		store := memLedger(t)
		appendAll(t, store, o.evs, rng)
		p := openProjector(t, pgTarget(t, reg), store, reg, 1+rng.IntN(120))
		got := project(t, p)
		if i == 0 {
			want = got
			t.Logf("%d events: dump %s, %d conflicts, %d parked", len(w.events), got.hash[:12], len(got.conflicts), len(got.parked))
			if len(got.conflicts) == 0 {
				t.Errorf("the workload produced no conflicts: it does not exercise merging")
			}
			if len(got.rejected) != 0 {
				t.Errorf("valid events rejected: %v", got.rejected)
			}
			for _, want := range []string{`gnuhealth.hospital.ward "HC2/Ward B%2FC" name="Ward B/C" institution=→"HC2"`,
				`categories={"`, `gnuhealth.patient "DUP-`, `weight=`} {
				if !strings.Contains(got.dump, want) {
					t.Errorf("dump lacks %q: the workload or the projection lost something", want)
				}
			}
			// Rebuilding from the ledger gives the same tables.
			if _, err := p.Rebuild(context.Background()); err != nil {
				t.Fatalf("rebuild: %v", err)
			}
			sameOutcome(t, "rebuilt", observe(t, p), want)
			continue
		}
		sameOutcome(t, o.name, got, want)
	}

	// The embedded backend builds the same tables.
	store := memLedger(t)
	appendAll(t, store, shuffled, rng)
	sameOutcome(t, "sqlite target", project(t, openProjector(t, sqliteTarget(t, reg), store, reg, 50)), want)
}

// TestCompactionConverges: a projector that records a stability frontier
// once every event at or before it is applied (as a site does after a
// complete cycle) and then applies the rest, in another order and in
// small batches, ends with the tables, conflicts and parked lists of one
// that never compacted, on both backends, while its busy records' merge
// states shrink.
func TestCompactionConverges(t *testing.T) {
	rng := ledgertest.Rand(t)
	reg := clinicRegistry(t)
	w := newWorkload(t, reg, rng, 0, 1, 2, 3)
	w.build(t, 1500)
	frontier := frontierBefore(w.events[len(w.events)*2/3:])
	var first, rest []*ledger.Event
	for _, e := range w.events {
		if e.HLC <= frontier {
			first = append(first, e)
		} else {
			rest = append(rest, e)
		}
	}
	shuffled := slices.Clone(rest)
	rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })

	store := memLedger(t)
	appendAll(t, store, w.events, rng)
	wantTarget := pgTarget(t, reg)
	want := project(t, openProjector(t, wantTarget, store, reg, 200))
	whole := stateBytes(t, wantTarget)
	if len(want.conflicts) == 0 {
		t.Fatal("the workload produced no conflicts: the test checks less than it should")
	}
	for _, tc := range []struct {
		name   string
		target func(testing.TB, *models.Registry) string
	}{{"postgres", pgTarget}, {"sqlite", sqliteTarget}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			store := memLedger(t)
			appendAll(t, store, first, rng)
			target := tc.target(t, reg)
			p := openProjector(t, target, store, reg, 1+rng.IntN(60))
			project(t, p)
			if err := p.SetFrontier(ctx, frontier); err != nil {
				t.Fatal(err)
			}
			if err := p.SetFrontier(ctx, frontier-1); err != nil || p.Frontier() != frontier {
				t.Fatalf("a lower frontier moved it to %s (%v)", p.Frontier(), err)
			}
			appendAll(t, store, shuffled, rng)
			sameOutcome(t, tc.name, project(t, p), want)
			after := stateBytes(t, target)
			t.Logf("%d events before the frontier, %d after; merge states %d bytes without compaction, %d with",
				len(first), len(rest), whole, after)
			if after >= whole {
				t.Errorf("merge states take %d bytes, %d without compaction: nothing was compacted", after, whole)
			}
			// History older than the frontier arriving afterwards (a
			// patient fetched with new, a record joining a scope), mixed
			// with newer events and split across small batches: what it
			// touches is not compacted until it has all been applied.
			if tc.name == "postgres" {
				mixed := slices.Clone(w.events)
				rng.Shuffle(len(mixed), func(i, j int) { mixed[i], mixed[j] = mixed[j], mixed[i] })
				store := memLedger(t)
				appendAll(t, store, mixed, rng)
				late := openProjector(t, pgTarget(t, reg), store, reg, 1+rng.IntN(8))
				if err := late.SetFrontier(ctx, frontier); err != nil {
					t.Fatal(err)
				}
				sameOutcome(t, "history after the frontier", project(t, late), want)
			}
			// A reopened projector keeps the frontier.
			p.Close()
			if q := openProjector(t, target, store, reg, 10); q.Frontier() != frontier {
				t.Fatalf("reopened: frontier %s, want %s", q.Frontier(), frontier)
			}
		})
	}
}

// stateBytes is the size of all merge states in target's bookkeeping,
// read directly: compacting any record makes it smaller.
func stateBytes(tb testing.TB, target string) int64 {
	tb.Helper()
	driver, dsn, table := "pgx", target, "ghsync.records"
	if path, ok := strings.CutPrefix(target, "sqlite:"); ok {
		driver, dsn, table = "sqlite", path, "ghsync_records"
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	var n int64
	if err := db.QueryRow(`SELECT coalesce(sum(length(state)), 0) FROM ` + table).Scan(&n); err != nil {
		tb.Fatal(err)
	}
	return n
}
