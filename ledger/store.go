package ledger

import (
	"context"
	"iter"
	"slices"

	"github.com/ghsync/ghsync/clocks"
)

// Store is a durable, append-only ledger of events. Positions are dense
// (1, 2, 3...) and local to one store: a satellite's position 10 is not
// central's. Appends commit in position order, so every read sees an
// unbroken run of positions from 1: a reader paging by position never
// skips an event that commits later (central's pull cursors rely on it;
// a backend taking positions from a sequence would break it). Every
// backend passes the same contract suite (ledgertest). Implementations
// are safe for concurrent use.
type Store interface {
	// Append stores events atomically: all or none. Events already held
	// (same id and content) are skipped, so a retried call is harmless,
	// also after a restart. A different event under a held (origin,
	// origin_seq) or id is ErrConflict; an event whose PrevHash does not
	// match the origin's held neighbour is ErrChainBroken; a malformed or
	// unsealed event is ErrInvalidEvent or ErrHashMismatch. Errors about
	// one event are *EventError. A failed call changes nothing.
	Append(ctx context.Context, events []*Event) (AppendResult, error)
	// ReadAll returns up to limit records after position after, in position order.
	ReadAll(ctx context.Context, after uint64, limit int, f Filter) ([]Record, error)
	// ReadAllRaw is ReadAll of every origin and model without decoding:
	// what forwarding events needs (central's pull pages), at the cost of
	// a hash check an event.
	ReadAllRaw(ctx context.Context, after uint64, limit int) ([]RawRecord, error)
	// ReadColumns returns up to limit stored rows after position after,
	// every column as stored, nothing decoded or checked: what Verify
	// compares with the events' bytes.
	ReadColumns(ctx context.Context, after uint64, limit int) ([]StoredColumns, error)
	// ReadStream returns up to limit records of one record's history after position after.
	ReadStream(ctx context.Context, s Stream, after uint64, limit int) ([]Record, error)
	// ReadOrigin returns up to limit records of one origin with origin_seq
	// above afterSeq, in origin_seq order: what a push sends, what verify walks.
	ReadOrigin(ctx context.Context, origin uint16, afterSeq uint64, limit int) ([]Record, error)
	// Subscribe yields every record after position after that matches f,
	// in position order, first those already stored and then new ones as
	// they commit, until ctx ends (it then yields ctx's error once) or the
	// loop stops. A record is never skipped, even when appends commit
	// concurrently.
	Subscribe(ctx context.Context, after uint64, f Filter) iter.Seq2[Record, error]
	// Head is the position of the last stored event, 0 when empty.
	Head(ctx context.Context) (uint64, error)
	// Origins returns, per origin held, its high-water mark: the version
	// vector a peer compares to know what it lacks. Sorted by origin.
	Origins(ctx context.Context) ([]OriginHead, error)
	// Close releases the store. Calls after Close return ErrClosed.
	Close() error
}

// Record is an event at its position in one store.
type Record struct {
	Position uint64
	Event    *Event
	// Payload is Event's canonical encoding as it was read: from a store
	// (checked against the stored hash) or off the wire (by Unmarshal). It
	// lets an event be forwarded or appended without encoding it again;
	// nil when unknown. It describes Event as read: whoever changes Event
	// must drop it.
	Payload []byte
}

// RawRecord is a stored event not decoded: its position, its origin, and
// its canonical encoding, checked against the stored hash.
type RawRecord struct {
	Position uint64
	Origin   uint16
	Payload  []byte
}

// Encoded is the record's event in its canonical encoding: Payload when
// it was kept, otherwise encoded now.
func (r Record) Encoded() ([]byte, error) {
	if r.Payload != nil {
		return r.Payload, nil
	}
	return Marshal(r.Event)
}

// Filter narrows reads to some models and origins; an empty list means all.
type Filter struct {
	Models  []string
	Origins []uint16
}

// Match reports whether e passes the filter. Backends filter in SQL; Match
// is the reference they are tested against.
func (f Filter) Match(e *Event) bool {
	return (len(f.Models) == 0 || slices.Contains(f.Models, e.Model)) &&
		(len(f.Origins) == 0 || slices.Contains(f.Origins, e.Origin))
}

// OriginHead is what a store holds of one origin.
type OriginHead struct {
	Origin uint16
	Seq    uint64           // highest origin_seq held
	Hash   Hash             // hash of the event at Seq
	Count  uint64           // events held; Count < Seq means some are not held here
	MaxHLC clocks.Timestamp // latest HLC among them: restores a restarted clock
}

// HeadOf is what s holds of one origin (the zero OriginHead, with Origin
// set, when nothing).
func HeadOf(ctx context.Context, s Store, origin uint16) (OriginHead, error) {
	heads, err := s.Origins(ctx)
	if err != nil {
		return OriginHead{}, err
	}
	for _, h := range heads {
		if h.Origin == origin {
			return h, nil
		}
	}
	return OriginHead{Origin: origin}, nil
}

// AppendResult says what an Append did.
type AppendResult struct {
	Appended   int    // events newly stored
	Duplicates int    // events already held, skipped
	Head       uint64 // the store's head after the call
}

// DefaultPageSize bounds reads whose caller gave no limit.
const DefaultPageSize = 1000

// EncodedAppender is a Store that can append events together with their
// canonical encodings, as Unmarshal decoded them or SealEncoded produced
// them (PrepareEncoded), so that a pull or a capture does not
// validate and encode every event a second time. It runs hook, if not
// nil, inside the append transaction, as HookAppender does. Both backends
// implement it.
type EncodedAppender interface {
	AppendEncoded(ctx context.Context, events []*Event, payloads [][]byte, hook TxHook) (AppendResult, error)
}

// AppendEncoded appends events with their canonical encodings (as
// PrepareEncoded describes), through s's AppendEncoded where it has one.
func AppendEncoded(ctx context.Context, s Store, events []*Event, payloads [][]byte) (AppendResult, error) {
	if a, ok := s.(EncodedAppender); ok {
		return a.AppendEncoded(ctx, events, payloads, nil)
	}
	return s.Append(ctx, events)
}
