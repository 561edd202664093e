package ledger

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/google/uuid"
)

// SeqKey addresses one event by origin and origin_seq.
type SeqKey struct {
	Origin uint16
	Seq    uint64
}

// Held is what a backend reports about a stored event for the append checks.
type Held struct {
	ID       uuid.UUID
	Hash     Hash
	PrevHash Hash
}

// Batch is a validated, encoded append request. Backends build it with
// Prepare before taking their write lock (encoding and hashing need no
// lock), then call Lookups and Resolve under it. Sharing this logic keeps
// every backend's idempotency and chain rules identical.
type Batch struct {
	Events   []*Event // unique by (origin, seq), in caller order
	Payloads [][]byte // canonical encodings, parallel to Events
	dups     int      // repeats within the call itself
}

// Prepare validates and encodes events. Each must be sealed: its Hash must
// be the hash of its content.
func Prepare(events []*Event) (*Batch, error) { return prepare(events, nil) }

// PrepareEncoded is Prepare for events that come with their canonical
// encodings: payloads[i] is what Unmarshal decoded events[i] from, or what
// SealEncoded returned for it, and events[i] is unchanged since. Both
// validated the event and took its hash from exactly those bytes, so the
// bytes are kept as they are instead of validating and encoding every
// event again. The hash is checked once more, cheaply, so that bytes
// paired with the wrong event are refused; an event without bytes (nil) is
// prepared as Prepare would.
func PrepareEncoded(events []*Event, payloads [][]byte) (*Batch, error) {
	if len(payloads) != len(events) {
		return nil, fmt.Errorf("%w: %d events with %d payloads", ErrInvalidEvent, len(events), len(payloads))
	}
	return prepare(events, payloads)
}

func prepare(events []*Event, payloads [][]byte) (*Batch, error) {
	b := &Batch{Events: make([]*Event, 0, len(events)), Payloads: make([][]byte, 0, len(events))}
	bySeq := make(map[SeqKey]int, len(events))
	byID := make(map[uuid.UUID]int, len(events))
	for i, e := range events {
		if e == nil {
			return nil, fmt.Errorf("%w: nil event", ErrInvalidEvent)
		}
		var payload []byte
		if payloads != nil {
			payload = payloads[i]
		}
		if payload == nil {
			if err := e.Validate(); err != nil {
				return nil, eventErr(e, 0, err)
			}
			var err error
			if payload, err = Marshal(e); err != nil {
				return nil, eventErr(e, 0, fmt.Errorf("%w: %w", ErrInvalidEvent, err))
			}
		}
		if e.Hash.IsZero() {
			return nil, eventErr(e, 0, fmt.Errorf("%w: event is not sealed (no hash)", ErrInvalidEvent))
		}
		if HashOf(payload) != e.Hash {
			return nil, eventErr(e, 0, fmt.Errorf("%w: content does not match its hash %s", ErrHashMismatch, e.Hash.Short()))
		}
		k := SeqKey{e.Origin, e.OriginSeq}
		if j, ok := bySeq[k]; ok {
			if b.Events[j].Hash != e.Hash {
				return nil, eventErr(e, 0, fmt.Errorf("%w: the call holds two different events for origin %d seq %d", ErrConflict, k.Origin, k.Seq))
			}
			b.dups++
			continue
		}
		if j, ok := byID[e.ID]; ok {
			return nil, eventErr(e, 0, fmt.Errorf("%w: id also used by origin %d seq %d in the call", ErrConflict, b.Events[j].Origin, b.Events[j].OriginSeq))
		}
		bySeq[k] = len(b.Events)
		byID[e.ID] = len(b.Events)
		b.Events = append(b.Events, e)
		b.Payloads = append(b.Payloads, payload)
	}
	return b, nil
}

// Origins lists the origins the batch touches, sorted.
func (b *Batch) Origins() []uint16 {
	var os []uint16
	for _, e := range b.Events {
		os = append(os, e.Origin)
	}
	slices.Sort(os)
	return slices.Compact(os)
}

