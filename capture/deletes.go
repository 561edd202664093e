package capture

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/ghsync/ghsync/clocks"
	"github.com/ghsync/ghsync/ledger"
)

// A create of a natural key names the latest delete of the key its writer
// saw (merge.Revives), or it loses to that delete and the projector takes
// the user's new row away. The merged state shows the deletes the
// projector applied; the ones this instance captured since are in the
// ledger (or in the batch appended meanwhile) but not yet in the state: a
// party deleted and registered again under its code between two
// projections. The capturer keeps those in memory: read once from the
// ledger (this origin's deletes after the projector's checkpoint), added
// to as batches are appended, dropped once the projector has applied
// them. Only this capturer stamps the origin's deletes (bindOrigin; at
// central the server stamps clock bounds alone), so nothing else adds
// to them.

// ownDelete is a delete this instance captured: its HLC, and a ledger
// position at or after it (the projector has applied it once its
// checkpoint reaches pos).
type ownDelete struct {
	hlc clocks.Timestamp
	pos uint64
}

// unappliedDeletes returns this origin's deletes the projector may not
// have applied yet, the latest per record.
func (c *Capturer) unappliedDeletes(ctx context.Context) (map[recKeyOf]ownDelete, error) {
	cp, err := c.projectedThrough(ctx)
	if err != nil {
		return nil, err
	}
	if c.deletes == nil {
		c.deletes = map[recKeyOf]ownDelete{}
		for after := cp; ; {
			recs, err := c.store.ReadAll(ctx, after, ledger.DefaultPageSize, ledger.Filter{Origins: []uint16{c.opts.Origin}})
			if err != nil {
				return nil, fmt.Errorf("read origin %d's deletes after position %d: %w", c.opts.Origin, after, err)
			}
			if len(recs) == 0 {
				break
			}
			for _, r := range recs {
				if r.Event.Op == ledger.OpDelete {
					c.noteDelete(recKeyOf{r.Event.Model, r.Event.Key}, r.Event.HLC, r.Position)
				}
			}
			after = recs[len(recs)-1].Position
		}
	}
	for k, d := range c.deletes {
		if d.pos <= cp {
			delete(c.deletes, k)
		}
	}
	return c.deletes, nil
}

// noteDelete remembers a delete of k at hlc, held at or before pos.
func (c *Capturer) noteDelete(k recKeyOf, hlc clocks.Timestamp, pos uint64) {
	if d, ok := c.deletes[k]; !ok || hlc > d.hlc {
		c.deletes[k] = ownDelete{hlc, pos}
	}
}

// appendedDeletes notes the deletes of a batch just appended. If the
// ledger's head cannot be read, everything is read again from the ledger
// when next needed.
func (c *Capturer) appendedDeletes(ctx context.Context, events []*ledger.Event) {
	if c.deletes == nil {
		return // not read yet: the first read finds them in the ledger
	}
	var head uint64
	for _, e := range events {
		if e.Op != ledger.OpDelete {
			continue
		}
		if head == 0 {
			var err error
			if head, err = c.store.Head(ctx); err != nil {
				c.deletes = nil
				return
			}
		}
		c.noteDelete(recKeyOf{e.Model, e.Key}, e.HLC, head)
	}
}

// projectedThrough is the ledger position every projector of this
// database has applied (the least checkpoint), 0 before any has run.
func (c *Capturer) projectedThrough(ctx context.Context) (uint64, error) {
	var cp sql.NullInt64
	if err := c.d.QueryRowContext(ctx, `SELECT min(position) FROM `+c.d.t("checkpoint")).Scan(&cp); err != nil {
		return 0, fmt.Errorf("read the projector's checkpoint: %w", err)
	}
	return uint64(max(cp.Int64, 0)), nil
}
