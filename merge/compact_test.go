package merge

import (
	"fmt"
	"slices"
	"testing"

	"github.com/ghsync/ghsync/clocks"
	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/ledger/ledgertest"
)

// conflictStore keeps conflicts as the projector does: a table updated
// from each record's Conflicts after every change, where a conflict that
// compaction stopped reporting stays as it was.
type conflictStore struct {
	table   map[string]Conflict   // by record, field, loser
	tracked map[string][]Conflict // per record: what Conflicts last reported
}

func conflictKey(rec string, c Conflict) string {
	return fmt.Sprintf("%s/%s/%s", rec, c.Field, c.Loser.Stamp)
}

// update brings the table from what rec's state last reported to now.
func (cs *conflictStore) update(rec string, s *State, p Policy) {
	after := s.Conflicts(p)
	now := map[string]bool{}
	for _, c := range after {
		k := conflictKey(rec, c)
		cs.table[k], now[k] = c, true
	}
	for _, c := range cs.tracked[rec] {
		if k := conflictKey(rec, c); !now[k] {
			delete(cs.table, k)
		}
	}
	cs.tracked[rec] = after
}

// TestCompactKeepsOutcomes checks Compact's promise over random
// histories: a replica that compacts once every write up to a frontier
// has reached everyone, then receives the rest, ends with the values and
// the stored conflicts of a replica that never compacted. A history runs,
// every replica receives everything (the frontier is any HLC up to the
// greatest so far), and it runs on; the compacting replica applies all
// of the first part and some of the second in a random order, compacts,
// and applies the rest, compacting again now and then.
func TestCompactKeepsOutcomes(t *testing.T) {
	rng := ledgertest.Rand(t)
	histories := 3000
	if testing.Short() {
		histories = 300
	}
	dropped, kept := 0, 0
	for i := range histories {
		p := randomPolicy(rng, i)
		h := newHistory(rng, p)
		h.run(5 + rng.IntN(40))
		var frontier clocks.Timestamp
		for _, r := range h.reps {
			for j := range h.events {
				h.deliver(r, j)
			}
		}
		for _, e := range h.events {
			frontier = max(frontier, e.HLC)
		}
		if rng.IntN(3) == 0 { // any earlier frontier is one too
			frontier = h.events[rng.IntN(len(h.events))].HLC
		}
		first := len(h.events)
		h.run(rng.IntN(25))
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("history %d (policy %+v, %d events, frontier %d): %s", i, p, len(h.events), uint64(frontier), fmt.Sprintf(format, args...))
		}

		var early, late []*ledger.Event
		early = append(early, h.events[:first]...)
		for _, e := range h.events[first:] {
			if rng.IntN(2) == 0 {
				early = append(early, e)
			} else {
				late = append(late, e)
			}
		}
		rng.Shuffle(len(early), func(a, b int) { early[a], early[b] = early[b], early[a] })
		rng.Shuffle(len(late), func(a, b int) { late[a], late[b] = late[b], late[a] })

		states := map[string]*State{}
		cs := &conflictStore{table: map[string]Conflict{}, tracked: map[string][]Conflict{}}
		apply := func(e *ledger.Event) {
			s := states[e.Key]
			if s == nil {
				s = &State{}
				states[e.Key] = s
			}
			s.Apply(e)
			cs.update(e.Key, s, p)
		}
		compact := func() {
			for key, s := range states {
				before := s.Clone()
				n := s.Compact(p, frontier)
				dropped += n
				if n == 0 {
					continue
				}
				if !valuesEqual(before.Values(p), s.Values(p)) || before.Live() != s.Live() {
					fail("compacting %s changed its values", key)
				}
				// What is still reported is reported alike; the rest
				// stays in the table untracked.
				for _, c := range s.Conflicts(p) {
					if old, ok := cs.table[conflictKey(key, c)]; !ok || !conflictsEqual([]Conflict{old}, []Conflict{c}) {
						fail("compacting %s changed a kept write's conflict:%s", key, fmtConflicts([]Conflict{c}))
					}
				}
				cs.tracked[key] = s.Conflicts(p)
				again := s.Clone()
				if again.Compact(p, frontier) != 0 {
					fail("compacting %s twice dropped more", key)
				}
			}
		}
		for _, e := range early {
			apply(e)
		}
		compact()
		for _, e := range late {
			apply(e)
			if rng.IntN(4) == 0 {
				compact()
			}
		}

		for key, want := range byKey(h.events) {
			got := states[key]
			kept += countWrites(got)
			if !valuesEqual(got.Values(p), want.Values(p)) || got.Live() != want.Live() {
				fail("%s: values %v, want %v", key, got.Values(p), want.Values(p))
			}
			var stored []Conflict
			for k, c := range cs.table {
				if len(k) > len(key) && k[:len(key)+1] == key+"/" {
					stored = append(stored, c)
				}
			}
			slices.SortFunc(stored, compareConflicts)
			if wantC := want.Conflicts(p); !conflictsEqual(stored, wantC) {
				fail("%s: stored conflicts%s\nwant%s", key, fmtConflicts(stored), fmtConflicts(wantC))
			}
		}
	}
	t.Logf("compaction dropped %d writes; %d kept", dropped, kept)
	if dropped == 0 {
		t.Fatal("no history compacted anything: the test checks nothing")
	}
}

