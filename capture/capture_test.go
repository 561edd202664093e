package capture_test

import (
	"testing"

	"github.com/ghsync/ghsync/ledger"
)

// want is an expected captured event.
type want struct {
	model string
	op    ledger.Op
	key   string // "" means: any (a UUID)
	user  string
	// fields that must be present with these values (refs by key).
	fields map[string]ledger.Value
	// absent fields that must not be in the event.
	absent []string
}

func check(t *testing.T, got []*ledger.Event, wants []want) {
	t.Helper()
	if len(got) != len(wants) {
		for _, e := range got {
			t.Logf("  got %s", e)
		}
		t.Fatalf("captured %d events, want %d", len(got), len(wants))
	}
	for i, w := range wants {
		e := got[i]
		if e.Model != w.model || e.Op != w.op || (w.key != "" && e.Key != w.key) || e.User != w.user {
			t.Fatalf("event %d = %s %s %s by %q, want %s %s %q by %q", i, e.Op, e.Model, e.Key, e.User, w.op, w.model, w.key, w.user)
		}
		for f, v := range w.fields {
			if gv, ok := e.Fields[f]; !ok || !gv.Equal(v) {
				t.Fatalf("event %d (%s %s) field %s = %v, want %v", i, e.Op, e.Model, f, gv, v)
			}
		}
		for _, f := range w.absent {
			if _, ok := e.Fields[f]; ok {
				t.Fatalf("event %d (%s %s) carries field %s, which did not change", i, e.Op, e.Model, f)
			}
		}
	}
}

func ref(t *testing.T, model, key string) ledger.Value {
	v, err := ledger.RefTo(model, key)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestCaptureCreateWriteDeleteCascade follows a party through its life on
// every layout: create with an address and a contact mechanism, a write,
// a save that changes nothing synchronised, and a delete that cascades.
func TestCaptureCreateWriteDeleteCascade(t *testing.T) {
	forEachLayout(t, func(t *testing.T, lay layout) {
		s := newSite(t, lay, 7)
		nurse := s.insert("res_user", 1, map[string]any{"login": "nurse", "name": "Nurse Joy", "active": true})
		party := s.insert("party_party", nurse, map[string]any{"code": "JM07-1", "name": "Ana Brown", "active": true})
		addr := s.insert("party_address", nurse, map[string]any{"party": party, "street": "1 King St", "city": "Kingston", "active": true})
		s.insert("party_contact_mechanism", nurse, map[string]any{"party": party, "type": "mobile", "value": "+18765550100", "active": true})
		evs := s.drain()
		check(t, evs, []want{
			{model: "party.party", op: ledger.OpCreate, key: "JM07-1", user: "nurse",
				fields: map[string]ledger.Value{"name": ledger.String("Ana Brown"), "code": ledger.String("JM07-1"), "active": ledger.Bool(true)}},
			{model: "party.address", op: ledger.OpCreate, user: "nurse",
				fields: map[string]ledger.Value{"party": ref(t, "party.party", "JM07-1"), "street": ledger.String("1 King St")}},
			{model: "party.contact_mechanism", op: ledger.OpCreate, user: "nurse",
				fields: map[string]ledger.Value{"party": ref(t, "party.party", "JM07-1"), "type": ledger.String("mobile"), "value": ledger.String("+18765550100")}},
		})
		addrKey := evs[1].Key
		created := evs[0]
		for i, e := range evs {
			if e.Origin != 7 || e.OriginSeq != uint64(i+1) {
				t.Fatalf("event %d: origin %d seq %d, want origin 7 seq %d", i, e.Origin, e.OriginSeq, i+1)
			}
		}
		if s.outbox() != 0 {
			t.Fatalf("outbox holds %d rows after drain", s.outbox())
		}

		// A write: only the changed field, with the Base the writer saw.
		s.update("party_party", party, 1, map[string]any{"name": "Ana B. Brown"})
		s.update("party_address", addr, nurse, map[string]any{"city": "Kingston"}) // same value: nothing changed
		evs = s.drain()
		check(t, evs, []want{{model: "party.party", op: ledger.OpWrite, key: "JM07-1", user: "admin",
			fields: map[string]ledger.Value{"name": ledger.String("Ana B. Brown")}, absent: []string{"code", "active"}}})
		if got := evs[0].Base["name"]; got != created.HLC {
			t.Fatalf("write Base[name] = %v, want the create's HLC %v", got, created.HLC)
		}

		// A delete cascades to the address and the contact mechanism.
		s.exec(`DELETE FROM party_party WHERE id = ?`, party)
		evs = s.drain()
		if len(evs) != 3 {
			t.Fatalf("delete captured %d events, want 3 (party + cascaded address and contact mechanism): %v", len(evs), evs)
		}
		deleted := map[string]string{}
		for _, e := range evs {
			if e.Op != ledger.OpDelete {
				t.Fatalf("cascade captured %s, want deletes only", e)
			}
			deleted[e.Model] = e.Key
		}
		if deleted["party.party"] != "JM07-1" || deleted["party.address"] != addrKey || deleted["party.contact_mechanism"] == "" {
			t.Fatalf("deleted %v; want party JM07-1, address %s and the contact mechanism", deleted, addrKey)
		}
		rep, err := ledger.Verify(ctx(t), s.store)
		if err != nil || !rep.OK() {
			t.Fatalf("ledger does not verify: %v %+v", err, rep)
		}
	})
}
