package capture_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// Many2One references name the life of their target (ledger.Ref.Saw): a
// reference made by a clinic that had not heard its person was deleted,
// or given another code, means that person, never the one who has the
// code now.

// addressesByCode maps each party code to the cities of its addresses.
func (s *site) addressesByCode() string {
	s.t.Helper()
	rs, err := s.db.QueryContext(ctx(s.t), `SELECT p.code, a.city FROM party_address a JOIN party_party p ON p.id = a.party ORDER BY p.code, a.city`)
	if err != nil {
		s.t.Fatal(err)
	}
	defer rs.Close()
	var out []string
	for rs.Next() {
		var code, city string
		if err := rs.Scan(&code, &city); err != nil {
			s.t.Fatal(err)
		}
		out = append(out, code+":"+city)
	}
	return strings.Join(out, " ")
}

// exchange gives each site the other's ledger and projects both.
func exchange(a, b *site) {
	a.drain()
	b.drain()
	a.receive(b)
	b.receive(a)
	a.project()
	b.project()
}

// TestAddressOfAnEarlierLife: origin 1 deletes Ana and registers
// Bob under her code while origin 2, not yet told, adds an address to
// Ana. The address is Ana's: it goes nowhere near Bob, and with Ana
// deleted it has no row at either site, parked at both as waiting on a
// deleted life. Before references named a life, Bob got Ana's address.
func TestAddressOfAnEarlierLife(t *testing.T) {
	forEachLayout(t, func(t *testing.T, lay layout) {
		a, b, ana := anaAtTwoSites(t, lay)
		a.exec(a.q(`DELETE FROM party_party WHERE id = ?`), ana)
		a.insert("party_party", 1, map[string]any{"code": "A-1", "name": "Bob", "active": true})
		b.insert("party_address", 1, map[string]any{"party": b.int(`SELECT id FROM party_party WHERE code = 'A-1'`), "city": "Negril", "active": true})
		exchange(a, b)
		for _, s := range []*site{a, b} {
			if got := s.addressesByCode(); got != "" {
				t.Fatalf("origin %d shows addresses %q, want none (Bob has none, Ana is deleted)", s.origin, got)
			}
			parked := s.parkedList()
			if len(parked) != 1 || !strings.HasPrefix(parked[0], "party.address ") || !strings.Contains(parked[0], "was deleted") {
				t.Fatalf("origin %d parks %v, want Ana's address, waiting on a deleted life", s.origin, parked)
			}
		}
		if pa, pb := a.parkedList(), b.parkedList(); !slices.Equal(pa, pb) {
			t.Fatalf("origin 1 parks %v, origin 2 %v", pa, pb)
		}
	})
}

// TestAddressOfARecodedPerson: origin 1 corrects Ana's code from A-1 to
// A-2 and registers Bob as A-1 while origin 2, not yet told, adds an
// address to Ana as A-1. The reference follows Ana to A-2.
func TestAddressOfARecodedPerson(t *testing.T) {
	forEachLayout(t, func(t *testing.T, lay layout) {
		a, b, ana := anaAtTwoSites(t, lay)
		a.update("party_party", ana, 1, map[string]any{"code": "A-2"})
		a.drain() // the correction and the new registration in two drains
		a.insert("party_party", 1, map[string]any{"code": "A-1", "name": "Bob", "active": true})
		b.insert("party_address", 1, map[string]any{"party": b.int(`SELECT id FROM party_party WHERE code = 'A-1'`), "city": "Negril", "active": true})
		exchange(a, b)
		for _, s := range []*site{a, b} {
			if got, want := fmt.Sprint(s.partyNames()), "map[A-1:Bob A-2:Ana]"; got != want {
				t.Fatalf("origin %d holds %s, want %s", s.origin, got, want)
			}
			if got, want := s.addressesByCode(), "A-2:Negril"; got != want {
				t.Fatalf("origin %d shows addresses %q, want %q", s.origin, got, want)
			}
			if parked := s.parkedList(); len(parked) != 0 {
				t.Fatalf("origin %d parks %v", s.origin, parked)
			}
		}
	})
}

// TestAddressOfADeletedPerson: origin 1 deletes Ana while origin 2 adds
// an address to her. Origin 2's row of the address goes with Ana's (the
// table's ON DELETE CASCADE), and the record is then what it is at
// origin 1, which never had a row of it: parked, waiting on the deleted
// person, the same at both sites.
func TestAddressOfADeletedPerson(t *testing.T) {
	forEachLayout(t, func(t *testing.T, lay layout) {
		a, b := rowOfDeletedAna(t, lay, "party_address", "party", "party.address", map[string]any{"city": "Negril", "active": true})
		// Registered again (her code used knowingly), Ana does not get the
		// address back: it was made for the life that ended.
		a.insert("party_party", 1, map[string]any{"code": "A-1", "name": "Ana", "active": true})
		exchange(a, b)
		for _, s := range []*site{a, b} {
			if got := s.addressesByCode(); got != "" {
				t.Fatalf("origin %d shows addresses %q after Ana's new registration, want none", s.origin, got)
			}
		}
	})
}

// TestPatientOfADeletedPerson: origin 2 registers Ana as a patient while
// origin 1 deletes her. Tryton's foreign key from the patient to the
// party is ON DELETE RESTRICT, so origin 2's projector cannot delete Ana
// while her patient row is there: the patient's row goes first, and the
// record is parked, waiting on the deleted person, as at origin 1, which
// never had a row of it. Projection goes on at both sites (it halted at
// origin 2, on the foreign key, before).
func TestPatientOfADeletedPerson(t *testing.T) {
	forEachLayout(t, func(t *testing.T, lay layout) {
		rowOfDeletedAna(t, lay, "gnuhealth_patient", "name", "gnuhealth.patient", map[string]any{"critical_info": "penicillin allergy", "active": true})
	})
}

// rowOfDeletedAna: origin 2 adds a row of table pointing at Ana through
// column (cols its other values) and projects; origin 1 deletes Ana; the
// sites exchange. Neither may then hold Ana or any row of table, and
// each parks model's record alone, waiting on the deleted person.
func rowOfDeletedAna(t *testing.T, lay layout, table, column, model string, cols map[string]any) (a, b *site) {
	t.Helper()
	a, b, ana := anaAtTwoSites(t, lay)
	cols[column] = b.int(`SELECT id FROM party_party WHERE code = 'A-1'`)
	b.insert(table, 1, cols)
	b.drain()
	b.project()
	a.exec(a.q(`DELETE FROM party_party WHERE id = ?`), ana)
	exchange(a, b)
	for _, s := range []*site{a, b} {
		if n := s.int(`SELECT count(*) FROM party_party`) + s.int(`SELECT count(*) FROM `+table); n != 0 {
			t.Fatalf("origin %d holds %d rows of party_party and %s, want none", s.origin, n, table)
		}
		parked := s.parkedList()
		if len(parked) != 1 || !strings.HasPrefix(parked[0], model+" ") || !strings.Contains(parked[0], "target was deleted") {
			t.Fatalf("origin %d parks %v, want the %s record, waiting on deleted Ana", s.origin, parked, model)
		}
	}
	return a, b
}
