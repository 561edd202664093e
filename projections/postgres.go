package projections

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/models"
)

type pgDialect struct {
	pool *pgxpool.Pool
	// replica says inserts and updates run as session_replication_role
	// replica (references.go).
	replica bool
}

// openPostgres connects; rowTriggers keeps every trigger firing for
// inserts and updates even where the role could skip them.
func openPostgres(ctx context.Context, url string, rowTriggers bool) (*pgDialect, error) {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return nil, err
	}
	d := &pgDialect{pool: pool}
	if err = pool.Ping(ctx); err == nil && !rowTriggers {
		d.replica, err = maySetReplicaRole(ctx, pool)
	}
	if err != nil {
		pool.Close()
		return nil, err
	}
	return d, nil
}

// maySetReplicaRole reports whether the connection's role may set
// session_replication_role: a superuser, or one granted SET on it
// (PostgreSQL 15).
func maySetReplicaRole(ctx context.Context, pool *pgxpool.Pool) (bool, error) {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return false, err
	}
	defer tx.Rollback(ctx)
	_, err = tx.Exec(ctx, setRole[true])
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42501" { // insufficient_privilege
		return false, nil
	}
	return err == nil, err
}

func (d *pgDialect) skipsRowChecks() bool { return d.replica }

// hasTables checks, before anything is written, that the target's schema
// has one of tables.
func (d *pgDialect) hasTables(ctx context.Context, tables []string) error {
	var n int
	if err := d.pool.QueryRow(ctx, `SELECT count(*) FROM information_schema.tables
		WHERE table_schema = current_schema() AND table_name = ANY($1)`, tables).Scan(&n); err != nil {
		return fmt.Errorf("look for GNU Health's tables: %w", err)
	}
	return noTables(n, tables)
}

func (d *pgDialect) name() string         { return "postgres" }
func (d *pgDialect) schemaPrefix() string { return "ghsync." }
func (d *pgDialect) blobType() string     { return "BYTEA" }
func (d *pgDialect) close()               { d.pool.Close() }

func (d *pgDialect) text(col string, t models.Type) string {
	switch t {
	case models.Binary:
		return "encode(" + col + ", 'hex')"
	case models.Boolean:
		return boolText(col)
	}
	return col + "::text"
}

// dumpSettings pin what the text of floats, dates and times depends on
// (extra_float_digits > 0: the shortest exact form), for Dump.
const dumpSettings = `SELECT set_config('extra_float_digits', '3', true), set_config('DateStyle', 'ISO, YMD', true)`

func (d *pgDialect) begin(ctx context.Context) (dtx, error) { return d.beginWith(ctx, txSettings) }

// beginProjection takes the projection lock in the statement that makes
// the settings: no round trip of its own, and the batch's first read,
// the next statement, takes its snapshot once the lock is held.
func (d *pgDialect) beginProjection(ctx context.Context) (dtx, error) {
	return d.beginWith(ctx, lockedSettings)
}

func (d *pgDialect) beginWith(ctx context.Context, settings string) (dtx, error) {
	tx, err := d.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, settings); err != nil {
		tx.Rollback(ctx)
		return nil, err
	}
	return &pgTx{tx: tx, roles: roles{skip: d.replica}}, nil
}

// txSettings starts every projection transaction. No echo: capture
// triggers skip what it writes. No hash or merge joins: an op joins its
// unnest of a batch's rows to a table by an indexed key, and with the
// array's size known the planner prefers hashing the whole table, once a
// statement, to probing it once a row (a batch's cost would grow with the
// table). Ops on columns that may lack an index do not join (opDelete on
// one column is an = ANY).
const txSettings = `SELECT set_config('ghsync.projecting', 'on', true),
	set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true)`

// lockedSettings is txSettings and the projection lock (concurrency.go),
// in one statement.
const lockedSettings = txSettings + `, ` + projectionLock

type pgTx struct {
	tx     pgx.Tx
	writes pgBatch
	roles  roles
}

// querier is where a projection transaction's reads run: its own
// transaction, or (split) the pool.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

type pgRows struct{ pgx.Rows }

func (r pgRows) Close() { r.Rows.Close() }

func (t *pgTx) query(ctx context.Context, q string, args ...any) (rowIter, error) {
	rows, err := t.tx.Query(ctx, dollarize(q), args...)
	if err != nil {
		return nil, err
	}
	return pgRows{rows}, nil
}

func (t *pgTx) exec(ctx context.Context, q string, args ...any) error {
	_, err := t.tx.Exec(ctx, dollarize(q), args...)
	return err
}

func (t *pgTx) queue(q string, args ...any) { t.writes.queue(dollarize(q), args...) }

// queueOp sends an op as one statement (pgwire.go), so a thousand rows
// cost one statement, not a thousand.
func (t *pgTx) queueOp(o *op) { t.roles.queueOp(&t.writes, o) }

func (t *pgTx) flush(ctx context.Context) error {
	w := t.writes
	t.writes = pgBatch{}
	_, err := w.send(ctx, t.tx.Conn().PgConn())
	return err
}

// commitIf sends cond with the last writes, in their round trip.
func (t *pgTx) commitIf(ctx context.Context, cond string, args ...any) error {
	w := t.writes
	t.writes = pgBatch{}
	if cond != "" {
		w.queue(dollarize(cond), args...)
	}
	last, err := w.send(ctx, t.tx.Conn().PgConn())
	if err != nil {
		return err
	}
	if cond != "" && last.RowsAffected() != 1 {
		t.tx.Rollback(ctx)
		return errMoved
	}
	return t.tx.Commit(ctx)
}

