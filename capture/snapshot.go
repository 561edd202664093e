package capture

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/ghsync/ghsync/models"
)

// SnapshotProgress reports a reconcile's advance, table by table.
type SnapshotProgress struct {
	Model  string
	Rows   int // rows of this model read so far
	Events int // events appended so far, all models
}

// Snapshot is Reconcile, under the name it had when it only turned rows
// the network had never seen into create events.
func (c *Capturer) Snapshot(ctx context.Context, progress func(SnapshotProgress)) (Stats, error) {
	rs, err := c.Reconcile(ctx, progress)
	return rs.Stats, err
}

// reader is a read-only snapshot transaction on a connection of its own.
type reader struct {
	tx    *sql.Tx
	close func()
}

func (d *db) snapshotReader(ctx context.Context) (*reader, error) {
	if d.dialect == models.Postgres {
		tx, err := d.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
		if err != nil {
			return nil, fmt.Errorf("begin snapshot: %w", err)
		}
		return &reader{tx: tx, close: func() { tx.Rollback() }}, nil
	}
	// A deferred (not IMMEDIATE) transaction reads one WAL snapshot and
	// takes no write lock, so Tryton keeps writing meanwhile.
	rdb, err := sql.Open("sqlite", "file:"+d.path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_txlock=deferred")
	if err != nil {
		return nil, err
	}
	tx, err := rdb.BeginTx(ctx, nil)
	if err != nil {
		rdb.Close()
		return nil, fmt.Errorf("begin snapshot: %w", err)
	}
	// The snapshot starts at the first read; take it now.
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master`).Scan(&n); err != nil {
		tx.Rollback()
		rdb.Close()
		return nil, err
	}
	return &reader{tx: tx, close: func() { tx.Rollback(); rdb.Close() }}, nil
}
