package projections

import (
	"context"
	"fmt"
	"slices"

	"github.com/ghsync/ghsync/clocks"
	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/merge"
)

// Central's clock bounds (ledger.ClockBound): events of a satellite whose
// clock ran ahead merge as if stamped at central's reading when it
// received them. A bound usually arrives before the events it covers
// (central appends it first); at the satellite that made them it arrives
// after, and the records they touched are merged again from their
// streams, so every replica ends with the same states.

// loadBounds reads the bounds recorded so far.
func (b *batch) loadBounds(ctx context.Context) error {
	if b.prev != nil {
		b.bounds = slices.Clone(b.prev.bounds)
		return nil
	}
	rows, err := b.tx.query(ctx, `SELECT origin, from_seq, to_seq, bound FROM `+b.s+`clock_bounds`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var cb ledger.ClockBound
		var from, to, bound int64
		if err := rows.Scan(&cb.Origin, &from, &to, &bound); err != nil {
			return err
		}
		cb.FromSeq, cb.ToSeq, cb.Bound = uint64(from), uint64(to), clocks.Timestamp(bound)
		b.bounds = append(b.bounds, cb)
	}
	return rows.Err()
}

// clamp returns e as it merges: with its HLC lowered to a bound covering
// it, if any.
func (b *batch) clamp(e *ledger.Event) *ledger.Event {
	for _, cb := range b.bounds {
		if cb.Covers(e) && e.HLC > cb.Bound {
			c := *e
			c.HLC = cb.Bound
			return &c
		}
	}
	return e
}

// bound records a clock bound and merges again the records whose events
// it covers and that were merged already; it returns them.
func (b *batch) bound(ctx context.Context, e *ledger.Event) ([]*record, error) {
	cb, err := ledger.ParseClockBound(e)
	if err != nil {
		return nil, err // validate let it through: cannot happen
	}
	b.bounds = append(b.bounds, cb)
	b.tx.queue(`INSERT INTO `+b.s+`clock_bounds (origin, from_seq, to_seq, bound) VALUES (?, ?, ?, ?)
		ON CONFLICT (origin, from_seq) DO NOTHING`, int64(cb.Origin), int64(cb.FromSeq), int64(cb.ToSeq), int64(cb.Bound))
	touched := map[recKey]bool{}
	after := cb.FromSeq - 1
	for after < cb.ToSeq {
		recs, err := b.p.store.ReadOrigin(ctx, cb.Origin, after, min(int(cb.ToSeq-after), 1000))
		if err != nil {
			return nil, fmt.Errorf("read events under clock bound %s: %w", e.Key, err)
		}
		if len(recs) == 0 {
			break // not here yet: they will be clamped as they come
		}
		for _, r := range recs {
			if r.Event.OriginSeq > cb.ToSeq {
				break
			}
			if r.Position < b.last && r.Event.Model != ledger.ClockBoundModel && b.p.validate(r.Event) == nil {
				touched[recKey{r.Event.Model, r.Event.Key}] = true
			}
		}
		after = recs[len(recs)-1].Event.OriginSeq
	}
	var out []*record
	for k := range touched {
		rec, err := b.remerge(ctx, k)
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	return out, nil
}

// remerge rebuilds a record's merge state from its whole stream up to the
// batch's position, with the bounds known now.
func (b *batch) remerge(ctx context.Context, k recKey) (*record, error) {
	if err := b.load(ctx, []recKey{k}); err != nil {
		return nil, err
	}
	rec := b.recs[k]
	if rec.pending {
		rec.before, rec.pending = rec.st.Conflicts(rec.m.Policy), false
	}
	st := &merge.State{}
	after := uint64(0)
	for {
		page, err := b.p.store.ReadStream(ctx, ledger.Stream{Model: k.model, Key: k.key}, after, 1000)
		if err != nil {
			return nil, fmt.Errorf("re-merge %s/%s: %w", k.model, k.key, err)
		}
		if len(page) == 0 {
			break
		}
		for _, r := range page {
			if r.Position <= b.last && b.p.validate(r.Event) == nil {
				st.Apply(b.clamp(r.Event))
			}
		}
		after = page[len(page)-1].Position
	}
	rec.st = st
	return rec, nil
}
