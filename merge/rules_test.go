package merge

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/ghsync/ghsync/clocks"
	"github.com/ghsync/ghsync/ledger"
)

type base = map[string]clocks.Timestamp

const (
	C = ledger.OpCreate
	W = ledger.OpWrite
	D = ledger.OpDelete
)

func TestRuleNames(t *testing.T) {
	for r := Rule(0); r < ruleEnd; r++ {
		got, err := ParseRule(r.String())
		if err != nil || got != r {
			t.Errorf("ParseRule(%q) = %v, %v", r.String(), got, err)
		}
	}
	if _, err := ParseRule("lww"); err == nil {
		t.Error("ParseRule accepted an unknown name")
	}
	if Rule(99).String() != "rule(99)" {
		t.Errorf("Rule(99) = %s", Rule(99))
	}
	for r := Reason(0); r < reasonEnd; r++ {
		got, err := ParseReason(r.String())
		if err != nil || got != r {
			t.Errorf("ParseReason(%q) = %v, %v", r.String(), got, err)
		}
	}
	if ConcurrentWrite.String() != "concurrent write" || RecordDeleted.String() != "record deleted" {
		t.Error("reason names changed")
	}
	p := Policy{Default: Max, Fields: map[string]Rule{"a": Union, "z": Rule(200)}}
	if p.Rule("a") != Union || p.Rule("b") != Max || p.Rule("z") != LastWriterWins {
		t.Error("Policy.Rule")
	}
}

// check applies events in order and in reverse, and asserts the winners
// (field → write, absent: no eligible write) and the exact conflict list.
func check(t *testing.T, p Policy, events []*ledger.Event, winners map[string]Write, want []Conflict) *State {
	t.Helper()
	s := stateOf(events...)
	rev := &State{}
	for i := len(events) - 1; i >= 0; i-- {
		rev.Apply(events[i])
	}
	if string(mustMarshal(t, s)) != string(mustMarshal(t, rev)) {
		t.Fatal("state depends on the order of application")
	}
	for name := range s.Fields {
		w, ok := s.Value(p, name)
		exp, expOK := winners[name]
		if ok != expOK || ok && !writeEqual(w, exp) {
			t.Errorf("winner of %s = %s (ok %v), want %s (ok %v)", name, fmtWrite(w), ok, fmtWrite(exp), expOK)
		}
	}
	vals := s.Values(p)
	for name, exp := range winners {
		if !vals[name].Equal(exp.Value) {
			t.Errorf("Values[%s] = %s, want %s", name, vals[name], exp.Value)
		}
	}
	if len(vals) != len(winners) {
		t.Errorf("Values has %d fields, want %d", len(vals), len(winners))
	}
	got := s.Conflicts(p)
	if !conflictsEqual(got, want) {
		t.Errorf("conflicts:%s\nwant:%s", fmtConflicts(got), fmtConflicts(want))
	}
	if !conflictsEqual(rev.Conflicts(p), got) {
		t.Error("conflicts depend on the order of application")
	}
	return s
}

func TestLastWriterWins(t *testing.T) {
	p := Policy{}
	t.Run("concurrent then later", func(t *testing.T) {
		var h hand
		a := h.ev(W, 1, 10, nil, "f", 1)
		w1 := h.ev(W, 2, 20, nil, "f", 2)           // did not see a
		w2 := h.ev(W, 1, 30, base{"f": 20}, "f", 3) // saw w1
		check(t, p, []*ledger.Event{a, w1, w2},
			map[string]Write{"f": wr(w2, "f")},
			[]Conflict{{Field: "f", Loser: wr(a, "f"), Winner: wr(w1, "f"), Reason: ConcurrentWrite}})
	})
	t.Run("smallest unseeing winner", func(t *testing.T) {
		var h hand
		a := h.ev(W, 1, 10, nil, "f", 1)
		w1 := h.ev(W, 2, 20, nil, "f", 2)
		w2 := h.ev(W, 3, 25, nil, "f", 3)
		check(t, p, []*ledger.Event{w2, a, w1},
			map[string]Write{"f": wr(w2, "f")},
			[]Conflict{
				{Field: "f", Loser: wr(a, "f"), Winner: wr(w1, "f"), Reason: ConcurrentWrite},
				{Field: "f", Loser: wr(w1, "f"), Winner: wr(w2, "f"), Reason: ConcurrentWrite},
			})
	})
	t.Run("same value is no conflict", func(t *testing.T) {
		var h hand
		a := h.ev(W, 1, 10, nil, "f", 1)
		b := h.ev(W, 2, 20, nil, "f", 1)
		check(t, p, []*ledger.Event{a, b}, map[string]Write{"f": wr(b, "f")}, nil)
	})
	t.Run("sequential is no conflict", func(t *testing.T) {
		var h hand
		a := h.ev(C, 1, 10, nil, "f", 1, "g", "x")
		b := h.ev(W, 2, 20, base{"f": 10}, "f", 2)
		c := h.ev(W, 1, 30, base{"g": 10}, "g", "y")
		check(t, p, []*ledger.Event{c, b, a}, map[string]Write{"f": wr(b, "f"), "g": wr(c, "g")}, nil)
	})
	t.Run("equal clocks", func(t *testing.T) {
		var h hand
		a := h.ev(W, 2, 10, nil, "f", 1)
		b := h.ev(W, 1, 10, nil, "f", 2)
		check(t, p, []*ledger.Event{a, b},
			map[string]Write{"f": wr(a, "f")}, // origin 2 > origin 1
			[]Conflict{{Field: "f", Loser: wr(b, "f"), Winner: wr(a, "f"), Reason: ConcurrentWrite}})
	})
	t.Run("duplicate registration", func(t *testing.T) {
		var h hand
		c1 := h.ev(C, 1, 10, nil, "f", 1, "g", 5)
		c2 := h.ev(C, 2, 12, nil, "f", 2, "g", 5)
		s := check(t, p, []*ledger.Event{c2, c1},
			map[string]Write{"f": wr(c2, "f"), "g": wr(c2, "g")},
			[]Conflict{{Field: "f", Loser: wr(c1, "f"), Winner: wr(c2, "f"), Reason: ConcurrentWrite}})
		if *s.Created != StampOf(c1) || !s.Live() {
			t.Error("Created is not the smallest create")
		}
		if o, ok := s.Owner(); !ok || o != 1 {
			t.Errorf("Owner = %d, %v", o, ok)
		}
	})
	t.Run("create after write", func(t *testing.T) {
		var h hand
		w := h.ev(W, 2, 10, nil, "f", 1)
		c := h.ev(C, 1, 20, nil, "f", 2, "g", 3)
		s := check(t, p, []*ledger.Event{w, c},
			map[string]Write{"f": wr(c, "f"), "g": wr(c, "g")},
			[]Conflict{{Field: "f", Loser: wr(w, "f"), Winner: wr(c, "f"), Reason: ConcurrentWrite}})
		if !s.Live() || *s.Created != StampOf(c) {
			t.Error("create after write")
		}
		if stateOf(w).Live() {
			t.Error("a write alone makes the record live")
		}
	})
}

