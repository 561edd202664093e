package central

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/wire"
)

// DefaultNewDepth is how many steps of "records referencing it" /v1/new
// follows from its root: party ← patient ← evaluation ← its lines.
const DefaultNewDepth = 4

// newGraph handles POST /v1/new: it finds a record graph (a patient's
// party and everything about it), adds it to the caller's held set, and
// returns the full history of every record in it as pull frames.
func (s *Server) newGraph(w http.ResponseWriter, r *http.Request, sat Satellite) {
	ctx := r.Context()
	var req wire.NewRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		s.refuse(w, r, &sat, http.StatusBadRequest, fmt.Errorf("new: request body: %w", err), nil)
		return
	}
	if err := req.Validate(); err != nil {
		s.refuse(w, r, &sat, http.StatusBadRequest, fmt.Errorf("new: %w", err), nil)
		return
	}
	if err := s.CatchUpIndex(ctx); err != nil {
		s.refuse(w, r, &sat, http.StatusServiceUnavailable, err, nil)
		return
	}
	root := ledger.Stream{Model: req.Model, Key: req.Key}
	note := ""
	if req.Patient != "" {
		parties, err := s.cfg.Registry.PartiesByPUID(ctx, req.Patient)
		if err == nil && len(parties) == 0 {
			// No party has it now: one may have had it (a duplicate
			// registration whose PUID lost the merge, a corrected card).
			parties, err = s.cfg.Registry.PartiesOnceByPUID(ctx, req.Patient)
			note = fmt.Sprintf("PUID %q is no longer this patient's current one (it lost a merge or was corrected); the record is the party that had it", req.Patient)
		}
		switch {
		case err != nil:
			s.refuse(w, r, &sat, http.StatusServiceUnavailable, err, nil)
			return
		case len(parties) == 0:
			s.refuse(w, r, &sat, http.StatusNotFound, fmt.Errorf("no party has or had PUID (ref) %q at central", req.Patient), nil)
			return
		case len(parties) > 1:
			s.refuse(w, r, &sat, http.StatusConflict, fmt.Errorf("PUID %q belongs or belonged to %d parties (%s): ask for one by model and key",
				req.Patient, len(parties), strings.Join(parties, ", ")), nil)
			return
		}
		root = ledger.Stream{Model: "party.party", Key: parties[0]}
	} else if err := ledger.ValidateModel(root.Model); err != nil {
		s.refuse(w, r, &sat, http.StatusBadRequest, fmt.Errorf("new: %w", err), nil)
		return
	}
	depth := req.Depth
	if depth == 0 {
		depth = DefaultNewDepth
	}
	indexed, err := s.cfg.Registry.IndexPosition(ctx)
	if err != nil {
		s.refuse(w, r, &sat, http.StatusServiceUnavailable, fmt.Errorf("reference index: %w", err), nil)
		return
	}
	graph, err := s.Graph(ctx, root, depth)
	if errors.Is(err, errGraphTooLarge) {
		s.refuse(w, r, &sat, http.StatusRequestEntityTooLarge, err, nil)
		return
	}
	if err != nil {
		s.refuse(w, r, &sat, http.StatusServiceUnavailable, err, nil)
		return
	}
	// Histories first, before anything is held: a refusal (no such
	// record, too large) leaves the held set as it was.
	before, err := s.cfg.Store.Head(ctx)
	if err != nil {
		s.refuse(w, r, &sat, http.StatusServiceUnavailable, fmt.Errorf("read head: %w", err), nil)
		return
	}
	items, rootEvents, err := s.histories(ctx, graph, root, before, s.cfg.MaxNewBytes)
	if errors.Is(err, errGraphTooLarge) {
		s.refuse(w, r, &sat, http.StatusRequestEntityTooLarge, fmt.Errorf("new: the graph of %s holds more than %d bytes of events: ask with a smaller depth", root, s.cfg.MaxNewBytes), nil)
		return
	}
	if err != nil {
		s.refuse(w, r, &sat, http.StatusServiceUnavailable, err, nil)
		return
	}
	if rootEvents == 0 {
		s.refuse(w, r, &sat, http.StatusNotFound, fmt.Errorf("new: central holds no record %s", root), nil)
		return
	}
	// Then the hold, and what was appended while this ran: from head on,
	// pulls send the graph's events; up to head, this answer does.
	known := len(graph)
	graph, head, err := s.holdGraph(ctx, sat.ID, root, depth, graph, indexed)
	if err != nil {
		s.refuse(w, r, &sat, http.StatusServiceUnavailable, err, nil)
		return
	}
	late, _, err := s.histories(ctx, graph[known:], root, before, -1)
	if err != nil {
		s.refuse(w, r, &sat, http.StatusServiceUnavailable, err, nil)
		return
	}
	since, err := s.appendedTo(ctx, graph, before, head)
	if err != nil {
		s.refuse(w, r, &sat, http.StatusServiceUnavailable, err, nil)
		return
	}
	items = append(append(items, late...), since...)
	slices.SortFunc(items, func(a, b item) int { return cmp.Compare(a.pos, b.pos) })
	items = slices.CompactFunc(items, func(a, b item) bool { return a.pos == b.pos })
	s.log.Info("new", "satellite", sat.ID, "root", root.String(), "streams", len(graph), "events", len(items))
	h := w.Header()
	h.Set("Content-Type", wire.ContentType)
	h.Set("Cache-Control", "no-store")
	h.Set(wire.HeaderHead, strconv.FormatUint(head, 10))
	h.Set(wire.HeaderStreams, strconv.Itoa(len(graph)))
	h.Set(wire.HeaderRoot, root.String())
	if note != "" {
		h.Set(wire.HeaderNote, note)
	}
	if err := writeFrames(w, r, items); err != nil {
		s.log.Warn("new response cut", "satellite", sat.ID, "error", err)
	}
}

