package central

import (
	"cmp"
	"compress/gzip"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/wire"
)

// scanBudget bounds how long one pull keeps scanning pages whose events
// are all filtered out before it answers with an advanced cursor.
const scanBudget = 2 * time.Second

// pollEvery bounds a long poll's wait between head checks, in case the
// shared subscription is down.
const pollEvery = time.Second

// item is one event to send, with its canonical bytes.
type item struct {
	pos     uint64
	payload []byte
}

// pull handles GET /v1/pull?after=POS&limit=N&wait=DUR.
func (s *Server) pull(w http.ResponseWriter, r *http.Request, sat Satellite) {
	ctx := r.Context()
	q := r.URL.Query()
	after, limit, err := parsePage(q)
	if err != nil {
		s.refuse(w, r, &sat, http.StatusBadRequest, err, nil)
		return
	}
	wait, err := parseWait(q.Get("wait"))
	if err != nil {
		s.refuse(w, r, &sat, http.StatusBadRequest, err, nil)
		return
	}
	deadline := time.Now().Add(wait)
	scanUntil := time.Now().Add(scanBudget)
	for {
		var wake <-chan struct{}
		if wait > 0 {
			wake = s.watch.C(ctx) // before reading the head, so no append is missed
		}
		// When nothing changed this Head is the only ledger read.
		head, err := s.cfg.Store.Head(ctx)
		if err != nil {
			s.refuse(w, r, &sat, http.StatusServiceUnavailable, fmt.Errorf("read head: %w", err), nil)
			return
		}
		if after > head {
			s.refuse(w, r, &sat, http.StatusConflict, fmt.Errorf("cursor %d is beyond central's head %d (was central restored from a backup?): pull again from 0", after, head), nil)
			return
		}
		if after < head {
			s.locks[sat.ID].Lock()
			items, next, err := s.page(ctx, sat, after, head, limit)
			s.locks[sat.ID].Unlock()
			if err != nil {
				s.refuse(w, r, &sat, http.StatusServiceUnavailable, err, nil)
				return
			}
			after = next
			if len(items) > 0 {
				s.sendPage(w, r, sat, items, head, next)
				return
			}
			if after < head && time.Now().Before(scanUntil) {
				continue // all filtered out: scan on
			}
		}
		left := time.Until(deadline)
		select {
		case <-s.closing:
			left = 0
		default:
		}
		if after < head || left <= 0 {
			w.Header().Set(wire.HeaderHead, strconv.FormatUint(head, 10))
			w.Header().Set(wire.HeaderNext, strconv.FormatUint(after, 10))
			w.WriteHeader(http.StatusNoContent)
			return
		}
		t := time.NewTimer(min(left, pollEvery))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-wake:
		case <-t.C:
		case <-s.closing:
		}
		t.Stop()
	}
}

// parsePage reads the after and limit every paged endpoint takes: after
// defaults to 0, limit to wire.DefaultPullLimit and is 1..MaxPullLimit.
func parsePage(q url.Values) (after uint64, limit int, err error) {
	if v := q.Get("after"); v != "" {
		if after, err = strconv.ParseUint(v, 10, 64); err != nil {
			return 0, 0, fmt.Errorf("after: %w", err)
		}
	}
	limit = wire.DefaultPullLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n < 1 || n > wire.MaxPullLimit {
			return 0, 0, fmt.Errorf("limit %q: want 1..%d", v, wire.MaxPullLimit)
		}
		limit = int(n)
	}
	return after, limit, nil
}

// parseWait reads a wait as a Go duration ("30s") or whole seconds ("30").
func parseWait(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		n, err2 := strconv.ParseUint(s, 10, 32)
		if err2 != nil {
			return 0, fmt.Errorf("wait %q: want a duration (30s) or seconds", s)
		}
		d = time.Duration(n) * time.Second
	}
	if d < 0 || d > wire.MaxPullWait {
		return 0, fmt.Errorf("wait %v outside 0..%v", d, wire.MaxPullWait)
	}
	return d, nil
}