func TestFirstWins(t *testing.T) {
	p := Policy{Default: FirstWins}
	var h hand
	a := h.ev(W, 2, 10, nil, "f", 1)
	b := h.ev(W, 1, 20, base{"f": 10}, "f", 2)
	c := h.ev(W, 3, 30, base{"f": 20}, "f", 1)
	check(t, p, []*ledger.Event{c, b, a},
		map[string]Write{"f": wr(a, "f")},
		[]Conflict{{Field: "f", Loser: wr(b, "f"), Winner: wr(a, "f"), Reason: WriteOnce}})
}

func date(y, m, d int) ledger.Value {
	v, err := ledger.Date(time_(y, m, d))
	if err != nil {
		panic(err)
	}
	return v
}

func TestMaxMin(t *testing.T) {
	var h hand
	a := h.ev(W, 1, 10, nil, "seen", date(2026, 5, 1), "n", 5)
	b := h.ev(W, 2, 20, base{"seen": 10, "n": 10}, "seen", date(2026, 4, 1), "n", 3)
	c := h.ev(W, 3, 30, nil, "seen", date(2026, 5, 1), "n", 3) // ties
	events := []*ledger.Event{c, a, b}
	check(t, Policy{Default: Max}, events, map[string]Write{"seen": wr(c, "seen"), "n": wr(a, "n")}, nil)
	check(t, Policy{Default: Min}, events, map[string]Write{"seen": wr(b, "seen"), "n": wr(c, "n")}, nil)
	check(t, Policy{Default: Min, Fields: map[string]Rule{"seen": Max}}, events,
		map[string]Write{"seen": wr(c, "seen"), "n": wr(c, "n")}, nil)
}

