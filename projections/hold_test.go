package projections_test

import (
	"context"
	"testing"

	"github.com/ghsync/ghsync/ledger/ledgertest"
)

// TestHoldCompaction: a satellite whose scope widened pulls central's
// ledger again from the start, page by page, each page projected by its
// own catch-up, while its projector already holds a frontier. Held
// (HoldCompaction), nothing is compacted until the pull is through, and
// the outcome is that of a projection that never compacted; not held,
// records are compacted between pages while their history is still
// arriving.
func TestHoldCompaction(t *testing.T) {
	ctx := context.Background()
	rng := ledgertest.Rand(t)
	reg := clinicRegistry(t)
	w := newWorkload(t, reg, rng, 0, 1, 2)
	w.build(t, 900)
	frontier := frontierBefore(w.events[len(w.events)*2/3:])

	whole := memLedger(t)
	appendAll(t, whole, w.events, rng)
	wantTarget := sqliteTarget(t, reg)
	want := project(t, openProjector(t, wantTarget, whole, reg, 50))
	unheld := stateBytes(t, wantTarget)

	rescan := func(hold bool) (outcome, int64) {
		store := memLedger(t)
		target := sqliteTarget(t, reg)
		p := openProjector(t, target, store, reg, 50)
		if err := p.SetFrontier(ctx, frontier); err != nil {
			t.Fatal(err)
		}
		pulling := true
		if hold {
			p.HoldCompaction(func() bool { return pulling })
		}
		for lo := 0; lo < len(w.events); lo += 40 { // the pages of the pull
			if _, err := store.Append(ctx, w.events[lo:min(lo+40, len(w.events))]); err != nil {
				t.Fatal(err)
			}
			if _, err := p.CatchUp(ctx); err != nil {
				t.Fatal(err)
			}
		}
		pulling = false
		return project(t, p), stateBytes(t, target)
	}
	got, size := rescan(true)
	sameOutcome(t, "held while pulling from the start", got, want)
	if size != unheld {
		t.Errorf("held: merge states take %d bytes, %d never compacted: compacted while history was arriving", size, unheld)
	}
	if _, size := rescan(false); size >= unheld {
		t.Errorf("not held: merge states take %d bytes, %d never compacted: the test checks less than it should", size, unheld)
	}
}
