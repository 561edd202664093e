package merge

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/google/uuid"

	"github.com/ghsync/ghsync/clocks"
	"github.com/ghsync/ghsync/ledger"
)

// Stamp identifies a write and orders it: by HLC, then origin, then event
// id, the same total order as ledger.Event.Compare.
type Stamp struct {
	HLC    clocks.Timestamp
	Origin uint16
	ID     uuid.UUID
}

// StampOf is the stamp of e.
func StampOf(e *ledger.Event) Stamp { return Stamp{HLC: e.HLC, Origin: e.Origin, ID: e.ID} }

// Compare returns -1, 0 or +1 as s sorts before, equal to or after t.
func (s Stamp) Compare(t Stamp) int {
	if c := s.HLC.Compare(t.HLC); c != 0 {
		return c
	}
	if s.Origin != t.Origin {
		if s.Origin < t.Origin {
			return -1
		}
		return 1
	}
	return bytes.Compare(s.ID[:], t.ID[:])
}

// IsZero reports whether s is the zero Stamp (no write).
func (s Stamp) IsZero() bool { return s == Stamp{} }

func (s Stamp) String() string { return fmt.Sprintf("%s o%d %s", s.HLC, s.Origin, s.ID) }

// Write is one event's value for one field.
type Write struct {
	Stamp Stamp
	Base  clocks.Timestamp // HLC of the value the writer replaced; 0 if none
	Value ledger.Value
}

// equal reports whether two writes are the same write with the same content.
func (w Write) equal(v Write) bool {
	return w.Stamp == v.Stamp && w.Base == v.Base && w.Value.Equal(v.Value)
}

// State is one record's merge state.
//
// It retains every write per field, not just the winner: only then are the
// current values and the conflict set functions of the set of applied
// events, independent of the order they arrived in. (Keeping only winners,
// three concurrent writes report different conflicts depending on order.)
// The price is growth; see the package documentation.
//
// The zero State is an empty record. A State is not safe for concurrent
// use; Apply and Merge modify it, every other method only reads it.
type State struct {
	Created *Stamp // smallest create stamp seen (nil: no create yet)
	Deleted *Stamp // smallest delete stamp seen (nil: not deleted): the tombstone
	// Redeleted is every later delete stamp, ascending: deletes of a life
	// the record began again (Revives), or second deletes of one life.
	Redeleted []Stamp
	Fields    map[string][]Write // per field, sorted by Stamp, unique by Stamp
}

// Revives is the reserved field a create carries when it brings back a
// record whose deletion its writer saw: a natural key reused after the
// record that had it was deleted, or a renamed record renamed back. Its
// value is an Int, the HLC of the latest delete the writer knew of. Only a
// create that saw the delete that ended the record's current life begins a
// new one: a create or a write that did not see it (a concurrent one)
// never brings a deleted record back. Tryton field names never start with
// '_', so it cannot collide with a real one.
const Revives = "_revives"

// RenamedTo is the reserved field (ledger.RenamedTo) the delete half of a
// key change carries: the key the record moved to. Deletes of one life
// that disagree on where the record went (two corrections of one code,
// or one correction and a delete, made concurrently) are ConcurrentMove
// conflicts: the record lives on under each new key.
const RenamedTo = ledger.RenamedTo

// Saw is the reserved field (ledger.Saw) a write or a delete carries when
// its writer had seen the record deleted: the HLC of the latest delete it
// knew of. It places the change in the life its writer saw, whatever its
// stamp: a change made on an earlier life than one begun meanwhile
// elsewhere (a concurrent edit or delete of the person whose code was
// then used again) is that life's, so a write is a RecordDeleted conflict
// and a delete ends nothing; without Saw a change is the first life's.
// Creates say the same with Revives.
const Saw = ledger.Saw