func TestUnion(t *testing.T) {
	p := Policy{Default: Union}
	union := func(last *ledger.Event, v ledger.Value) Write {
		w := wr(last, "tags")
		w.Value = v
		return w
	}
	t.Run("observed remove, concurrent add", func(t *testing.T) {
		var h hand
		a := h.ev(C, 1, 10, nil, "tags", refs("x", "y"))
		b := h.ev(W, 1, 20, base{"tags": 10}, "tags", refs("y"))           // removes x
		c := h.ev(W, 2, 15, base{"tags": 10}, "tags", refs("x", "y", "z")) // adds z, keeps x
		check(t, p, []*ledger.Event{a, b, c}, map[string]Write{"tags": union(b, refs("y", "z"))}, nil)
		d := h.ev(W, 3, 18, nil, "tags", refs("x")) // had not seen a: its x survives b's removal
		check(t, p, []*ledger.Event{d, c, b, a}, map[string]Write{"tags": union(b, refs("x", "y", "z"))}, nil)
	})
	t.Run("remove all", func(t *testing.T) {
		var h hand
		a := h.ev(C, 1, 10, nil, "tags", refs("x"))
		b := h.ev(W, 2, 20, base{"tags": 10}, "tags", refs())
		check(t, p, []*ledger.Event{b, a}, map[string]Write{"tags": union(b, refs())}, nil)
	})
	t.Run("re-add after remove", func(t *testing.T) {
		var h hand
		a := h.ev(C, 1, 10, nil, "tags", refs("x"))
		b := h.ev(W, 2, 20, base{"tags": 10}, "tags", refs())
		c := h.ev(W, 1, 30, base{"tags": 20}, "tags", refs("x"))
		check(t, p, []*ledger.Event{c, b, a}, map[string]Write{"tags": union(c, refs("x"))}, nil)
	})
	t.Run("missing base", func(t *testing.T) {
		// b's base a is not held: b's set counts as all adds.
		var h hand
		a := h.ev(C, 1, 10, nil, "tags", refs("x", "y"))
		b := h.ev(W, 2, 20, base{"tags": 10}, "tags", refs("y"))
		check(t, p, []*ledger.Event{b}, map[string]Write{"tags": union(b, refs("y"))}, nil)
		check(t, p, []*ledger.Event{a, b}, map[string]Write{"tags": union(b, refs("y"))}, nil)
	})
	t.Run("not a refset", func(t *testing.T) {
		var h hand
		a := h.ev(C, 1, 10, nil, "tags", refs("x"))
		b := h.ev(W, 2, 20, base{"tags": 10}, "tags", nil) // null: the empty set
		check(t, p, []*ledger.Event{a, b}, map[string]Write{"tags": union(b, refs())}, nil)
	})
	t.Run("HAZARD remove after merging concurrent adds", func(t *testing.T) {
		// a and b add concurrently; w saw both ({x, y}) and removed x. Its
		// base is b (the greatest), whose set lacks x, so the removal of x
		// is not seen: x stays. This pins the documented hazard.
		var h hand
		a := h.ev(W, 1, 10, nil, "tags", refs("x"))
		b := h.ev(W, 2, 11, nil, "tags", refs("y"))
		w := h.ev(W, 3, 20, base{"tags": 11}, "tags", refs("y"))
		check(t, p, []*ledger.Event{a, b, w}, map[string]Write{"tags": union(w, refs("x", "y"))}, nil)
		// The way out: write the set with x, then without.
		with := h.ev(W, 3, 30, base{"tags": 20}, "tags", refs("x", "y"))
		without := h.ev(W, 3, 40, base{"tags": 30}, "tags", refs("y"))
		check(t, p, []*ledger.Event{a, b, w, with, without}, map[string]Write{"tags": union(without, refs("y"))}, nil)
		// Or, as the projector can, write the merged set whenever it
		// differs from the greatest write's: then a removal takes.
		norm := h.ev(W, 3, 15, base{"tags": 11}, "tags", refs("x", "y"))
		rm := h.ev(W, 2, 25, base{"tags": 15}, "tags", refs("y"))
		check(t, p, []*ledger.Event{rm, norm, b, a}, map[string]Write{"tags": union(rm, refs("y"))}, nil)
	})
	t.Run("equal HLC bases", func(t *testing.T) {
		// Two writes at HLC 10: the base of a write naming 10 is the one
		// with the greatest stamp (origin 2).
		var h hand
		a := h.ev(W, 1, 10, nil, "tags", refs("x"))
		b := h.ev(W, 2, 10, nil, "tags", refs("y"))
		w := h.ev(W, 3, 20, base{"tags": 10}, "tags", refs()) // removes y only (b's set), any add at <= 10
		check(t, p, []*ledger.Event{w, b, a}, map[string]Write{"tags": union(w, refs("x"))}, nil)
	})
}

func TestCentralWins(t *testing.T) {
	p := Policy{Default: CentralWins}
	t.Run("central beats later satellites", func(t *testing.T) {
		var h hand
		s1 := h.ev(W, 1, 10, nil, "f", 1)
		c := h.ev(W, 0, 20, nil, "f", 2)            // did not see s1
		s2 := h.ev(W, 1, 30, base{"f": 20}, "f", 3) // saw c, changes it anyway
		s3 := h.ev(W, 2, 40, base{"f": 30}, "f", 2) // sets central's value back
		check(t, p, []*ledger.Event{s3, s2, c, s1},
			map[string]Write{"f": wr(c, "f")},
			[]Conflict{
				{Field: "f", Loser: wr(s1, "f"), Winner: wr(c, "f"), Reason: CentralOnly},
				{Field: "f", Loser: wr(s2, "f"), Winner: wr(c, "f"), Reason: CentralOnly},
			})
	})
	t.Run("central overwrites knowingly", func(t *testing.T) {
		var h hand
		s := h.ev(C, 1, 10, nil, "f", 1)
		c := h.ev(W, 0, 20, base{"f": 10}, "f", 2)
		check(t, p, []*ledger.Event{s, c}, map[string]Write{"f": wr(c, "f")}, nil)
	})
	t.Run("within central", func(t *testing.T) {
		var h hand
		c1 := h.ev(W, 0, 10, nil, "f", 1)
		c2 := h.ev(W, 0, 20, nil, "f", 2)
		s := h.ev(W, 1, 30, base{"f": 20}, "f", 2)
		check(t, p, []*ledger.Event{c1, c2, s},
			map[string]Write{"f": wr(c2, "f")},
			[]Conflict{{Field: "f", Loser: wr(c1, "f"), Winner: wr(c2, "f"), Reason: ConcurrentWrite}})
	})
	t.Run("winner is the winning central write", func(t *testing.T) {
		var h hand
		s := h.ev(W, 1, 10, nil, "f", 1)
		c1 := h.ev(W, 0, 20, nil, "f", 2)           // overrode s unseen
		c2 := h.ev(W, 0, 30, base{"f": 20}, "f", 3) // saw c1 (and, by HLC, s)
		s2 := h.ev(W, 2, 35, nil, "f", 3)           // the winning value: no conflict
		s3 := h.ev(W, 2, 36, nil, "f", 4)           // satellites among themselves: not reported
		check(t, p, []*ledger.Event{s3, s2, c2, c1, s},
			map[string]Write{"f": wr(c2, "f")},
			[]Conflict{{Field: "f", Loser: wr(s, "f"), Winner: wr(c2, "f"), Reason: CentralOnly},
				{Field: "f", Loser: wr(s3, "f"), Winner: wr(c2, "f"), Reason: CentralOnly}})
	})
	t.Run("satellites only", func(t *testing.T) {
		var h hand
		s1 := h.ev(W, 1, 10, nil, "f", 1)
		s2 := h.ev(W, 2, 20, nil, "f", 2)
		check(t, p, []*ledger.Event{s1, s2},
			map[string]Write{"f": wr(s2, "f")},
			[]Conflict{{Field: "f", Loser: wr(s1, "f"), Winner: wr(s2, "f"), Reason: ConcurrentWrite}})
	})
	t.Run("central reported before satellite", func(t *testing.T) {
		var h hand
		s1 := h.ev(W, 1, 10, nil, "f", 1)
		s2 := h.ev(W, 2, 20, nil, "f", 2)
		c := h.ev(W, 0, 5, nil, "f", 3)
		check(t, p, []*ledger.Event{s1, s2, c},
			map[string]Write{"f": wr(c, "f")},
			[]Conflict{
				{Field: "f", Loser: wr(s1, "f"), Winner: wr(c, "f"), Reason: CentralOnly},
				{Field: "f", Loser: wr(s2, "f"), Winner: wr(c, "f"), Reason: CentralOnly},
			})
	})
}

