package ledger

import (
	"errors"
	"fmt"

	"github.com/ghsync/ghsync/clocks"
)

// ClockBoundModel is the reserved model of central's clock corrections.
//
// A satellite whose clock ran ahead while it was offline stamps its events
// in the future; merged as they are, they would win every last-writer-wins
// comparison until real time caught up. Central does not let them: when it
// receives events stamped beyond its own clock (plus the tolerated offset),
// it appends, as origin 0 and before them, a bound event naming the
// origin, the origin_seq range and central's clock reading. Every
// projector then merges those events as if stamped at the bound (no later
// than central received them). The events themselves stay in every ledger
// byte for byte: nothing is lost or rewritten, and the rule is a function
// of the ledger's content, so every replica decides alike.
const ClockBoundModel = "ghsync.clock_bound"

// ClockBound is the content of a clock-bound event.
type ClockBound struct {
	Origin  uint16
	FromSeq uint64
	ToSeq   uint64
	Bound   clocks.Timestamp
}

// Covers reports whether e is one of the bounded events.
func (b ClockBound) Covers(e *Event) bool {
	return e.Origin == b.Origin && e.OriginSeq >= b.FromSeq && e.OriginSeq <= b.ToSeq
}

// Event is the bound as an unstamped event for central to stamp and append.
func (b ClockBound) Event() *Event {
	return &Event{
		Model: ClockBoundModel,
		Key:   fmt.Sprintf("o%d-%d-%d", b.Origin, b.FromSeq, b.ToSeq),
		Op:    OpCreate,
		Fields: map[string]Value{
			"origin":   Int(int64(b.Origin)),
			"from_seq": Int(int64(b.FromSeq)),
			"to_seq":   Int(int64(b.ToSeq)),
			"bound":    String(b.Bound.String()),
		},
	}
}

// ParseClockBound reads a clock-bound event; only central (origin 0) may
// issue one.
func ParseClockBound(e *Event) (ClockBound, error) {
	var b ClockBound
	if e.Model != ClockBoundModel || e.Op != OpCreate {
		return b, errors.New("not a clock-bound create")
	}
	if e.Origin != 0 {
		return b, fmt.Errorf("clock bound issued by origin %d; only central (0) may bound clocks", e.Origin)
	}
	o, ok1 := e.Fields["origin"].AsInt()
	from, ok2 := e.Fields["from_seq"].AsInt()
	to, ok3 := e.Fields["to_seq"].AsInt()
	s, ok4 := e.Fields["bound"].AsString()
	if !ok1 || !ok2 || !ok3 || !ok4 || o < 0 || o > MaxOrigin || from < 1 || to < from || len(e.Fields) != 4 {
		return b, errors.New("clock bound wants fields origin, from_seq <= to_seq and bound")
	}
	ts, err := clocks.Parse(s)
	if err != nil {
		return b, fmt.Errorf("clock bound: %w", err)
	}
	return ClockBound{Origin: uint16(o), FromSeq: uint64(from), ToSeq: uint64(to), Bound: ts}, nil
}
