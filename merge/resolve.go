package merge

import (
	"cmp"
	"math"
	"slices"
	"sort"

	"github.com/ghsync/ghsync/clocks"
	"github.com/ghsync/ghsync/ledger"
)

// Conflict is a write whose value was discarded for a reason worth
// reporting (see State.Conflicts).
type Conflict struct {
	Field  string // one conflict per field the losing write set
	Loser  Write
	Winner Write // for RecordDeleted: Stamp is the delete's, Base 0, Value null; zero when nothing won
	Reason Reason
}

// retired is why a write of a revived record's earlier life takes no part
// in the merge: it is history, not a lost write, and no conflict.
const retired = reasonEnd + 1

// ineligible says why a write takes no part in the merge, if it does not.
// A write after the delete that ended its life is out whatever its origin
// (RecordDeleted, against that delete), a write of an earlier life than
// the record's current one is retired; otherwise, on an origin-owned
// model, a write from another origin than the owner's is out.
func (s *State) ineligible(p Policy, w *Write) (Reason, bool) {
	if !s.single() {
		l := s.lives()
		life, del := s.place(l, w.Stamp)
		if del != nil {
			return RecordDeleted, true
		}
		if life < len(l.starts)-1 {
			return retired, true
		}
	}
	if p.OriginOwned {
		if owner, ok := s.Owner(); ok && w.Stamp.Origin != owner {
			return NotOwner, true
		}
	}
	return 0, false
}

// tombstoneOf is the delete a RecordDeleted write lost to.
func (s *State) tombstoneOf(w *Write) Write {
	_, del := s.place(s.lives(), w.Stamp)
	return Write{Stamp: *del}
}

// eligible returns the field's writes that take part in the merge, in
// stamp order. It returns ws itself when all do.
func (s *State) eligible(p Policy, ws []Write) []Write {
	for i := range ws {
		if _, out := s.ineligible(p, &ws[i]); out {
			el := slices.Clone(ws[:i])
			for j := i + 1; j < len(ws); j++ {
				if _, out := s.ineligible(p, &ws[j]); !out {
					el = append(el, ws[j])
				}
			}
			return el
		}
	}
	return ws
}

// Value is the winning write of field under p; ok is false when the field
// has no eligible write. For Union the write is synthetic: the Stamp and
// Base of the greatest eligible write, and the merged set as Value.
func (s *State) Value(p Policy, field string) (w Write, ok bool) {
	return winner(p.Rule(field), s.eligible(p, s.Fields[field]))
}

// Values is every field's winning value under p (fields without an
// eligible write are absent).
func (s *State) Values(p Policy) map[string]ledger.Value {
	out := make(map[string]ledger.Value, len(s.Fields))
	for name, ws := range s.Fields {
		if w, ok := winner(p.Rule(name), s.eligible(p, ws)); ok {
			out[name] = w.Value
		}
	}
	return out
}

// winner picks the winning write among eligible writes el (sorted by stamp).
func winner(r Rule, el []Write) (Write, bool) {
	if len(el) == 0 {
		return Write{}, false
	}
	switch r {
	case FirstWins:
		return el[0], true
	case Max, Min:
		best := 0
		for i := 1; i < len(el); i++ {
			c := el[i].Value.Compare(el[best].Value)
			if r == Min {
				c = -c
			}
			if c >= 0 { // ties: the later stamp
				best = i
			}
		}
		return el[best], true
	case Union:
		last := el[len(el)-1]
		return Write{Stamp: last.Stamp, Base: last.Base, Value: unionSet(el)}, true
	case CentralWins:
		for i := len(el) - 1; i >= 0; i-- {
			if el[i].Stamp.Origin == 0 {
				return el[i], true
			}
		}
	}
	return el[len(el)-1], true
}

// Conflicts are the losing writes worth reporting, derived from the state
// alone, sorted by field, loser stamp, winner stamp. For each write, at most
// one conflict per field, the first reason that applies:
//
//   - RecordDeleted: the write's stamp is after the tombstone;
//   - NotOwner: OriginOwned, and the writer is not the creator;
//   - the rule's own: ConcurrentWrite (LastWriterWins; CentralWins among
//     central writes, or among all when there is none), WriteOnce
//     (FirstWins), CentralOnly (CentralWins: a satellite write central
//     overrode unseen). Max, Min and Union report none.
func (s *State) Conflicts(p Policy) []Conflict {
	var out []Conflict
	var l lifeline
	single := s.single()
	if !single {
		l = s.lives()
	}
	for name, ws := range s.Fields { // any order: sorted below
		if len(ws) == 1 && single && !p.OriginOwned || name == Revives || name == Saw || name == RenamedTo || name == Lender {
			continue // one eligible write: no rule finds a conflict in it
		}
		r := p.Rule(name)
		if single {
			out = s.lifeConflicts(out, p, name, r, ws, s.Created)
			continue
		}
		// Each life is judged on its own writes: a write lost in a life
		// the record has since left is still a lost write.
		byLife := make([][]Write, len(l.starts))
		for i := range ws {
			life, del := s.place(l, ws[i].Stamp)
			if del != nil {
				out = append(out, Conflict{Field: name, Loser: ws[i], Winner: Write{Stamp: *del}, Reason: RecordDeleted})
				continue
			}
			byLife[life] = append(byLife[life], ws[i])
		}
		for life, lw := range byLife {
			out = s.lifeConflicts(out, p, name, r, lw, s.lifeStart(l, life))
		}
	}
	if !single {
		out = s.moveConflicts(out, l)
	}
	slices.SortFunc(out, compareConflicts)
	return out
}

