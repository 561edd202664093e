package projections_test

import (
	"math/rand/v2"
	"testing"

	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/ledger/ledgertest"
)

// TestStateCacheSeesOtherProjectors: a projector keeps merge states
// decoded between batches; when another projector (another process, or a
// rebuild) writes the same target in between, those states are stale and
// must not be merged into. Projector a catches up, b projects the next
// part of the ledger into the same target, then a projects the rest: the
// outcome equals one projector's.
func TestStateCacheSeesOtherProjectors(t *testing.T) {
	rng := ledgertest.Rand(t)
	reg := clinicRegistry(t)
	w := newWorkload(t, reg, rng, 0, 1, 2, 3)
	w.build(t, 600)
	third := len(w.events) / 3

	want := project(t, openProjector(t, pgTarget(t, reg), ledgerOf(t, w.events, rng), reg, 40))

	store := memLedger(t)
	target := pgTarget(t, reg)
	a := openProjector(t, target, store, reg, 40)
	appendAll(t, store, w.events[:third], rng)
	project(t, a)
	appendAll(t, store, w.events[third:2*third], rng)
	project(t, openProjector(t, target, store, reg, 40))
	appendAll(t, store, w.events[2*third:], rng)
	sameOutcome(t, "a, b, then a again", project(t, a), want)

	// The same with a rebuild by another projector in between.
	store = memLedger(t)
	target = pgTarget(t, reg)
	a = openProjector(t, target, store, reg, 40)
	appendAll(t, store, w.events[:2*third], rng)
	project(t, a)
	if _, err := openProjector(t, target, store, reg, 40).Rebuild(t.Context()); err != nil {
		t.Fatal(err)
	}
	appendAll(t, store, w.events[2*third:], rng)
	sameOutcome(t, "a, a rebuild, then a again", project(t, a), want)
}

func ledgerOf(t *testing.T, evs []*ledger.Event, rng *rand.Rand) ledger.Store {
	t.Helper()
	s := memLedger(t)
	appendAll(t, s, evs, rng)
	return s
}
