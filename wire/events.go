package wire

import (
	"errors"
	"fmt"
	"io"

	"github.com/ghsync/ghsync/ledger"
)

// DecodePush reads a push body (already decompressed): frames that each
// hold one event's canonical bytes. Every event is decoded strictly
// (ledger.Unmarshal: canonical bytes only, Validate, hash set from the
// bytes). The first problem is a *FrameError naming the frame and its byte
// offset; a caller must then store nothing. lim.MaxFrames bounds the
// number of events (DefaultMaxPushEvents when zero).
func DecodePush(r io.Reader, lim Limits) ([]*ledger.Event, error) {
	events, _, err := DecodePushEncoded(r, lim)
	return events, err
}

// DecodePushEncoded is DecodePush that also returns each event's bytes,
// for ledger.AppendEncoded.
func DecodePushEncoded(r io.Reader, lim Limits) ([]*ledger.Event, [][]byte, error) {
	if lim.MaxFrames <= 0 {
		lim.MaxFrames = DefaultMaxPushEvents
	}
	d := NewDecoder(r, lim)
	var events []*ledger.Event
	var payloads [][]byte
	for {
		at := d.Offset()
		frame, err := d.Next()
		if errors.Is(err, io.EOF) {
			return events, payloads, nil
		}
		if err != nil {
			return nil, nil, err
		}
		e, err := ledger.Unmarshal(frame)
		if err != nil {
			return nil, nil, &FrameError{Frame: len(events), Offset: at, Err: fmt.Errorf("%w: %w", ErrMalformed, err)}
		}
		events, payloads = append(events, e), append(payloads, frame)
	}
}

// DecodePull reads a pull or new response body (already decompressed):
// frames of uvarint(position) and an event's canonical bytes. As
// DecodePush, it is all or nothing: a truncated stream is an error, never
// a shorter page.
func DecodePull(r io.Reader, lim Limits) ([]ledger.Record, error) {
	d := NewDecoder(r, lim)
	var out []ledger.Record
	for {
		at := d.Offset()
		frame, err := d.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		pos, payload, err := SplitPositioned(frame)
		if err == nil {
			var e *ledger.Event
			if e, err = ledger.Unmarshal(payload); err == nil {
				out = append(out, ledger.Record{Position: pos, Event: e, Payload: payload})
				continue
			}
			err = fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		return nil, &FrameError{Frame: len(out), Offset: at, Err: err}
	}
}

// EncodePush writes events as a complete push stream.
func EncodePush(w io.Writer, events []*ledger.Event) error {
	enc := NewEncoder(w)
	for _, e := range events {
		b, err := ledger.Marshal(e)
		if err != nil {
			return fmt.Errorf("encode event %s: %w", e.ID, err)
		}
		if err := enc.Frame(b); err != nil {
			return err
		}
	}
	return enc.Close()
}

// EncodePull writes records as a complete pull stream.
func EncodePull(w io.Writer, recs []ledger.Record) error {
	enc := NewEncoder(w)
	for _, r := range recs {
		b, err := r.Encoded()
		if err != nil {
			return fmt.Errorf("encode event at position %d: %w", r.Position, err)
		}
		if err := enc.Positioned(r.Position, b); err != nil {
			return err
		}
	}
	return enc.Close()
}