// sendPage writes items as a gzip frame stream.
func (s *Server) sendPage(w http.ResponseWriter, r *http.Request, sat Satellite, items []item, head, next uint64) {
	h := w.Header()
	h.Set("Content-Type", wire.ContentType)
	h.Set("Cache-Control", "no-store")
	h.Set(wire.HeaderHead, strconv.FormatUint(head, 10))
	h.Set(wire.HeaderNext, strconv.FormatUint(next, 10))
	if err := writeFrames(w, r, items); err != nil {
		s.log.Warn("pull response cut", "satellite", sat.ID, "error", err)
		return
	}
	s.log.Debug("pull", "satellite", sat.ID, "events", len(items), "next", next, "head", head)
}

// writeFrames writes items as pull frames, gzip-compressed when the client
// accepts it.
func writeFrames(w http.ResponseWriter, r *http.Request, items []item) error {
	var zw *gzip.Writer
	if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		w.Header().Set("Content-Encoding", "gzip")
		zw, _ = gzip.NewWriterLevel(w, gzip.BestSpeed)
	}
	w.WriteHeader(http.StatusOK)
	enc := wire.NewEncoder(w)
	if zw != nil {
		enc = wire.NewEncoder(zw)
	}
	for _, it := range items {
		if err := enc.Positioned(it.pos, it.payload); err != nil {
			return err
		}
	}
	if err := enc.Close(); err != nil {
		return err
	}
	if zw != nil {
		return zw.Close()
	}
	return nil
}

// page reads central's events after after (up to head) and picks those
// the satellite's scope gives it. It returns them and the cursor to
// continue from: the last position examined. A satellite of scope all
// gets every other origin's events, which are forwarded as stored, not
// decoded.
func (s *Server) page(ctx context.Context, sat Satellite, after, head uint64, limit int) ([]item, uint64, error) {
	if sat.Scope != wire.ScopeLocal {
		raw, err := s.cfg.Store.ReadAllRaw(ctx, after, limit)
		if err != nil {
			return nil, after, fmt.Errorf("pull page after %d: %w", after, err)
		}
		n, through := s.examine(raw, sat.ID, after, head, limit)
		items := make([]item, 0, n)
		for _, r := range raw[:n] {
			if r.Origin != sat.ID {
				items = append(items, item{pos: r.Position, payload: r.Payload})
			}
		}
		return items, through, nil
	}
	recs, err := s.cfg.Store.ReadAll(ctx, after, limit, ledger.Filter{})
	if err != nil {
		return nil, after, fmt.Errorf("pull page after %d: %w", after, err)
	}
	raw := make([]ledger.RawRecord, len(recs))
	for i, rec := range recs {
		b, err := rec.Encoded()
		if err != nil {
			return nil, after, fmt.Errorf("encode position %d: %w", rec.Position, err)
		}
		raw[i] = ledger.RawRecord{Position: rec.Position, Origin: rec.Event.Origin, Payload: b}
	}
	n, through := s.examine(raw, sat.ID, after, head, limit)
	picked, err := s.pickLocal(ctx, sat, recs[:n], after, through)
	if err != nil {
		return nil, after, err
	}
	items := make([]item, 0, len(picked))
	for _, rec := range picked {
		b, err := rec.Encoded() // its bytes as read, or a backfilled record's
		if err != nil {
			return nil, after, fmt.Errorf("encode position %d: %w", rec.Position, err)
		}
		items = append(items, item{pos: rec.Position, payload: b})
	}
	return items, through, nil
}

// examine bounds a page read after after: how many of raw are up to head
// and within MaxPageBytes (of the events not from the satellite sat, which
// it is not sent, counted up to the first past the bound), and the cursor
// to continue from.
func (s *Server) examine(raw []ledger.RawRecord, sat uint16, after, head uint64, limit int) (n int, through uint64) {
	through, size, full := after, 0, false
	for _, r := range raw {
		if r.Position > head {
			break
		}
		if size >= s.cfg.MaxPageBytes {
			full = true
			break
		}
		through, n = r.Position, n+1
		if r.Origin != sat {
			size += len(r.Payload)
		}
	}
	if !full && (len(raw) < limit || n < len(raw)) {
		through = head // every position up to head was in the read
	}
	return n, through
}

