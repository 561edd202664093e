package projections

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/ghsync/ghsync/ledger"
)

// Pipelining: on PostgreSQL the projector prepares batch N+1 (reads,
// merge, the rows to write) while batch N commits on another connection,
// so the server's work on one batch overlaps the projector's on the next
// instead of the two taking turns. At most one batch is in flight.
//
// Batch N+1's reads run outside N's transaction and may or may not see
// N's writes, so everything N wrote that a batch reads comes from N's
// carry instead: merge states, id map entries, parked entries, and the
// small tables a batch reads whole (alias, clock bounds, deferred). Keys
// N did not touch read the same before and after N commits. N+1's writes
// are sent only once N has committed, in a transaction that first takes
// the projection lock and moves the checkpoint, guarded: its own must
// still be N's end, the other projectors' sum what N+1's preparation
// assumed and no rebuild under way, else it rolls back (errMoved) before
// writing anything and the catch-up goes on batch by batch
// (concurrency.go). If N fails, N+1 is dropped unsent.

// carry is what a batch leaves for the one prepared while it commits.
type carry struct {
	recs     map[recKey]*record  // every record it loaded or changed, as it left them
	ids      map[recKey]int64    // id map entries of the keys it looked at...
	looked   map[recKey]bool     // ...which these are
	rebooked map[recKey]bool     // records whose parked entries it rewrote...
	parked   map[recKey][]recKey // ...and what they wait for now, by target
	alias    map[recKey]string   // whole tables, as it left them
	bounds   []ledger.ClockBound
	deferred map[recKey]bool
	placed   map[recKey]recKey // see batch.placed
}

func (b *batch) carry() *carry {
	c := &carry{recs: b.recs, ids: b.ids, looked: b.looked, rebooked: b.rebooked, parked: map[recKey][]recKey{},
		alias: maps.Clone(b.alias), bounds: slices.Clone(b.bounds), deferred: maps.Clone(b.deferred), placed: b.placed}
	for r, targets := range b.waits {
		for _, t := range targets {
			c.parked[t] = append(c.parked[t], r)
		}
	}
	return c
}

// record is k's record as the carrying batch left it, if it had it.
func (c *carry) record(k recKey) (*record, bool) {
	if c == nil {
		return nil, false
	}
	r, ok := c.recs[k]
	return r, ok
}

// id is k's local id as the carrying batch left it; known says it knew.
func (c *carry) id(k recKey) (id int64, has, known bool) {
	if c == nil || !c.looked[k] {
		return 0, false, false
	}
	id, has = c.ids[k]
	return id, has, true
}

// parkedOn returns the records parked waiting for any of keys, besides
// those this batch parked itself (b.parked): stored entries of records
// this batch or the carrying one parked again are stale (those batches'
// writes may not be visible to the read), their entries now are known.
// With arrivals, the carrying batch's entries, whose reasons are not
// known here, are left out: see dialect.parkedOn.
func (b *batch) parkedOn(ctx context.Context, keys []recKey, arrivals bool) ([]recKey, error) {
	found, err := b.tx.parkedOn(ctx, keys, arrivals)
	if err != nil {
		return nil, err
	}
	prev := b.prev
	if prev == nil {
		prev = &carry{}
	}
	out := slices.DeleteFunc(found, func(r recKey) bool { return b.rebooked[r] || prev.rebooked[r] })
	for _, t := range keys {
		for _, r := range prev.parked[t] {
			if !b.rebooked[r] && !arrivals {
				out = append(out, r)
			}
		}
	}
	return out, nil
}

// catchUpPipelined is CatchUp on a splitter: see the top of this file.
func (p *Projector) catchUpPipelined(ctx context.Context, sp splitter, st *Stats) error {
	from := st.Checkpoint // where the next page's events follow on
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pages := p.readAhead(ctx, st.Checkpoint)
	type flight struct {
		done     chan error
		recs     []ledger.Record
		rejected int
	}
	var inflight *flight
	// land waits for the batch in flight and counts it.
	land := func() error {
		if inflight == nil {
			return nil
		}
		f := inflight
		inflight = nil
		if err := <-f.done; err != nil {
			p.cache.reset()
			if errors.Is(err, errMoved) {
				return err
			}
			return fmt.Errorf("project positions %d..%d: %w", f.recs[0].Position, f.recs[len(f.recs)-1].Position, err)
		}
		st.Events += len(f.recs)
		st.Rejected += f.rejected
		st.Batches++
		st.Checkpoint = f.recs[len(f.recs)-1].Position
		p.log.Debug("batch applied", "events", len(f.recs), "rejected", f.rejected, "checkpoint", st.Checkpoint)
		return nil
	}
	defer func() {
		land() // never leave a commit running behind the caller
		cancel()
	}()
	var prev *carry
	for {
		pg, err := nextPage(ctx, pages)
		if err != nil {
			return err
		}
		if pg.err != nil || len(pg.recs) == 0 {
			if err := land(); err != nil {
				return err
			}
			if pg.err != nil {
				return pg.err
			}
			return p.finish(ctx, st.Checkpoint)
		}
		tx := sp.beginSplit()
		b, rejected, err := p.prepare(ctx, tx, from, pg.recs, prev)
		if err != nil {
			p.cache.reset()
			return err
		}
		last := pg.recs[len(pg.recs)-1].Position
		p.cache.keep(b.recs, last)
		if err := land(); err != nil {
			return err
		}
		others := p.cache.seen - p.cache.own
		guard, args := p.checkpointGuard(from, last, &others)
		from = last
		p.queueCheckpointEvent(tx, pg.recs[len(pg.recs)-1])
		inflight = &flight{done: make(chan error, 1), recs: pg.recs, rejected: rejected}
		go func(done chan<- error) { done <- tx.commitIf(ctx, guard, args...) }(inflight.done)
		prev = b.carry()
	}
}
