package merge

import (
	"bytes"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/ghsync/ghsync/clocks"
	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/ledger/ledgertest"
)

// The simulation: a few origins, each a replica with its own clock and its
// own States, write to a few records and occasionally sync. Every write
// names as Base the HLC of the replica's current winner under the policy,
// so histories hold both concurrent and causally later writes. Domains are
// tiny so that collisions (same record, same field, same value, same HLC)
// are common.

var (
	simKeys   = []string{"k0", "k1"}
	simFields = []string{"a", "b", "tags"}
	simRefs   = []string{"r0", "r1", "r2"}
)

type replica struct {
	id     uint16
	clock  clocks.Timestamp // greatest HLC issued or observed
	issued clocks.Timestamp // greatest HLC issued
	seen   []bool           // by index into history.events
	states map[string]*State
	// lender is, per key, the lender life (Lender) the replica knows the
	// record's lender to be in: it moves on when the replica recodes the
	// lender and gives its code to someone else, or hears of that.
	lender map[string]clocks.Timestamp
}

type history struct {
	rng    *rand.Rand
	p      Policy
	reps   []*replica
	events []*ledger.Event
	// sequential: no creates of a record already written, none after a
	// delete (TestSequential also delivers everything before each step).
	sequential bool

	currentWrites int // writes of the replica's current value
}

func newHistory(rng *rand.Rand, p Policy) *history {
	h := &history{rng: rng, p: p}
	n := 2 + rng.IntN(3) // origins 0 (central) and 1..n-1
	for i := 0; i < n; i++ {
		h.reps = append(h.reps, &replica{id: uint16(i), clock: clocks.New(1_000_000, 0), states: map[string]*State{}, lender: map[string]clocks.Timestamp{}})
	}
	return h
}

func (h *history) state(r *replica, key string) *State {
	s := r.states[key]
	if s == nil {
		s = &State{}
		r.states[key] = s
	}
	return s
}

func (h *history) deliver(r *replica, i int) {
	if r.seen[i] {
		return
	}
	e := h.events[i]
	r.seen[i] = true
	h.state(r, e.Key).Apply(e)
	r.clock = max(r.clock, e.HLC)
	if v, ok := e.Fields[Lender].AsInt(); ok {
		r.lender[e.Key] = max(r.lender[e.Key], clocks.Timestamp(v))
	}
}

// sync delivers to r a random part of what it has not seen.
func (h *history) sync(r *replica) {
	all := h.rng.IntN(3) == 0
	for i := range h.events {
		if all || h.rng.IntN(2) == 0 {
			h.deliver(r, i)
		}
	}
}

func (h *history) tick(r *replica) clocks.Timestamp {
	// Force an HLC tie with another origin's latest event now and then:
	// only when that is still ahead, so r's clock stays monotonic.
	if h.rng.IntN(4) == 0 {
		o := h.reps[h.rng.IntN(len(h.reps))]
		if o != r && o.issued > r.clock {
			r.clock, r.issued = o.issued, o.issued
			return r.clock
		}
	}
	r.clock += clocks.Timestamp(1 + h.rng.IntN(3))
	r.issued = r.clock
	return r.clock
}

func (h *history) value(r *replica, s *State, field string) ledger.Value {
	cur, ok := s.Value(h.p, field)
	if ok && h.rng.IntN(4) == 0 {
		h.currentWrites++
		return cur.Value // a write of the current value
	}
	if field != "tags" {
		if h.rng.IntN(8) == 0 {
			return ledger.Null()
		}
		return ledger.Int(int64(h.rng.IntN(3)))
	}
	set := map[string]bool{}
	if rs, isSet := cur.Value.AsRefSet(); ok && isSet && h.rng.IntN(5) != 0 {
		for _, ref := range rs {
			set[ref.Key] = true
		}
		k := simRefs[h.rng.IntN(len(simRefs))]
		set[k] = !set[k] // toggle one
	} else {
		for _, k := range simRefs {
			set[k] = h.rng.IntN(2) == 0
		}
	}
	var keys []string
	for k, in := range set {
		if in {
			keys = append(keys, k)
		}
	}
	return refs(keys...)
}

