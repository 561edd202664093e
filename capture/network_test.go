package capture_test

import (
	"testing"
	"time"

	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/models"
)

// TestNoEchoAcrossThreeSites bounces a change from one satellite through
// central to another and back: each site projects what it receives, and
// none of them captures it again. Every ledger ends with exactly the
// events the users made, and every site shows the same rows.
func TestNoEchoAcrossThreeSites(t *testing.T) {
	for _, dialect := range []string{models.Postgres, models.SQLite} {
		t.Run(dialect, func(t *testing.T) {
			lay := layout{name: dialect, dialect: dialect, sameDB: true}
			central, s1, s2 := newSite(t, lay, 0), newSite(t, lay, 1), newSite(t, lay, 2)
			exchange := func() {
				for _, s := range []*site{central, s1, s2} {
					s.drain()
				}
				central.receive(s1)
				central.receive(s2)
				s1.receive(central)
				s2.receive(central)
				for _, s := range []*site{central, s1, s2} {
					s.project()
				}
			}
			party := s1.insert("party_party", 1, map[string]any{"code": "S1-1", "name": "Ana", "active": true})
			s1.insert("party_address", 1, map[string]any{"party": party, "city": "Mandeville", "active": true})
			exchange()
			exchange() // a second round finds nothing new anywhere
			// The receiving sites edit the projected row: captured once, with
			// the sender's key, and it comes back to s1.
			id := s2.int(`SELECT id FROM party_party WHERE code = 'S1-1'`)
			s2.update("party_party", id, 1, map[string]any{"name": "Ana Grant"})
			exchange()
			exchange()
			for _, s := range []*site{central, s1, s2} {
				if n := s.outbox(); n != 0 {
					t.Fatalf("origin %d: outbox holds %d rows: a projected change was captured again", s.origin, n)
				}
				heads, err := s.store.Origins(ctx(t))
				if err != nil {
					t.Fatal(err)
				}
				count := map[uint16]uint64{}
				for _, h := range heads {
					count[h.Origin] = h.Count
				}
				if count[1] != 2 || count[2] != 1 || count[0] != 0 {
					t.Fatalf("origin %d ledger holds %v events per origin, want {1: 2, 2: 1}: something was re-emitted", s.origin, count)
				}
				var name string
				if err := s.db.QueryRow(`SELECT name FROM party_party WHERE code = 'S1-1'`).Scan(&name); err != nil || name != "Ana Grant" {
					t.Fatalf("origin %d shows name %q (%v), want Ana Grant", s.origin, name, err)
				}
				if n := s.int(`SELECT count(*) FROM party_address`); n != 1 {
					t.Fatalf("origin %d has %d addresses, want 1", s.origin, n)
				}
			}
			// The edit's Base is the create it replaced: no conflict anywhere.
			for _, s := range []*site{central, s1, s2} {
				cs, err := s.proj.Conflicts(ctx(t))
				if err != nil {
					t.Fatal(err)
				}
				if len(cs) != 0 {
					t.Fatalf("origin %d records conflicts %v for a sequential edit", s.origin, cs)
				}
			}
		})
	}
}

// TestLocalChangeNotOverwritten: a remote write arrives while a local edit
// of the same record waits in the outbox. The projector leaves the row as
// the user saved it; the capturer names the value the user saw as Base, so
// the lost write is reported as a conflict, never silently dropped.
func TestLocalChangeNotOverwritten(t *testing.T) {
	forEachLayout(t, func(t *testing.T, lay layout) {
		a, b := newSite(t, lay, 1), newSite(t, lay, 2)
		a.insert("party_party", 1, map[string]any{"code": "A-1", "name": "Ana", "active": true})
		a.drain()
		b.receive(a)
		b.project()
		idB := b.int(`SELECT id FROM party_party WHERE code = 'A-1'`)

		// b's user edits; not yet captured. a edits later, and it reaches b.
		b.update("party_party", idB, 1, map[string]any{"name": "Ana (b)"})
		// SQLite's outbox times changes to the millisecond: a's edit must
		// fall in a later one to be the later write, not an equal-clock tie
		// (which origin 2 wins).
		time.Sleep(2 * time.Millisecond)
		idA := a.int(`SELECT id FROM party_party WHERE code = 'A-1'`)
		a.update("party_party", idA, 1, map[string]any{"name": "Ana (a)"})
		a.drain()
		b.receive(a)
		b.project()
		name := func() string {
			var n string
			if err := b.db.QueryRow(b.q(`SELECT name FROM party_party WHERE id = ?`), idB).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		if name() != "Ana (b)" {
			t.Fatalf("projector overwrote a pending local edit: name %q, want Ana (b)", name())
		}
		evs := b.drain()
		if len(evs) != 1 || evs[0].Op != ledger.OpWrite {
			t.Fatalf("captured %v, want one write", evs)
		}
		b.project()
		// Merged: a's write was made later, so it wins; b's write lost to a
		// write it never saw and is listed as a conflict.
		cs, err := b.proj.Conflicts(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		if len(cs) != 1 || cs[0].Field != "name" || cs[0].LoserOrigin != 2 || cs[0].WinnerOrigin != 1 {
			t.Fatalf("conflicts %+v, want one on name, b's write losing to a's", cs)
		}
		if got := name(); got != "Ana (a)" {
			t.Fatalf("name %q after merge, want the later write Ana (a)", got)
		}
		if n := b.int(deferredCount(lay)); n != 0 {
			t.Fatalf("%d records still deferred after the change was captured", n)
		}
	})
}

func deferredCount(lay layout) string {
	if lay.dialect == models.Postgres {
		return `SELECT count(*) FROM ghsync.deferred`
	}
	return `SELECT count(*) FROM ghsync_deferred`
}
