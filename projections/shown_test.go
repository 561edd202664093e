package projections

import (
	"testing"

	"github.com/ghsync/ghsync/clocks"
	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/merge"
	"github.com/ghsync/ghsync/models"
)

// TestMeantKeyFollowsThePersonWhereTheyLiveOn: Ana is corrected to
// C-1 at one clinic, which then deletes her, and to B-3 at another, not
// yet told. A reference to A-1 follows her to B-3, where she lives on,
// though the correction to C-1 ended the life it means; once B-3 is
// deleted too, it goes the ending correction's way.
func TestMeantKeyFollowsThePersonWhereTheyLiveOn(t *testing.T) {
	reg := models.GNUHealth()
	n := uint64(0)
	ev := func(key string, op ledger.Op, origin uint16, hlc clocks.Timestamp, fields map[string]ledger.Value) *ledger.Event {
		n++
		e := &ledger.Event{Model: "party.party", Key: key, Op: op, Origin: origin, OriginSeq: n, HLC: hlc, Fields: fields}
		e.ID[0], e.ID[1] = byte(n), byte(origin)
		if op != ledger.OpDelete {
			e.Base = map[string]clocks.Timestamp{}
			for f := range fields {
				e.Base[f] = 0
			}
		}
		return e
	}
	ref := func(key string) ledger.Value {
		v, err := ledger.RefValue(ledger.Ref{Model: "party.party", Key: key})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	name := map[string]ledger.Value{"name": ledger.String("Ana")}
	states := map[string]*merge.State{"A-1": {}, "C-1": {}, "B-3": {}}
	for _, e := range []*ledger.Event{
		ev("A-1", ledger.OpCreate, 1, 10, name),
		ev("C-1", ledger.OpCreate, 1, 20, map[string]ledger.Value{"name": ledger.String("Ana"), models.RenamedFrom: ref("A-1")}),
		ev("A-1", ledger.OpDelete, 1, 21, map[string]ledger.Value{merge.RenamedTo: ref("C-1")}),
		ev("C-1", ledger.OpDelete, 1, 30, nil),
		ev("B-3", ledger.OpCreate, 2, 25, map[string]ledger.Value{"name": ledger.String("Ana"), models.RenamedFrom: ref("A-1")}),
		ev("A-1", ledger.OpDelete, 2, 26, map[string]ledger.Value{merge.RenamedTo: ref("B-3")}),
	} {
		states[e.Key].Apply(e)
	}
	state := func(model, key string) (*merge.State, bool) { st, ok := states[key]; return st, ok }
	if key, ok, need := MeantKey(reg, ledger.Ref{Model: "party.party", Key: "A-1"}, state); key != "B-3" || !ok || need != nil {
		t.Fatalf("MeantKey(A-1) = %q, %v, %v; want B-3, where Ana lives on", key, ok, need)
	}
	states["B-3"].Apply(ev("B-3", ledger.OpDelete, 2, 40, nil))
	if key, ok, _ := MeantKey(reg, ledger.Ref{Model: "party.party", Key: "A-1"}, state); key != "C-1" || !ok {
		t.Fatalf("MeantKey(A-1) with both ends deleted = %q, %v; want C-1, the ending correction's", key, ok)
	}
}
