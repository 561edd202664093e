package ledger

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/ghsync/ghsync/clocks"
)

// Sequencer stamps the events this instance originates: a fresh UUIDv7, the
// next origin_seq, a clock reading and the hash chain. It continues from
// what the store holds, so a restarted instance never reuses a sequence
// number or issues an earlier clock reading. Safe for concurrent use.
type Sequencer struct {
	mu     sync.Mutex
	origin uint16
	clock  *clocks.Clock
	seq    uint64
	prev   Hash
}

// Resume builds the Sequencer for origin from the store's high-water mark
// and restores clock past the latest reading the store holds for it.
func Resume(ctx context.Context, s Store, origin uint16, clock *clocks.Clock) (*Sequencer, error) {
	if origin > MaxOrigin {
		return nil, fmt.Errorf("%w: origin %d outside 0..%d", ErrInvalidEvent, origin, MaxOrigin)
	}
	h, err := HeadOf(ctx, s, origin)
	if err != nil {
		return nil, fmt.Errorf("resume origin %d: %w", origin, err)
	}
	clock.Restore(h.MaxHLC)
	return &Sequencer{origin: origin, clock: clock, seq: h.Seq, prev: h.Hash}, nil
}

// Stamp fills e's ID, Origin, OriginSeq, HLC, PrevHash and Hash and seals
// it. The caller fills the rest. If the stamped events then fail to
// append, call Resume again: the sequence numbers they took are not held.
func (q *Sequencer) Stamp(e *Event) error {
	_, err := q.stamp(e, q.clock.Now)
	return err
}

// StampAt is Stamp for a change that happened at when and is stamped
// later (see clocks.Clock.At): captured database changes use it. It
// returns the event's canonical encoding (see SealEncoded).
func (q *Sequencer) StampAt(e *Event, when time.Time) ([]byte, error) {
	return q.stamp(e, func() clocks.Timestamp { return q.clock.At(when) })
}

func (q *Sequencer) stamp(e *Event, now func() clocks.Timestamp) ([]byte, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	id, err := uuid.NewV7()
	if err != nil {
		return nil, fmt.Errorf("stamp event: %w", err)
	}
	e.ID, e.Origin, e.OriginSeq, e.HLC = id, q.origin, q.seq+1, now()
	payload, err := e.SealEncoded(q.prev)
	if err != nil {
		return nil, err
	}
	q.seq, q.prev = e.OriginSeq, e.Hash
	return payload, nil
}

// Head is the origin_seq and hash of the last stamped event.
func (q *Sequencer) Head() (uint64, Hash) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.seq, q.prev
}

// Resync reloads the high-water mark from the store: after stamped events
// failed to append, or when another writer of the same origin (central's
// server and its capturer both write origin 0) appended meanwhile. The
// clock is restored past what the store holds.
func (q *Sequencer) Resync(ctx context.Context, s Store) error {
	h, err := HeadOf(ctx, s, q.origin)
	if err != nil {
		return fmt.Errorf("resync origin %d: %w", q.origin, err)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.seq, q.prev = h.Seq, h.Hash
	q.clock.Restore(h.MaxHLC)
	return nil
}

// AppendOwn stamps and appends events of the sequencer's origin, and
// stamps again after a Resync if another writer of the origin took the
// sequence numbers first (ErrConflict or ErrChainBroken), a few times.
func (q *Sequencer) AppendOwn(ctx context.Context, s Store, events []*Event) (AppendResult, error) {
	var lastErr error
	for range 5 {
		for _, e := range events {
			if err := q.Stamp(e); err != nil {
				return AppendResult{}, err
			}
		}
		res, err := s.Append(ctx, events)
		if err == nil {
			return res, nil
		}
		lastErr = err
		if rerr := q.Resync(ctx, s); rerr != nil {
			return AppendResult{}, rerr
		}
		if !errors.Is(err, ErrConflict) && !errors.Is(err, ErrChainBroken) {
			return AppendResult{}, err
		}
	}
	return AppendResult{}, fmt.Errorf("origin %d: other writers kept taking the next sequence number: %w", q.origin, lastErr)
}

// Clock is the clock the sequencer stamps with.
func (q *Sequencer) Clock() *clocks.Clock { return q.clock }
