package site

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"time"

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
// and gives the projector the frontier central's bundles announced once
// it holds. An error means the clock reading may not survive this
// process: it must not be reported.
func (s *Site) vouch(ctx context.Context, r *Report, mark clocks.Timestamp) error {
	// Read after mark: an event drained since then is stamped later, so
	// counting it only asks central for more.
	h, err := ledger.HeadOf(ctx, s.cfg.Store, s.cfg.Origin)
	if err != nil {
		return err
	}
	checkpoint, err := s.proj.Checkpoint(ctx)
	if err != nil {
		return err
	}
	o, err := s.bundles.CycleDone(ctx, mark, h.Seq, checkpoint)
	if err != nil {
		return err
	}
	// Whether or not the projector may use it yet, nothing stamped from
	// now on may be at or before a frontier.
	if o.Frontier != 0 && plausibleFrontier(o.Frontier, s.wall.Now()) == nil {
		s.stampClock().Restore(o.Frontier)
	}
	if f := o.UsableFrontier(); f != 0 {
		if !r.Answered {
			r.Derived, r.Answered = f, true
		}
		if err := s.recordFrontier(ctx, f); err != nil {
			s.log.Warn("could not record the stability frontier central's bundles carried", "frontier", f.String(), "error", err)
		}
	}
	return nil
}

// ResumeClock moves clock, which is about to stamp origin's events, past
// the last clock reading the instance vouched for and the last frontier it
// learnt (recorded beside its ledger at location): a change made just
// before a cycle's reading but drained by a later process must be stamped
// after it, and no write may be stamped at or before a frontier. Every
// process that stamps an instance's events calls it (Open does).
func ResumeClock(ctx context.Context, clock *clocks.Clock, origin uint16, location string) error {
	if origin == 0 {
		reg, err := central.OpenRegistry(ctx, location)
		if err != nil {
			return err
		}
		defer reg.Close()
		reps, err := reg.Stabilities(ctx)
		if err != nil {
			return err
		}
		f, err := reg.LastFrontier(ctx)
		if err != nil {
			return err
		}
		for _, r := range reps {
			if r.Origin == 0 {
				f = max(f, r.HLC)
			}
		}
		clock.Restore(f)
		return nil
	}
	st, err := satellite.OpenBundleState(ctx, location)
	if err != nil {
		return err
	}
	defer st.Close()
	return resumeClock(ctx, clock, st)
}

func resumeClock(ctx context.Context, clock *clocks.Clock, st *satellite.BundleState) error {
	o, err := st.Load(ctx)
	if err != nil {
		return err
	}
	f := o.Frontier
	if plausibleFrontier(f, time.Now()) != nil {
		f = 0 // damage: it is never used
	}
	clock.Restore(max(o.ReportHLC, f))
	return nil
}

// frontierSlack is how far ahead of this machine's clock a stability
// frontier may be: no instance's report can be further ahead than central
// accepts clocks to be (minutes), so a frontier beyond it is damage, which
// would make the projector compact writes still to come.
const frontierSlack = 24 * time.Hour