func TestOriginOwned(t *testing.T) {
	p := Policy{OriginOwned: true, Fields: map[string]Rule{"tags": Union}}
	var h hand
	c := h.ev(C, 1, 10, nil, "f", 1, "tags", refs("x"))
	w := h.ev(W, 2, 20, base{"f": 10, "tags": 10}, "f", 2, "g", 7, "tags", refs())
	o := h.ev(W, 1, 30, base{"f": 10}, "f", 3)
	// Before the create is known, every origin may write.
	check(t, p, []*ledger.Event{w},
		map[string]Write{"f": wr(w, "f"), "g": wr(w, "g"), "tags": wr(w, "tags")}, nil)
	unionW := wr(c, "tags")
	check(t, p, []*ledger.Event{o, w, c},
		map[string]Write{"f": wr(o, "f"), "tags": unionW},
		[]Conflict{
			{Field: "f", Loser: wr(w, "f"), Winner: wr(o, "f"), Reason: NotOwner},
			{Field: "g", Loser: wr(w, "g"), Reason: NotOwner}, // nothing eligible won
			{Field: "tags", Loser: wr(w, "tags"), Winner: unionW, Reason: NotOwner},
		})
	// Without OriginOwned the same events merge normally.
	check(t, Policy{Fields: p.Fields}, []*ledger.Event{o, w, c},
		map[string]Write{"f": wr(o, "f"), "g": wr(w, "g"), "tags": {Stamp: StampOf(w), Base: 10, Value: refs()}},
		[]Conflict{{Field: "f", Loser: wr(w, "f"), Winner: wr(o, "f"), Reason: ConcurrentWrite}})
}

func TestDeletes(t *testing.T) {
	p := Policy{}
	var h hand
	c := h.ev(C, 1, 10, nil, "f", 1)
	before := h.ev(W, 1, 15, base{"f": 10}, "f", 5)
	d1 := h.ev(D, 2, 20, nil)
	d2 := h.ev(D, 3, 25, nil)
	after := h.ev(W, 3, 30, base{"f": 10}, "f", 2, "g", 3)
	recreate := h.ev(C, 1, 40, nil, "f", 9)
	s := check(t, p, []*ledger.Event{recreate, after, d2, d1, before, c},
		map[string]Write{"f": wr(before, "f")},
		[]Conflict{
			{Field: "f", Loser: wr(after, "f"), Winner: tomb(d1), Reason: RecordDeleted},
			{Field: "f", Loser: wr(recreate, "f"), Winner: tomb(d1), Reason: RecordDeleted},
			{Field: "g", Loser: wr(after, "g"), Winner: tomb(d1), Reason: RecordDeleted},
		})
	if s.Live() || *s.Deleted != StampOf(d1) || *s.Created != StampOf(c) {
		t.Errorf("live %v deleted %v created %v", s.Live(), s.Deleted, s.Created)
	}
	// RecordDeleted comes before NotOwner.
	check(t, Policy{OriginOwned: true}, []*ledger.Event{c, before, d1, after},
		map[string]Write{"f": wr(before, "f")},
		[]Conflict{
			{Field: "f", Loser: wr(after, "f"), Winner: tomb(d1), Reason: RecordDeleted},
			{Field: "g", Loser: wr(after, "g"), Winner: tomb(d1), Reason: RecordDeleted},
		})
	// A delete alone: not live, no fields, no conflicts.
	s = check(t, p, []*ledger.Event{d2, d1}, map[string]Write{}, nil)
	if s.Live() || s.Created != nil {
		t.Error("delete alone")
	}
}

func TestApplyIdempotent(t *testing.T) {
	var h hand
	c := h.ev(C, 1, 10, nil, "f", 1)
	w := h.ev(W, 2, 20, nil, "f", 2)
	d := h.ev(D, 2, 30, nil)
	empty := h.ev(C, 3, 40, nil) // a create with no fields
	s := &State{}
	for _, e := range []*ledger.Event{c, w, d, empty} {
		before := mustMarshal(t, s)
		if !s.Apply(e) != (e == empty) {
			t.Errorf("first Apply of %s", e)
		}
		if e != empty && string(before) == string(mustMarshal(t, s)) {
			t.Errorf("Apply of %s reported a change but made none", e)
		}
	}
	snap := mustMarshal(t, s)
	for _, e := range []*ledger.Event{c, w, d, empty, c} {
		if s.Apply(e) {
			t.Errorf("re-Apply of %s changed the state", e)
		}
	}
	if string(snap) != string(mustMarshal(t, s)) {
		t.Error("re-Apply changed the encoding")
	}
	if s.Apply(nil) || s.Apply(&ledger.Event{Op: 9}) {
		t.Error("Apply of nil or an unknown op changed the state")
	}
}

