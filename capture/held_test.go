package capture_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/ghsync/ghsync/capture"
	"github.com/ghsync/ghsync/ledger"
)

// held returns what the site's capture holds back, by "model id".
func (s *site) held() map[string]capture.HeldRow {
	s.t.Helper()
	st, err := capture.Inspect(ctx(s.t), s.target)
	if err != nil {
		s.t.Fatal(err)
	}
	out := map[string]capture.HeldRow{}
	for _, h := range st.Held {
		out[heldName(h.Model, h.LocalID)] = h
	}
	return out
}

func heldName(model string, id int64) string { return fmt.Sprintf("%s %d", model, id) }

// partyNames maps each party's code to its name at s.
func (s *site) partyNames() map[string]string {
	s.t.Helper()
	rows, err := s.db.QueryContext(ctx(s.t), `SELECT code, name FROM party_party`)
	if err != nil {
		s.t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var code, name string
		if err := rows.Scan(&code, &name); err != nil {
			s.t.Fatal(err)
		}
		out[code] = name
	}
	return out
}

// TestPlainNumberCodeHeld is QA's reproduction: two clinics whose party
// sequences both start at 1 each create a different person coded "1".
// Neither is given the network identity "1" (they would be merged): each
// stays in its clinic, held back and listed by capture status, while the
// clinics' other changes in the same drain are captured. An address of
// the held party is held with it, not captured without its party. Once
// the administrator gives each a network-unique code, the next drain
// captures the party as a create under that code, and its address, and
// both clinics then show two different people.
func TestPlainNumberCodeHeld(t *testing.T) {
	forEachLayout(t, func(t *testing.T, lay layout) {
		a, b := newSite(t, lay, 1), newSite(t, lay, 2)
		alice := a.insert("party_party", 1, map[string]any{"code": "1", "name": "Alice Sat1", "ref": "JM1111", "is_person": true, "is_patient": true, "active": true})
		aliceAddr := a.insert("party_address", 1, map[string]any{"party": alice, "city": "Ocho Rios", "active": true})
		alicePatient := a.insert("gnuhealth_patient", 1, map[string]any{"name": alice, "critical_info": "penicillin allergy", "active": true})
		ana := a.insert("party_party", 1, map[string]any{"code": "A-2", "name": "Ana", "active": true})
		a.insert("party_address", 1, map[string]any{"party": ana, "city": "Negril", "active": true})
		bob := b.insert("party_party", 1, map[string]any{"code": "1", "name": "Bob Sat2", "ref": "JM2222", "is_person": true, "is_patient": true, "active": true})

		evs := a.drain()
		if len(evs) != 2 || evs[0].Model != "party.party" || evs[0].Key != "A-2" || evs[1].Model != "party.address" {
			t.Fatalf("a captured %v, want only Ana and her address", evs)
		}
		if r, ok := evs[1].Fields["party"].AsRef(); !ok || r.Key != "A-2" {
			t.Fatalf("Ana's address references %v, want A-2", evs[1].Fields["party"])
		}
		if n := a.outbox(); n != 0 {
			t.Fatalf("%d changes left in a's outbox: held changes must not block it", n)
		}
		held := a.held()
		p, ok := held[heldName("party.party", alice)]
		if len(held) != 3 || !ok || p.Key != "1" || !strings.Contains(p.Reason, "plain number") || p.Fields != nil {
			t.Fatalf("a holds %+v, want Alice (key 1, a plain number), her address and her patient record", held)
		}
		addr, ok := held[heldName("party.address", aliceAddr)]
		if want := fmt.Sprintf("field party: party.party id %d is held back", alice); !ok || addr.Reason != want {
			t.Fatalf("a holds %+v, want Alice's address: %q", held, want)
		}
		// The patient's network key is its party's: it has none either.
		pat, ok := held[heldName("gnuhealth.patient", alicePatient)]
		if want := fmt.Sprintf("key part name: party.party id %d is held back", alice); !ok || pat.Reason != want || pat.Key != "" {
			t.Fatalf("a holds %+v, want Alice's patient record: %q", held, want)
		}
		if evs := b.drain(); len(evs) != 0 {
			t.Fatalf("b captured %v, want nothing: Bob is held", evs)
		}
		if h := b.held(); len(h) != 1 {
			t.Fatalf("b holds %+v, want Bob", h)
		}

		for range 2 {
			a.receive(b)
			b.receive(a)
			a.project()
			b.project()
		}
		if got := a.partyNames(); got["1"] != "Alice Sat1" || len(got) != 2 {
			t.Fatalf("a shows %v, want Alice as code 1 and Ana", got)
		}
		if got := b.partyNames(); got["1"] != "Bob Sat2" || got["A-2"] != "Ana" || len(got) != 2 {
			t.Fatalf("b shows %v, want Bob as code 1 and Ana", got)
		}

		// The administrators configure a prefix and edit the codes.
		a.update("party_party", alice, 1, map[string]any{"code": "A-1"})
		evs = a.drain()
		// Her party first; then, tried again once it is captured, the
		// rows held because of it (in the registry's order).
		created := map[string]*ledger.Event{}
		for _, e := range evs {
			if e.Op == ledger.OpCreate {
				created[e.Model] = e
			}
		}
		if len(evs) != 3 || len(created) != 3 || evs[0].Model != "party.party" || evs[0].Key != "A-1" || created["gnuhealth.patient"].Key != "A-1" {
			t.Fatalf("after the fix a captured %v, want creates of party A-1, then her address and her patient record", evs)
		}
		if evs[0].Fields["name"].String() != ledger.String("Alice Sat1").String() || evs[0].Fields["ref"].String() != ledger.String("JM1111").String() {
			t.Fatalf("Alice's create lacks her fields: %v", evs[0].Fields)
		}
		if r, ok := created["party.address"].Fields["party"].AsRef(); !ok || r.Key != "A-1" {
			t.Fatalf("Alice's address references %v, want A-1", created["party.address"].Fields["party"])
		}
		if v, _ := created["gnuhealth.patient"].Fields["critical_info"].AsString(); v != "penicillin allergy" {
			t.Fatalf("Alice's patient record lacks its fields: %v", created["gnuhealth.patient"].Fields)
		}
		b.update("party_party", bob, 1, map[string]any{"code": "B-1"})
		if evs := b.drain(); len(evs) != 1 || evs[0].Key != "B-1" || evs[0].Op != ledger.OpCreate {
			t.Fatalf("after the fix b captured %v, want the create of B-1", evs)
		}
		for _, s := range []*site{a, b} {
			if h := s.held(); len(h) != 0 {
				t.Fatalf("origin %d still holds %+v", s.origin, h)
			}
		}
		for range 2 {
			a.receive(b)
			b.receive(a)
			a.project()
			b.project()
		}
		for _, s := range []*site{a, b} {
			got := s.partyNames()
			if got["A-1"] != "Alice Sat1" || got["B-1"] != "Bob Sat2" || got["A-2"] != "Ana" || len(got) != 3 {
				t.Fatalf("origin %d shows %v, want Alice (A-1), Bob (B-1) and Ana, three people", s.origin, got)
			}
			if n := s.int(`SELECT count(*) FROM party_address a JOIN party_party p ON p.id = a.party WHERE p.code = 'A-1'`); n != 1 {
				t.Fatalf("origin %d: Alice has %d addresses, want 1", s.origin, n)
			}
			if n := s.int(`SELECT count(*) FROM gnuhealth_patient x JOIN party_party p ON p.id = x.name WHERE p.code = 'A-1' AND x.critical_info = 'penicillin allergy'`); n != 1 {
				t.Fatalf("origin %d: Alice has %d patient records, want 1", s.origin, n)
			}
			cs, err := s.proj.Conflicts(ctx(t))
			if err != nil || len(cs) != 0 {
				t.Fatalf("origin %d: conflicts %v %v, want none", s.origin, cs, err)
			}
		}
	})
}

