package projections

import (
	"strconv"
	"testing"
)

// TestLateHistoryBound: the records a catch-up keeps from compaction are
// bounded; past the bound, nothing is compacted until the next catch-up.
func TestLateHistoryBound(t *testing.T) {
	p := &Projector{}
	first := recKey{"party.party", "first"}
	if !p.compactable(first) {
		t.Fatal("a record no late event reached is not compactable")
	}
	p.arrivedLate(first)
	if p.compactable(first) || !p.compactable(recKey{"party.party", "other"}) {
		t.Fatal("a late history holds back its own record only")
	}
	for i := 1; i < maxLate; i++ {
		p.arrivedLate(recKey{"party.party", strconv.Itoa(i)})
	}
	if p.lateAll || len(p.late) != maxLate {
		t.Fatalf("%d records held back, lateAll %v; want %d, false", len(p.late), p.lateAll, maxLate)
	}
	p.arrivedLate(recKey{"party.party", "one more"})
	if !p.lateAll || p.late != nil || p.compactable(recKey{"party.party", "other"}) {
		t.Fatal("past the bound, the map is dropped and nothing is compactable")
	}
}
