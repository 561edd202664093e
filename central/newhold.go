package central

import (
	"context"
	"errors"
	"fmt"

	"github.com/ghsync/ghsync/ledger"
)

// How /v1/new hands a graph over to the satellite's pulls without a gap.
//
// The satellite's pulls may run while new does (`ghsync run` next to
// `ghsync new`). A pull that examines an event before the graph is held
// passes it over and moves the cursor past it, and the graph is held with
// join position 0 (its history is new's to send), so no later pull sends
// it. new therefore holds the graph first, reads the head after the hold,
// and answers for every event up to that head: an event past it was
// appended after the hold took effect, so any pull that reaches it sees
// its stream held (a pull examines events up to a head it read before it
// looks at the held set). The same goes for records that came to refer
// to the graph after the reference index was read (an evaluation written
// meanwhile): the index is caught up past that head and the graph
// computed again; what it gained is held in turn, until it gains nothing.

// holdGraph adds graph (computed from the reference index at position
// indexed or later) to the held set of satellite sat, then grows it with
// the records that came to belong to it while new ran (each held before
// the head is read again). It returns the graph, root first and grown at
// the end, and the head read after the last hold.
func (s *Server) holdGraph(ctx context.Context, sat uint16, root ledger.Stream, depth int, graph []HeldStream, indexed uint64) ([]HeldStream, uint64, error) {
	at := make(map[ledger.Stream]int, len(graph))
	for i, h := range graph {
		at[h.Stream] = i
	}
	add := graph
	for {
		s.locks[sat].Lock()
		err := s.cfg.Registry.Hold(ctx, sat, add)
		s.locks[sat].Unlock()
		if err != nil {
			return nil, 0, err
		}
		head, err := s.cfg.Store.Head(ctx)
		if err != nil {
			return nil, 0, fmt.Errorf("read head: %w", err)
		}
		if err := s.CatchUpIndex(ctx); err != nil { // to head at least
			return nil, 0, err
		}
		pos, err := s.cfg.Registry.IndexPosition(ctx)
		if err != nil {
			return nil, 0, fmt.Errorf("reference index: %w", err)
		}
		if pos == indexed { // nothing indexed since the graph was computed
			return graph, head, nil
		}
		indexed = pos
		again, err := s.Graph(ctx, root, depth)
		if errors.Is(err, errGraphTooLarge) {
			// It grew past the bound while new ran. Refusing now would
			// leave records held whose history was never sent; what is
			// held is answered whole instead.
			s.log.Warn("new: the graph grew past its bound while it was read; answering for the records held", "satellite", sat, "root", root.String(), "error", err)
			return graph, head, nil
		}
		if err != nil {
			return nil, 0, err
		}
		add = nil
		for _, h := range again {
			i, ok := at[h.Stream]
			switch {
			case !ok:
				at[h.Stream] = len(graph)
				graph = append(graph, h)
				add = append(add, h)
			case h.Expand && !graph[i].Expand: // now a referrer, not only a target
				graph[i].Expand = true
				add = append(add, h)
			}
		}
		if len(add) == 0 {
			return graph, head, nil
		}
	}
}

// histories reads the events of streams at positions up to through, in
// stream order, each with its encoding. It counts root's events, and
// fails with errGraphTooLarge once they pass limit bytes (no bound if limit
// is negative).
func (s *Server) histories(ctx context.Context, streams []HeldStream, root ledger.Stream, through uint64, limit int) (items []item, rootEvents int, err error) {
	size := 0
	for _, h := range streams {
		hist, err := s.history(ctx, h.Stream, through+1)
		if err != nil {
			return nil, 0, err
		}
		for _, rec := range hist {
			b, err := rec.Encoded()
			if err != nil {
				return nil, 0, fmt.Errorf("encode position %d: %w", rec.Position, err)
			}
			if size += len(b); limit >= 0 && size > limit {
				return nil, 0, errGraphTooLarge
			}
			items = append(items, item{pos: rec.Position, payload: b})
			if h.Stream == root {
				rootEvents++
			}
		}
	}
	return items, rootEvents, nil
}

// appendedTo reads the events of streams at positions in (after,
// through]: what was appended while new ran, one pass over the ledger
// rather than one read per stream.
func (s *Server) appendedTo(ctx context.Context, streams []HeldStream, after, through uint64) ([]item, error) {
	member := make(map[ledger.Stream]bool, len(streams))
	for _, h := range streams {
		member[h.Stream] = true
	}
	var out []item
	for after < through {
		recs, err := s.cfg.Store.ReadAll(ctx, after, ledger.DefaultPageSize, ledger.Filter{})
		if err != nil {
			return nil, fmt.Errorf("read after %d: %w", after, err)
		}
		if len(recs) == 0 {
			return nil, fmt.Errorf("read after %d: no events, though the head was %d", after, through)
		}
		for _, rec := range recs {
			if rec.Position > through {
				return out, nil
			}
			if !member[rec.Event.Stream()] {
				continue
			}
			b, err := rec.Encoded()
			if err != nil {
				return nil, fmt.Errorf("encode position %d: %w", rec.Position, err)
			}
			out = append(out, item{pos: rec.Position, payload: b})
		}
		after = recs[len(recs)-1].Position
	}
	return out, nil
}