// step makes r write one event, if it wants to.
func (h *history) step(r *replica) {
	key := simKeys[h.rng.IntN(len(simKeys))]
	s := h.state(r, key)
	var op ledger.Op
	revive := false
	switch {
	case s.Deleted != nil && !s.Live():
		switch x := h.rng.IntN(10); {
		case x < 2 && !h.sequential:
			op = []ledger.Op{ledger.OpCreate, ledger.OpWrite}[h.rng.IntN(2)]
		case x < 4:
			op, revive = ledger.OpCreate, true // the key used again, knowingly
		default:
			return // a replica that saw the delete mostly leaves the record alone
		}
	case s.Deleted != nil && h.sequential:
		op = []ledger.Op{ledger.OpWrite, ledger.OpWrite, ledger.OpDelete}[h.rng.IntN(3)]
	case h.sequential && s.Created == nil && len(s.Fields) == 0:
		op = ledger.OpCreate
	case h.sequential:
		op = ledger.OpWrite
	case s.Created == nil:
		op = []ledger.Op{ledger.OpCreate, ledger.OpWrite}[h.rng.IntN(2)]
	default:
		switch x := h.rng.IntN(20); {
		case x < 2:
			op = ledger.OpDelete
		case x < 3:
			op = ledger.OpCreate // a duplicate registration
		default:
			op = ledger.OpWrite
		}
	}
	if !h.sequential && h.rng.IntN(15) == 0 {
		// The record's lender deleted and its key given to someone else
		// here: this replica's changes are now for its next life.
		r.lender[key] = h.tick(r)
	}
	e := &ledger.Event{
		ID: randID(h.rng), Origin: r.id, OriginSeq: uint64(len(h.events) + 1), HLC: h.tick(r),
		Model: "gnuhealth.patient", Key: key, Op: op, User: "admin",
	}
	if op != ledger.OpCreate && s.Deleted != nil {
		// As a capturer does: the latest delete the writer saw, or (now
		// and then) an earlier one, or none (an older ghsync's event).
		saw := s.LastDelete().HLC
		switch h.rng.IntN(6) {
		case 0:
			saw = s.Deleted.HLC
		case 1:
			saw = 0
		}
		if saw != 0 {
			e.Fields = map[string]ledger.Value{Saw: ledger.Int(int64(saw))}
			if op == ledger.OpWrite {
				e.Base = map[string]clocks.Timestamp{Saw: 0}
			}
		}
	}
	if op == ledger.OpDelete && h.rng.IntN(3) == 0 {
		// The delete half of a key change: where the record moved.
		if e.Fields == nil {
			e.Fields = map[string]ledger.Value{}
		}
		// Writers may know more or less of the new key's deletes (Saw):
		// the same key all the same.
		to, _ := ledger.RefValue(ledger.Ref{Model: "gnuhealth.patient", Key: []string{"X-1", "X-2"}[h.rng.IntN(2)], Saw: clocks.Timestamp(h.rng.IntN(2) * 5)})
		e.Fields[RenamedTo] = to
	}
	if op != ledger.OpDelete {
		if e.Fields == nil {
			e.Fields = map[string]ledger.Value{}
			e.Base = map[string]clocks.Timestamp{}
		}
		if revive {
			// It saw the latest delete, or (now and then) only an earlier
			// one, which must not be enough.
			saw := s.LastDelete().HLC
			if h.rng.IntN(5) == 0 {
				saw = s.Deleted.HLC
			}
			e.Fields[Revives] = ledger.Int(int64(saw))
			e.Base[Revives] = 0
		}
		if _, ok := e.Fields[Revives]; !ok && op == ledger.OpCreate && r.lender[key] > 0 {
			// A create of a later lender life begins that life's first.
			e.Fields[Revives] = ledger.Int(int64(s.LastDelete().HLC))
			e.Base[Revives] = 0
		}
		for _, f := range simFields {
			if h.rng.IntN(2) == 0 && (op == ledger.OpCreate || len(e.Fields) > 0 || f != simFields[len(simFields)-1]) {
				continue
			}
			e.Fields[f] = h.value(r, s, f)
			if cur, ok := s.Value(h.p, f); ok && op == ledger.OpWrite {
				e.Base[f] = cur.Stamp.HLC
			} else {
				e.Base[f] = 0
			}
		}
	}
	if l := r.lender[key]; l > 0 {
		if e.Fields == nil {
			e.Fields = map[string]ledger.Value{}
		}
		e.Fields[Lender] = ledger.Int(int64(l))
		if op == ledger.OpWrite {
			e.Base[Lender] = 0
		}
	}
	h.events = append(h.events, e)
	for _, rr := range h.reps {
		rr.seen = append(rr.seen, false)
	}
	h.deliver(r, len(h.events)-1)
}

