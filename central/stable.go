package central

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/ghsync/ghsync/clocks"
	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/wire"
)

// The stability frontier is the HLC at or before which every write has
// reached every instance: merge states may drop what no later event can
// make matter again (merge.State.Compact). Central derives it from what
// each instance vouched for after its last complete cycle (Stability):
//
//	F = min( every active instance's reported HLC,
//	         the smallest merge HLC of central's events past the smallest
//	         position every instance has applied, minus one )
//
// The first term: no instance still holds, or will stamp, a write at or
// before F. The second: every event at or before F is applied everywhere.
// An instance that never reported holds F at zero (nothing compacts); a
// satellite offline for a month holds it where it was a month ago, as it
// must: its writes of that month may still arrive. A revoked satellite
// no longer counts.

// DefaultFrontierEvery is Config.FrontierEvery's default: deriving the
// frontier reads the ledger's tail, so reports in between get the last
// value.
const DefaultFrontierEvery = 10 * time.Second

// frontier caches the derivation and the minimum HLC of the ledger past
// the smallest applied position, extended as the ledger grows and
// rescanned only when that position moves.
type frontier struct {
	mu       sync.Mutex
	at       time.Time
	value    clocks.Timestamp
	from, to uint64           // the tail scanned: positions (from, to]
	min      clocks.Timestamp // smallest merge HLC in it (math.MaxUint64: none)
	scanned  bool             // from, to and min describe a scan
}