func countWrites(s *State) int {
	n := 0
	for _, ws := range s.Fields {
		n += len(ws)
	}
	return n
}

// TestCompactBoundsABusyRecord: a record written over and over, each
// write replacing the one before at one instance after another, keeps
// only the writes after the frontier and the last one before it.
func TestCompactBoundsABusyRecord(t *testing.T) {
	var h hand
	s := &State{}
	var last clocks.Timestamp
	hlc := clocks.Timestamp(1000)
	for i := range 500 {
		hlc += 10
		op := ledger.OpWrite
		if i == 0 {
			op = ledger.OpCreate
		}
		s.Apply(h.ev(op, uint16(i%4), hlc, map[string]clocks.Timestamp{"beds": last, "name": last}, "beds", i%7, "name", fmt.Sprint("ward ", i%3)))
		last = hlc
	}
	frontier := hlc - 100 // the last ten writes are not yet everywhere
	before := s.Clone()
	if n := s.Compact(Policy{}, frontier); n != 2*(500-11) {
		t.Fatalf("dropped %d writes, want %d", n, 2*(500-11))
	}
	if len(s.Fields["beds"]) != 11 {
		t.Fatalf("kept %d writes of beds, want 11", len(s.Fields["beds"]))
	}
	if !valuesEqual(s.Values(Policy{}), before.Values(Policy{})) {
		t.Fatal("values changed")
	}
	a, _ := before.MarshalBinary()
	b, _ := s.MarshalBinary()
	t.Logf("state %d bytes, compacted %d", len(a), len(b))
}

// TestCompactLeavesUnsettledRules: rules whose outcome later writes can
// still change are not compacted.
func TestCompactLeavesUnsettledRules(t *testing.T) {
	var h hand
	for _, p := range []Policy{{Default: Union}, {Default: CentralWins}, {OriginOwned: true}} {
		s := &State{}
		var last clocks.Timestamp
		for i := range 20 {
			hlc := clocks.Timestamp(1000 + 10*i)
			v := any(i)
			if p.Default == Union {
				v = refs(fmt.Sprint("r", i%3))
			}
			s.Apply(h.ev(ledger.OpWrite, uint16(i%3), hlc, map[string]clocks.Timestamp{"f": last}, "f", v))
			last = hlc
		}
		if n := s.Compact(p, last); n != 0 {
			t.Errorf("policy %+v: dropped %d writes", p, n)
		}
	}
}

// TestCompactNeedsAFrontierPastTheWinner: a write replaced by a concurrent
// write that is not yet stable stays: its conflict could still change.
func TestCompactNeedsAFrontierPastTheWinner(t *testing.T) {
	var h hand
	a := h.ev(ledger.OpCreate, 1, 1000, nil, "f", "a")
	b := h.ev(ledger.OpWrite, 2, 1010, map[string]clocks.Timestamp{"f": 1000}, "f", "b") // saw a
	c := h.ev(ledger.OpWrite, 3, 1020, nil, "f", "c")                                    // saw nothing
	s := stateOf(a, b, c)
	if n := s.Compact(Policy{}, 1015); n != 1 {
		t.Fatalf("frontier between b and c: dropped %d, want 1 (a, replaced knowingly by b)", n)
	}
	if n := s.Compact(Policy{}, 1030); n != 1 {
		t.Fatalf("frontier after c: dropped %d, want 1 (b, lost to c)", n)
	}
	if got := s.Conflicts(Policy{}); len(got) != 0 {
		t.Fatalf("conflicts after compaction:%s (b's is stored, no longer reported)", fmtConflicts(got))
	}
	if v, _ := s.Value(Policy{}, "f"); !v.Value.Equal(ledger.String("c")) {
		t.Fatalf("value %s, want c", v.Value)
	}
}