// pickLocal applies the local scope to examined records (positions in
// (after, through]): reference data; events of streams in the held set;
// events that reference a held record whose referrers follow it (their
// stream then joins); and, so the satellite can resolve what it receives,
// the records those events point at (joined as targets). A stream that
// joins at position p also brings its events before p, once, in the page
// that covers p (again if that page was lost).
func (s *Server) pickLocal(ctx context.Context, sat Satellite, examined []ledger.Record, after, through uint64) ([]ledger.Record, error) {
	reg := s.cfg.Registry
	cand := map[ledger.Stream]bool{}
	for _, rec := range examined {
		e := rec.Event
		if e.Origin == sat.ID || s.reference(e.Model) {
			continue
		}
		cand[e.Stream()] = true
		for _, t := range refs(e) {
			if !s.reference(t.Model) {
				cand[t] = true
			}
		}
	}
	held, err := reg.HeldAmong(ctx, sat.ID, keys(cand))
	if err != nil {
		return nil, err
	}
	var joins []HeldStream
	join := func(st ledger.Stream, expand bool, pos uint64) {
		if _, ok := held[st]; ok || s.reference(st.Model) {
			return
		}
		h := HeldStream{Stream: st, Expand: expand, Join: pos}
		held[st] = h
		joins = append(joins, h)
	}
	out := map[uint64]ledger.Record{}
	targets := func(e *ledger.Event, pos uint64) {
		for _, t := range refs(e) {
			join(t, false, pos)
		}
	}
	for _, rec := range examined {
		e := rec.Event
		if e.Origin == sat.ID {
			continue
		}
		if s.reference(e.Model) {
			out[rec.Position] = rec
			continue
		}
		_, deliver := held[e.Stream()]
		if !deliver {
			for _, t := range refs(e) {
				if h, ok := held[t]; ok && h.Expand {
					join(e.Stream(), !s.hub(e.Model), rec.Position)
					deliver = true
					break
				}
			}
		}
		if deliver {
			out[rec.Position] = rec
			targets(e, rec.Position)
		}
	}
	if err := reg.Hold(ctx, sat.ID, joins); err != nil {
		return nil, err
	}
	// Backfill every stream that joined within this page's range: those
	// just joined, those a lost earlier answer joined, and those a push
	// joined. What their history points at joins as targets, in turn.
	work, err := reg.JoinedBetween(ctx, sat.ID, after, through)
	if err != nil {
		return nil, err
	}
	for len(work) > 0 {
		pointed := map[ledger.Stream]uint64{} // target → join position
		for _, h := range work {
			hist, err := s.history(ctx, h.Stream, h.Join)
			if err != nil {
				return nil, err
			}
			for _, rec := range hist {
				if rec.Event.Origin == sat.ID {
					continue
				}
				out[rec.Position] = rec
				for _, t := range refs(rec.Event) {
					if _, ok := held[t]; !ok && !s.reference(t.Model) {
						pointed[t] = h.Join
					}
				}
			}
		}
		known, err := reg.HeldAmong(ctx, sat.ID, keys(pointed))
		if err != nil {
			return nil, err
		}
		joins = joins[:0]
		for t, pos := range pointed {
			if h, ok := known[t]; ok {
				held[t] = h
				continue
			}
			join(t, false, pos)
		}
		if err := reg.Hold(ctx, sat.ID, joins); err != nil {
			return nil, err
		}
		work = slices.Clone(joins)
	}
	picked := make([]ledger.Record, 0, len(out))
	for _, rec := range out {
		picked = append(picked, rec)
	}
	slices.SortFunc(picked, func(a, b ledger.Record) int { return cmp.Compare(a.Position, b.Position) })
	return picked, nil
}

// history reads a stream's events at positions before before.
func (s *Server) history(ctx context.Context, st ledger.Stream, before uint64) ([]ledger.Record, error) {
	var out []ledger.Record
	for from := uint64(0); ; {
		recs, err := s.cfg.Store.ReadStream(ctx, st, from, ledger.DefaultPageSize)
		if err != nil {
			return nil, fmt.Errorf("read stream %s: %w", st, err)
		}
		for _, rec := range recs {
			if rec.Position >= before {
				return out, nil
			}
			out = append(out, rec)
		}
		if len(recs) < ledger.DefaultPageSize {
			return out, nil
		}
		from = recs[len(recs)-1].Position
	}
}

func keys[V any](m map[ledger.Stream]V) []ledger.Stream {
	out := make([]ledger.Stream, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