func TestSameStampDifferentContent(t *testing.T) {
	// Two events under one id (impossible in a verified ledger) still merge
	// independently of order: the smaller content is kept.
	var h hand
	a := h.ev(W, 1, 10, nil, "f", 2)
	b := *a
	b.Fields = map[string]ledger.Value{"f": ledger.Int(1)}
	ab, ba := stateOf(a, &b), stateOf(&b, a)
	if string(mustMarshal(t, ab)) != string(mustMarshal(t, ba)) {
		t.Fatal("order-dependent")
	}
	if v, _ := ab.Value(Policy{}, "f"); !v.Value.Equal(ledger.Int(1)) {
		t.Errorf("kept %s", v.Value)
	}
}

// TestLastWriterWinsConflictsSkipSeenWrites checks the linear-time pass
// of ruleConflicts against the plain quadratic one (each write against
// the later writes up to the first that saw it) on random sorted
// histories: same conflicts.
func TestLastWriterWinsConflictsSkipSeenWrites(t *testing.T) {
	const seed = 20261130
	rng := rand.New(rand.NewPCG(seed, seed))
	values := []ledger.Value{ledger.String("a"), ledger.String("b"), ledger.String("c"), ledger.Null()}
	for round := range 2000 {
		n := rng.IntN(12)
		el := make([]Write, n)
		hlc := clocks.Timestamp(1000)
		for i := range el {
			hlc += clocks.Timestamp(1 + rng.IntN(3))
			el[i] = Write{Stamp: Stamp{HLC: hlc, Origin: uint16(rng.IntN(3)), ID: seqID(uint64(i + 1))}, Value: values[rng.IntN(len(values))]}
			switch k := rng.IntN(4); {
			case i == 0 || k == 0:
				// Base 0: saw nothing.
			case k == 1:
				el[i].Base = el[rng.IntN(i)].Stamp.HLC // an older value
			default:
				el[i].Base = el[i-1].Stamp.HLC // replaced the one before
			}
		}
		var win Write
		if n > 0 {
			win = el[n-1]
		}
		got := ruleConflicts(nil, "f", LastWriterWins, el, win)
		var want []Conflict
		for i := range el {
			for j := i + 1; j < n; j++ {
				if el[j].Base >= el[i].Stamp.HLC {
					break // replaced knowingly: no conflict
				}
				if !el[j].Value.Equal(el[i].Value) {
					want = append(want, Conflict{Field: "f", Loser: el[i], Winner: el[j], Reason: ConcurrentWrite})
					break
				}
			}
		}
		if len(got) != len(want) {
			t.Fatalf("seed %d round %d: %d conflicts, the plain pass finds %d:\n%v\n%v", seed, round, len(got), len(want), got, want)
		}
		for i := range got {
			if got[i].Loser.Stamp != want[i].Loser.Stamp || got[i].Winner.Stamp != want[i].Winner.Stamp {
				t.Fatalf("seed %d round %d: conflict %d is %v, the plain pass finds %v", seed, round, i, got[i], want[i])
			}
		}
	}
}

// TestRevival: a create that saw the latest delete brings the record back
// with its own values; one that did not see it (or saw only an earlier
// delete) does not, and a later delete ends the revived life.
func TestRevival(t *testing.T) {
	p := Policy{}
	var h hand
	c := h.ev(C, 1, 10, nil, "f", 1, "g", 1)
	old := h.ev(W, 1, 15, base{"f": 10}, "f", 5)
	d1 := h.ev(D, 1, 20, nil)
	concurrent := h.ev(W, 2, 22, base{"f": 10}, "f", 7)     // did not see d1
	missed := h.ev(C, 3, 24, nil, "f", 8)                   // a concurrent create of the key
	r1 := h.ev(C, 1, 30, nil, Revives, 20, "f", 2)          // saw d1: the key used again
	later := h.ev(W, 1, 35, base{"f": 30}, Saw, 20, "f", 3) // saw d1: of the new life

	s := check(t, p, []*ledger.Event{later, r1, missed, concurrent, d1, old, c},
		map[string]Write{"f": wr(later, "f"), Revives: wr(r1, Revives), Saw: wr(later, Saw)},
		[]Conflict{
			{Field: "f", Loser: wr(concurrent, "f"), Winner: tomb(d1), Reason: RecordDeleted},
			{Field: "f", Loser: wr(missed, "f"), Winner: tomb(d1), Reason: RecordDeleted},
		})
	if !s.Live() || *s.Revival() != StampOf(r1) {
		t.Fatalf("live %v revival %v, want live since %v", s.Live(), s.Revival(), StampOf(r1))
	}
	if _, ok := s.Value(p, "g"); ok {
		t.Error("a field of the life before the delete shows in the revived record")
	}
	if o, _ := s.Owner(); o != 1 {
		t.Errorf("owner %d, want the reviving origin 1", o)
	}

	// A delete of the same life that the reviving create did not see (o2
	// deleted the person too, concurrently) does not undo the new life: a
	// delete stamped before the create cannot have seen it.
	d1b := h.ev(D, 2, 25, nil)
	s = check(t, p, []*ledger.Event{r1, d1b, d1, c},
		map[string]Write{"f": wr(r1, "f"), Revives: wr(r1, Revives)}, nil)
	if !s.Live() || *s.Revival() != StampOf(r1) {
		t.Fatalf("live %v revival %v: a concurrent delete of the first life undid the second", s.Live(), s.Revival())
	}

	// A later delete ends the revived life; a create that saw it begins
	// another, owned by its origin.
	d2 := h.ev(D, 2, 32, nil, Saw, 20)
	s = check(t, p, []*ledger.Event{r1, d2, d1, c},
		map[string]Write{"f": wr(r1, "f"), Revives: wr(r1, Revives), Saw: wr(d2, Saw)}, nil)
	if s.Live() || *s.Revival() != StampOf(r1) {
		t.Fatalf("live %v revival %v: want deleted again after %v", s.Live(), s.Revival(), StampOf(r1))
	}
	// A create that saw only the first life's end was made concurrently
	// with the second life: it is of that life, after its delete.
	stale := h.ev(C, 3, 38, nil, Revives, 20, "f", 9)
	s = check(t, p, []*ledger.Event{stale, r1, d2, d1, c},
		map[string]Write{"f": wr(r1, "f"), Revives: wr(r1, Revives), Saw: wr(d2, Saw)},
		[]Conflict{{Field: "f", Loser: wr(stale, "f"), Winner: tomb(d2), Reason: RecordDeleted}})
	if s.Live() {
		t.Fatal("a create that missed the second life's end began a third")
	}
	r2 := h.ev(C, 2, 40, nil, Revives, 32, "f", 4, "g", 4)
	s = check(t, Policy{OriginOwned: true}, []*ledger.Event{r2, later, r1, d2, d1, c},
		map[string]Write{"f": wr(r2, "f"), "g": wr(r2, "g"), Revives: wr(r2, Revives)},
		[]Conflict{
			{Field: "f", Loser: wr(later, "f"), Winner: tomb(d2), Reason: RecordDeleted},
		})
	if !s.Live() || *s.Revival() != StampOf(r2) || len(s.Redeleted) != 1 || s.Redeleted[0] != StampOf(d2) {
		t.Fatalf("live %v revival %v later deletes %v", s.Live(), s.Revival(), s.Redeleted)
	}
	if o, _ := s.Owner(); o != 2 {
		t.Errorf("owner %d, want the reviving origin 2", o)
	}

	// The second delete, and what it saw, survive the encoding.
	back, err := UnmarshalState(mustMarshal(t, s))
	if err != nil || len(back.Redeleted) != 1 || back.Redeleted[0] != StampOf(d2) || !back.Live() {
		t.Fatalf("round trip: %v, later deletes %v", err, back.Redeleted)
	}
}