// moveConflicts appends, per life, a ConcurrentMove for each delete whose
// RenamedTo (the key the record moved to; null for a plain delete)
// differs from that of the delete that ended the life.
func (s *State) moveConflicts(out []Conflict, l lifeline) []Conflict {
	moved := s.Fields[RenamedTo]
	if len(moved) == 0 {
		return out // no key change: deletes agree
	}
	target := func(d Stamp) Write {
		if i, ok := find(moved, d); ok {
			return moved[i]
		}
		return Write{Stamp: d, Value: ledger.Null()}
	}
	for _, d := range s.Redeleted { // the first delete (Deleted) ends a life, never disagrees with itself
		life, _ := s.place(l, d)
		end := l.ends[life]
		if end == nil || *end == d {
			continue
		}
		if first, this := target(*end), target(d); !sameKey(this.Value, first.Value) {
			out = append(out, Conflict{Field: RenamedTo, Loser: this, Winner: first, Reason: ConcurrentMove})
		}
	}
	return out
}

// sameKey reports whether two RenamedTo values name the same key, whatever
// each writer knew of that key's deletes (ledger.Ref.Saw).
func sameKey(a, b ledger.Value) bool {
	x, okx := a.AsRef()
	y, oky := b.AsRef()
	if okx && oky {
		return x.Model == y.Model && x.Key == y.Key
	}
	return a.Equal(b)
}

// lifeStart is the create that began life i of l: the reviving create,
// or for the first life Created if it is part of it (nil if unknown).
func (s *State) lifeStart(l lifeline, i int) *Stamp {
	if i > 0 {
		if l.starts[i].IsZero() {
			return nil // a later lender life's first, no create known yet
		}
		return &l.starts[i]
	}
	if s.Created != nil && (len(l.starts) == 1 || s.Created.Compare(l.starts[1]) < 0) {
		return s.Created
	}
	return nil
}

// lifeConflicts appends the conflicts among ws, one life's writes of a
// field (none of them after the life's end), begun by the create start.
func (s *State) lifeConflicts(out []Conflict, p Policy, name string, r Rule, ws []Write, start *Stamp) []Conflict {
	el := ws
	if p.OriginOwned && start != nil {
		el = slices.DeleteFunc(slices.Clone(ws), func(w Write) bool { return w.Stamp.Origin != start.Origin })
	}
	win, _ := winner(r, el)
	if len(el) < len(ws) {
		for i := range ws {
			if ws[i].Stamp.Origin != start.Origin {
				out = append(out, Conflict{Field: name, Loser: ws[i], Winner: win, Reason: NotOwner})
			}
		}
	}
	return ruleConflicts(out, name, r, el, win)
}

func compareConflicts(a, b Conflict) int {
	if c := cmp.Compare(a.Field, b.Field); c != 0 {
		return c
	}
	if c := a.Loser.Stamp.Compare(b.Loser.Stamp); c != 0 {
		return c
	}
	if c := a.Winner.Stamp.Compare(b.Winner.Stamp); c != 0 {
		return c
	}
	return cmp.Compare(a.Reason, b.Reason)
}

