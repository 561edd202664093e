package capture

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/ghsync/ghsync/models"
)

// SnapshotProgress reports a snapshot's advance, table by table.
type SnapshotProgress struct {
	Model  string
	Rows   int // rows of this model turned into events so far
	Events int // events appended so far, all models
}

// Snapshot turns the rows already in the database into create events, for
// an instance that had data before it joined the network. It reads one
// consistent snapshot (a REPEATABLE READ, read-only transaction on
// PostgreSQL; one read transaction on SQLite), model by model in
// dependency order and in chunks of BatchSize rows by id, and commits
// each chunk on its own (events, id map), so it never holds locks that
// block the clinic's users. Rows that already have a network identity
// (captured, projected, or snapshotted by an earlier, interrupted run) are
// skipped: running it again resumes where it stopped. Changes made while
// it runs reach the outbox; Drain them afterwards.
func (c *Capturer) Snapshot(ctx context.Context, progress func(SnapshotProgress)) (Stats, error) {
	var st Stats
	if err := c.finishHandoff(ctx, true); err != nil {
		return st, err
	}
	rd, err := c.d.snapshotReader(ctx)
	if err != nil {
		return st, err
	}
	defer rd.close()
	for _, m := range c.reg.Models() {
		if _, ok := c.tables[m.Table]; !ok {
			continue // not installed here
		}
		rows := 0
		after := int64(-1)
		for {
			chs, err := c.snapshotChunk(ctx, rd.tx, m, after)
			if err != nil {
				return st, fmt.Errorf("snapshot %s after id %d: %w", m.Name, after, err)
			}
			if len(chs) == 0 {
				break
			}
			after = chs[len(chs)-1].id
			n, err := c.commit(ctx, chs, false)
			if err != nil {
				return st, fmt.Errorf("snapshot %s ids %d..%d: %w", m.Name, chs[0].id, after, err)
			}
			rows += len(chs)
			st.Changes += len(chs)
			st.Events += n
			st.Batches++
			if progress != nil {
				progress(SnapshotProgress{Model: m.Name, Rows: rows, Events: st.Events})
			}
		}
	}
	return st, nil
}

// snapshotChunk reads the next rows of m without a network identity as
// insert changes.
func (c *Capturer) snapshotChunk(ctx context.Context, tx *sql.Tx, m *models.Model, after int64) ([]change, error) {
	img := `to_jsonb(t)::text`
	if c.d.dialect == models.SQLite {
		cols, err := c.d.columns(ctx, tx, m.Table)
		if err != nil {
			return nil, err
		}
		img = sqliteObject(cols, "t")
	}
	q := c.d.q(`SELECT t.id, t.create_uid, ` + img + ` FROM ` + quoteIdent(m.Table) + ` t
		WHERE t.id > ? AND NOT EXISTS (SELECT 1 FROM ` + c.d.t("records") + ` i WHERE i.model = ? AND i.local_id = t.id)
		ORDER BY t.id LIMIT ?`)
	rows, err := tx.QueryContext(ctx, q, after, m.Name, c.opts.BatchSize)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []change
	now := time.Now()
	for rows.Next() {
		ch := change{op: "I", table: m.Table, at: now, whole: true}
		var raw string
		if err := rows.Scan(&ch.id, &ch.uid, &raw); err != nil {
			return nil, err
		}
		if ch.new, err = parseRow([]byte(raw)); err != nil {
			return nil, fmt.Errorf("id %d: %w", ch.id, err)
		}
		// The change happened when the row was last written, as far as
		// this database knows.
		for _, col := range []string{"write_date", "create_date"} {
			if s, ok := ch.new.str(col); ok {
				if t, err := parseTimestamp(s); err == nil {
					ch.at = t
					break
				}
			}
		}
		out = append(out, ch)
	}
	return out, rows.Err()
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
