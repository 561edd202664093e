package ledger

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Break is one place where a ledger is not what its origins wrote.
type Break struct {
	Origin   uint16
	Seq      uint64 // 0 when the break is not one event's (a position hole)
	Position uint64 // 0 when unknown
	Problem  string
}

func (b Break) String() string {
	if b.Seq == 0 {
		return b.Problem
	}
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
	// Verified counts the events below Break.Seq whose bytes and chain
	// checked out (all held when there is no break), so an auditor knows
	// how much history is trustworthy.
	Verified uint64
}

// Report is the result of Verify.
type Report struct {
	Head      uint64
	Events    uint64
	Corrupt   []Break // unreadable events found by the position walk
	Positions []Break // holes in the position sequence
	Columns   []Break // rows whose columns disagree with their event's bytes
	Origins   []OriginReport
}

// OK reports whether nothing is broken. Missing sequence numbers are not a
// break: a satellite holds only part of other origins' histories.
func (r *Report) OK() bool {
	if len(r.Corrupt) > 0 || len(r.Positions) > 0 || len(r.Columns) > 0 {
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
	w := positionWalk{r: r}
	if err := w.walk(ctx, s); err != nil {
		return nil, err
	}
	if err := checkColumns(ctx, s, r); err != nil {
		return nil, err
	}
	heads, err := s.Origins(ctx)
	if err != nil {
		return nil, err
	}
	var lost []lostRun
	var nLost uint64
	known := true // every lost event is named in lost
	for _, h := range heads {
		o, l, named, err := verifyOrigin(ctx, s, h)
		if err != nil {
			return nil, err
		}
		r.Origins = append(r.Origins, o)
		known = known && named
		for _, run := range l {
			lost = append(lost, run)
			nLost += run.size()
		}
	}
	for i, hl := range w.holes {
		var names []string
		if run, ok := hl.bracketed(lost); ok {
			names = []string{run.String()} // between two events of one origin, as wide as their gap
		} else if len(w.holes) == 1 && known && nLost == hl.size && nLost > 0 {
			for _, run := range lost { // the only hole, as wide as all that was lost
				names = append(names, run.String())
			}
		}
		if names != nil {
			r.Positions[i].Problem += "; they held " + strings.Join(names, ", ")
		}
	}
	return r, nil
}

// checkColumns compares every row's columns with its event's bytes (only
// those are under the hash): a model, key or origin changed by hand would
// hide the event from the reads that filter by them. Rows whose bytes do
// not decode are the position walk's to report.
func checkColumns(ctx context.Context, s Store, r *Report) error {
	for after := uint64(0); after < r.Head; {
		rows, err := s.ReadColumns(ctx, after, DefaultPageSize)
		if err != nil {
			return err
		}
		if len(rows) == 0 {
			return nil
		}
		for _, c := range rows {
			e, err := DecodeStored(c.Position, c.Hash, c.Payload)
			if err != nil {
				continue
			}
			if d := c.Disagreement(e); d != "" {
				r.Columns = append(r.Columns, Break{Origin: e.Origin, Seq: e.OriginSeq, Position: c.Position, Problem: d})
			}
		}
		after = rows[len(rows)-1].Position
	}
	return nil
}

// damagedAt reports whether err is a corrupt event at key (a position or
// an origin_seq, as key picks).
func damagedAt(err error, key func(*EventError) uint64, at uint64) bool {
	var ee *EventError
	return errors.As(err, &ee) && errors.Is(err, ErrCorrupt) && key(ee) == at
}

// readBefore reads the records whose key (position or origin_seq) lies
// between after and the damaged record at stop, handing each page to use
// until it returns false. A page that reaches the damage fails whole, and
// a gap in the keys makes a page of stop-after-1 records reach it, so
// failing pages are halved.
func readBefore(read func(after uint64, limit int) ([]Record, error), key func(Record) uint64, errKey func(*EventError) uint64,
	after, stop uint64, use func([]Record) bool) error {
	limit := int(min(DefaultPageSize, stop-after-1))
	for limit > 0 {
		recs, err := read(after, limit)
		if damagedAt(err, errKey, stop) {
			limit /= 2
			continue
		}
		if err != nil {
			return err
		}
		if len(recs) == 0 || !use(recs) {
			return nil
		}
		after = key(recs[len(recs)-1])
		limit = int(min(DefaultPageSize, stop-after-1))
	}
	return nil
}

func position(r Record) uint64         { return r.Position }
func errPosition(e *EventError) uint64 { return e.Position }
func originSeq(r Record) uint64        { return r.Event.OriginSeq }
func errSeq(e *EventError) uint64      { return e.OriginSeq }

// positionWalk checks that positions 1..head are dense and readable.
type positionWalk struct {
	r     *Report
	after uint64    // the last position walked
	last  eventMark // what was at it
	holes []hole    // one per r.Positions
}

// eventMark names the event at a position, for naming a hole's bounds.
type eventMark struct {
	origin   uint16
	seq, pos uint64
	corrupt  bool
	head     bool // not an event: the end of the ledger
}

func (m eventMark) String() string {
	switch {
	case m.head:
		return fmt.Sprintf("the head %d", m.pos)
	case m.pos == 0:
		return "the start of the ledger"
	case m.corrupt:
		return fmt.Sprintf("corrupt origin %d seq %d at position %d", m.origin, m.seq, m.pos)
	}
	return fmt.Sprintf("origin %d seq %d at position %d", m.origin, m.seq, m.pos)
}

func markOf(r Record) eventMark {
	return eventMark{origin: r.Event.Origin, seq: r.Event.OriginSeq, pos: r.Position}
}

// hole is a run of missing positions and the events around it.
type hole struct {
	size          uint64
	before, after eventMark
}

// bracketed returns the run of lost events that fills h: the events
// around h are one origin's, and the run between them is exactly as wide.
func (h hole) bracketed(lost []lostRun) (lostRun, bool) {
	b, a := h.before, h.after
	if b.pos == 0 || b.head || a.head || b.origin != a.origin {
		return lostRun{}, false
	}
	for _, run := range lost {
		if run.origin == b.origin && run.from == b.seq+1 && run.to+1 == a.seq && run.size() == h.size {
			return run, true
		}
	}
	return lostRun{}, false
}

func (w *positionWalk) walk(ctx context.Context, s Store) error {
	r := w.r
	read := func(after uint64, limit int) ([]Record, error) { return s.ReadAll(ctx, after, limit, Filter{}) }
	for w.after < r.Head {
		recs, err := read(w.after, DefaultPageSize)
		var ee *EventError
		if errors.As(err, &ee) && errors.Is(err, ErrCorrupt) && ee.Position > w.after {
			// Read up to the damage, note it, and carry on past it.
			if err := readBefore(read, position, errPosition, w.after, ee.Position, w.dense); err != nil {
				return err
			}
			here := eventMark{origin: ee.Origin, seq: ee.OriginSeq, pos: ee.Position, corrupt: true}
			if ee.Position != w.after+1 {
				w.hole(here)
			}
			r.Corrupt = append(r.Corrupt, Break{Origin: ee.Origin, Seq: ee.OriginSeq, Position: ee.Position, Problem: ee.Err.Error()})
			r.Events++
			w.after, w.last = ee.Position, here
			continue
		}
		if err != nil {
			return err
		}
		if len(recs) == 0 {
			w.hole(eventMark{pos: r.Head, head: true})
			return nil
		}
		w.dense(recs)
	}
	return nil
}

// hole notes that the positions between the last walked and next are
// missing.
func (w *positionWalk) hole(next eventMark) {
	end := next.pos - 1
	if next.head {
		end = next.pos
	}
	w.holes = append(w.holes, hole{size: end - w.after, before: w.last, after: next})
	w.r.Positions = append(w.r.Positions, Break{Position: w.after + 1,
		Problem: fmt.Sprintf("positions %d..%d missing, between %s and %s", w.after+1, end, w.last, next)})
}

func (w *positionWalk) dense(recs []Record) bool {
	for i, rec := range recs {
		if rec.Position != w.after+1 {
			if i > 0 {
				w.last = markOf(recs[i-1])
			}
			w.hole(markOf(rec))
		}
		w.r.Events++
		w.after = rec.Position
	}
	w.last = markOf(recs[len(recs)-1])
	return true
}

// seqRange is a run of missing origin_seq numbers.
type seqRange struct{ from, to uint64 }

func (g seqRange) String() string {
	if g.from == g.to {
		return fmt.Sprintf("seq %d", g.from)
	}
	return fmt.Sprintf("seq %d..%d", g.from, g.to)
}

// lostRun is a run of one origin's events known to be lost.
type lostRun struct {
	origin uint16
	seqRange
}

func (g seqRange) size() uint64 { return g.to - g.from + 1 }

func (l lostRun) String() string { return fmt.Sprintf("origin %d %s", l.origin, l.seqRange) }

// maxGaps bounds the gaps an origin report keeps: a satellite's partial
// copy of another origin may have one between most events.
const maxGaps = 1000

// verifyOrigin walks one origin's chain. Besides the report it returns
// the runs of events it knows were lost (counted by the high-water mark,
// not held), and whether those are all of them (false when some lost
// events cannot be told from events never received).
func verifyOrigin(ctx context.Context, s Store, h OriginHead) (o OriginReport, lost []lostRun, named bool, err error) {
	o = OriginReport{Origin: h.Origin}
	var prev *Event
	var gaps []seqRange
	var heldBeforeGap uint64 // events held below the first gap
	truncated := false
	suspectPrev := false // the break may be the previous event's
	fail := func(b Break) { o.Break = &b }
	check := func(recs []Record) bool {
		for _, rec := range recs {
			e := rec.Event
			b := Break{Origin: h.Origin, Seq: e.OriginSeq, Position: rec.Position}
			switch {
			case prev == nil && e.OriginSeq == 1 && !e.PrevHash.IsZero():
				b.Problem = "first event has a prev_hash"
			case prev != nil && e.OriginSeq == prev.OriginSeq+1 && e.PrevHash != prev.Hash:
				// Either this event or the one before was altered (and
				// re-hashed): neither is trusted.
				b.Problem = fmt.Sprintf("prev_hash %s does not match hash %s of seq %d: this event or seq %d was altered", e.PrevHash.Short(), prev.Hash.Short(), prev.OriginSeq, prev.OriginSeq)
				suspectPrev = true
			case prev != nil && e.OriginSeq <= prev.OriginSeq:
				// Read in origin_seq column order: a row whose column
				// disagrees with its bytes (the walk would loop on it).
				b.Problem = fmt.Sprintf("read after seq %d: its row's origin_seq column does not match its bytes", prev.OriginSeq)
			}
			if b.Problem != "" {
				fail(b)
				return false
			}
			if e.OriginSeq > o.Seq+1 {
				if len(gaps) == 0 {
					heldBeforeGap = o.Held
				}
				if len(gaps) < maxGaps {
					gaps = append(gaps, seqRange{o.Seq + 1, e.OriginSeq - 1})
				} else {
					truncated = true
				}
			}
			o.Held++
			o.Seq = e.OriginSeq
			prev = e
		}
		return true
	}
	read := func(after uint64, limit int) ([]Record, error) { return s.ReadOrigin(ctx, h.Origin, after, limit) }
	for after := uint64(0); o.Break == nil; {
		recs, err := read(after, DefaultPageSize)
		var ee *EventError
		if errors.As(err, &ee) && errors.Is(err, ErrCorrupt) {
			// Verify what precedes the damage, so the count is true.
			if ee.OriginSeq > after {
				if err := readBefore(read, originSeq, errSeq, after, ee.OriginSeq, check); err != nil {
					return o, nil, false, err
				}
			}
			if o.Break == nil {
				fail(Break{Origin: h.Origin, Seq: ee.OriginSeq, Position: ee.Position, Problem: ee.Err.Error()})
			}
			break
		}
		if err != nil {
			return o, nil, false, err
		}
		if len(recs) == 0 || !check(recs) {
			break
		}
		after = prev.OriginSeq
	}
	o.Verified = o.Held
	if suspectPrev {
		o.Verified--
	}
	named = true
	if o.Break == nil {
		lost, named = o.checkMark(h, gaps, truncated, heldBeforeGap, prev)
	}
	o.Missing = o.Seq - o.Held
	o.Complete = o.Break == nil && o.Missing == 0
	return o, lost, named, nil
}

// checkMark compares a walked origin with its high-water mark. When the
// mark counts more events than are held, some were lost: they are among
// the gaps, and are exactly the gaps when the mark says the history was
// complete (count = seq).
func (o *OriginReport) checkMark(h OriginHead, gaps []seqRange, truncated bool, heldBeforeGap uint64, last *Event) (lost []lostRun, named bool) {
	if o.Seq == h.Seq && o.Held == h.Count && (last == nil || last.Hash == h.Hash) {
		return nil, true
	}
	mark := fmt.Sprintf("the high-water mark counts %d events up to seq %d, %d are held", h.Count, h.Seq, o.Held)
	if h.Count <= o.Held || h.Seq < o.Seq || h.Count > h.Seq {
		o.Break = &Break{Origin: o.Origin, Seq: h.Seq, Problem: fmt.Sprintf(
			"high-water mark says seq %d, %d events, hash %s; the events say seq %d, %d events", h.Seq, h.Count, h.Hash.Short(), o.Seq, o.Held)}
		return nil, true
	}
	if h.Seq > o.Seq { // the latest events are gone
		if len(gaps) == 0 {
			heldBeforeGap = o.Held
		}
		if len(gaps) < maxGaps {
			gaps = append(gaps, seqRange{o.Seq + 1, h.Seq})
		} else {
			truncated = true
		}
	}
	const shown = 5
	names := make([]string, 0, shown+1)
	for i, g := range gaps {
		if i == shown {
			break
		}
		names = append(names, g.String())
	}
	if len(gaps) > shown || truncated {
		names = append(names, "and more")
	}
	list := strings.Join(names, ", ")
	b := Break{Origin: o.Origin, Seq: gaps[0].from}
	o.Break, o.Verified = &b, heldBeforeGap
	if h.Count != h.Seq {
		gone, events := h.Count-o.Held, "events"
		if gone == 1 {
			events = "event"
		}
		b.Problem = fmt.Sprintf("%d %s lost among the missing %s: %s", gone, events, list, mark)
		return nil, false
	}
	b.Problem = fmt.Sprintf("%s missing: %s", list, mark)
	if len(gaps) == 1 && gaps[0].from == gaps[0].to {
		b.Problem = "missing: " + mark // the break names the seq
	}
	if truncated {
		return nil, false
	}
	for _, g := range gaps {
		lost = append(lost, lostRun{o.Origin, g})
	}
	return lost, true
}