// TestHeldReleasedByUUIDIdentity: the other way out for a held party is
// to identify parties by UUID. No change of the row is needed: the next
// drain tries the held rows again, captures the party under a UUID and
// then its address, which was held because of it.
func TestHeldReleasedByUUIDIdentity(t *testing.T) {
	forEachLayout(t, func(t *testing.T, lay layout) {
		s := newSite(t, lay, 3)
		party := s.insert("party_party", 1, map[string]any{"code": "1", "name": "Alice", "active": true})
		addr := s.insert("party_address", 1, map[string]any{"party": party, "city": "Mandeville", "active": true})
		if evs := s.drain(); len(evs) != 0 {
			t.Fatalf("captured %v, want the party and its address held", evs)
		}
		if h := s.held(); len(h) != 2 {
			t.Fatalf("holds %+v, want the party and its address", h)
		}
		// A second drain with nothing new changes nothing.
		st, err := s.cap.Drain(ctx(t))
		if err != nil || st.Events != 0 || st.Batches != 0 || st.Held != 2 {
			t.Fatalf("second drain: %+v %v, want nothing written and 2 held", st, err)
		}
		reg, err := s.reg.WithUUIDIdentity("party.party", "company.company", "gnuhealth.patient", "gnuhealth.healthprofessional", "gnuhealth.hp_specialty")
		if err != nil {
			t.Fatal(err)
		}
		s.reg = reg
		s.open(capture.Options{})
		evs := s.drain()
		if len(evs) != 2 || evs[0].Model != "party.party" || evs[0].Op != ledger.OpCreate || evs[1].Model != "party.address" {
			t.Fatalf("after UUID identity captured %v, want the party's create, then its address's", evs)
		}
		if code, _ := evs[0].Fields["code"].AsString(); code != "1" || evs[0].Key == "1" || len(evs[0].Key) != 36 {
			t.Fatalf("party captured as key %q with code %q, want a UUID key and the code as a field", evs[0].Key, code)
		}
		if r, ok := evs[1].Fields["party"].AsRef(); !ok || r.Key != evs[0].Key {
			t.Fatalf("address references %v, want the party's UUID %s", evs[1].Fields["party"], evs[0].Key)
		}
		if h := s.held(); len(h) != 0 {
			t.Fatalf("still holds %+v", h)
		}
		s.update("party_address", addr, 1, map[string]any{"city": "Christiana"})
		if later := s.drain(); len(later) != 1 || later[0].Op != ledger.OpWrite || later[0].Key != evs[1].Key {
			t.Fatalf("a later edit captured as %v, want one write to %s", later, evs[1].Key)
		}
	})
}