func splitKeys(keys []recKey) (models, ks []string) {
	for _, k := range keys {
		models = append(models, k.model)
		ks = append(ks, k.key)
	}
	return models, ks
}

// keyed runs q, which looks rows up for each k of unnest($1 models,
// $2 keys) AS k, and hands each row to scan.
func keyed(ctx context.Context, on querier, what, q string, keys []recKey, scan func(pgx.Rows) error) error {
	ms, ks := splitKeys(keys)
	rows, err := on.Query(ctx, q, ms, ks)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	return rows.Err()
}

// perKey looks up the rows of a ghsync table matching each key (cond
// joins the table, aliased t, to k): one index probe a key. A plain join
// lets the planner hash the whole table while it lacks statistics (it
// fills from empty during a first catch-up), once a batch.
func perKey(cols, table, cond string) string {
	return `SELECT r.* FROM unnest($1::text[], $2::text[]) AS k(model, key) CROSS JOIN LATERAL (SELECT ` + cols +
		` FROM ghsync.` + table + ` t WHERE ` + cond + ` OFFSET 0) r`
}

func (t *pgTx) loadStates(ctx context.Context, keys []recKey) (map[recKey]stored, error) {
	return loadStates(ctx, t.tx, keys)
}

// loadRecords probes the records table once a key, as perKey does.
var loadRecords = perKey("t.model, t.key, t.state, t.local_id", "records", "t.model = k.model AND t.key = k.key")

func loadStates(ctx context.Context, on querier, keys []recKey) (map[recKey]stored, error) {
	out := make(map[recKey]stored, len(keys))
	err := keyed(ctx, on, "load merge states", loadRecords, keys,
		func(r pgx.Rows) error {
			var k recKey
			var s stored
			var id *int64
			err := r.Scan(&k.model, &k.key, &s.state, &id)
			if id != nil {
				s.id, s.hasID = *id, true
			}
			out[k] = s
			return err
		})
	return out, err
}

func (t *pgTx) loadIDs(ctx context.Context, table string, keys []recKey) (map[recKey]int64, error) {
	return loadIDs(ctx, t.tx, table, keys)
}

func loadIDs(ctx context.Context, on querier, table string, keys []recKey) (map[recKey]int64, error) {
	out := make(map[recKey]int64, len(keys))
	err := keyed(ctx, on, "load "+table, perKey("t.model, t.key, t.local_id", table, "t.model = k.model AND t.key = k.key AND t.local_id IS NOT NULL"), keys,
		func(r pgx.Rows) error {
			var k recKey
			var id int64
			err := r.Scan(&k.model, &k.key, &id)
			out[k] = id
			return err
		})
	return out, err
}

func (t *pgTx) referrers(ctx context.Context, model, table, column string, ids []int64) ([]referrer, error) {
	return referrers(ctx, t.tx, model, table, column, ids)
}

func referrers(ctx context.Context, on querier, model, table, column string, ids []int64) ([]referrer, error) {
	rows, err := on.Query(ctx, `SELECT r.key, t.id, t.`+quoteIdent(column)+` FROM `+quoteIdent(table)+` t CROSS JOIN LATERAL (SELECT key FROM ghsync.records i
		WHERE i.model = $1 AND i.local_id = t.id OFFSET 0) r WHERE t.`+quoteIdent(column)+` = ANY($2)`, model, ids)
	if err != nil {
		return nil, fmt.Errorf("find %s rows pointing at deleted rows: %w", table, err)
	}
	defer rows.Close()
	var out []referrer
	for rows.Next() {
		var r referrer
		if err := rows.Scan(&r.key, &r.id, &r.to); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func (t *pgTx) parkedOn(ctx context.Context, targets []recKey, arrivals bool) ([]recKey, error) {
	return parkedOn(ctx, t.tx, targets, arrivals)
}

func parkedOn(ctx context.Context, on querier, targets []recKey, arrivals bool) ([]recKey, error) {
	var out []recKey
	cond := "t.waits_model = k.model AND t.waits_key = k.key"
	if arrivals {
		cond += " AND t.reason NOT LIKE '" + contentionReason + "%'"
	}
	err := keyed(ctx, on, "find parked records", `SELECT DISTINCT model, key FROM (`+perKey("t.model, t.key", "parked", cond)+`) p`, targets,
		func(r pgx.Rows) error {
			var k recKey
			err := r.Scan(&k.model, &k.key)
			out = append(out, k)
			return err
		})
	return out, err
}

func (t *pgTx) reserveIDs(ctx context.Context, table string, n int) ([]int64, error) {
	return reserveIDs(ctx, t.tx, table, n)
}

func reserveIDs(ctx context.Context, on querier, table string, n int) ([]int64, error) {
	rows, err := on.Query(ctx, `SELECT nextval($1::regclass) FROM generate_series(1, $2)`, quoteIdent(table+"_id_seq"), n)
	if err != nil {
		return nil, fmt.Errorf("take ids from %s_id_seq: %w", table, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("take ids from %s_id_seq: %w", table, err)
	}
	return ids, nil
}

func (t *pgTx) arg(v ledger.Value, _ *models.Field) any { return native(v) }

func (t *pgTx) commit(ctx context.Context) error   { return t.tx.Commit(ctx) }
func (t *pgTx) rollback(ctx context.Context) error { return t.tx.Rollback(ctx) }