// TestChangesOfAnEarlierLife: a write and a delete made by a writer that
// had not seen the record deleted and its key used again (no Saw, or an
// older one) belong to the life it saw, although stamped after the new
// life began: the write loses to that life's delete, and the delete ends
// nothing. The person registered under the reused key keeps their values
// and stays; a delete that saw the new life ends it.
func TestChangesOfAnEarlierLife(t *testing.T) {
	p := Policy{}
	var h hand
	c := h.ev(C, 1, 10, nil, "f", 1)
	d1 := h.ev(D, 1, 20, nil)
	r1 := h.ev(C, 1, 30, nil, Revives, 20, "f", 2) // the key used again
	stale := h.ev(W, 2, 35, base{"f": 10}, "f", 7) // o2 saw only the first life
	staleDel := h.ev(D, 3, 36, nil)                // so did o3
	s := check(t, p, []*ledger.Event{staleDel, stale, r1, d1, c},
		map[string]Write{"f": wr(r1, "f"), Revives: wr(r1, Revives)},
		[]Conflict{
			{Field: "f", Loser: wr(stale, "f"), Winner: tomb(d1), Reason: RecordDeleted},
		})
	if !s.Live() || *s.Revival() != StampOf(r1) {
		t.Fatalf("live %v revival %v: a delete of the first life ended the second", s.Live(), s.Revival())
	}

	// A writer that had seen an earlier delete only (Saw before the one
	// the new life began after) is no better placed.
	d2 := h.ev(D, 2, 40, nil, Saw, 20) // ends the second life
	r2 := h.ev(C, 2, 50, nil, Revives, 40, "f", 3)
	old := h.ev(D, 1, 55, nil, Saw, 20) // o1 saw the second life, not its end
	s = check(t, p, []*ledger.Event{old, r2, d2, staleDel, stale, r1, d1, c},
		map[string]Write{"f": wr(r2, "f"), Revives: wr(r2, Revives)}, // the deletes' Saw are of ended lives
		[]Conflict{
			{Field: "f", Loser: wr(stale, "f"), Winner: tomb(d1), Reason: RecordDeleted},
		})
	if !s.Live() || *s.Revival() != StampOf(r2) {
		t.Fatalf("live %v revival %v, want the third life live", s.Live(), s.Revival())
	}
	seen := h.ev(D, 3, 60, nil, Saw, 40)
	if s.Apply(seen); s.Live() {
		t.Fatal("a delete that saw the third life begin did not end it")
	}
}