// Lender is the reserved field (ledger.Lender) the events of a record whose
// key borrows another record's key carry once that lender is in a later
// life than its first: the HLC of the delete that ended the lender's
// previous life, as the writer knew it. A person's code corrected at one
// clinic and given to someone else, while a clinic not told yet registers
// the person under the old code, keys two registrations alike; by Lender
// each belongs to the lender life it was made for, so a delete of the stale
// one ends only its own life. Lives are ordered by lender life first
// (lives): the record's current life is the last of its latest lender
// life. A create of a later lender life always carries Revives too (its
// value the latest delete of the record its writer knew of, maybe 0):
// it begins that lender life's first life.
const Lender = ledger.Lender

// Apply adds e's effect to the state and reports whether anything changed.
// It is idempotent: re-applying an event changes nothing. A create or a
// write adds one Write per field it sets; a create also lowers Created, a
// delete lowers the tombstone Deleted. Events of an unknown op are ignored.
// Apply trusts e (the ledger validates events); it does not check that e
// belongs to this record.
func (s *State) Apply(e *ledger.Event) (changed bool) {
	if e == nil {
		return false
	}
	st := StampOf(e)
	switch e.Op {
	case ledger.OpDelete:
		changed = s.addDelete(st)
		for name, v := range e.Fields { // Saw, RenamedTo
			if s.insert(name, Write{Stamp: st, Value: v}) {
				changed = true
			}
		}
		return changed
	case ledger.OpCreate:
		changed = lowerStamp(&s.Created, st)
	case ledger.OpWrite:
	default:
		return false
	}
	for name, v := range e.Fields {
		if s.insert(name, Write{Stamp: st, Base: e.Base[name], Value: v}) {
			changed = true
		}
	}
	return changed
}

// Merge adds everything o holds to s: the union of the writes, the smaller
// create and delete stamps. Merging the states of two sets of events gives
// the state of their union, so Merge is commutative, associative and
// idempotent. o is not modified and shares nothing with s afterwards
// (values are immutable). o must keep the State invariants (writes sorted
// and unique by stamp), as every State from Apply, Merge and
// UnmarshalState does.
func (s *State) Merge(o *State) {
	if o == nil || o == s {
		return
	}
	if o.Created != nil {
		lowerStamp(&s.Created, *o.Created)
	}
	if o.Deleted != nil {
		s.addDelete(*o.Deleted)
	}
	for _, d := range o.Redeleted {
		s.addDelete(d)
	}
	for name, ws := range o.Fields {
		if len(ws) == 0 {
			continue
		}
		if len(s.Fields[name]) == 0 {
			if s.Fields == nil {
				s.Fields = make(map[string][]Write, len(o.Fields))
			}
			s.Fields[name] = slices.Clone(ws)
			continue
		}
		for _, w := range ws {
			s.insert(name, w)
		}
	}
}

// Clone returns a deep copy of s.
func (s *State) Clone() *State {
	c := &State{}
	c.Merge(s)
	return c
}

// Live reports whether the record exists: created, and not deleted since
// its current life began (see Revives). Nothing that did not see a delete
// brings the record back.
func (s *State) Live() bool {
	if s.Created == nil {
		return false
	}
	if s.single() {
		return true
	}
	l := s.lives()
	cur := len(l.starts) - 1
	return l.ends[cur] == nil && l.begun(cur)
}

// single reports whether the record has one life: never deleted, and
// every change made for its lender's first life (or it borrows nothing).
func (s *State) single() bool { return s.Deleted == nil && len(s.Fields[Lender]) == 0 }

// Revival is the stamp of the create that began the record's current life
// after a delete; nil if its life is the first.
func (s *State) Revival() *Stamp {
	if s.single() {
		return nil
	}
	if l := s.lives(); len(l.starts) > 1 && !l.starts[len(l.starts)-1].IsZero() {
		st := l.starts[len(l.starts)-1]
		return &st
	}
	return nil
}

// LifeStart is the create that began the life the change stamped st
// belongs to, as its writer saw it (Saw, Revives): the zero Stamp for the
// first life. A projector asks it of a key change, to tell whether the row
// it holds is the one that moved.
func (s *State) LifeStart(st Stamp) Stamp {
	if s.single() {
		return Stamp{}
	}
	l := s.lives()
	life, _ := s.place(l, st)
	return l.starts[life]
}

