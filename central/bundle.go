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
// only registered, active satellites' events are taken, in order and
// without gaps; central's own chain is never extended from outside; and
// the events go through the same admission as a push (clock bounds or
// held events, the satellite's held set), so a clinic whose clock ran a
// year ahead cannot win merges by sending a USB stick instead of pushing.

// AdmitBundleOrigin says why central does not take origin's events from
// seq from on, or nil when it does: the satellite is registered and
// active, and from follows what central holds of it (in its ledger, or
// held out of it for their clock). It is bundle.ImportOptions.Admit's
// rule at central.
func (s *Server) AdmitBundleOrigin(ctx context.Context, origin uint16, from uint64) error {
	if _, err := s.bundleSatellite(ctx, origin); err != nil {
		return err
	}
	h, err := ledger.HeadOf(ctx, s.cfg.Store, origin)
	if err != nil {
		return err
	}
	if from <= h.Seq+1 {
		return nil
	}
	kept, err := s.cfg.Registry.HeldEvents(ctx, int(origin))
	if err != nil {
		return err
	}
	if len(kept) > 0 && kept[0].Seq == h.Seq+1 && from <= kept[len(kept)-1].Seq+1 {
		return nil // it continues the chain held for its clock
	}
	held := ""
	if len(kept) > 0 {
		held = fmt.Sprintf(", and holds seq %d..%d out of it for their clock", kept[0].Seq, kept[len(kept)-1].Seq)
	}
	return fmt.Errorf("central's ledger has origin %d through seq %d%s: import first the bundle holding seq %d", origin, h.Seq, held, h.Seq+1)
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
// origins: each origin's run of consecutive events in a batch goes
// through the push's own code. Runs central holds already are handed to
// the store, which checks they are the events it holds, without asking
// anything of their origin (a revoked satellite's old bundle imports as
// a no-op). What was stored before a refusal is counted in the result.
func (s *Server) BundleSink() bundle.Sink {
	return func(ctx context.Context, events []*ledger.Event) (bundle.SinkResult, error) {
		var res bundle.SinkResult
		for _, run := range originRuns(events) {
			r, err := s.receiveRun(ctx, run)
			res.Appended += r.Appended
			res.Duplicates += r.Duplicates
			res.Held += r.Held
			if err != nil {
				return res, err
			}
		}
		head, err := s.cfg.Store.Head(ctx)
		res.Head = head
		return res, err
	}
}

// receiveRun stores one origin's consecutive events from a bundle.
func (s *Server) receiveRun(ctx context.Context, run []*ledger.Event) (bundle.SinkResult, error) {
	var res bundle.SinkResult
	o := run[0].Origin
	s.locks[o].Lock()
	defer s.locks[o].Unlock()
	h, err := ledger.HeadOf(ctx, s.cfg.Store, o)
	if err != nil {
		return res, err
	}
	dup, err := s.alreadyHeld(ctx, h, run)
	if err != nil {
		return res, err
	}
	k := slices.Index(dup, false)
	if k < 0 {
		ar, err := s.cfg.Store.Append(ctx, run) // appends nothing: checks they are the held events
		res.AppendResult = ar
		return res, err
	}
	sat, err := s.bundleSatellite(ctx, o)
	if err != nil {
		return res, &ledger.EventError{ID: run[k].ID, Origin: o, OriginSeq: run[k].OriginSeq, Err: err}
	}
	payloads := make([][]byte, len(run))
	for i, e := range run {
		if payloads[i], err = ledger.Marshal(e); err != nil {
			return res, &ledger.EventError{ID: e.ID, Origin: o, OriginSeq: e.OriginSeq, Err: err}
		}
	}
	kept, err := s.cfg.Registry.HeldEvents(ctx, int(o))
	if err != nil {
		return res, err
	}
	if len(kept) > 0 && run[k].OriginSeq > kept[0].Seq {
		// The chain is held out of the ledger from kept[0] on: what
		// follows it waits with it, as the rest of a push would.
		res.Duplicates = k
		held, err := s.keepBehind(ctx, sat, run[k:], payloads[k:], kept)
		res.Held = held
		return res, err
	}
	resp, err := s.apply(ctx, sat, run, payloads)
	if err != nil {
		return res, err
	}
	res.Appended, res.Duplicates, res.Held = resp.Accepted, resp.Duplicates, resp.Held
	for _, r := range resp.Results {
		if r.Status == wire.StatusRejected || r.Status == wire.StatusNotApplied {
			e := run[r.Index]
			return res, &ledger.EventError{ID: e.ID, Origin: o, OriginSeq: e.OriginSeq, Err: fmt.Errorf("%s: %s", r.Status, r.Error)}
		}
	}
	return res, nil
}

// keepBehind keeps events, which continue or repeat the chain kept held
// out of the ledger (kept, in seq order), held with it; the satellite's
// records join its held set as a push's would. It returns how many
// events are held.
func (s *Server) keepBehind(ctx context.Context, sat Satellite, events []*ledger.Event, payloads [][]byte, kept []HeldEvent) (int, error) {
	first, last := kept[0].Seq, kept[len(kept)-1].Seq
	var add []HeldEvent
	now := s.cfg.Clock()
	for i, e := range events {
		switch {
		case e.OriginSeq <= last:
			if j := int(e.OriginSeq - first); j >= len(kept) || kept[j].Seq != e.OriginSeq || kept[j].ID != e.ID {
				return 0, &ledger.EventError{ID: e.ID, Origin: e.Origin, OriginSeq: e.OriginSeq,
					Err: fmt.Errorf("%w: central holds another event as origin %d seq %d, out of its ledger for its clock", ledger.ErrConflict, e.Origin, e.OriginSeq)}
			}
		case e.OriginSeq != last+1+uint64(len(add)):
			return 0, &ledger.EventError{ID: e.ID, Origin: e.Origin, OriginSeq: e.OriginSeq,
				Err: fmt.Errorf("gap: central holds origin %d's chain through seq %d (out of its ledger for its clock), not up to seq %d", e.Origin, last+uint64(len(add)), e.OriginSeq-1)}
		default:
			add = append(add, HeldEvent{Origin: e.Origin, Seq: e.OriginSeq, ID: e.ID, Model: e.Model, Key: e.Key, HLC: e.HLC, Payload: payloads[i],
				Reason:     fmt.Sprintf("follows held event seq %d in origin %d's chain", first, e.Origin),
				SkewMillis: e.HLC.WallMillis() - now.UnixMilli(), Received: now})
		}
	}
	if err := s.holdStreams(ctx, sat.ID, events); err != nil {
		return 0, err
	}
	if _, err := s.cfg.Registry.KeepEvents(ctx, add); err != nil {
		return 0, err
	}
	return len(events), nil
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
