package capture_test

import (
	"fmt"
	"testing"

	"github.com/ghsync/ghsync/capture"
	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/models"
)

// TestDrainBatchesSeeEachOther drains one change a batch, so that on
// PostgreSQL each batch is built while the one before is still being
// appended: a write right after a create, and one right after a key
// change, must find the identity the batch before gave the record,
// though it is not committed yet. The events are those a sequential
// drain makes.
func TestDrainBatchesSeeEachOther(t *testing.T) {
	forEachLayout(t, func(t *testing.T, lay layout) {
		s := newSite(t, lay, 1)
		s.open(capture.Options{BatchSize: 1})
		party := s.insert("party_party", 1, map[string]any{"code": "D-1", "name": "Ana", "active": true})
		s.update("party_party", party, 1, map[string]any{"name": "Ana B."})
		addr := s.insert("party_address", 1, map[string]any{"party": party, "city": "Mandeville", "active": true})
		s.update("party_party", party, 1, map[string]any{"code": "D-2"})
		s.update("party_party", party, 1, map[string]any{"name": "Ana C."})
		s.exec(`DELETE FROM party_address WHERE id = ?`, addr)
		s.exec(`DELETE FROM party_party WHERE id = ?`, party)
		evs := s.drain()
		if s.outbox() != 0 {
			t.Fatalf("outbox holds %d rows after the drain", s.outbox())
		}
		var got []string
		for _, e := range evs {
			key := e.Key
			if e.Model == "party.address" {
				key = "addr"
			}
			got = append(got, fmt.Sprintf("%s %s %s", e.Op, e.Model, key))
		}
		want := []string{
			"create party.party D-1", "write party.party D-1", "create party.address addr",
			"create party.party D-2", "delete party.party D-1", "write party.party D-2",
			"delete party.address addr", "delete party.party D-2",
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("events:\n%v\nwant:\n%v", got, want)
		}
		if evs[2].Key != evs[6].Key {
			t.Fatalf("the address was created as %s and deleted as %s", evs[2].Key, evs[6].Key)
		}
		if p, ok := evs[2].Fields["party"].AsRef(); !ok || p.Key != "D-1" {
			t.Fatalf("the address points at %v, want party D-1", evs[2].Fields["party"])
		}
		if from, ok := evs[3].Fields[models.RenamedFrom].AsRef(); !ok || from.Key != "D-1" {
			t.Fatalf("the key change does not name the old key: %v", evs[3].Fields)
		}
		if rep, err := ledger.Verify(ctx(t), s.store); err != nil || !rep.OK() {
			t.Fatalf("ledger does not verify: %v %+v", err, rep)
		}
	})
}