func (h *history) run(steps int) {
	for range steps {
		r := h.reps[h.rng.IntN(len(h.reps))]
		if h.rng.IntN(3) == 0 {
			h.sync(r)
		}
		h.step(r)
	}
}

// byKey applies events to one State per record.
func byKey(events []*ledger.Event) map[string]*State {
	out := map[string]*State{}
	for _, e := range events {
		s := out[e.Key]
		if s == nil {
			s = &State{}
			out[e.Key] = s
		}
		s.Apply(e)
	}
	return out
}

// randomPolicy covers every rule as the default, per-field exceptions and
// OriginOwned, cycling through the defaults so each gets its share.
func randomPolicy(rng *rand.Rand, i int) Policy {
	p := Policy{Default: Rule(i % int(ruleEnd)), OriginOwned: (i/int(ruleEnd))%2 == 1}
	if rng.IntN(2) == 0 {
		p.Fields = map[string]Rule{}
		for _, f := range simFields {
			if rng.IntN(2) == 0 {
				p.Fields[f] = Rule(rng.IntN(int(ruleEnd)))
			}
		}
	}
	return p
}

// allPolicies is every rule as the default, with and without OriginOwned:
// the state does not depend on the policy, so every
// state is checked under all of them.
func allPolicies() []Policy {
	var ps []Policy
	for r := Rule(0); r < ruleEnd; r++ {
		for _, owned := range []bool{false, true} {
			ps = append(ps, Policy{Default: r, OriginOwned: owned})
		}
	}
	return ps
}

type outcome struct {
	enc       []byte
	conflicts [][]Conflict
	values    []map[string]ledger.Value
	live      bool
}

func outcomeOf(tb testing.TB, s *State, ps []Policy) outcome {
	o := outcome{enc: mustMarshal(tb, s), live: s.Live()}
	for _, p := range ps {
		o.conflicts = append(o.conflicts, s.Conflicts(p))
		o.values = append(o.values, s.Values(p))
	}
	return o
}

func sameOutcome(a, b outcome) string {
	switch {
	case !bytes.Equal(a.enc, b.enc):
		return "encodings differ"
	case a.live != b.live:
		return "Live differs"
	}
	for i := range a.conflicts {
		if !conflictsEqual(a.conflicts[i], b.conflicts[i]) {
			return fmt.Sprintf("conflicts differ under policy %d:%s\nvs:%s", i, fmtConflicts(a.conflicts[i]), fmtConflicts(b.conflicts[i]))
		}
		if !valuesEqual(a.values[i], b.values[i]) {
			return fmt.Sprintf("values differ under policy %d", i)
		}
	}
	return ""
}

