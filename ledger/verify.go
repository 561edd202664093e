package ledger

import (
	"context"
	"errors"
	"fmt"
)

// Break is one place where a ledger is not what its origins wrote.
type Break struct {
	Origin   uint16
	Seq      uint64
	Position uint64 // 0 when unknown
	Problem  string
}

func (b Break) String() string {
	at := ""
	if b.Position != 0 {
		at = fmt.Sprintf(" (position %d)", b.Position)
	}
	return fmt.Sprintf("origin %d seq %d%s: %s", b.Origin, b.Seq, at, b.Problem)
}

// OriginReport is what Verify found for one origin.
type OriginReport struct {
	Origin   uint16
	Held     uint64 // events held
	Seq      uint64 // highest origin_seq held
	Missing  uint64 // sequence numbers below Seq not held here
	Break    *Break // the first break in this origin's chain, if any
	Complete bool   // every event 1..Seq is held
}

// Report is the result of Verify.
type Report struct {
	Head      uint64
	Events    uint64
	Corrupt   []Break // unreadable events found by the position walk
	Positions []Break // holes in the position sequence
	Origins   []OriginReport
}

// OK reports whether nothing is broken. Missing sequence numbers are not a
// break: a satellite holds only part of other origins' histories.
func (r *Report) OK() bool {
	if len(r.Corrupt) > 0 || len(r.Positions) > 0 {
		return false
	}
	for _, o := range r.Origins {
		if o.Break != nil {
			return false
		}
	}
	return true
}

// Verify walks a whole ledger: every position from 1 to head must hold an
// event whose bytes match its hash, and every origin's events must chain
// (each PrevHash the hash of the previous origin_seq) and agree with the
// origin's high-water mark. It reports the first break per origin
// precisely; an error is returned only when the store cannot be read.
func Verify(ctx context.Context, s Store) (*Report, error) {
	r := &Report{}
	var err error
	if r.Head, err = s.Head(ctx); err != nil {
		return nil, err
	}
	if err := r.walkPositions(ctx, s); err != nil {
		return nil, err
	}
	heads, err := s.Origins(ctx)
	if err != nil {
		return nil, err
	}
	for _, h := range heads {
		o, err := verifyOrigin(ctx, s, h)
		if err != nil {
			return nil, err
		}
		r.Origins = append(r.Origins, o)
	}
	return r, nil
}

func (r *Report) walkPositions(ctx context.Context, s Store) error {
	after := uint64(0)
	for after < r.Head {
		recs, err := s.ReadAll(ctx, after, DefaultPageSize, Filter{})
		var ee *EventError
		if errors.As(err, &ee) && errors.Is(err, ErrCorrupt) && ee.Position > after {
			// Read up to the damage, note it, and carry on past it.
			if ee.Position > after+1 {
				recs, err = s.ReadAll(ctx, after, int(ee.Position-after-1), Filter{})
				if err != nil {
					return err
				}
				r.checkDense(&after, recs)
			}
			r.Corrupt = append(r.Corrupt, Break{Origin: ee.Origin, Seq: ee.OriginSeq, Position: ee.Position, Problem: ee.Err.Error()})
			r.Events++
			after = ee.Position
			continue
		}
		if err != nil {
			return err
		}
		if len(recs) == 0 {
			r.Positions = append(r.Positions, Break{Position: after + 1, Problem: fmt.Sprintf("positions %d..%d missing below head %d", after+1, r.Head, r.Head)})
			return nil
		}
		r.checkDense(&after, recs)
	}
	return nil
}

func (r *Report) checkDense(after *uint64, recs []Record) {
	for _, rec := range recs {
		if rec.Position != *after+1 {
			r.Positions = append(r.Positions, Break{Origin: rec.Event.Origin, Seq: rec.Event.OriginSeq, Position: rec.Position,
				Problem: fmt.Sprintf("positions %d..%d missing", *after+1, rec.Position-1)})
		}
		r.Events++
		*after = rec.Position
	}
}

func verifyOrigin(ctx context.Context, s Store, h OriginHead) (OriginReport, error) {
	o := OriginReport{Origin: h.Origin}
	var prev *Event
	fail := func(b Break) { o.Break = &b }
	for after := uint64(0); o.Break == nil; {
		recs, err := s.ReadOrigin(ctx, h.Origin, after, DefaultPageSize)
		var ee *EventError
		if errors.As(err, &ee) && errors.Is(err, ErrCorrupt) {
			fail(Break{Origin: h.Origin, Seq: ee.OriginSeq, Position: ee.Position, Problem: ee.Err.Error()})
			break
		}
		if err != nil {
			return o, err
		}
		if len(recs) == 0 {
			break
		}
		for _, rec := range recs {
			e := rec.Event
			b := Break{Origin: h.Origin, Seq: e.OriginSeq, Position: rec.Position}
			switch {
			case prev == nil && e.OriginSeq == 1 && !e.PrevHash.IsZero():
				b.Problem = "first event has a prev_hash"
			case prev != nil && e.OriginSeq == prev.OriginSeq+1 && e.PrevHash != prev.Hash:
				b.Problem = fmt.Sprintf("prev_hash %s does not match hash %s of seq %d", e.PrevHash.Short(), prev.Hash.Short(), prev.OriginSeq)
			}
			if b.Problem != "" {
				fail(b)
				break
			}
			o.Held++
			o.Seq = e.OriginSeq
			prev = e
		}
		if o.Break != nil {
			break
		}
		after = prev.OriginSeq
	}
	if o.Break == nil {
		switch {
		case o.Seq != h.Seq || o.Held != h.Count || (prev != nil && prev.Hash != h.Hash):
			o.Break = &Break{Origin: h.Origin, Seq: h.Seq, Problem: fmt.Sprintf(
				"high-water mark says seq %d, %d events, hash %s; the events say seq %d, %d events", h.Seq, h.Count, h.Hash.Short(), o.Seq, o.Held)}
		}
	}
	o.Missing = o.Seq - o.Held
	o.Complete = o.Break == nil && o.Missing == 0
	return o, nil
}