// Meant says which life a reference means whose writer knew the
// record's deletes up to saw (ledger.Ref.Saw): current is true for the
// record's current life, live or not. If the life it means has ended,
// moves lists the keys the key changes of that life took it to: the
// ending delete's RenamedTo first, then the other deletes of that life
// that moved it (concurrent corrections, or a correction concurrent with
// the plain delete that ended it), in stamp order. A projector asks it so
// that a reference follows its person through code corrections to where
// they live on, and a party code given to someone else does not take a
// reference meant for the person who had it.
//
// lender (ledger.Ref.Lender) is the life of the record's lender the
// reference's writer knew the record under: the reference means a life
// of the latest lender life up to it, so a reference to a stale
// registration (made for the person who had a code since given to
// someone else) means that registration, not the current one; until a
// move ends it, it is not current and has nowhere to go.
func (s *State) Meant(lender, saw clocks.Timestamp) (current bool, moves []ledger.Ref) {
	if s.single() {
		return true, nil
	}
	l := s.lives()
	cur := len(l.starts) - 1
	last := cur // the last life of the latest lender life up to lender
	for last > 0 && l.lender[last] > lender {
		last--
	}
	life := l.seen(last, saw)
	end := l.ends[life]
	if end == nil {
		return life == cur, nil
	}
	ws := s.Fields[RenamedTo]
	first, ending := find(ws, *end)
	if ending {
		if r, ok := ws[first].Value.AsRef(); ok {
			moves = append(moves, r)
		}
	}
	for i, w := range ws {
		if in, _ := s.place(l, w.Stamp); in != life || (ending && i == first) {
			continue
		}
		if r, ok := w.Value.AsRef(); ok && !slices.Contains(moves, r) {
			moves = append(moves, r)
		}
	}
	return life == cur, moves
}

// LenderLife names the record's current life for the records whose keys
// borrow its key (Lender): 0 for its first life, else the HLC of the
// delete that ended the life before it (for a record that itself borrows,
// the greater of that and its own lender life). A capturer stamps it on
// every change of a borrower, so that a stale registration made under a
// reused code stays apart from the code's new person's.
func (s *State) LenderLife() clocks.Timestamp {
	if s.single() {
		return 0
	}
	l := s.lives()
	return l.name(len(l.starts) - 1)
}

// LenderLifeMovedTo names, as LenderLife does, the life of the record that
// a key change took to the key to (of the same model); ok is false if no
// delete of the record moved it there. A borrower's row that followed its
// lender there must name, on the delete half of its own move, the life it
// had under the old key, not the key's current one. Of several moves
// there, the latest counts.
func (s *State) LenderLifeMovedTo(to string) (life clocks.Timestamp, ok bool) {
	if s.single() {
		return 0, false
	}
	l := s.lives()
	ws := s.Fields[RenamedTo]
	for i := len(ws) - 1; i >= 0; i-- { // the latest: a code corrected back and forth moves it there more than once
		if r, isRef := ws[i].Value.AsRef(); isRef && r.Key == to {
			life, _ := s.place(l, ws[i].Stamp)
			return l.name(life), true
		}
	}
	return 0, false
}

// Superseded reports whether the change stamped st belongs to a life made
// for an earlier life of the key's lender than the record's current one
// (Lender), and no delete ended that life: a registration a clinic made
// under a person's code, unaware that the code had gone to someone else.
// Its row is not the current life's; the instance that made it moves it
// to its person's new key.
func (s *State) Superseded(st Stamp) bool {
	if s.single() {
		return false
	}
	l := s.lives()
	life, del := s.place(l, st)
	return del == nil && l.ends[life] == nil && l.lender[life] < l.lender[len(l.starts)-1]
}

// Owner is the origin that began the record's current life: the origin of
// Created, or of the reviving create; ok is false before any create is
// known.
func (s *State) Owner() (origin uint16, ok bool) {
	if s.Created == nil {
		return 0, false
	}
	if s.single() {
		return s.Created.Origin, true
	}
	l := s.lives()
	cur := len(l.starts) - 1
	if st := s.lifeStart(l, cur); st != nil {
		return st.Origin, true
	}
	return 0, false
}