// ruleConflicts appends the conflicts rule r reports among eligible writes
// el (sorted by stamp) of one field whose winner is win.
func ruleConflicts(out []Conflict, field string, r Rule, el []Write, win Write) []Conflict {
	switch r {
	case LastWriterWins:
		// minBase[i] is the earliest Base among el[i:]: a write whose HLC
		// is at or before it was seen by every later write, and is skipped
		// without a scan, so a field's usual history, each write replacing
		// the one before, costs linear time, not quadratic.
		minBase := make([]clocks.Timestamp, len(el)+1)
		minBase[len(el)] = math.MaxUint64
		for i := len(el) - 1; i >= 0; i-- {
			minBase[i] = min(minBase[i+1], el[i].Base)
		}
		for i := range el {
			if minBase[i+1] >= el[i].Stamp.HLC {
				continue
			}
			if j, saw := successor(el, i); j >= 0 && !saw {
				out = append(out, Conflict{Field: field, Loser: el[i], Winner: el[j], Reason: ConcurrentWrite})
			}
		}
	case FirstWins:
		for _, w := range el[min(1, len(el)):] {
			if !w.Value.Equal(win.Value) {
				out = append(out, Conflict{Field: field, Loser: w, Winner: win, Reason: WriteOnce})
			}
		}
	case CentralWins:
		var central, others []Write
		for _, w := range el {
			if w.Stamp.Origin == 0 {
				central = append(central, w)
			} else {
				others = append(others, w)
			}
		}
		out = ruleConflicts(out, field, LastWriterWins, central, Write{})
		if len(central) == 0 {
			return ruleConflicts(out, field, LastWriterWins, others, Write{})
		}
		// A central write wins. A satellite write loses to it when its
		// value is not the winning one and some central write overrode it
		// without having seen it (a satellite write that central later
		// replaced knowingly had its turn, as under LastWriterWins).
		for i := range others {
			if !others[i].Value.Equal(win.Value) && firstUnseeing(others, i, central) >= 0 {
				out = append(out, Conflict{Field: field, Loser: others[i], Winner: win, Reason: CentralOnly})
			}
		}
	}
	return out
}

// successor decides the fate of el[i] under LastWriterWins: the index of
// the first later write that either saw it (its Base is at or after
// el[i]'s HLC: saw is true, el[i] was replaced knowingly) or did not see
// it and set another value (saw is false: el[i] lost a concurrent write);
// -1 if neither exists. Writes that did not see el[i] but set its value
// are passed over. A write replaced knowingly is no conflict even if a
// later write missed it too: that write conflicts with the replacement,
// the head of el[i]'s line, instead.
func successor(el []Write, i int) (j int, saw bool) {
	l := &el[i]
	for j := i + 1; j < len(el); j++ {
		if el[j].Base >= l.Stamp.HLC {
			return j, true
		}
		if !el[j].Value.Equal(l.Value) {
			return j, false
		}
	}
	return -1, false
}

// firstUnseeing is the index in later (writes that outrank ws[i]) of the
// first one that did not see ws[i] (its Base is before ws[i]'s HLC) and
// set another value; -1 if none.
func firstUnseeing(ws []Write, i int, later []Write) int {
	l := &ws[i]
	for j := range later {
		if later[j].Base < l.Stamp.HLC && !later[j].Value.Equal(l.Value) {
			return j
		}
	}
	return -1
}

// unionSet merges a Many2Many field, an observed-remove set in which every
// write is a tag. For a write W, its base B is the eligible write with the
// greatest stamp whose HLC is W.Base (none: the empty set). W adds, tagged
// W, the refs of W not in B, and removes the refs of B not in W: a removal
// of r cancels every add of r whose tag's HLC is at most W.Base, that is,
// the adds W's writer may have seen. A ref is present when some add of it
// is not cancelled, so an add the remover had not seen wins. A value that
// is not a RefSet counts as the empty set.
func unionSet(el []Write) ledger.Value {
	type add struct {
		ref ledger.Ref
		hlc clocks.Timestamp
	}
	type remove struct {
		ref   ledger.Ref
		scope clocks.Timestamp
	}
	var adds []add
	var removes []remove
	for i := range el {
		w := &el[i]
		cur := refsOf(w.Value)
		var base []ledger.Ref
		if w.Base != 0 {
			// The greatest stamp with HLC == Base: the last one before the
			// first write whose HLC is greater.
			k := sort.Search(len(el), func(j int) bool { return el[j].Stamp.HLC > w.Base })
			if k > 0 && el[k-1].Stamp.HLC == w.Base {
				base = refsOf(el[k-1].Value)
			}
		}
		for _, r := range cur {
			if !containsRef(base, r) {
				adds = append(adds, add{r, w.Stamp.HLC})
			}
		}
		for _, r := range base {
			if !containsRef(cur, r) {
				removes = append(removes, remove{r, w.Base})
			}
		}
	}
	var present []ledger.Ref
	for _, a := range adds {
		cancelled := false
		for _, r := range removes {
			if r.ref == a.ref && a.hlc <= r.scope {
				cancelled = true
				break
			}
		}
		if !cancelled {
			present = append(present, a.ref)
		}
	}
	v, err := ledger.RefSet(present...)
	if err != nil { // unreachable: every ref came from a valid RefSet
		panic("merge: " + err.Error())
	}
	return v
}

func refsOf(v ledger.Value) []ledger.Ref {
	refs, _ := v.AsRefSet()
	return refs
}

func containsRef(sorted []ledger.Ref, r ledger.Ref) bool {
	_, found := slices.BinarySearchFunc(sorted, r, func(a, b ledger.Ref) int {
		if c := cmp.Compare(a.Model, b.Model); c != 0 {
			return c
		}
		return cmp.Compare(a.Key, b.Key)
	})
	return found
}
