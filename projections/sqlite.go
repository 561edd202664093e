package projections

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	_ "modernc.org/sqlite" // the embedded target

	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/models"
)

type sqliteDialect struct{ db *sql.DB }

// openSQLite opens the database at path once it has at least one of
// tables, which it first looks for read-only: a mistyped path or a
// database that is not GNU Health's is left as it was (not even created).
func openSQLite(ctx context.Context, path string, tables []string) (*sqliteDialect, error) {
	name := strings.NewReplacer("%", "%25", "?", "%3F", "#", "%23").Replace(path)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: no such file: %w", path, ErrNoTables)
	}
	if err := sqliteHasTables(ctx, "file:"+name+"?mode=ro&_pragma=busy_timeout(10000)", tables); err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite", "file:"+name+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)&_txlock=immediate")
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1) // one writer; the projector is its only user
	if _, err := db.ExecContext(ctx, captureOff); err != nil {
		db.Close()
		return nil, err
	}
	return &sqliteDialect{db: db}, nil
}

// sqliteHasTables checks that the database at dsn has one of tables.
func sqliteHasTables(ctx context.Context, dsn string, tables []string) error {
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	var n int
	q := `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN (SELECT value FROM json_each(?))`
	list, _ := json.Marshal(tables)
	if err := db.QueryRowContext(ctx, q, string(list)).Scan(&n); err != nil {
		return fmt.Errorf("look for GNU Health's tables: %w", err)
	}
	return noTables(n, tables)
}

func (d *sqliteDialect) name() string         { return "sqlite" }
func (d *sqliteDialect) schemaPrefix() string { return "ghsync_" }
func (d *sqliteDialect) blobType() string     { return "BLOB" }
func (d *sqliteDialect) close()               { d.db.Close() }
func (d *sqliteDialect) skipsRowChecks() bool { return false }

// text keeps NULL as NULL (hex(NULL) is an empty string). Numbers come as
// the driver reads them: CAST of a REAL keeps 15 digits; normalise reads
// them.
func (d *sqliteDialect) text(col string, t models.Type) string {
	switch t {
	case models.Binary:
		return "CASE WHEN " + col + " IS NOT NULL THEN lower(hex(" + col + ")) END"
	case models.Boolean:
		return boolText(col)
	case models.Float, models.Numeric:
		return col
	}
	return "CAST(" + col + " AS TEXT)"
}

func (d *sqliteDialect) begin(ctx context.Context) (dtx, error) {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	// No echo: capture triggers skip changes while this row exists, and
	// only this transaction sees it (it is removed before commit).
	if _, err := tx.ExecContext(ctx, `INSERT INTO ghsync_capture_off (projector) VALUES (1)`); err != nil {
		tx.Rollback()
		return nil, err
	}
	return &sqliteTx{tx: tx, top: map[string]int64{}}, nil
}

// beginProjection is begin: every transaction begins IMMEDIATE, holding
// the database's write lock, the projection lock on SQLite, from BEGIN.
func (d *sqliteDialect) beginProjection(ctx context.Context) (dtx, error) { return d.begin(ctx) }

type sqliteTx struct {
	tx      *sql.Tx
	pending []stmt
	top     map[string]int64 // ids handed out in this transaction, per table
}

type stmt struct {
	q    string
	args []any
}

type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close() { r.Rows.Close() }

func (t *sqliteTx) query(ctx context.Context, q string, args ...any) (rowIter, error) {
	rows, err := t.tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return sqlRows{rows}, nil
}

func (t *sqliteTx) exec(ctx context.Context, q string, args ...any) error {
	_, err := t.tx.ExecContext(ctx, q, args...)
	return err
}

func (t *sqliteTx) queue(q string, args ...any) { t.pending = append(t.pending, stmt{q, args}) }

// queueOp runs an op row by row through one prepared statement: in-process
// SQLite has no round trips to save.
func (t *sqliteTx) queueOp(o *op) {
	q := o.sqlitePerRow()
	for _, row := range o.rows {
		t.pending = append(t.pending, stmt{q, o.sqliteArgs(row)})
	}
}

// flush runs the queued statements through prepared statements; in-process
// SQLite has no round trips to save.
func (t *sqliteTx) flush(ctx context.Context) error {
	prepared := map[string]*sql.Stmt{}
	defer func() {
		for _, s := range prepared {
			s.Close()
		}
	}()
	for _, s := range t.pending {
		ps, ok := prepared[s.q]
		if !ok {
			var err error
			if ps, err = t.tx.PrepareContext(ctx, s.q); err != nil {
				return err
			}
			prepared[s.q] = ps
		}
		if _, err := ps.ExecContext(ctx, s.args...); err != nil {
			return err
		}
	}
	t.pending = t.pending[:0]
	return nil
}

func (t *sqliteTx) each(ctx context.Context, q string, keys []recKey, fn func(recKey, *sql.Row) error) error {
	ps, err := t.tx.PrepareContext(ctx, q)
	if err != nil {
		return err
	}
	defer ps.Close()
	for _, k := range keys {
		if err := fn(k, ps.QueryRowContext(ctx, k.model, k.key)); err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
	}
	return nil
}