var errGraphTooLarge = errors.New("record graph too large")

// Graph computes the record graph of root from the reference index: root,
// then up to depth steps of records referencing a member (a party's
// patient, addresses and contact mechanisms; the patient's appointments
// and evaluations; their lines), never stepping back from a shared record
// (master or reference data, a doctor, a ward); then every record those
// point at, transitively (institution, pathology, doctor and the doctor's
// party), as targets that do not pull in their own referrers. Reference
// data is left out: every instance has it. Root comes first. The members
// are returned as held-set entries (Join 0: the caller delivers their
// histories itself).
func (s *Server) Graph(ctx context.Context, root ledger.Stream, depth int) ([]HeldStream, error) {
	reg := s.cfg.Registry
	member := map[ledger.Stream]int{root: 0}
	out := []HeldStream{{Stream: root, Expand: true}}
	add := func(st ledger.Stream, expand bool) bool {
		if _, ok := member[st]; ok || s.reference(st.Model) {
			return false
		}
		member[st] = len(out)
		out = append(out, HeldStream{Stream: st, Expand: expand})
		return true
	}
	frontier := []ledger.Stream{root}
	for d := 0; d < depth && len(frontier) > 0; d++ {
		edges, err := reg.Referrers(ctx, frontier)
		if err != nil {
			return nil, err
		}
		slices.SortFunc(edges, compareEdges)
		var next []ledger.Stream
		for _, e := range edges {
			if add(e.From, !s.hub(e.From.Model)) && out[member[e.From]].Expand {
				next = append(next, e.From)
			}
		}
		if len(out) > s.cfg.MaxNewStreams {
			return nil, fmt.Errorf("%w: more than %d records within depth %d of %s", errGraphTooLarge, s.cfg.MaxNewStreams, depth, root)
		}
		frontier = next
	}
	frontier = make([]ledger.Stream, len(out))
	for i, h := range out {
		frontier[i] = h.Stream
	}
	for len(frontier) > 0 {
		edges, err := reg.Targets(ctx, frontier)
		if err != nil {
			return nil, err
		}
		slices.SortFunc(edges, compareEdges)
		var next []ledger.Stream
		for _, e := range edges {
			if add(e.To, false) {
				next = append(next, e.To)
			}
		}
		if len(out) > s.cfg.MaxNewStreams {
			return nil, fmt.Errorf("%w: more than %d records in the graph of %s", errGraphTooLarge, s.cfg.MaxNewStreams, root)
		}
		frontier = next
	}
	return out, nil
}

func compareEdges(a, b Edge) int {
	return cmp.Or(cmp.Compare(a.From.Model, b.From.Model), cmp.Compare(a.From.Key, b.From.Key),
		cmp.Compare(a.To.Model, b.To.Model), cmp.Compare(a.To.Key, b.To.Key))
}

// CatchUpIndex brings the reference index (edges between records, and
// each party's latest PUID) up to central's ledger head. It reads only
// what was appended since the last call, whoever appended it (pushes,
// central's own capture, a release), so /v1/new never scans the ledger.
func (s *Server) CatchUpIndex(ctx context.Context) error {
	s.indexMu.Lock()
	defer s.indexMu.Unlock()
	return catchUpIndex(ctx, s.cfg.Store, s.cfg.Registry)
}

func catchUpIndex(ctx context.Context, store ledger.Store, reg Registry) error {
	from, err := reg.IndexPosition(ctx)
	if err != nil {
		return fmt.Errorf("reference index: %w", err)
	}
	for {
		recs, err := store.ReadAll(ctx, from, 2*ledger.DefaultPageSize, ledger.Filter{})
		if err != nil {
			return fmt.Errorf("reference index: read after %d: %w", from, err)
		}
		if len(recs) == 0 {
			return nil
		}
		var edges []Edge
		var puids []PUID
		for _, rec := range recs {
			e := rec.Event
			for _, t := range refs(e) {
				edges = append(edges, Edge{From: e.Stream(), To: t})
			}
			if e.Model != "party.party" {
				continue
			}
			p := PUID{Party: e.Key, HLC: e.HLC, Origin: e.Origin, ID: e.ID}
			if e.Op == ledger.OpDelete {
				puids = append(puids, p)
			} else if v, ok := e.Fields["ref"]; ok {
				p.Ref, _ = v.AsString()
				puids = append(puids, p)
			}
		}
		through := recs[len(recs)-1].Position
		err = reg.AddToIndex(ctx, from, through, edges, puids)
		if errors.Is(err, ErrIndexMoved) { // another process indexed meanwhile
			if from, err = reg.IndexPosition(ctx); err != nil {
				return fmt.Errorf("reference index: %w", err)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("reference index: %w", err)
		}
		from = through
	}
}
