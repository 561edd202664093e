package projections

import (
	"context"
	"errors"
	"fmt"

	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/models"
)

// errMoved says a pipelined batch found the checkpoints other than its
// preparation assumed (the batch before it failed, or another projector
// committed in between): it was rolled back and must be prepared again.
var errMoved = errors.New("projection checkpoints moved while the batch was prepared")

// pgSplit is a projection transaction in two halves, so the next batch can
// be prepared while the previous one commits: reads run at once on the
// pool (outside any transaction: the batch's overlay, see pipeline.go,
// supplies what the committing batch changed), writes are kept and sent,
// in one transaction, by commitIf.
type pgSplit struct {
	d      *pgDialect
	writes pgBatch
	roles  roles
}

func (d *pgDialect) beginSplit() splitTx {
	t := &pgSplit{d: d, roles: roles{skip: d.replica}}
	t.writes.queue(txSettings)
	return t
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

func (t *pgSplit) loadIDs(ctx context.Context, table string, keys []recKey) (map[recKey]int64, error) {
	return loadIDs(ctx, t.d.pool, table, keys)
}

func (t *pgSplit) parkedOn(ctx context.Context, targets []recKey) ([]recKey, error) {
	return parkedOn(ctx, t.d.pool, targets)
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

// commitIf sends the kept writes in one transaction, then cond (if any),
// which must change exactly one row; otherwise it rolls back with errMoved.
func (t *pgSplit) commitIf(ctx context.Context, cond string, args ...any) error {
	tx, err := t.d.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	w := t.writes
	t.writes, t.roles.replica = pgBatch{}, false
	if cond != "" {
		w.queue(dollarize(cond), args...)
	}
	last, err := w.send(ctx, tx.Conn().PgConn())
	if err != nil {
		return err
	}
	if cond != "" && last.RowsAffected() != 1 {
		return errMoved
	}
	return tx.Commit(ctx)
}