func (t *sqliteTx) loadStates(ctx context.Context, keys []recKey) (map[recKey]stored, error) {
	out := make(map[recKey]stored, len(keys))
	err := t.each(ctx, `SELECT state, local_id FROM ghsync_records WHERE model = ? AND key = ?`, keys, func(k recKey, r *sql.Row) error {
		var s stored
		var id sql.NullInt64
		if err := r.Scan(&s.state, &id); err != nil {
			return err
		}
		s.id, s.hasID = id.Int64, id.Valid
		out[k] = s
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load merge states: %w", err)
	}
	return out, nil
}

func (t *sqliteTx) loadIDs(ctx context.Context, table string, keys []recKey) (map[recKey]int64, error) {
	out := make(map[recKey]int64, len(keys))
	err := t.each(ctx, `SELECT local_id FROM ghsync_`+table+` WHERE model = ? AND key = ? AND local_id IS NOT NULL`, keys, func(k recKey, r *sql.Row) error {
		var id int64
		if err := r.Scan(&id); err != nil {
			return err
		}
		out[k] = id
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load id map: %w", err)
	}
	return out, nil
}

func (t *sqliteTx) referrers(ctx context.Context, model, table, column string, ids []int64) ([]referrer, error) {
	ps, err := t.tx.PrepareContext(ctx, `SELECT i.key, t.id FROM `+quoteIdent(table)+` t JOIN ghsync_records i
		ON i.model = ? AND i.local_id = t.id WHERE t.`+quoteIdent(column)+` = ?`)
	if err != nil {
		return nil, fmt.Errorf("find %s rows pointing at deleted rows: %w", table, err)
	}
	defer ps.Close()
	var out []referrer
	for _, id := range ids {
		rows, err := ps.QueryContext(ctx, model, id)
		if err != nil {
			return nil, fmt.Errorf("find %s rows pointing at deleted rows: %w", table, err)
		}
		for rows.Next() {
			r := referrer{to: id}
			if err := rows.Scan(&r.key, &r.id); err != nil {
				rows.Close()
				return nil, err
			}
			out = append(out, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (t *sqliteTx) parkedOn(ctx context.Context, targets []recKey, arrivals bool) ([]recKey, error) {
	q := `SELECT DISTINCT model, key FROM ghsync_parked WHERE waits_model = ? AND waits_key = ?`
	if arrivals {
		q += ` AND reason NOT LIKE '` + contentionReason + `%'`
	}
	ps, err := t.tx.PrepareContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("find parked records: %w", err)
	}
	defer ps.Close()
	var out []recKey
	for _, k := range targets {
		rows, err := ps.QueryContext(ctx, k.model, k.key)
		if err != nil {
			return nil, fmt.Errorf("find parked records: %w", err)
		}
		for rows.Next() {
			var p recKey
			if err := rows.Scan(&p.model, &p.key); err != nil {
				rows.Close()
				return nil, err
			}
			out = append(out, p)
		}
		rows.Close()
	}
	return out, nil
}

// reserveIDs follows SQLite's AUTOINCREMENT: above both the largest id and
// sqlite_sequence, which an explicit insert then advances, as Tryton's
// SQLite backend expects.
func (t *sqliteTx) reserveIDs(ctx context.Context, table string, n int) ([]int64, error) {
	top, ok := t.top[table]
	if !ok {
		q := fmt.Sprintf(`SELECT max(COALESCE((SELECT max(id) FROM %s), 0), COALESCE((SELECT seq FROM sqlite_sequence WHERE name = ?), 0))`, quoteIdent(table))
		if err := t.tx.QueryRowContext(ctx, q, table).Scan(&top); err != nil {
			return nil, fmt.Errorf("take ids for %s: %w", table, err)
		}
	}
	t.top[table] = top + int64(n)
	ids := make([]int64, n)
	for i := range ids {
		ids[i] = top + int64(i) + 1
	}
	return ids, nil
}

// arg stores values the way Tryton's SQLite backend does: dates and
// timestamps as ISO text; decimals as text, so they stay exact.
func (t *sqliteTx) arg(v ledger.Value, _ *models.Field) any {
	if d, ok := v.AsDate(); ok {
		return d.Format("2006-01-02")
	}
	if ts, ok := v.AsDateTime(); ok {
		return ts.Format("2006-01-02 15:04:05.999999")
	}
	return native(v)
}

func (t *sqliteTx) commitIf(ctx context.Context, cond string, args ...any) error {
	if err := t.flush(ctx); err != nil {
		return err
	}
	if cond != "" {
		res, err := t.tx.ExecContext(ctx, cond, args...)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			t.tx.Rollback()
			if err != nil {
				return err
			}
			return errMoved
		}
	}
	return t.commit(ctx)
}

func (t *sqliteTx) commit(ctx context.Context) error {
	if _, err := t.tx.ExecContext(ctx, `DELETE FROM ghsync_capture_off`); err != nil {
		return err
	}
	return t.tx.Commit()
}
func (t *sqliteTx) rollback(context.Context) error { return t.tx.Rollback() }