// TestLenderLives: origin 1 corrects Ana's code A-1 to A-2 (the lender's
// delete at HLC 20), gives A-1 to Bob and registers him (his patient
// record is of the lender's life begun after 20); origin 2, not told,
// registers Ana under A-1 and deletes that registration, stamped after
// Bob's. The delete ends only the stale registration: Bob's is the
// record's current life, live, owned by origin 1, with his values; a
// write to the stale one, stamped after Bob's create, is history, not a
// conflict, and a delete made for Bob's lender life ends his.
func TestLenderLives(t *testing.T) {
	p := Policy{}
	var h hand
	ana := h.ev(C, 2, 25, nil, "f", 1, "g", 1)
	bob := h.ev(C, 1, 30, nil, Lender, 20, Revives, 0, "f", 2)
	staleDel := h.ev(D, 2, 40, nil)
	staleWrite := h.ev(W, 3, 35, base{"g": 25}, "g", 7)
	s := check(t, p, []*ledger.Event{staleWrite, staleDel, bob, ana},
		map[string]Write{"f": wr(bob, "f"), Lender: wr(bob, Lender), Revives: wr(bob, Revives)}, nil)
	if !s.Live() || *s.Revival() != StampOf(bob) {
		t.Fatalf("live %v revival %v: the stale registration's delete ended Bob's", s.Live(), s.Revival())
	}
	if o, _ := s.Owner(); o != 1 {
		t.Errorf("owner %d, want Bob's registration's origin 1", o)
	}
	if st := s.LifeStart(StampOf(staleDel)); !st.IsZero() {
		t.Errorf("the stale delete placed in the life begun at %v", st)
	}

	// Until Bob's registration arrives, the stale life is the record's.
	if s := stateOf(staleDel, ana); s.Live() {
		t.Fatal("the stale registration's delete did not end it")
	}
	// A write for Bob's lender life arriving before his create: no life
	// of that lender life has begun, so the record is not live and has no
	// owner yet.
	bobWrite := h.ev(W, 1, 35, base{"f": 30}, Lender, 20, "f", 3)
	if s := stateOf(bobWrite, ana); s.Live() || s.Revival() != nil {
		t.Fatalf("live %v revival %v before the lender life's create", s.Live(), s.Revival())
	} else if _, ok := s.Owner(); ok {
		t.Fatal("an owner before the lender life's create")
	}

	// Kept, the stale registration is superseded: references made for it
	// mean it, not Bob's, until its clinic moves it to Ana's new code.
	s = stateOf(bob, ana)
	if !s.Superseded(StampOf(ana)) || s.Superseded(StampOf(bob)) {
		t.Fatalf("superseded: Ana's %v, Bob's %v", s.Superseded(StampOf(ana)), s.Superseded(StampOf(bob)))
	}
	if cur, moves := s.Meant(0, 0); cur || len(moves) != 0 {
		t.Fatalf("a reference to the stale registration: current %v, moves %v", cur, moves)
	}
	if cur, _ := s.Meant(20, 0); !cur {
		t.Fatal("a reference to Bob's registration does not mean the current life")
	}
	if cur, _ := s.Meant(25, 0); !cur {
		t.Fatal("a reference naming a later life of the same lender life does not mean it")
	}
	a2, err := ledger.RefValue(ledger.Ref{Model: "gnuhealth.patient", Key: "A-2"})
	if err != nil {
		t.Fatal(err)
	}
	moved := h.ev(D, 2, 60, nil, RenamedTo, a2)
	s.Apply(moved)
	if s.Superseded(StampOf(ana)) || !s.Live() {
		t.Fatal("the stale registration's move did not end it, or ended Bob's")
	}
	if cur, moves := s.Meant(0, 0); cur || len(moves) != 1 || moves[0].Key != "A-2" {
		t.Fatalf("a reference to the moved registration: current %v, moves %v, want A-2", cur, moves)
	}
	if life, ok := s.LenderLifeMovedTo("A-2"); !ok || life != 0 {
		t.Fatalf("LenderLifeMovedTo(A-2) = %v, %v; want the first lender life", life, ok)
	}
	if s.LenderLife() != 20 {
		t.Fatalf("LenderLife = %v, want 20", s.LenderLife())
	}

	bobDel := h.ev(D, 1, 50, nil, Lender, 20)
	s = check(t, p, []*ledger.Event{bobDel, bobWrite, staleDel, bob, ana},
		map[string]Write{"f": wr(bobWrite, "f"), Lender: wr(bobDel, Lender), Revives: wr(bob, Revives)}, nil)
	if s.Live() {
		t.Fatal("a delete made for Bob's lender life did not end his registration")
	}
}

// TestConcurrentMoves: two instances correct the same code at once (each
// a delete naming where the record moved), and a third deletes the
// person: the record now lives on under both new keys, and the deletes
// that disagree with the life's first are conflicts an auditor lists. A
// later life's move is judged on its own.
func TestConcurrentMoves(t *testing.T) {
	p := Policy{}
	var h hand
	c := h.ev(C, 1, 10, nil, "f", 1)
	toA3 := h.ev(D, 1, 20, nil, RenamedTo, "A-3")
	toB2 := h.ev(D, 2, 22, nil, RenamedTo, "B-2")
	sameA3 := h.ev(D, 3, 23, nil, RenamedTo, "A-3") // agrees: no conflict
	gone := h.ev(D, 4, 25, nil)
	r := h.ev(C, 1, 30, nil, Revives, 25, "f", 2)
	later := h.ev(D, 2, 40, nil, Saw, 25, RenamedTo, "B-9")
	nullOf := func(e *ledger.Event) Write { return Write{Stamp: StampOf(e), Value: ledger.Null()} }
	check(t, p, []*ledger.Event{later, r, gone, sameA3, toB2, toA3, c},
		map[string]Write{"f": wr(r, "f"), Revives: wr(r, Revives), Saw: wr(later, Saw), RenamedTo: wr(later, RenamedTo)},
		[]Conflict{
			{Field: RenamedTo, Loser: wr(toB2, RenamedTo), Winner: wr(toA3, RenamedTo), Reason: ConcurrentMove},
			{Field: RenamedTo, Loser: nullOf(gone), Winner: wr(toA3, RenamedTo), Reason: ConcurrentMove},
		})
}