// LastDelete is the greatest delete stamp; the zero Stamp if none.
func (s *State) LastDelete() Stamp {
	switch {
	case len(s.Redeleted) > 0:
		return s.Redeleted[len(s.Redeleted)-1]
	case s.Deleted != nil:
		return *s.Deleted
	}
	return Stamp{}
}

// lifeline is a record's lives, grouped by the lender life they were
// made for (Lender), lender lives ascending. Within a lender life, each
// life starts at a create (the first life of the first lender life at
// Created, or at the beginning when no create is known; the first life of
// a later lender life at its first create, or at the beginning while none
// is known; each later one at a reviving create) and ends at its first
// delete, if any.
type lifeline struct {
	starts []Stamp  // ascending within a lender life; a first may be the zero Stamp
	ends   []*Stamp // ends[i]: the first delete of life i, nil if none
	// need[i] is the HLC of the delete a change must have seen to be of
	// life i: the one that ended life i-1, which its reviving create saw
	// (0 for the first life of a lender life).
	need   []clocks.Timestamp
	lender []clocks.Timestamp // lender[i]: the lender life life i was made for
}

// lives computes the lifeline. Per lender life, going through its deletes
// and reviving creates in stamp order, a reviving create begins a new life
// when the current one has ended and it saw the delete that ended it.
// Another create of a live life joins it, like a duplicate registration. A
// delete whose writer had not seen the current life begin (Saw) is a late
// delete of an earlier life: it ends nothing.
func (s *State) lives() lifeline {
	var l lifeline
	var deletes []Stamp
	if s.Deleted != nil {
		deletes = append([]Stamp{*s.Deleted}, s.Redeleted...)
	}
	revs := s.Fields[Revives]
	for _, g := range s.lenderLives() {
		l.starts = append(l.starts, Stamp{})
		l.ends = append(l.ends, nil)
		l.need = append(l.need, 0)
		l.lender = append(l.lender, g)
		first := g != 0 // a later lender life's first create begins its first life
		for i, j := 0, 0; i < len(deletes) || j < len(revs); {
			if i < len(deletes) && s.lenderOf(deletes[i]) != g {
				i++
				continue
			}
			if j < len(revs) && s.lenderOf(revs[j].Stamp) != g {
				j++
				continue
			}
			cur := len(l.starts) - 1
			if j == len(revs) || i < len(deletes) && deletes[i].Compare(revs[j].Stamp) < 0 {
				d := deletes[i]
				i++
				if l.ends[cur] == nil && l.seen(cur, s.saw(d)) == cur {
					l.ends[cur] = &d
				}
				continue
			}
			r := revs[j]
			j++
			if first {
				l.starts[cur], first = r.Stamp, false
				continue
			}
			saw, ok := r.Value.AsInt()
			if end := l.ends[cur]; ok && end != nil && clocks.Timestamp(saw) >= end.HLC {
				l.starts = append(l.starts, r.Stamp)
				l.ends = append(l.ends, nil)
				l.need = append(l.need, end.HLC)
				l.lender = append(l.lender, g)
			}
		}
	}
	return l
}