func TestLaws(t *testing.T) {
	rng := ledgertest.Rand(t)
	histories := 3000
	if testing.Short() {
		histories = 300
	}
	ps := allPolicies()
	stats := map[string]int{}
	currentWrites := 0
	for i := range histories {
		p := randomPolicy(rng, i)
		h := newHistory(rng, p)
		h.run(5 + rng.IntN(40))
		currentWrites += h.currentWrites
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("history %d (policy %+v, %d events): %s", i, p, len(h.events), fmt.Sprintf(format, args...))
		}
		// The reference: every event once, in the order written. Its
		// conflicts and values are computed under the history's policy
		// and under every policy in ps (the state does not depend on the
		// policy); the other runs are compared by encoding, which is
		// canonical, and by conflicts and values under the history's
		// policy (all policies for the first permutation).
		ref := byKey(h.events)
		pps := append([]Policy{p}, ps...)
		want, wantP := map[string]outcome{}, map[string]outcome{}
		for k, s := range ref {
			want[k], wantP[k] = outcomeOf(t, s, pps), outcomeOf(t, s, pps[:1])
			for _, q := range pps {
				checkInvariants(t, s, q, fail)
			}
			countStats(stats, s, p, slices.DeleteFunc(slices.Clone(h.events), func(e *ledger.Event) bool { return e.Key != k }))
		}
		full := true
		same := func(what string, got map[string]*State) {
			t.Helper()
			if len(got) != len(want) {
				fail("%s: %d records, want %d", what, len(got), len(want))
			}
			for k, s := range got {
				w, qs := wantP[k], pps[:1]
				if full {
					w, qs = want[k], pps
				}
				if d := sameOutcome(outcomeOf(t, s, qs), w); d != "" {
					fail("%s: record %s: %s", what, k, d)
				}
			}
			full = false
		}

		// Commutative and idempotent: any permutation, duplicates anywhere.
		for n := range 2 {
			perm := slices.Clone(h.events)
			rng.Shuffle(len(perm), func(a, b int) { perm[a], perm[b] = perm[b], perm[a] })
			for range rng.IntN(len(perm) + 1) {
				at := rng.IntN(len(perm) + 1)
				perm = slices.Insert(perm, at, perm[rng.IntN(len(perm))])
			}
			got := map[string]*State{}
			for _, e := range perm {
				s := got[e.Key]
				if s == nil {
					s = &State{}
					got[e.Key] = s
				}
				if n > 0 {
					s.Apply(e)
					continue
				}
				before := mustMarshal(t, s)
				changed := s.Apply(e)
				if changed == bytes.Equal(before, mustMarshal(t, s)) {
					fail("Apply of %s reported changed=%v wrongly", e, changed)
				}
			}
			same("permutation", got)
		}

		// Merge: of three overlapping parts, in either grouping and order,
		// equals replaying everything; so does merging the replicas.
		parts := make([][]*ledger.Event, 3)
		for _, e := range h.events {
			put := false
			for j := range parts {
				if rng.IntN(3) == 0 {
					parts[j] = append(parts[j], e)
					put = true
				}
			}
			if !put {
				j := rng.IntN(3)
				parts[j] = append(parts[j], e)
			}
		}
		a, b, c := byKey(parts[0]), byKey(parts[1]), byKey(parts[2])
		same("(a+b)+c", mergeAll(mergeAll(a, b), c))
		same("a+(b+c)", mergeAll(a, mergeAll(b, c)))
		same("c+b+a", mergeAll(mergeAll(c, b), a))
		same("a+a+b+c+b", mergeAll(mergeAll(mergeAll(mergeAll(a, a), b), c), b))
		reps := map[string]*State{}
		for _, r := range h.reps {
			reps = mergeAll(reps, r.states)
		}
		same("replicas", reps)

		// The encoding round-trips.
		full = true
		rt := map[string]*State{}
		for k, s := range ref {
			d, err := UnmarshalState(mustMarshal(t, s))
			if err != nil {
				fail("unmarshal: %v", err)
			}
			rt[k] = d
		}
		same("round trip", rt)
	}
	stats["write of the current value"] = currentWrites
	t.Logf("%d histories; %v", histories, stats)
	for _, k := range []string{"concurrent write", "write once", "central only", "not owner", "record deleted",
		"hlc tie", "two deletes", "duplicate registration", "create after write", "create after delete", "write of the current value",
		"revived", "revival that missed a delete", "change of an earlier life", "concurrent move",
		"later lender life", "stale life beside a later lender life's"} {
		if stats[k] == 0 {
			t.Errorf("no history exercised %s", k)
		}
	}
}

// mergeAll merges copies of the states of a and b, record by record; a and
// b are left alone.
func mergeAll(a, b map[string]*State) map[string]*State {
	out := map[string]*State{}
	for _, m := range []map[string]*State{a, b} {
		for k, s := range m {
			if out[k] == nil {
				out[k] = &State{}
			}
			out[k].Merge(s)
		}
	}
	return out
}

// countStats counts what the histories exercised, so that a change to the
// simulation cannot silently stop covering a case.
func countStats(stats map[string]int, s *State, p Policy, events []*ledger.Event) {
	for _, c := range s.Conflicts(p) {
		stats[c.Reason.String()]++
	}
	hlcs := map[clocks.Timestamp]uint16{}
	for _, ws := range s.Fields {
		for _, w := range ws {
			if o, ok := hlcs[w.Stamp.HLC]; ok && o != w.Stamp.Origin {
				stats["hlc tie"]++
			}
			hlcs[w.Stamp.HLC] = w.Stamp.Origin
		}
	}
	if s.Revival() != nil {
		stats["revived"]++
	}
	if lives := s.lenderLives(); len(lives) > 1 {
		stats["later lender life"]++
		if len(s.Fields[Lender]) < len(events) && s.Live() {
			stats["stale life beside a later lender life's"]++
		}
	}
	var creators, deletes, writes int
	var revivals []*ledger.Event
	origins := map[uint16]bool{}
	for _, e := range events {
		switch e.Op {
		case ledger.OpCreate:
			if v, ok := e.Fields[Revives]; ok {
				revivals = append(revivals, e)
				if saw, _ := v.AsInt(); s.Deleted != nil && clocks.Timestamp(saw) < s.LastDelete().HLC {
					stats["revival that missed a delete"]++
				}
			}
			if writes > 0 && creators == 0 {
				stats["create after write"]++
			}
			if deletes > 0 {
				stats["create after delete"]++
			}
			if !origins[e.Origin] {
				origins[e.Origin] = true
				if creators++; creators == 2 {
					stats["duplicate registration"]++
				}
			}
		case ledger.OpWrite:
			writes++
			stats["change of an earlier life"] += ofEarlierLife(s, e)
		case ledger.OpDelete:
			stats["change of an earlier life"] += ofEarlierLife(s, e)
			if deletes++; deletes == 2 {
				stats["two deletes"]++
			}
		}
	}
}

