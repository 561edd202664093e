package site

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/ghsync/ghsync/bundle"
	"github.com/ghsync/ghsync/central"
	"github.com/ghsync/ghsync/clocks"
	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/satellite"
)

// The stability exchange by bundle. A satellite linked to central only by
// USB sticks takes part in compaction as a networked one does, one
// bundle round trip behind:
//
//   - central's complete exports (every event after a position) say which
//     positions they cover and carry the frontier central last derived;
//     the satellite records both on import (RecordBundle);
//   - each completed cycle (with central or without) records what it
//     vouches for, as a networked cycle reports it (vouch): its clock reading
//     after the drain, the origin seq it had stamped by then, and the
//     central position its tables reflect (once the projector passed
//     the imported bundles);
//   - the satellite's exports carry that report (ExportStability), and
//     central records it on import once its ledger holds the events
//     vouched for (central.AcceptBundleReport).

// vouch records what a completed cycle vouches for, for the next bundle
// this satellite exports and for the clock of the next process (Open),
// and applies the frontier central's bundles announced. A failure costs
// only compaction's progress: it is logged, not returned.
func (s *Site) vouch(ctx context.Context, r *Report, mark clocks.Timestamp) {
	// Read after mark: an event drained since then is stamped later, so
	// counting it only asks central for more.
	seq, err := ownSeq(ctx, s.cfg.Store, s.cfg.Origin)
	var checkpoint uint64
	if err == nil {
		checkpoint, err = s.proj.Checkpoint(ctx)
	}
	var o satellite.Offline
	if err == nil {
		o, err = s.bundles.CycleDone(ctx, mark, seq, checkpoint)
	}
	if err != nil {
		s.log.Warn("could not record this cycle for the stability report bundles carry", "error", err)
		return
	}
	if err := s.recordFrontier(ctx, o.Frontier); err != nil {
		s.log.Warn("could not record the stability frontier central's bundles carried", "frontier", o.Frontier.String(), "error", err)
	} else if r.Frontier == 0 {
		r.Frontier = o.Frontier
	}
}

// ownSeq is the highest origin seq of origin's events in store.
func ownSeq(ctx context.Context, store ledger.Store, origin uint16) (uint64, error) {
	heads, err := store.Origins(ctx)
	if err != nil {
		return 0, err
	}
	for _, h := range heads {
		if h.Origin == origin {
			return h.Seq, nil
		}
	}
	return 0, nil
}

// ExportStability fills in the stability fields of a bundle that the
// instance opts.Origin exports from its ledger at location: central's
// last frontier, or a satellite's last report when the selection holds
// its own events (a report vouches for them). It leaves opts unchanged
// when there is nothing to carry.
func ExportStability(ctx context.Context, location string, opts *bundle.ExportOptions) error {
	if opts.Origin == 0 {
		reg, err := central.OpenRegistry(ctx, location)
		if err != nil {
			return err
		}
		defer reg.Close()
		opts.Frontier, err = reg.LastFrontier(ctx)
		return err
	}
	sel := opts.Selection
	if len(sel.Models) > 0 || len(sel.Origins) > 0 && !slices.Contains(sel.Origins, opts.Origin) {
		return nil
	}
	st, err := satellite.OpenBundleState(ctx, location)
	if err != nil {
		return err
	}
	defer st.Close()
	o, err := st.Load(ctx)
	if err != nil || o.ReportHLC == 0 {
		return err
	}
	opts.Report = &bundle.Report{HLC: o.ReportHLC, Applied: o.Applied, Seq: o.ReportSeq}
	return nil
}

// ErrStabilityRefused wraps why RecordBundle did not record a bundle's
// stability fields; the bundle's events are imported all the same.
var ErrStabilityRefused = errors.New("stability fields not recorded")

// RecordBundle records what an imported bundle says about stability, at
// the importing instance self whose ledger store lives at location:
// central records a satellite's report, a satellite the positions of
// central's ledger a complete export covered and the frontier it carried.
// res is the import's result (the ledger's head after it). Fields are
// believed only from a bundle signed by a trusted key. It returns what
// was recorded, for people; an error wrapping ErrStabilityRefused says
// why nothing was.
func RecordBundle(ctx context.Context, store ledger.Store, location string, self uint16, info *bundle.Info, res *bundle.ImportResult) (string, error) {
	h := info.Header
	refuse := func(err error) (string, error) { return "", fmt.Errorf("%w: %w", ErrStabilityRefused, err) }
	carries := self == 0 && h.Report != nil || self != 0 && h.Origin == 0 && h.Version >= 2
	switch {
	case !carries:
		return "", nil
	case info.Signature != bundle.SignedTrusted:
		return refuse(fmt.Errorf("the bundle is %s: its stability fields are believed only from a signer given with --trust", info.Signature))
	case self == 0:
		reg, err := central.OpenRegistry(ctx, location)
		if err != nil {
			return "", err
		}
		defer reg.Close()
		rep := h.Report
		ok, err := central.AcceptBundleReport(ctx, reg, store, central.Stability{Origin: h.Origin, HLC: rep.HLC, Applied: rep.Applied}, rep.Seq)
		switch {
		case err != nil:
			return refuse(err)
		case !ok:
			return fmt.Sprintf("satellite %d's stability report (clock %s) is no newer than the one recorded", h.Origin, rep.HLC), nil
		}
		return fmt.Sprintf("recorded satellite %d's stability report: its events through clock %s (seq %d) are here, its tables reflect this ledger through position %d",
			h.Origin, rep.HLC, rep.Seq, rep.Applied), nil
	case !h.Complete():
		return refuse(fmt.Errorf("central's bundle is not a complete export (%s): export every event after a position to cover it", h.Selection))
	}
	st, err := satellite.OpenBundleState(ctx, location)
	if err != nil {
		return "", err
	}
	defer st.Close()
	o, err := st.CentralImported(ctx, h.Selection.SincePosition, h.Through, res.Head, h.Frontier)
	if err != nil {
		return refuse(err)
	}
	note := fmt.Sprintf("central's ledger is here through position %d", o.Covered)
	if o.Frontier != 0 {
		note += fmt.Sprintf("; stability frontier %s", o.Frontier)
	}
	return note, nil
}