// plausibleFrontier refuses a frontier more than frontierSlack ahead of
// now.
func plausibleFrontier(f clocks.Timestamp, now time.Time) error {
	if limit := now.Add(frontierSlack); f.Time().After(limit) {
		return fmt.Errorf("frontier %s is more than %v ahead of this machine's clock (%s)", f, frontierSlack, now.UTC().Format(time.RFC3339))
	}
	return nil
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

// Signers binds signing keys to the instances they sign for. Trusting a
// key lets its bundles' events in (each event's own chain is checked); a
// bundle's stability fields speak for the instance its header names, and
// are believed only from a key bound to that instance: a clinic's key
// cannot vouch for another clinic, nor pass for central.
type Signers map[uint16][]ed25519.PublicKey

func (s Signers) signs(origin uint16, key ed25519.PublicKey) bool {
	return key != nil && slices.ContainsFunc(s[origin], func(k ed25519.PublicKey) bool { return k.Equal(key) })
}

// AdmitAtCentral is central's rule for the new events a bundle brings
// (bundle.ImportOptions.Admit): as in a push, only a registered, active
// satellite's events, in order, never central's own; and only from a
// signer bound to that satellite (--trust ID=KEY), as a satellite's token
// pushes only its own events. A bundle accepted without a trusted
// signature (--insecure-skip-signature) is the administrator's word.
func AdmitAtCentral(ctx context.Context, srv *central.Server, signers Signers) func(*bundle.Info, uint16, uint64) error {
	return func(info *bundle.Info, origin uint16, from uint64) error {
		if info.Signature == bundle.SignedTrusted && !signers.signs(origin, info.Signer) {
			var bound []uint16
			for id := range signers {
				if signers.signs(id, info.Signer) {
					bound = append(bound, id)
				}
			}
			if len(bound) == 0 {
				return fmt.Errorf("at central a clinic's key must be bound to the clinic it speaks for: give it as --trust %d=KEY", origin)
			}
			slices.Sort(bound)
			return fmt.Errorf("the bundle's signer %s is bound to instance %v: a clinic's key brings its own clinic's events only",
				bundle.FormatPublicKey(info.Signer), bound)
		}
		return srv.AdmitBundleOrigin(ctx, origin, from)
	}
}

// RecordBundle records what an imported bundle says about stability, at
// the importing instance self whose ledger store lives at location:
// central records a satellite's report, a satellite the positions of
// central's ledger a complete export covered and the frontier it carried.
// res is the import's result (the ledger's head after it). Fields are
// believed only from a bundle whose trusted signature is by a key signers
// binds to the exporting instance. It returns what was recorded, for
// people; an error wrapping ErrStabilityRefused says why nothing was.
func RecordBundle(ctx context.Context, store ledger.Store, location string, self uint16, info *bundle.Info, res *bundle.ImportResult, signers Signers) (string, error) {
	h := info.Header
	refuse := func(err error) (string, error) { return "", fmt.Errorf("%w: %w", ErrStabilityRefused, err) }
	carries := self == 0 && h.Report != nil || self != 0 && h.Origin == 0 && h.Version >= 2
	switch {
	case !carries:
		return "", nil
	case info.Signature != bundle.SignedTrusted:
		return refuse(fmt.Errorf("the bundle is %s: its stability fields are believed only from a signer given with --trust %d=KEY", info.Signature, h.Origin))
	case !signers.signs(h.Origin, info.Signer):
		return refuse(fmt.Errorf("the bundle speaks for instance %d, but its signer %s is not bound to it (give it as --trust %d=KEY)", h.Origin, bundle.FormatPublicKey(info.Signer), h.Origin))
	case self == 0:
		reg, err := central.OpenRegistry(ctx, location)
		if err != nil {
			return "", err
		}
		defer reg.Close()
		rep := h.Report
		ok, err := central.AcceptBundleReport(ctx, reg, store, central.Stability{Origin: h.Origin, HLC: rep.HLC, Applied: rep.Applied}, rep.Seq)
		switch {
		case errors.Is(err, central.ErrReportRefused):
			return refuse(err)
		case err != nil:
			return "", err
		case !ok:
			return fmt.Sprintf("satellite %d's stability report (clock %s) is no newer than the one recorded", h.Origin, rep.HLC), nil
		}
		return fmt.Sprintf("recorded satellite %d's stability report: its events through clock %s (seq %d) are here, its tables reflect this ledger through position %d",
			h.Origin, rep.HLC, rep.Seq, rep.Applied), nil
	case !h.Complete():
		return refuse(fmt.Errorf("central's bundle is not a complete export (%s): export every event after a position to cover it", h.Selection))
	}
	if h.Frontier != 0 {
		if err := plausibleFrontier(h.Frontier, time.Now()); err != nil {
			return refuse(err)
		}
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
