package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/models"
)

// HistoryCmd prints the whole history of one record, or of a patient's
// record graph: what an auditor replays.
type HistoryCmd struct {
	Model   string `arg:"" optional:"" help:"Model of the record, e.g. party.party."`
	Key     string `arg:"" optional:"" help:"Network key of the record."`
	Patient string `help:"A patient's PUID (party.party ref): the party and every record about it (addresses, contacts, patient, appointments, evaluations...)."`
	Depth   int    `help:"With --patient, how many steps of referring records to follow." default:"3"`
}

func (c *HistoryCmd) Run(env *Env) error {
	store, err := openLedger(env.Ctx, env.Ledger)
	if err != nil {
		return err
	}
	defer store.Close()
	var streams []ledger.Stream
	switch {
	case c.Patient != "":
		if streams, err = patientStreams(env.Ctx, store, models.GNUHealth(), c.Patient, c.Depth); err != nil {
			return err
		}
	case c.Model != "" && c.Key != "":
		streams = []ledger.Stream{{Model: c.Model, Key: c.Key}}
	default:
		return errors.New("history: give MODEL KEY, or --patient PUID")
	}
	return writeHistory(env.Ctx, env.Out, store, streams)
}

// writeHistory prints each stream's events, streams in the order they
// began.
func writeHistory(ctx context.Context, w io.Writer, store ledger.Store, streams []ledger.Stream) error {
	type hist struct {
		st   ledger.Stream
		recs []ledger.Record
	}
	var hs []hist
	for _, st := range streams {
		var recs []ledger.Record
		for after := uint64(0); ; {
			page, err := store.ReadStream(ctx, st, after, 1000)
			if err != nil {
				return err
			}
			if len(page) == 0 {
				break
			}
			recs = append(recs, page...)
			after = page[len(page)-1].Position
		}
		if len(recs) > 0 {
			hs = append(hs, hist{st, recs})
		}
	}
	if len(hs) == 0 {
		return fmt.Errorf("history: the ledger holds no event of %v", streams)
	}
	slices.SortFunc(hs, func(a, b hist) int { return int(a.recs[0].Position) - int(b.recs[0].Position) })
	for _, h := range hs {
		fmt.Fprintf(w, "== %s (%d events)\n", h.st, len(h.recs))
		for _, r := range h.recs {
			if err := writeHuman(w, r); err != nil {
				return err
			}
		}
	}
	return nil
}

// patientStreams finds the party whose PUID is puid and the records that
// refer to it, depth steps deep (reference data aside), in one pass over
// the ledger.
func patientStreams(ctx context.Context, store ledger.Store, reg *models.Registry, puid string, depth int) ([]ledger.Stream, error) {
	refOf := map[string]string{} // party key → latest PUID
	referrers := map[ledger.Stream][]ledger.Stream{}
	for after := uint64(0); ; {
		page, err := store.ReadAll(ctx, after, 5000, ledger.Filter{})
		if err != nil {
			return nil, err
		}
		if len(page) == 0 {
			break
		}
		for _, r := range page {
			e := r.Event
			if v, ok := e.Fields["ref"]; ok && e.Model == "party.party" {
				s, _ := v.AsString()
				refOf[e.Key] = s
			}
			for _, v := range e.Fields {
				var refs []ledger.Ref
				if ref, ok := v.AsRef(); ok {
					refs = append(refs, ref)
				}
				if rs, ok := v.AsRefSet(); ok {
					refs = append(refs, rs...)
				}
				for _, ref := range refs {
					t := ledger.Stream{Model: ref.Model, Key: ref.Key}
					if !slices.Contains(referrers[t], e.Stream()) {
						referrers[t] = append(referrers[t], e.Stream())
					}
				}
			}
		}
		after = page[len(page)-1].Position
	}
	var out, level []ledger.Stream
	seen := map[ledger.Stream]bool{}
	for key, ref := range refOf {
		if ref == puid {
			st := ledger.Stream{Model: "party.party", Key: key}
			level, seen[st] = append(level, st), true
		}
	}
	if len(level) == 0 {
		return nil, fmt.Errorf("history: no party has PUID %q in this ledger", puid)
	}
	for d := 0; d <= depth && len(level) > 0; d++ {
		out = append(out, level...)
		var next []ledger.Stream
		for _, st := range level {
			for _, r := range referrers[st] {
				if m, ok := reg.Lookup(r.Model); seen[r] || ok && m.Reference {
					continue
				}
				seen[r] = true
				next = append(next, r)
			}
		}
		level = next
	}
	return out, nil
}