// TestHeldKeyChange: a known party whose code is edited to a plain
// number keeps its network identity: the edit's other fields are
// captured under it, the move waits. Once the code is network-unique
// the identity moves as any key change does.
func TestHeldKeyChange(t *testing.T) {
	forEachLayout(t, func(t *testing.T, lay layout) {
		s := newSite(t, lay, 4)
		party := s.insert("party_party", 1, map[string]any{"code": "A-1", "name": "Ana", "active": true})
		s.drain()
		s.update("party_party", party, 1, map[string]any{"code": "7", "name": "Ana M."})
		evs := s.drain()
		if len(evs) != 1 || evs[0].Op != ledger.OpWrite || evs[0].Key != "A-1" {
			t.Fatalf("captured %v, want one write to A-1", evs)
		}
		if _, ok := evs[0].Fields["code"]; ok || evs[0].Fields["name"].String() != ledger.String("Ana M.").String() {
			t.Fatalf("write %v, want the name without the refused code", evs[0].Fields)
		}
		h := s.held()[heldName("party.party", party)]
		if h.Key != "7" || len(h.Fields) != 1 || h.Fields[0] != "code" || !strings.Contains(h.Reason, "plain number") {
			t.Fatalf("holds %+v, want the code change to 7", s.held())
		}
		// Meanwhile the party's other edits and its new address are captured under A-1.
		s.insert("party_address", 1, map[string]any{"party": party, "city": "Lucea", "active": true})
		if evs := s.drain(); len(evs) != 1 || evs[0].Model != "party.address" {
			t.Fatalf("captured %v, want the address", evs)
		} else if r, _ := evs[0].Fields["party"].AsRef(); r.Key != "A-1" {
			t.Fatalf("address references %v, want A-1", evs[0].Fields["party"])
		}
		s.update("party_party", party, 1, map[string]any{"code": "A-7"})
		evs = s.drain()
		if len(evs) != 2 || evs[0].Op != ledger.OpCreate || evs[0].Key != "A-7" || evs[1].Op != ledger.OpDelete || evs[1].Key != "A-1" {
			t.Fatalf("captured %v, want the move from A-1 to A-7", evs)
		}
		if h := s.held(); len(h) != 0 {
			t.Fatalf("still holds %+v", h)
		}
	})
}

