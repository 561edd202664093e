package projections

import (
	"context"
	"fmt"

	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/models"
)

// pgSplit is a projection transaction in two halves, so the next batch can
// be prepared while the previous one commits: reads run at once on the
// pool (outside any transaction and the projection lock: the batch's
// overlay, see pipeline.go, supplies what the committing batch changed),
// writes are kept and sent, in one transaction under the lock, by
// commitIf.
type pgSplit struct {
	d      *pgDialect
	writes pgBatch
	roles  roles
}

func (d *pgDialect) beginSplit() dtx {
	return &pgSplit{d: d, roles: roles{skip: d.replica}}
}

func (t *pgSplit) query(ctx context.Context, q string, args ...any) (rowIter, error) {
	rows, err := t.d.pool.Query(ctx, dollarize(q), args...)
	if err != nil {
		return nil, err
	}
	return pgRows{rows}, nil
}

func (t *pgSplit) exec(ctx context.Context, q string, args ...any) error {
	return fmt.Errorf("split projection transaction cannot run %q at once", q)
}

func (t *pgSplit) queue(q string, args ...any) { t.writes.queue(dollarize(q), args...) }
func (t *pgSplit) queueOp(o *op)               { t.roles.queueOp(&t.writes, o) }

// flush keeps the writes: they are sent by commitIf.
func (t *pgSplit) flush(context.Context) error { return nil }

func (t *pgSplit) loadStates(ctx context.Context, keys []recKey) (map[recKey]stored, error) {
	return loadStates(ctx, t.d.pool, keys)
}

func (t *pgSplit) referrers(ctx context.Context, model, table, column string, ids []int64) ([]referrer, error) {
	return referrers(ctx, t.d.pool, model, table, column, ids)
}

func (t *pgSplit) loadIDs(ctx context.Context, table string, keys []recKey) (map[recKey]int64, error) {
	return loadIDs(ctx, t.d.pool, table, keys)
}

func (t *pgSplit) parkedOn(ctx context.Context, targets []recKey, arrivals bool) ([]recKey, error) {
	return parkedOn(ctx, t.d.pool, targets, arrivals)
}

func (t *pgSplit) reserveIDs(ctx context.Context, table string, n int) ([]int64, error) {
	return reserveIDs(ctx, t.d.pool, table, n)
}

func (t *pgSplit) arg(v ledger.Value, _ *models.Field) any { return native(v) }

func (t *pgSplit) commit(ctx context.Context) error { return t.commitIf(ctx, "") }
func (t *pgSplit) rollback(context.Context) error {
	t.writes, t.roles.replica = pgBatch{}, false
	return nil
}

// commitIf takes the projection lock and runs cond (if any), in one round
// trip; unless cond changed exactly one row, it rolls back with errMoved,
// nothing written. Then it sends the kept writes and commits. cond goes
// first so that a batch prepared against a state another projector has
// changed since is not sent at all: its writes could fail on the rows
// the other one wrote (a unique key inserted twice) before a guard at the
// end would say why.
func (t *pgSplit) commitIf(ctx context.Context, cond string, args ...any) error {
	w := t.writes
	t.writes, t.roles.replica = pgBatch{}, false
	tx, err := t.d.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	var turn pgBatch
	turn.queue(lockedSettings)
	if cond != "" {
		turn.queue(dollarize(cond), args...)
	}
	conn := tx.Conn().PgConn()
	last, err := turn.send(ctx, conn)
	if err != nil {
		return err
	}
	if cond != "" && last.RowsAffected() != 1 {
		return errMoved
	}
	if _, err := w.send(ctx, conn); err != nil {
		return err
	}
	return tx.Commit(ctx)
}