// ofEarlierLife is 1 if e is stamped in a life its writer had not seen
// begin (it then belongs to an earlier one), else 0.
func ofEarlierLife(s *State, e *ledger.Event) int {
	if s.Deleted == nil {
		return 0
	}
	l := s.lives()
	st := StampOf(e)
	life := len(l.starts) - 1
	for life > 0 && l.starts[life].Compare(st) > 0 {
		life--
	}
	if l.seen(life, s.saw(st)) < life {
		return 1
	}
	return 0
}

// checkInvariants checks what must hold of any state under any policy.
func checkInvariants(t *testing.T, s *State, p Policy, fail func(string, ...any)) {
	t.Helper()
	cs := s.Conflicts(p)
	if !slices.IsSortedFunc(cs, compareConflicts) {
		fail("conflicts not sorted")
	}
	type fl struct {
		f string
		l Stamp
	}
	seen := map[fl]bool{}
	deletedLosers := 0
	for _, c := range cs {
		if seen[fl{c.Field, c.Loser.Stamp}] {
			fail("two conflicts for one write of %s", c.Field)
		}
		seen[fl{c.Field, c.Loser.Stamp}] = true
		isWrite := slices.ContainsFunc(s.Fields[c.Field], func(w Write) bool { return writeEqual(w, c.Loser) })
		if !isWrite && (c.Reason != ConcurrentMove || !c.Loser.Value.IsNull()) {
			fail("conflict loser is not a write of %s", c.Field)
		}
		isDelete := func(st Stamp) bool { return st == *s.Deleted || slices.Contains(s.Redeleted, st) }
		switch c.Reason {
		case ConcurrentMove:
			if c.Field != RenamedTo || !isDelete(c.Loser.Stamp) || !isDelete(c.Winner.Stamp) || sameKey(c.Loser.Value, c.Winner.Value) ||
				c.Winner.Stamp.Compare(c.Loser.Stamp) >= 0 {
				fail("concurrent move %s against %s: not two deletes disagreeing, the first winning", fmtWrite(c.Loser), fmtWrite(c.Winner))
			}
		case ConcurrentWrite, WriteOnce, CentralOnly:
			if c.Loser.Value.Equal(c.Winner.Value) {
				fail("%s conflict with equal values", c.Reason)
			}
			if c.Reason == ConcurrentWrite && c.Winner.Stamp.Compare(c.Loser.Stamp) <= 0 {
				fail("concurrent write lost to an earlier one")
			}
		case RecordDeleted:
			deletedLosers++
			if !isDelete(c.Winner.Stamp) || c.Loser.Stamp.Compare(c.Winner.Stamp) <= 0 {
				fail("record deleted conflict not against a delete before it")
			}
		case NotOwner:
			var start *Stamp
			if s.single() {
				start = s.Created
			} else {
				l := s.lives()
				life, _ := s.place(l, c.Loser.Stamp)
				start = s.lifeStart(l, life)
			}
			if start == nil || c.Loser.Stamp.Origin == start.Origin {
				fail("owner reported as not owner")
			}
		}
	}
	// Writes made after the delete that ended their life, found the slow
	// way: the last create-or-revival before each write, then a delete
	// between them.
	after := 0
	for _, name := range slices.Sorted(maps.Keys(s.Fields)) {
		for _, w := range s.Fields[name] {
			if !s.single() && name != Revives && name != Saw && name != RenamedTo && name != Lender && afterItsDelete(s, w.Stamp) {
				after++
			}
		}
		win, ok := s.Value(p, name)
		if !ok {
			continue
		}
		if _, out := s.ineligible(p, &win); out {
			fail("winner of %s is not eligible", name)
		}
		if p.Rule(name) != Union && seen[fl{name, win.Stamp}] {
			fail("winner of %s is reported as a loser", name)
		}
		if p.Rule(name) == Union && win.Value.Kind() != ledger.KindRefSet {
			fail("union of %s is a %s", name, win.Value.Kind())
		}
	}
	if after != deletedLosers {
		fail("%d writes after the tombstone (and before a revival), %d record deleted conflicts", after, deletedLosers)
	}
}

