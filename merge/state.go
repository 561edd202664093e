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
	Created *Stamp             // smallest create stamp seen (nil: no create yet)
	Deleted *Stamp             // smallest delete stamp seen (nil: not deleted): the tombstone
	Fields  map[string][]Write // per field, sorted by Stamp, unique by Stamp
}

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
		return lowerStamp(&s.Deleted, st)
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
		lowerStamp(&s.Deleted, *o.Deleted)
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

// Live reports whether the record exists: created and not deleted. A
// deleted record stays deleted whatever arrives later.
func (s *State) Live() bool { return s.Created != nil && s.Deleted == nil }

// Owner is the creating origin, the origin of Created; ok is false before
// any create is known.
func (s *State) Owner() (origin uint16, ok bool) {
	if s.Created == nil {
		return 0, false
	}
	return s.Created.Origin, true
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
	i, found := slices.BinarySearchFunc(ws, w.Stamp, func(x Write, st Stamp) int { return x.Stamp.Compare(st) })
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