// lenderLives lists the lender lives the record's changes were made for,
// ascending: always the first (0), then each Lender names.
func (s *State) lenderLives() []clocks.Timestamp {
	out := []clocks.Timestamp{0}
	for _, w := range s.Fields[Lender] {
		if v, ok := w.Value.AsInt(); ok && v > 0 {
			out = append(out, clocks.Timestamp(v))
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// lenderOf is the lender life the change stamped st was made for.
func (s *State) lenderOf(st Stamp) clocks.Timestamp {
	ws := s.Fields[Lender]
	if i, ok := find(ws, st); ok {
		if v, ok := ws[i].Value.AsInt(); ok && v > 0 {
			return clocks.Timestamp(v)
		}
	}
	return 0
}

// name is life i's name for borrowers (LenderLife).
func (l lifeline) name(i int) clocks.Timestamp { return max(l.lender[i], l.need[i]) }

// begun reports whether life i has a create: a later lender life's first
// life has none until its first create is known.
func (l lifeline) begun(i int) bool { return l.lender[i] == 0 || !l.starts[i].IsZero() }

// seen is the latest life, up to life, that a writer who saw the delete
// at HLC saw had seen begin. It stays within life's lender life: the
// first life of each has need 0.
func (l lifeline) seen(life int, saw clocks.Timestamp) int {
	for life > 0 && saw < l.need[life] {
		life--
	}
	return life
}

// saw is the latest delete the writer of the event stamped st had seen
// (Saw, or Revives on a create); 0 if it saw none.
func (s *State) saw(st Stamp) clocks.Timestamp {
	for _, name := range [...]string{Saw, Revives} {
		ws := s.Fields[name]
		if i, ok := find(ws, st); ok {
			v, _ := ws[i].Value.AsInt()
			return clocks.Timestamp(v)
		}
	}
	return 0
}

// place says where a change falls: in which life (index), and whether
// after that life's end (deleted: the end is the delete it lost to).
// Among the lives of the lender life it was made for (Lender), by its
// stamp, unless its writer had not seen that life begin (s.saw): then in
// the latest life it had seen, which ended before the change.
func (s *State) place(l lifeline, st Stamp) (life int, deleted *Stamp) {
	g := s.lenderOf(st)
	first, _ := slices.BinarySearch(l.lender, g)
	life = first
	for life+1 < len(l.lender) && l.lender[life+1] == g {
		life++
	}
	for life > first && l.starts[life].Compare(st) > 0 {
		life--
	}
	if life > first {
		if seen := l.seen(life, s.saw(st)); seen < life {
			return seen, l.ends[seen]
		}
	}
	if end := l.ends[life]; end != nil && st.Compare(*end) > 0 {
		return life, end
	}
	return life, nil
}

// addDelete notes a delete stamp: Deleted keeps the smallest, Redeleted
// the others.
func (s *State) addDelete(st Stamp) bool {
	if s.Deleted == nil {
		s.Deleted = &st
		return true
	}
	switch c := st.Compare(*s.Deleted); {
	case c == 0:
		return false
	case c < 0:
		first := st
		st, s.Deleted = *s.Deleted, &first
	}
	i, found := slices.BinarySearchFunc(s.Redeleted, st, Stamp.Compare)
	if found {
		return false
	}
	s.Redeleted = slices.Insert(s.Redeleted, i, st)
	return true
}

func lowerStamp(p **Stamp, st Stamp) bool {
	if *p != nil && (*p).Compare(st) <= 0 {
		return false
	}
	*p = &st
	return true
}

// insert puts w into the field's sorted writes. A write with a stamp already
// held is a duplicate; should its content differ (two events under one id,
// which a verified ledger cannot hold), the smaller content is kept, so the
// state still does not depend on arrival order.
func (s *State) insert(field string, w Write) bool {
	ws := s.Fields[field]
	i, found := find(ws, w.Stamp)
	if found {
		if compareContent(w, ws[i]) < 0 {
			ws[i] = w
			return true
		}
		return false
	}
	if s.Fields == nil {
		s.Fields = make(map[string][]Write)
	}
	s.Fields[field] = slices.Insert(ws, i, w)
	return true
}

// find is where the write stamped st is, or would be, in ws (sorted by
// stamp), and whether it is there.
func find(ws []Write, st Stamp) (int, bool) {
	return slices.BinarySearchFunc(ws, st, func(w Write, t Stamp) int { return w.Stamp.Compare(t) })
}

// compareContent orders writes of the same stamp by base, then by their
// canonical value encoding.
func compareContent(a, b Write) int {
	if c := a.Base.Compare(b.Base); c != 0 {
		return c
	}
	if a.Value.Equal(b.Value) {
		return 0
	}
	return bytes.Compare(appendValue(nil, a.Value), appendValue(nil, b.Value))
}