// TestHeldReference: a known address pointed at a held party keeps its
// old party on the network; its other fields are captured, the reference
// is held (never written as empty), and the projector leaves the row as
// the user saved it. Once the party has a network-unique code the drain
// captures the party, then the held reference.
func TestHeldReference(t *testing.T) {
	forEachLayout(t, func(t *testing.T, lay layout) {
		a, b := newSite(t, lay, 1), newSite(t, lay, 2)
		ana := a.insert("party_party", 1, map[string]any{"code": "A-2", "name": "Ana", "active": true})
		addr := a.insert("party_address", 1, map[string]any{"party": ana, "city": "Negril", "active": true})
		a.drain()
		alice := a.insert("party_party", 1, map[string]any{"code": "1", "name": "Alice", "active": true})
		a.update("party_address", addr, 1, map[string]any{"party": alice, "city": "Savanna-la-Mar"})
		evs := a.drain()
		if len(evs) != 1 || evs[0].Op != ledger.OpWrite || evs[0].Model != "party.address" {
			t.Fatalf("captured %v, want one write of the address", evs)
		}
		if _, ok := evs[0].Fields["party"]; ok || evs[0].Fields["city"].String() != ledger.String("Savanna-la-Mar").String() {
			t.Fatalf("write %v, want the city without the held party", evs[0].Fields)
		}
		h, ok := a.held()[heldName("party.address", addr)]
		if !ok || len(h.Fields) != 1 || h.Fields[0] != "party" || !strings.Contains(h.Reason, fmt.Sprintf("party.party id %d", alice)) {
			t.Fatalf("holds %+v, want the address's party field, naming Alice", a.held())
		}
		// b moves the address to another party meanwhile; a's row stays
		// as its user saved it while the reference is held.
		b.receive(a)
		b.project()
		idB := b.int(`SELECT id FROM party_address`)
		other := b.insert("party_party", 1, map[string]any{"code": "B-3", "name": "Bea", "active": true})
		b.update("party_address", idB, 1, map[string]any{"party": other})
		b.drain()
		a.receive(b)
		a.project()
		if got := a.int(`SELECT party FROM party_address WHERE id = ?`, addr); got != alice {
			t.Fatalf("projection moved the address to party %d, want Alice (%d) as the user saved it", got, alice)
		}

		a.update("party_party", alice, 1, map[string]any{"code": "A-1"})
		evs = a.drain()
		if len(evs) != 2 || evs[0].Key != "A-1" || evs[0].Op != ledger.OpCreate || evs[1].Model != "party.address" || evs[1].Op != ledger.OpWrite {
			t.Fatalf("captured %v, want Alice's create, then the address's party", evs)
		}
		if r, ok := evs[1].Fields["party"].AsRef(); !ok || r.Key != "A-1" || len(evs[1].Fields) != 1 {
			t.Fatalf("address write %v, want party A-1 only", evs[1].Fields)
		}
		if h := a.held(); len(h) != 0 {
			t.Fatalf("still holds %+v", h)
		}
		for range 2 {
			a.receive(b)
			b.receive(a)
			a.project()
			b.project()
		}
		// a's held edit enters the network when it is released, after
		// everything a captured before (an origin's clock only goes
		// forward): it wins over b's concurrent edit, which is listed as
		// a conflict, and both sites agree.
		code := func(s *site) string {
			var c string
			if err := s.db.QueryRow(`SELECT p.code FROM party_address a JOIN party_party p ON p.id = a.party`).Scan(&c); err != nil {
				t.Fatal(err)
			}
			return c
		}
		if ca, cb := code(a), code(b); ca != "A-1" || cb != "A-1" {
			t.Fatalf("the address belongs to %s at a and %s at b, want A-1 (Alice) at both", ca, cb)
		}
		for _, s := range []*site{a, b} {
			cs, err := s.proj.Conflicts(ctx(t))
			if err != nil || len(cs) != 1 || cs[0].Field != "party" || cs[0].LoserOrigin != 2 {
				t.Fatalf("origin %d: conflicts %+v %v, want b's party losing to a's", s.origin, cs, err)
			}
		}
	})
}

