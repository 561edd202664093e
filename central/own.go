package central

import (
	"context"
	"fmt"
	"net/http"
	"strconv"

	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/wire"
)

// own handles GET /v1/own?after=SEQ&limit=N: the caller's own events with
// origin_seq above SEQ, in origin_seq order, in pull frames. A pull never
// sends a satellite its own origin's events, so a satellite restored from
// an older copy of its ledger gets the changes it made since that copy
// back only here (satellite.Client.Recover). HeaderNext is the last
// origin_seq sent (SEQ when none), HeaderHighWater the caller's
// high-water mark here.
func (s *Server) own(w http.ResponseWriter, r *http.Request, sat Satellite) {
	ctx := r.Context()
	q := r.URL.Query()
	after, limit, err := parsePage(q)
	if err != nil {
		s.refuse(w, r, &sat, http.StatusBadRequest, err, nil)
		return
	}
	oh, err := ledger.HeadOf(ctx, s.cfg.Store, sat.ID)
	if err != nil {
		s.refuse(w, r, &sat, http.StatusServiceUnavailable, fmt.Errorf("read origin %d's head: %w", sat.ID, err), nil)
		return
	}
	head, err := s.cfg.Store.Head(ctx)
	if err != nil {
		s.refuse(w, r, &sat, http.StatusServiceUnavailable, fmt.Errorf("read head: %w", err), nil)
		return
	}
	recs, err := s.cfg.Store.ReadOrigin(ctx, sat.ID, after, limit)
	if err != nil {
		s.refuse(w, r, &sat, http.StatusServiceUnavailable, fmt.Errorf("read origin %d after seq %d: %w", sat.ID, after, err), nil)
		return
	}
	items := make([]item, 0, len(recs))
	next, size := after, 0
	for _, rec := range recs {
		if len(items) > 0 && (size >= s.cfg.MaxPageBytes || rec.Event.OriginSeq != next+1) {
			break // a page bound, or a hole central's ledger has (never sent across)
		}
		b, err := rec.Encoded()
		if err != nil {
			s.refuse(w, r, &sat, http.StatusServiceUnavailable, fmt.Errorf("encode position %d: %w", rec.Position, err), nil)
			return
		}
		items = append(items, item{pos: rec.Position, payload: b})
		next, size = rec.Event.OriginSeq, size+len(b)
	}
	h := w.Header()
	h.Set(wire.HeaderHead, strconv.FormatUint(head, 10))
	h.Set(wire.HeaderNext, strconv.FormatUint(next, 10))
	h.Set(wire.HeaderHighWater, strconv.FormatUint(oh.Seq, 10))
	if len(items) == 0 {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	h.Set("Content-Type", wire.ContentType)
	h.Set("Cache-Control", "no-store")
	if err := writeFrames(w, r, items); err != nil {
		s.log.Warn("own events response cut", "satellite", sat.ID, "error", err)
		return
	}
	s.log.Warn("sent a satellite its own events back (restored from an older copy?)", "satellite", sat.ID, "after", after, "through", next, "high_water", oh.Seq)
}

// ownEvent is the satellite's event at origin_seq seq as central holds
// it, nil when central does not hold it.
func (s *Server) ownEvent(ctx context.Context, origin uint16, seq uint64) (*ledger.Event, error) {
	recs, err := s.cfg.Store.ReadOrigin(ctx, origin, seq-1, 1)
	if err != nil {
		return nil, fmt.Errorf("read origin %d seq %d: %w", origin, seq, err)
	}
	if len(recs) == 0 || recs[0].Event.OriginSeq != seq {
		return nil, nil
	}
	return recs[0].Event, nil
}
