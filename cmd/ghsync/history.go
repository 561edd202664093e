package main

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/ghsync/ghsync/clocks"
	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/merge"
	"github.com/ghsync/ghsync/models"
)

// HistoryCmd prints the whole history of one record, or of a patient's
// record graph: what an auditor replays.
type HistoryCmd struct {
	Model   string `arg:"" optional:"" help:"Model of the record, e.g. party.party."`
	Key     string `arg:"" optional:"" help:"Network key of the record."`
	Patient string `help:"A patient's PUID (party.party ref, current or former): the party and every record about it (addresses, contacts, patient, appointments, evaluations...)."`
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
		var notes []string
		if streams, notes, err = patientStreams(env.Ctx, store, models.GNUHealth(), c.Patient, c.Depth); err != nil {
			return err
		}
		for _, n := range notes {
			fmt.Fprintln(env.Out, n)
		}
	case c.Model != "" && c.Key != "":
		streams = []ledger.Stream{{Model: c.Model, Key: c.Key}}
	default:
		return errors.New("history: give MODEL KEY, or --patient PUID")
	}
	return writeHistory(env.Ctx, env.Out, store, streams)
}

// mergeOrder orders events as merging decides between them.
func mergeOrder(a, b *ledger.Event) int {
	return cmp.Or(cmp.Compare(a.HLC, b.HLC), cmp.Compare(a.Origin, b.Origin), bytes.Compare(a.ID[:], b.ID[:]))
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
	// In merge order (clock, origin, event id), not this ledger's
	// positions: every instance tells a record's history alike.
	for _, h := range hs {
		slices.SortFunc(h.recs, func(a, b ledger.Record) int { return mergeOrder(a.Event, b.Event) })
	}
	slices.SortFunc(hs, func(a, b hist) int { return mergeOrder(a.recs[0].Event, b.recs[0].Event) })
	for _, h := range hs {
		fmt.Fprintf(w, "== %s (%s)\n", h.st, count(len(h.recs), "event", "events"))
		for _, r := range h.recs {
			if err := writeHuman(w, r); err != nil {
				return err
			}
		}
	}
	return nil
}

// partyRef is what the ledger says of one party's PUID: the merge state
// of its ref field, and the events that set it.
type partyRef struct {
	state merge.State
	sets  map[uuid.UUID]eventAt
}

// eventAt names an event for an auditor, without holding it.
type eventAt struct {
	position, seq uint64
	origin        uint16
}

func (a eventAt) String() string {
	return fmt.Sprintf("#%d (origin %d seq %d)", a.position, a.origin, a.seq)
}

// patientStreams finds the parties whose PUID is or ever was puid (a PUID
// can lose a merge, and an auditor searches by the one they were given)
// and the records that refer to them, depth steps deep (reference data
// aside), in one pass over the ledger. Each note says of a party found by
// a former PUID what its ref is now.
func patientStreams(ctx context.Context, store ledger.Store, reg *models.Registry, puid string, depth int) (streams []ledger.Stream, notes []string, err error) {
	parties := map[string]*partyRef{}
	referrers := map[ledger.Stream][]ledger.Stream{}
	for after := uint64(0); ; {
		page, err := store.ReadAll(ctx, after, 5000, ledger.Filter{})
		if err != nil {
			return nil, nil, err
		}
		if len(page) == 0 {
			break
		}
		for _, r := range page {
			e := r.Event
			if e.Model == "party.party" {
				p := parties[e.Key]
				if p == nil {
					p = &partyRef{}
					parties[e.Key] = p
				}
				// Only ref matters here: merge a copy that sets nothing else.
				only := *e
				only.Fields, only.Base = nil, nil
				if v, ok := e.Fields["ref"]; ok {
					only.Fields = map[string]ledger.Value{"ref": v}
					if b, ok := e.Base["ref"]; ok {
						only.Base = map[string]clocks.Timestamp{"ref": b}
					}
					if p.sets == nil {
						p.sets = map[uuid.UUID]eventAt{}
					}
					p.sets[e.ID] = eventAt{r.Position, e.OriginSeq, e.Origin}
				}
				p.state.Apply(&only)
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
	var policy merge.Policy
	if m, ok := reg.Lookup("party.party"); ok {
		policy = m.Policy
	}
	// The parties that have the PUID now are the patient; those that only
	// had it are, when none has it now (as central's new --patient finds
	// them). A PUID reused after a correction must not show two people's
	// records as one: former holders beside a current one are named only.
	var current, former []ledger.Stream
	var formerNotes []string
	for _, key := range slices.Sorted(maps.Keys(parties)) {
		p := parties[key]
		var was []eventAt // the events that set ref to puid
		for _, w := range p.state.Fields["ref"] {
			if s, ok := w.Value.AsString(); ok && s == puid {
				was = append(was, p.sets[w.Stamp.ID])
			}
		}
		if len(was) == 0 {
			continue
		}
		st := ledger.Stream{Model: "party.party", Key: key}
		now, ok := p.state.Value(policy, "ref")
		if s, _ := now.Value.AsString(); ok && s == puid {
			current = append(current, st)
			continue
		}
		former = append(former, st)
		formerNotes = append(formerNotes, refNote(st, puid, was, now, ok, p.sets))
	}
	level := current
	if len(current) == 0 {
		level, notes = former, formerNotes
	} else {
		for i, st := range former {
			notes = append(notes, formerNotes[i]+fmt.Sprintf(" (not shown: ghsync history %s %s)", st.Model, st.Key))
		}
	}
	if len(level) == 0 {
		return nil, nil, fmt.Errorf("history: no party has or had PUID %q in this ledger", puid)
	}
	seen := map[ledger.Stream]bool{}
	for _, st := range level {
		seen[st] = true
	}
	for d := 0; d <= depth && len(level) > 0; d++ {
		streams = append(streams, level...)
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
	return streams, notes, nil
}

// refNote says that party st was found by a former PUID: the events that
// set it, and the ref that won instead.
func refNote(st ledger.Stream, puid string, was []eventAt, now merge.Write, ok bool, sets map[uuid.UUID]eventAt) string {
	at := make([]string, len(was))
	for i, a := range was {
		at[i] = a.String()
	}
	current := "unset"
	if ok {
		current = now.Value.String()
		if a, held := sets[now.Stamp.ID]; held {
			current += ", set by event " + a.String()
		}
	}
	events := "event"
	if len(was) > 1 {
		events = "events"
	}
	return fmt.Sprintf("note: %s: ref was %q in %s %s, now %s", st, puid, events, strings.Join(at, ", "), current)
}