// TestHeldRowGoneOrEmptyKey: a held row deleted before it was captured
// leaves nothing for the network and is no longer held; a party saved
// with an empty code is held too, rather than stopping the whole drain.
func TestHeldRowGoneOrEmptyKey(t *testing.T) {
	forEachLayout(t, func(t *testing.T, lay layout) {
		s := newSite(t, lay, 5)
		one := s.insert("party_party", 1, map[string]any{"code": "1", "name": "Alice", "active": true})
		blank := s.insert("party_party", 1, map[string]any{"code": "", "name": "No code", "active": true})
		s.insert("party_party", 1, map[string]any{"code": "E-1", "name": "Eve", "active": true})
		if evs := s.drain(); len(evs) != 1 || evs[0].Key != "E-1" {
			t.Fatalf("captured %v, want Eve only", evs)
		}
		held := s.held()
		if h, ok := held[heldName("party.party", blank)]; len(held) != 2 || !ok || !strings.Contains(h.Reason, "key part code is empty") {
			t.Fatalf("holds %+v, want Alice and the party without a code", held)
		}
		s.exec(`DELETE FROM party_party WHERE id = ?`, one)
		if evs := s.drain(); len(evs) != 0 {
			t.Fatalf("deleting a held party captured %v, want nothing", evs)
		}
		s.update("party_party", blank, 1, map[string]any{"code": "E-2"})
		if evs := s.drain(); len(evs) != 1 || evs[0].Key != "E-2" || evs[0].Op != ledger.OpCreate {
			t.Fatalf("captured %v, want the create of E-2", evs)
		}
		if h := s.held(); len(h) != 0 {
			t.Fatalf("still holds %+v", h)
		}
	})
}

// TestHeldAcrossBatches: one change a batch, so that (PostgreSQL, ledger
// inside) each batch is built while the one before is appended: a row
// held by the batch in flight is seen as held by the next, which holds
// its address too instead of giving the party an identity.
func TestHeldAcrossBatches(t *testing.T) {
	forEachLayout(t, func(t *testing.T, lay layout) {
		s := newSite(t, lay, 6)
		s.open(capture.Options{BatchSize: 1})
		alice := s.insert("party_party", 1, map[string]any{"code": "1", "name": "Alice", "active": true})
		s.insert("party_address", 1, map[string]any{"party": alice, "city": "Port Maria", "active": true})
		ana := s.insert("party_party", 1, map[string]any{"code": "A-2", "name": "Ana", "active": true})
		s.insert("party_address", 1, map[string]any{"party": ana, "city": "Negril", "active": true})
		s.update("party_party", alice, 1, map[string]any{"name": "Alice B."})
		evs := s.drain()
		if len(evs) != 2 || evs[0].Key != "A-2" || evs[1].Model != "party.address" {
			t.Fatalf("captured %v, want Ana and her address", evs)
		}
		if h := s.held(); len(h) != 2 || h[heldName("party.party", alice)].Key != "1" {
			t.Fatalf("holds %+v, want Alice and her address", h)
		}
		s.update("party_party", alice, 1, map[string]any{"code": "A-1"})
		evs = s.drain()
		if len(evs) != 2 || evs[0].Key != "A-1" || evs[0].Fields["name"].String() != ledger.String("Alice B.").String() || evs[1].Model != "party.address" {
			t.Fatalf("captured %v, want Alice (as she is now) and her address", evs)
		}
		if h := s.held(); len(h) != 0 {
			t.Fatalf("still holds %+v", h)
		}
	})
}