// stable records a satellite's report and answers with the frontier.
func (s *Server) stable(w http.ResponseWriter, r *http.Request, sat Satellite) {
	ctx := r.Context()
	var rep wire.StableReport
	dec := json.NewDecoder(io.LimitReader(r.Body, 4<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil {
		s.refuse(w, r, &sat, http.StatusBadRequest, fmt.Errorf("stability report: %w", err), nil)
		return
	}
	f, err := s.ReportStable(ctx, Stability{Origin: sat.ID, HLC: clocks.Timestamp(rep.HLC), Applied: rep.Applied})
	if err != nil {
		status := http.StatusServiceUnavailable
		if errors.As(err, new(reportError)) {
			status = http.StatusBadRequest
		}
		s.refuse(w, r, &sat, status, err, nil)
		return
	}
	writeJSON(w, http.StatusOK, wire.StableResponse{Frontier: uint64(f), CentralTime: s.cfg.Clock().UTC()})
}

// AcceptBundleReport records the stability report a satellite's bundle
// carried (bundle.Report), once the bundle's events are in central's
// ledger: a satellite linked only by bundles vouches this way for what it
// would report over POST /v1/stable. It is refused, and nothing recorded,
// unless origin is an active satellite, central's ledger holds that
// origin's events through seq (the report vouches for no event central
// lacks), and applied is a position central has: the error then matches
// ErrReportRefused. Each field of the recorded report only grows (a stick
// carried late, a satellite that also reports over the network), in one
// statement (Registry.RaiseStable): recorded is false when neither does.
func AcceptBundleReport(ctx context.Context, reg Registry, store ledger.Store, st Stability, seq uint64) (recorded bool, err error) {
	fail := func(err error) (bool, error) {
		return false, reportError{fmt.Errorf("stability report of satellite %d in a bundle: %w", st.Origin, err)}
	}
	sats, err := reg.Satellites(ctx)
	if err != nil {
		return false, err
	}
	i := slices.IndexFunc(sats, func(s Satellite) bool { return s.ID == st.Origin })
	switch {
	case st.Origin == 0:
		return fail(errors.New("central's own instance reports in-process"))
	case i < 0:
		return fail(errors.New("no such satellite is registered (ghsync central satellite add)"))
	case !sats[i].Active():
		return fail(errors.New("the satellite is revoked"))
	}
	h, err := ledger.HeadOf(ctx, store, st.Origin)
	if err != nil {
		return false, err
	}
	if h.Seq < seq {
		return fail(fmt.Errorf("it vouches for events through seq %d, this ledger holds them through seq %d (import the satellite's earlier bundles, or export with its own events included)", seq, h.Seq))
	}
	if err := checkReport(ctx, store, st); err != nil {
		return false, err
	}
	if st.Reported.IsZero() {
		st.Reported = time.Now()
	}
	return reg.RaiseStable(ctx, st)
}

// checkReport refuses a report that cannot be true at this central (a
// reportError: no clock reading, or applied past the ledger's head), or
// fails to read the head.
func checkReport(ctx context.Context, store ledger.Store, st Stability) error {
	if st.HLC == 0 {
		return reportError{fmt.Errorf("stability report of origin %d: no clock reading", st.Origin)}
	}
	head, err := store.Head(ctx)
	if err != nil {
		return fmt.Errorf("stability report: read head: %w", err)
	}
	if st.Applied > head {
		return reportError{fmt.Errorf("stability report of origin %d: applied through position %d, beyond central's head %d", st.Origin, st.Applied, head)}
	}
	return nil
}

// ErrReportRefused matches a stability report central refuses as untrue
// (as opposed to failing to record it).
var ErrReportRefused = errors.New("stability report refused")

// reportError is a stability report central refuses.
type reportError struct{ error }

func (reportError) Is(target error) bool { return target == ErrReportRefused }

// ReportStable records an instance's report (satellites through
// POST /v1/stable; central's own instance, origin 0, directly when
// Config.Projects) and returns the current frontier.
func (s *Server) ReportStable(ctx context.Context, st Stability) (clocks.Timestamp, error) {
	if err := checkReport(ctx, s.cfg.Store, st); err != nil {
		return 0, err
	}
	if st.Reported.IsZero() {
		st.Reported = s.cfg.Clock()
	}
	if err := s.cfg.Registry.ReportStable(ctx, st); err != nil {
		return 0, err
	}
	return s.Frontier(ctx)
}

// ReportOwn is ReportStable for central's own instance (origin 0), in the
// shape site.Config.ReportStable takes.
func (s *Server) ReportOwn(ctx context.Context, hlc clocks.Timestamp, applied uint64) (clocks.Timestamp, error) {
	return s.ReportStable(ctx, Stability{Origin: 0, HLC: hlc, Applied: applied})
}

// Frontier is the network's stability frontier, derived again when the
// last derivation is older than FrontierEvery.
func (s *Server) Frontier(ctx context.Context) (clocks.Timestamp, error) {
	f := &s.front
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.at.IsZero() && s.cfg.Clock().Sub(f.at) < s.cfg.FrontierEvery {
		return f.value, nil
	}
	v, err := s.deriveFrontier(ctx)
	if err != nil {
		return 0, err
	}
	if v > f.value {
		// Recorded for central's bundles (site.ExportStability).
		if err := s.cfg.Registry.RaiseFrontier(ctx, v); err != nil {
			return 0, err
		}
	}
	f.value, f.at = v, s.cfg.Clock()
	return v, nil
}

// KeepFrontier derives the frontier every FrontierEvery until ctx ends, so
// that reports arriving in bundles (AcceptBundleReport) move the frontier
// central's bundles carry even when no satellite calls.
func (s *Server) KeepFrontier(ctx context.Context) {
	every := s.cfg.FrontierEvery
	if every <= 0 {
		every = DefaultFrontierEvery
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := s.Frontier(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("could not derive the stability frontier", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-s.closing:
			return
		case <-t.C:
		}
	}
}

func (s *Server) deriveFrontier(ctx context.Context) (clocks.Timestamp, error) {
	sats, err := s.cfg.Registry.Satellites(ctx)
	if err != nil {
		return 0, err
	}
	reps, err := s.cfg.Registry.Stabilities(ctx)
	if err != nil {
		return 0, err
	}
	byOrigin := make(map[uint16]Stability, len(reps))
	for _, r := range reps {
		byOrigin[r.Origin] = r
	}
	bound := clocks.Timestamp(math.MaxUint64)
	applied := uint64(math.MaxUint64)
	count := func(origin uint16) bool {
		r, ok := byOrigin[origin]
		if !ok {
			return false
		}
		bound, applied = min(bound, r.HLC), min(applied, r.Applied)
		return true
	}
	for _, sat := range sats {
		if sat.Active() && !count(sat.ID) {
			return 0, nil // it may hold anything
		}
	}
	switch {
	case s.cfg.Projects:
		if !count(0) {
			return 0, nil
		}
	case s.cfg.Sequencer != nil:
		// Central's own events are clock bounds, stamped by this clock
		// from now on later than this reading.
		bound = min(bound, s.cfg.Sequencer.Clock().Now())
	}
	if bound == math.MaxUint64 {
		return 0, nil // no instance at all
	}
	head, err := s.cfg.Store.Head(ctx)
	if err != nil {
		return 0, err
	}
	if applied < head {
		m, err := s.tailMin(ctx, applied, head)
		if err != nil {
			return 0, err
		}
		if m <= bound {
			if m == 0 {
				// A zero HLC is invalid in the ledger; were one read,
				// m-1 would wrap to the greatest frontier there is.
				return 0, fmt.Errorf("stability frontier: a zero merge clock in the ledger after position %d", applied)
			}
			bound = m - 1
		}
	}
	return bound, nil
}

// tailMin is the smallest merge HLC among central's events at positions
// (from, head]: an event's HLC, or, for events a clock bound covers, the
// bound they merge at, which a bound event in the tail announces.
func (s *Server) tailMin(ctx context.Context, from, head uint64) (clocks.Timestamp, error) {
	f := &s.front
	if !f.scanned || f.from != from || f.to < from {
		f.from, f.to, f.min, f.scanned = from, from, math.MaxUint64, true
	}
	for f.to < head {
		recs, err := s.cfg.Store.ReadAll(ctx, f.to, ledger.DefaultPageSize, ledger.Filter{})
		if err != nil {
			return 0, fmt.Errorf("stability frontier: read after %d: %w", f.to, err)
		}
		if len(recs) == 0 {
			break
		}
		for _, r := range recs {
			h := r.Event.HLC
			if cb, err := ledger.ParseClockBound(r.Event); err == nil {
				h = min(h, cb.Bound)
			}
			f.min = min(f.min, h)
			f.to = r.Position
		}
	}
	return f.min, nil
}
