package central

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/ghsync/ghsync/bundle"
	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/wire"
)

// A bundle imported at central brings a satellite's events by another
// road than its push, and must not be a way around the push's rules:
// only registered, active satellites' events are taken; central's own
// chain is never extended from outside; and the events go through the
// same admission as a push (clock bounds or held events, the satellite's
// held set), so a clinic whose clock ran a year ahead cannot win merges
// by sending a USB stick instead of pushing.

// AdmitBundleOrigin says why central does not take new events of origin
// from a bundle, or nil when it does (the satellite is registered and
// active). It is bundle.ImportOptions.Admit's rule at central.
func (s *Server) AdmitBundleOrigin(ctx context.Context, origin uint16) error {
	_, err := s.bundleSatellite(ctx, origin)
	return err
}

func (s *Server) bundleSatellite(ctx context.Context, origin uint16) (Satellite, error) {
	if origin == 0 {
		return Satellite{}, errors.New("origin 0 is central's own: its events come from its own capture, never from a bundle")
	}
	sats, err := s.cfg.Registry.Satellites(ctx)
	if err != nil {
		return Satellite{}, err
	}
	i := slices.IndexFunc(sats, func(x Satellite) bool { return x.ID == origin })
	switch {
	case i < 0:
		return Satellite{}, fmt.Errorf("no satellite %d is registered here (ghsync central satellite add %d --name ...)", origin, origin)
	case !sats[i].Active():
		return Satellite{}, fmt.Errorf("satellite %d was revoked on %s", origin, sats[i].Revoked.Format("2006-01-02"))
	}
	return sats[i], nil
}

// BundleSink stores a bundle's events at central as pushes of their
// origins: each origin's run of events in a batch is admitted by the
// push's own code. Events central already holds are counted as
// duplicates without asking anything of their origin.
func (s *Server) BundleSink() bundle.Sink {
	return func(ctx context.Context, events []*ledger.Event) (bundle.SinkResult, error) {
		var res bundle.SinkResult
		heads, err := s.cfg.Store.Origins(ctx)
		if err != nil {
			return res, fmt.Errorf("read origin heads: %w", err)
		}
		held := map[uint16]uint64{}
		for _, h := range heads {
			held[h.Origin] = h.Seq
		}
		for _, run := range originRuns(events) {
			o := run[0].Origin
			k := 0
			for k < len(run) && run[k].OriginSeq <= held[o] {
				k++
			}
			res.Duplicates += k
			if run = run[k:]; len(run) == 0 {
				continue
			}
			sat, err := s.bundleSatellite(ctx, o)
			if err != nil {
				return res, &ledger.EventError{ID: run[0].ID, Origin: o, OriginSeq: run[0].OriginSeq, Err: err}
			}
			payloads := make([][]byte, len(run))
			for i, e := range run {
				if payloads[i], err = ledger.Marshal(e); err != nil {
					return res, &ledger.EventError{ID: e.ID, Origin: o, OriginSeq: e.OriginSeq, Err: err}
				}
			}
			first, behind, err := s.heldFrom(ctx, o, run[0].OriginSeq)
			if err != nil {
				return res, err
			}
			if behind {
				// An earlier batch's event of this chain was held: the
				// rest of the chain waits behind it, as a push's would.
				if err := s.keepBehind(ctx, run, payloads, first); err != nil {
					return res, err
				}
				res.Held += len(run)
				continue
			}
			s.locks[o].Lock()
			resp, err := s.apply(ctx, sat, run, payloads)
			s.locks[o].Unlock()
			if err != nil {
				return res, err
			}
			res.Appended += resp.Accepted
			res.Duplicates += resp.Duplicates
			res.Held += resp.Held
			for _, r := range resp.Results {
				if r.Status == wire.StatusRejected || r.Status == wire.StatusNotApplied {
					e := run[r.Index]
					return res, &ledger.EventError{ID: e.ID, Origin: o, OriginSeq: e.OriginSeq, Err: fmt.Errorf("%s: %s", r.Status, r.Error)}
				}
			}
			held[o] = max(held[o], resp.HighWater)
		}
		head, err := s.cfg.Store.Head(ctx)
		res.Head = head
		return res, err
	}
}

// heldFrom returns the first seq of origin's chain that central keeps out
// of its ledger, when next (the seq after what the ledger holds) follows it.
func (s *Server) heldFrom(ctx context.Context, origin uint16, next uint64) (first uint64, behind bool, err error) {
	kept, err := s.cfg.Registry.HeldEvents(ctx, int(origin))
	if err != nil || len(kept) == 0 || kept[0].Seq >= next {
		return 0, false, err
	}
	return kept[0].Seq, kept[len(kept)-1].Seq == next-1, nil
}

// keepBehind keeps events, the continuation of a held chain, out of the
// ledger with it.
func (s *Server) keepBehind(ctx context.Context, events []*ledger.Event, payloads [][]byte, first uint64) error {
	now := s.cfg.Clock()
	kept := make([]HeldEvent, len(events))
	for i, e := range events {
		kept[i] = HeldEvent{Origin: e.Origin, Seq: e.OriginSeq, ID: e.ID, Model: e.Model, Key: e.Key, HLC: e.HLC, Payload: payloads[i],
			Reason: fmt.Sprintf("follows held event seq %d in origin %d's chain", first, e.Origin), SkewMillis: e.HLC.WallMillis() - now.UnixMilli(), Received: now}
	}
	_, err := s.cfg.Registry.KeepEvents(ctx, kept)
	return err
}

// originRuns cuts events into runs of one origin's consecutive seqs, in
// order: a push's shape.
func originRuns(events []*ledger.Event) [][]*ledger.Event {
	var runs [][]*ledger.Event
	open := map[uint16]int{} // origin → index of its last run
	for _, e := range events {
		if i, ok := open[e.Origin]; ok {
			r := runs[i]
			if e.OriginSeq == r[len(r)-1].OriginSeq+1 {
				runs[i] = append(r, e)
				continue
			}
		}
		open[e.Origin] = len(runs)
		runs = append(runs, []*ledger.Event{e})
	}
	return runs
}