// TestMeant: a reference means the life its writer saw (Saw): the current
// one, or an ended one, followed to where a key change took it.
func TestMeant(t *testing.T) {
	var h hand
	p2 := ledger.Ref{Model: "gnuhealth.patient", Key: "P-2", Saw: 7}
	moved, err := ledger.RefValue(p2)
	if err != nil {
		t.Fatal(err)
	}
	s := &State{}
	if cur, _ := s.Meant(0, 99); !cur {
		t.Fatal("a record never deleted: a reference does not mean its current life")
	}
	for _, e := range []*ledger.Event{
		h.ev(C, 1, 10, nil, "f", 1),
		h.ev(D, 1, 20, nil, RenamedTo, moved), // the first life moved to P-2
		h.ev(C, 1, 30, nil, Revives, 20, "f", 2),
	} {
		s.Apply(e)
	}
	for _, tt := range []struct {
		saw     clocks.Timestamp
		current bool
		moves   []ledger.Ref
	}{
		{0, false, []ledger.Ref{p2}},
		{19, false, []ledger.Ref{p2}},
		{20, true, nil},
		{25, true, nil},
	} {
		cur, moves := s.Meant(0, tt.saw)
		if cur != tt.current || !slices.Equal(moves, tt.moves) {
			t.Errorf("Meant(%d) = %v, %v; want %v, %v", tt.saw, cur, moves, tt.current, tt.moves)
		}
	}
	// The second life ends in a plain delete and a third begins: a
	// reference to the second means a deleted life.
	s.Apply(h.ev(D, 2, 40, nil, Saw, 20))
	s.Apply(h.ev(C, 2, 50, nil, Revives, 40))
	if cur, moves := s.Meant(0, 20); cur || len(moves) != 0 {
		t.Errorf("Meant(20) = current %v, moves %v; want a deleted life", cur, moves)
	}
	if cur, _ := s.Meant(0, 40); !cur {
		t.Error("Meant(40): the writer saw the third life begin")
	}
	// The current life moves too: a reference to it follows.
	s.Apply(h.ev(D, 1, 60, nil, Saw, 40, RenamedTo, moved))
	if cur, moves := s.Meant(0, 40); !cur || !slices.Equal(moves, []ledger.Ref{p2}) {
		t.Errorf("Meant(40) after the third life moved = %v, %v; want current, moved to P-2", cur, moves)
	}
	// One instance deletes the record while another, not yet told,
	// corrects its code: the plain delete ends the life, but the person
	// lives on under the new key, and a reference can follow them there.
	s = &State{}
	s.Apply(h.ev(C, 1, 10, nil, "f", 1))
	s.Apply(h.ev(D, 2, 20, nil))
	s.Apply(h.ev(D, 1, 25, nil, RenamedTo, moved))
	if _, moves := s.Meant(0, 0); !slices.Equal(moves, []ledger.Ref{p2}) {
		t.Errorf("Meant(0) with a delete and a concurrent move = %v; want moved to P-2", moves)
	}
	// Two corrections of one life, the later first in the ledger: the
	// ending one comes first.
	q3 := ledger.Ref{Model: "gnuhealth.patient", Key: "Q-3"}
	q3v, err := ledger.RefValue(q3)
	if err != nil {
		t.Fatal(err)
	}
	s = &State{}
	s.Apply(h.ev(C, 1, 10, nil, "f", 1))
	s.Apply(h.ev(D, 1, 30, nil, RenamedTo, moved))
	s.Apply(h.ev(D, 2, 20, nil, RenamedTo, q3v))
	if _, moves := s.Meant(0, 0); !slices.Equal(moves, []ledger.Ref{q3, p2}) {
		t.Errorf("Meant(0) with two corrections = %v; want Q-3 (the ending one), then P-2", moves)
	}
}

// TestSameMoveKnowingMore: two instances make the same code correction,
// one knowing of an earlier delete of the new key (its RenamedTo names a
// later life of it): they agree on where the record went.
func TestSameMoveKnowingMore(t *testing.T) {
	var h hand
	to := func(saw clocks.Timestamp) ledger.Value {
		v, err := ledger.RefValue(ledger.Ref{Model: "gnuhealth.patient", Key: "P-2", Saw: saw})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	s := &State{}
	for _, e := range []*ledger.Event{h.ev(C, 1, 10, nil, "f", 1), h.ev(D, 1, 20, nil, RenamedTo, to(0)), h.ev(D, 2, 21, nil, RenamedTo, to(5))} {
		s.Apply(e)
	}
	if cs := s.Conflicts(Policy{}); len(cs) != 0 {
		t.Fatalf("conflicts %v, want none", cs)
	}
}

// TestLenderLifeMovedToTheLatestMove: a person coded C-2 is corrected to
// C-1, the freed C-2 goes to someone else, who is corrected to C-1 too
// (after the first left it). A patient record following the second
// correction had the second life of C-2, not the first that also went
// to C-1.
func TestLenderLifeMovedToTheLatestMove(t *testing.T) {
	var h hand
	c1, err := ledger.RefValue(ledger.Ref{Model: "party.party", Key: "C-1"})
	if err != nil {
		t.Fatal(err)
	}
	s := &State{}
	for _, e := range []*ledger.Event{
		h.ev(C, 3, 10, nil, "f", 1),
		h.ev(D, 3, 20, nil, RenamedTo, c1),
		h.ev(C, 3, 30, nil, Revives, 20),
		h.ev(D, 3, 40, nil, Saw, 20, RenamedTo, c1),
	} {
		s.Apply(e)
	}
	if life, ok := s.LenderLifeMovedTo("C-1"); !ok || life != 20 {
		t.Fatalf("LenderLifeMovedTo(C-1) = %v, %v; want the second life (20)", life, ok)
	}
	if _, ok := s.LenderLifeMovedTo("C-3"); ok {
		t.Fatal("LenderLifeMovedTo(C-3): no change moved the record there")
	}
}