// TestSequential: with one writer at a time that has seen everything,
// there is no concurrency, so no ConcurrentWrite conflict and the Union of
// a field is the last set written.
func TestSequential(t *testing.T) {
	rng := ledgertest.Rand(t)
	for i := range 1000 {
		p := randomPolicy(rng, i)
		h := newHistory(rng, p)
		h.sequential = true
		for range 5 + rng.IntN(30) {
			r := h.reps[rng.IntN(len(h.reps))]
			for j := range h.events {
				h.deliver(r, j)
			}
			h.step(r)
		}
		for k, s := range byKey(h.events) {
			for _, c := range s.Conflicts(p) {
				if c.Reason == ConcurrentWrite {
					t.Fatalf("history %d record %s: sequential history has a concurrent write conflict:%s", i, k, fmtConflicts([]Conflict{c}))
				}
			}
			if p.Rule("tags") != Union || len(s.eligible(p, s.Fields["tags"])) == 0 {
				continue
			}
			el := s.eligible(p, s.Fields["tags"])
			last := el[len(el)-1].Value
			if last.Kind() != ledger.KindRefSet {
				last = refs()
			}
			if w, _ := s.Value(p, "tags"); !w.Value.Equal(last) {
				t.Fatalf("history %d record %s: union %s, last written %s", i, k, w.Value, last)
			}
		}
	}
}

// afterItsDelete reports whether st comes after a delete that ended the
// life st belongs to: simulating the record's history in stamp order. A
// delete, or the change at st, whose writer had not seen the current life
// begin (Saw, or Revives on a create: not at least the delete the life's
// reviving create saw) is of an earlier life, which has ended.
func afterItsDelete(s *State, st Stamp) bool {
	type ev struct {
		st     Stamp
		delete bool
		saw    clocks.Timestamp
	}
	sawOf := func(st Stamp) clocks.Timestamp {
		for _, name := range []string{Saw, Revives} {
			for _, w := range s.Fields[name] {
				if w.Stamp == st {
					v, _ := w.Value.AsInt()
					return clocks.Timestamp(v)
				}
			}
		}
		return 0
	}
	// Only the changes made for st's lender life (Lender) count; a later
	// lender life's first create begins it.
	lenderOf := func(st Stamp) int64 {
		for _, w := range s.Fields[Lender] {
			if w.Stamp == st {
				v, _ := w.Value.AsInt()
				return v
			}
		}
		return 0
	}
	g := lenderOf(st)
	var evs []ev
	if s.Deleted != nil {
		for _, d := range append([]Stamp{*s.Deleted}, s.Redeleted...) {
			if lenderOf(d) == g {
				evs = append(evs, ev{st: d, delete: true, saw: sawOf(d)})
			}
		}
	}
	first := Stamp{}
	for _, w := range s.Fields[Revives] {
		if lenderOf(w.Stamp) != g {
			continue
		}
		if g != 0 && first.IsZero() {
			first = w.Stamp // sorted: the lender life's first create
			continue
		}
		saw, _ := w.Value.AsInt()
		evs = append(evs, ev{st: w.Stamp, saw: clocks.Timestamp(saw)})
	}
	slices.SortFunc(evs, func(a, b ev) int { return a.st.Compare(b.st) })
	needs := []clocks.Timestamp{0} // per life begun: the delete its writers saw
	ofEarlier := func(saw clocks.Timestamp) bool { return saw < needs[len(needs)-1] }
	dead := false // at st's position, the current life has ended
	var end Stamp // the delete that ended it
	for _, e := range evs {
		if e.st.Compare(st) > 0 {
			break
		}
		switch {
		case e.delete && !dead && !ofEarlier(e.saw):
			dead, end = true, e.st
		case !e.delete && dead && e.saw >= end.HLC:
			dead = false
			needs = append(needs, end.HLC)
		}
	}
	return dead || ofEarlier(sawOf(st))
}
