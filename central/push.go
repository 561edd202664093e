package central

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"time"

	"github.com/ghsync/ghsync/clocks"
	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/wire"
)

// push handles POST /v1/push: the caller's own events, consecutive in
// origin_seq. The whole body is read and decoded before anything is
// stored: a malformed, oversized or forged request stores nothing.
func (s *Server) push(w http.ResponseWriter, r *http.Request, sat Satellite) {
	ctx := r.Context()
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != wire.ContentType {
		s.refuse(w, r, &sat, http.StatusUnsupportedMediaType, fmt.Errorf("content type %q, want %s", r.Header.Get("Content-Type"), wire.ContentType), nil)
		return
	}
	// A bufio.Reader is a flate.Reader, so gzip reads no further ahead
	// than it needs and bytes after its stream can be detected.
	body := bufio.NewReader(http.MaxBytesReader(w, r.Body, s.cfg.MaxBody))
	var in io.Reader = body
	switch enc := r.Header.Get("Content-Encoding"); enc {
	case "gzip":
		zr, err := gzip.NewReader(body)
		if err != nil {
			s.refuse(w, r, &sat, bodyStatus(err), fmt.Errorf("body is not gzip: %w", err), nil)
			return
		}
		zr.Multistream(false)
		in = zr
	case "", "identity":
	default:
		s.refuse(w, r, &sat, http.StatusUnsupportedMediaType, fmt.Errorf("content encoding %q, want gzip", enc), nil)
		return
	}
	events, payloads, err := wire.DecodePushEncoded(in, wire.Limits{MaxBody: s.cfg.MaxDecoded, MaxFrames: s.cfg.MaxPushEvents})
	if err != nil {
		var fe *wire.FrameError
		var frame *int
		if errors.As(err, &fe) {
			frame = &fe.Frame
		}
		s.refuse(w, r, &sat, bodyStatus(err), fmt.Errorf("push body: %w", err), frame)
		return
	}
	if _, err := body.ReadByte(); err == nil {
		s.refuse(w, r, &sat, http.StatusBadRequest, errors.New("push body: bytes after the end of the gzip stream"), nil)
		return
	}
	for i, e := range events {
		if e.Origin != sat.ID {
			why := fmt.Sprintf("satellite %d may push only its own events (origin %d)", sat.ID, sat.ID)
			if e.Origin == 0 {
				why = "origin 0 is central's own and is never accepted from a satellite"
			}
			s.refuse(w, r, &sat, http.StatusForbidden, fmt.Errorf("event %s claims origin %d: %s; nothing was stored", e.ID, e.Origin, why), &i)
			return
		}
		if i > 0 && e.OriginSeq != events[i-1].OriginSeq+1 {
			s.refuse(w, r, &sat, http.StatusBadRequest, fmt.Errorf("event %s has seq %d after seq %d: a push holds consecutive events in origin_seq order; nothing was stored",
				e.ID, e.OriginSeq, events[i-1].OriginSeq), &i)
			return
		}
	}
	s.locks[sat.ID].Lock()
	resp, err := s.apply(ctx, sat, events, payloads)
	s.locks[sat.ID].Unlock()
	if err != nil {
		s.refuse(w, r, &sat, http.StatusServiceUnavailable, err, nil)
		return
	}
	if resp.Rejected+resp.Held > 0 {
		s.log.Warn("push partly refused", "satellite", sat.ID, "accepted", resp.Accepted, "duplicates", resp.Duplicates,
			"rejected", resp.Rejected, "held", resp.Held, "not_applied", resp.NotApplied, "first", resp.Results[0].Error)
	} else {
		s.log.Debug("push", "satellite", sat.ID, "accepted", resp.Accepted, "duplicates", resp.Duplicates, "high_water", resp.HighWater)
	}
	writeJSON(w, http.StatusOK, resp)
}

