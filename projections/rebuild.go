package projections

import (
	"context"
	"fmt"
	"slices"

	"github.com/ghsync/ghsync/models"
)

// Rebuild throws the materialised state away (the rows ghsync projected,
// merge states, parked records, conflicts, rejects, the checkpoint) and
// replays the whole ledger. Rows get their old local ids back, so other
// Tryton tables that point at them stay valid. The result equals what
// incremental projection built; the tests hold it to that. Until the
// replay is over, other projectors on the target refuse to write
// (ErrRebuilding); a rebuild that was stopped is finished by running it
// again, and rows still get their old ids.
func (p *Projector) Rebuild(ctx context.Context) (Stats, error) {
	if err := p.held(ctx); err != nil {
		return Stats{}, fmt.Errorf("rebuild: %w", err)
	}
	if err := p.reset(ctx); err != nil {
		return Stats{}, fmt.Errorf("rebuild: %w", err)
	}
	p.rebuilding = true
	defer func() { p.rebuilding = false }()
	st, err := p.CatchUp(ctx)
	if err != nil {
		return st, fmt.Errorf("rebuild: %w", err)
	}
	tx, err := p.d.beginProjection(ctx)
	if err != nil {
		return st, fmt.Errorf("rebuild: %w", err)
	}
	defer tx.rollback(ctx)
	s := p.d.schemaPrefix()
	tx.queue(`DELETE FROM ` + s + `idmap_prior`)
	tx.queue(`DELETE FROM ` + s + `proj_meta WHERE name = '` + rebuildMark + `'`)
	if err := tx.commitIf(ctx, ""); err != nil {
		return st, fmt.Errorf("rebuild: end the replay: %w", err)
	}
	return st, nil
}

// reset empties the target for a replay and marks it as being rebuilt.
// Found marked already (a rebuild stopped half way, or one running), it
// keeps the old ids idmap_prior holds: the records table then has only
// those of the records replayed so far.
func (p *Projector) reset(ctx context.Context) error {
	p.cache.reset()
	tx, err := p.d.beginProjection(ctx)
	if err != nil {
		return err
	}
	defer tx.rollback(ctx)
	b := newBatch(p, tx, nil)
	if err := b.loadLocal(ctx); err != nil {
		return err
	}
	if len(b.pending) > 0 {
		// Rebuilding would delete rows whose local edits the capturer has
		// not yet turned into events.
		return fmt.Errorf("the capture outbox holds changes to %d tables not yet in the ledger, or capture holds some back: run ghsync capture drain first (ghsync capture status lists held records)", len(b.pending))
	}
	s := p.d.schemaPrefix()
	var marked int64
	if err := scanOne(ctx, tx, []any{&marked}, `SELECT count(*) FROM `+s+`proj_meta WHERE name = '`+rebuildMark+`'`); err != nil {
		return err
	}
	if marked > 0 {
		p.log.Info("the target was being rebuilt already: finishing that rebuild, rows keep the ids they had before it")
	} else {
		tx.queue(`DELETE FROM ` + s + `idmap_prior`)
	}
	tx.queue(`INSERT INTO ` + s + `idmap_prior (model, key, local_id) SELECT model, key, local_id FROM ` + s + `records WHERE local_id IS NOT NULL
		ON CONFLICT (model, key) DO NOTHING`)
	tx.queue(`INSERT INTO ` + s + `proj_meta (name, value) VALUES ('` + rebuildMark + `', 1) ON CONFLICT (name) DO NOTHING`)
	ms := slices.Clone(p.reg.Models())
	slices.Reverse(ms) // referrers first
	for _, m := range ms {
		if !p.hasTable(m.Table) {
			continue
		}
		owned := `(SELECT local_id FROM ` + s + `records WHERE model = ? AND local_id IS NOT NULL)`
		for _, f := range m.Fields {
			if f.Type == models.Many2Many && p.hasField(m, &f) {
				tx.queue(`DELETE FROM `+quoteIdent(f.Relation.Table)+` WHERE `+quoteIdent(f.Relation.OriginColumn)+` IN `+owned, m.Name)
			}
		}
		tx.queue(`DELETE FROM `+quoteIdent(m.Table)+` WHERE id IN `+owned, m.Name)
	}
	for _, t := range []string{"records", "parked", "conflicts", "rejected", "deferred", "alias", "clock_bounds"} {
		tx.queue(`DELETE FROM ` + s + t)
	}
	tx.queue(`UPDATE `+s+`checkpoint SET position = 0 WHERE name = ?`, p.opts.Name)
	tx.queue(`DELETE FROM `+s+`checkpoint_event WHERE name = ?`, p.opts.Name)
	if err := tx.flush(ctx); err != nil {
		return err
	}
	return tx.commit(ctx)
}
