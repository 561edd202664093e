package ledger

import (
	"errors"
	"fmt"

	"github.com/google/uuid"
)

// Sentinels, tested with errors.Is. Store methods wrap them in an
// *EventError when one event is to blame.
var (
	// ErrInvalidEvent: the event breaks a rule of the format (origin out
	// of range, no fields on a write, unknown value kind...).
	ErrInvalidEvent = errors.New("ledger: invalid event")
	// ErrHashMismatch: an event's claimed hash is not the hash of its
	// content: it was altered or damaged on the way.
	ErrHashMismatch = errors.New("ledger: hash mismatch")
	// ErrConflict: the store already holds a different event under the
	// same (origin, origin_seq) or the same id. It means a bug or tampering
	// at the origin, and is never resolved by overwriting.
	ErrConflict = errors.New("ledger: conflicting event")
	// ErrChainBroken: an event's PrevHash does not match the hash of the
	// origin's previous event (or the next event's PrevHash does not match
	// this one): part of an origin's history was altered or lost.
	ErrChainBroken = errors.New("ledger: hash chain broken")
	// ErrCorrupt: stored bytes no longer match their hash, or do not decode.
	ErrCorrupt = errors.New("ledger: corrupt event")
	// ErrUnknownFormat: the encoding's format byte is one this build does not know.
	ErrUnknownFormat = errors.New("ledger: unknown event format")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("ledger: store closed")
)

// EventError names the event that broke a rule, so an administrator can
// find it: its id, origin and sequence, and its position when stored.
type EventError struct {
	ID        uuid.UUID
	Origin    uint16
	OriginSeq uint64
	Position  uint64 // 0 when the event is not (yet) stored
	Err       error
}

func (e *EventError) Error() string {
	at := ""
	if e.Position != 0 {
		at = fmt.Sprintf(" at position %d", e.Position)
	}
	return fmt.Sprintf("event %s (origin %d seq %d)%s: %v", e.ID, e.Origin, e.OriginSeq, at, e.Err)
}

func (e *EventError) Unwrap() error { return e.Err }

func eventErr(ev *Event, pos uint64, err error) *EventError {
	return &EventError{ID: ev.ID, Origin: ev.Origin, OriginSeq: ev.OriginSeq, Position: pos, Err: err}
}