// bodyStatus is 413 for a body over a limit, 400 for anything else wrong with it.
func bodyStatus(err error) int {
	var mb *http.MaxBytesError
	if errors.As(err, &mb) || errors.Is(err, wire.ErrTooLarge) {
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusBadRequest
}

// apply appends what it can of one satellite's consecutive events and
// says what became of each. Store.Append is all or nothing, so when it
// names a bad event, the events before it (which are good) are appended
// alone; those after it are not applied (they cannot link to the chain
// without it). Events whose clock is too far ahead of central's are kept
// aside, durably, with the rest of the chain after them. payloads are the
// events' bytes as received (Unmarshal checked them).
func (s *Server) apply(ctx context.Context, sat Satellite, events []*ledger.Event, payloads [][]byte) (*wire.PushResponse, error) {
	now := s.cfg.Clock()
	resp := &wire.PushResponse{Origin: sat.ID, Results: []wire.PushResult{}, CentralTime: now.UTC()}
	heads, err := s.cfg.Store.Origins(ctx)
	if err != nil {
		return nil, fmt.Errorf("read origin heads: %w", err)
	}
	var h ledger.OriginHead
	for _, x := range heads {
		if x.Origin == sat.ID {
			h = x
		}
	}
	resp.HighWater = h.Seq
	n := len(events)
	if n == 0 {
		return resp, nil
	}
	status := make([]string, n)
	reason := make([]string, n)
	skew := make([]int64, n)
	end := n // events[:end] are to be appended
	if first := events[0].OriginSeq; first > h.Seq+1 {
		status[0] = wire.StatusRejected
		reason[0] = fmt.Sprintf("gap: central holds origin %d up to seq %d, so the next push must start at seq %d, not %d", sat.ID, h.Seq, h.Seq+1, first)
		end = 0
	}
	heldFrom, boundFrom := -1, -1
	if s.cfg.MaxAhead > 0 {
		for i := 0; i < end; i++ {
			if ahead := events[i].HLC.WallMillis() - now.UnixMilli(); ahead > s.cfg.MaxAhead.Milliseconds() {
				if s.cfg.Skew == SkewHold {
					heldFrom, end = i, i
				} else {
					boundFrom = i
				}
				break
			}
		}
	}
	dup, err := s.alreadyHeld(ctx, h, events[:end])
	if err != nil {
		return nil, err
	}
	if err := s.holdStreams(ctx, sat.ID, events); err != nil {
		return nil, err
	}
	if boundFrom >= 0 {
		// The bound goes first: appended events are never unbounded, and
		// a bound whose events then fail to append covers them when they
		// come again.
		k := boundFrom
		for k < end && dup[k] {
			k++ // bounded when first pushed
		}
		if k < end {
			if err := s.bound(ctx, sat.ID, events[k:end], now); err != nil {
				return nil, err
			}
		}
	}
	for good := events[:end]; len(good) > 0; {
		res, err := ledger.AppendEncoded(ctx, s.cfg.Store, good, payloads[:len(good)])
		if err == nil {
			resp.Accepted, resp.Duplicates = res.Appended, res.Duplicates
			break
		}
		var ee *ledger.EventError
		if !errors.As(err, &ee) {
			return nil, fmt.Errorf("append origin %d seq %d..%d: %w", sat.ID, good[0].OriginSeq, good[len(good)-1].OriginSeq, err)
		}
		k := int(ee.OriginSeq - good[0].OriginSeq)
		if ee.OriginSeq < good[0].OriginSeq || k >= len(good) || good[k].ID != ee.ID {
			return nil, fmt.Errorf("append origin %d: %w (names no event of the push)", sat.ID, err)
		}
		status[k], reason[k] = wire.StatusRejected, ee.Err.Error()
		heldFrom, end, good = -1, k, good[:k]
	}
	for i := 0; i < n; i++ {
		switch {
		case i < end && dup[i]:
			status[i] = wire.StatusDuplicate
		case i < end && boundFrom >= 0 && i >= boundFrom:
			status[i] = wire.StatusBounded
			skew[i] = events[i].HLC.WallMillis() - now.UnixMilli()
			reason[i] = fmt.Sprintf("clock %v ahead of central's (limit %v): stored, and merged as if stamped at central's time of receipt",
				(time.Duration(max(skew[i], 0)) * time.Millisecond).Round(time.Second), s.cfg.MaxAhead)
		case i < end:
			status[i] = wire.StatusAccepted
		case status[i] != "":
		case heldFrom >= 0 && i >= heldFrom:
			status[i] = wire.StatusHeld
			skew[i] = events[i].HLC.WallMillis() - now.UnixMilli()
			if i == heldFrom {
				reason[i] = fmt.Sprintf("clock %v ahead of central's (limit %v): held until central's clock catches up or an administrator releases it (ghsync central held)",
					(time.Duration(skew[i]) * time.Millisecond).Round(time.Second), s.cfg.MaxAhead)
			} else {
				reason[i] = fmt.Sprintf("follows held event seq %d in origin %d's chain", events[heldFrom].OriginSeq, sat.ID)
			}
		default:
			status[i] = wire.StatusNotApplied
			reason[i] = "follows a refused event in the chain; push it again once that is fixed"
		}
	}
	if heldFrom >= 0 {
		kept := make([]HeldEvent, 0, n-heldFrom)
		for i := heldFrom; i < n; i++ {
			e := events[i]
			kept = append(kept, HeldEvent{Origin: e.Origin, Seq: e.OriginSeq, ID: e.ID, Model: e.Model, Key: e.Key, HLC: e.HLC,
				Payload: payloads[i], Reason: reason[i], SkewMillis: skew[i], Received: now})
		}
		if _, err := s.cfg.Registry.KeepEvents(ctx, kept); err != nil {
			return nil, err
		}
	}
	if end > 0 {
		resp.HighWater = max(h.Seq, events[end-1].OriginSeq)
		// Events kept earlier that the ledger now holds (the clock caught up).
		if err := s.cfg.Registry.ForgetEvents(ctx, sat.ID, resp.HighWater); err != nil {
			return nil, err
		}
	}
	accepted := 0
	for i, st := range status {
		switch st {
		case wire.StatusAccepted:
			accepted++
			continue
		case wire.StatusBounded:
			accepted++
			resp.Bounded++
		case wire.StatusHeld:
			resp.Held++
		case wire.StatusRejected:
			resp.Rejected++
		case wire.StatusNotApplied:
			resp.NotApplied++
		}
		resp.Results = append(resp.Results, wire.PushResult{Index: i, ID: events[i].ID.String(), Seq: events[i].OriginSeq,
			Status: st, Error: reason[i], SkewMillis: skew[i]})
	}
	if accepted != resp.Accepted {
		s.log.Warn("push: the store's count of new events differs from central's view", "satellite", sat.ID, "store", resp.Accepted, "central", accepted)
	}
	return resp, nil
}

// holdStreams adds the records of a satellite's events to its held set,
// before they are appended, with the next position as their join point:
// a later pull that covers it also sends what other origins wrote to
// those records before.
func (s *Server) holdStreams(ctx context.Context, sat uint16, events []*ledger.Event) error {
	head, err := s.cfg.Store.Head(ctx)
	if err != nil {
		return fmt.Errorf("read head: %w", err)
	}
	seen := map[ledger.Stream]bool{}
	var hold []HeldStream
	for _, e := range events {
		if st := e.Stream(); !seen[st] && !s.reference(st.Model) {
			seen[st] = true
			hold = append(hold, HeldStream{Stream: st, Expand: !s.hub(st.Model), Join: head + 1})
		}
	}
	return s.cfg.Registry.Hold(ctx, sat, hold)
}

// bound appends a clock bound covering events (consecutive, one origin),
// stamped by central as origin 0.
func (s *Server) bound(ctx context.Context, origin uint16, events []*ledger.Event, now time.Time) error {
	cb := ledger.ClockBound{Origin: origin, FromSeq: events[0].OriginSeq, ToSeq: events[len(events)-1].OriginSeq,
		Bound: clocks.New(now.UnixMilli(), 0)}
	if _, err := s.cfg.Sequencer.AppendOwn(ctx, s.cfg.Store, []*ledger.Event{cb.Event()}); err != nil {
		return fmt.Errorf("append clock bound for origin %d seq %d..%d: %w", origin, cb.FromSeq, cb.ToSeq, err)
	}
	s.log.Warn("satellite clock ahead of central's: its events are stored behind a clock bound", "satellite", origin,
		"from_seq", cb.FromSeq, "to_seq", cb.ToSeq, "ahead", (time.Duration(events[0].HLC.WallMillis()-now.UnixMilli()) * time.Millisecond).String())
	return nil
}

// alreadyHeld says which of events (consecutive, one origin) central's
// ledger holds already. A satellite's history at central is normally
// complete (Count == Seq), and then no read is needed.
func (s *Server) alreadyHeld(ctx context.Context, h ledger.OriginHead, events []*ledger.Event) ([]bool, error) {
	dup := make([]bool, len(events))
	if len(events) == 0 || events[0].OriginSeq > h.Seq {
		return dup, nil
	}
	first := events[0].OriginSeq
	if h.Count == h.Seq {
		for i, e := range events {
			dup[i] = e.OriginSeq <= h.Seq
		}
		return dup, nil
	}
	last := min(h.Seq, events[len(events)-1].OriginSeq)
	for after := first - 1; after < last; {
		recs, err := s.cfg.Store.ReadOrigin(ctx, h.Origin, after, ledger.DefaultPageSize)
		if err != nil {
			return nil, fmt.Errorf("read origin %d: %w", h.Origin, err)
		}
		if len(recs) == 0 {
			break
		}
		for _, r := range recs {
			if q := r.Event.OriginSeq; q >= first && q <= last {
				dup[q-first] = true
			}
		}
		after = recs[len(recs)-1].Event.OriginSeq
	}
	return dup, nil
}