// Lookups lists the stored events the checks need, given the heads of the
// batch's origins: events at or below a head that the batch repeats or
// neighbours. The common case, a batch that continues each origin's head,
// needs none.
func (b *Batch) Lookups(heads map[uint16]OriginHead) []SeqKey {
	in := b.index()
	var keys []SeqKey
	add := func(k SeqKey) {
		if _, ok := in[k]; !ok && k.Seq >= 1 && k.Seq <= heads[k.Origin].Seq {
			keys = append(keys, k)
		}
	}
	for _, e := range b.Events {
		h := heads[e.Origin]
		if e.OriginSeq <= h.Seq {
			keys = append(keys, SeqKey{e.Origin, e.OriginSeq})
		}
		if e.OriginSeq-1 != h.Seq { // the head's hash is known already
			add(SeqKey{e.Origin, e.OriginSeq - 1})
		}
		add(SeqKey{e.Origin, e.OriginSeq + 1})
	}
	slices.SortFunc(keys, compareSeqKeys)
	return slices.Compact(keys)
}

func compareSeqKeys(a, b SeqKey) int {
	if c := cmp.Compare(a.Origin, b.Origin); c != 0 {
		return c
	}
	return cmp.Compare(a.Seq, b.Seq)
}

func (b *Batch) index() map[SeqKey]int {
	in := make(map[SeqKey]int, len(b.Events))
	for i, e := range b.Events {
		in[SeqKey{e.Origin, e.OriginSeq}] = i
	}
	return in
}

// Plan is what Resolve decided: which events to insert, in order, and the
// origins' heads after the insert.
type Plan struct {
	Insert     []int // indexes into Batch.Events
	Duplicates int
	Heads      map[uint16]OriginHead // new heads of the origins that change
}

// Resolve checks the batch against the store's heads and looked-up events
// and decides what to insert. held must answer every key Lookups returned
// that the store holds.
func (b *Batch) Resolve(heads map[uint16]OriginHead, held map[SeqKey]Held) (*Plan, error) {
	in := b.index()
	p := &Plan{Duplicates: b.dups, Heads: map[uint16]OriginHead{}}
	hashAt := func(k SeqKey) (Hash, bool) {
		if i, ok := in[k]; ok {
			return b.Events[i].Hash, true
		}
		if h := heads[k.Origin]; h.Seq == k.Seq && h.Seq > 0 {
			return h.Hash, true
		}
		if h, ok := held[k]; ok {
			return h.Hash, true
		}
		return Hash{}, false
	}
	for i, e := range b.Events {
		k := SeqKey{e.Origin, e.OriginSeq}
		if h, ok := held[k]; ok {
			if h.Hash != e.Hash {
				return nil, eventErr(e, 0, fmt.Errorf("%w: origin %d seq %d is already stored with hash %s, this event has %s",
					ErrConflict, k.Origin, k.Seq, h.Hash.Short(), e.Hash.Short()))
			}
			p.Duplicates++
			continue
		}
		if e.OriginSeq > 1 {
			if prev, ok := hashAt(SeqKey{e.Origin, e.OriginSeq - 1}); ok && prev != e.PrevHash {
				return nil, eventErr(e, 0, fmt.Errorf("%w: prev_hash %s, but origin %d seq %d has hash %s",
					ErrChainBroken, e.PrevHash.Short(), e.Origin, e.OriginSeq-1, prev.Short()))
			}
		}
		if next, ok := held[SeqKey{e.Origin, e.OriginSeq + 1}]; ok && next.PrevHash != e.Hash {
			return nil, eventErr(e, 0, fmt.Errorf("%w: stored origin %d seq %d links to %s, not to this event's hash %s",
				ErrChainBroken, e.Origin, e.OriginSeq+1, next.PrevHash.Short(), e.Hash.Short()))
		}
		p.Insert = append(p.Insert, i)
		h, ok := p.Heads[e.Origin]
		if !ok {
			h = heads[e.Origin]
			h.Origin = e.Origin
		}
		if e.OriginSeq > h.Seq {
			h.Seq, h.Hash = e.OriginSeq, e.Hash
		}
		h.Count++
		h.MaxHLC = max(h.MaxHLC, e.HLC)
		p.Heads[e.Origin] = h
	}
	return p, nil
}
