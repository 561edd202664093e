package capture

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ghsync/ghsync/models"
	"github.com/ghsync/ghsync/projections"
)

// schemaVersion is the capture schema's version, kept in capture_meta.
// 2: per-table update trigger functions, capture_tables.cols.
// 3: SQLite's insert and delete triggers call no function with more than
// 100 arguments (SQLite builds limited to 127 refused to open the file).
const schemaVersion = 3

// oldestUsable is, per dialect, the oldest capture schema this binary
// works with: version 3 changed only SQLite's triggers.
var oldestUsable = map[string]int{models.Postgres: 2, models.SQLite: 3}

// checkVersion refuses a capture schema this binary cannot work with.
func checkVersion(version string, dialect string) error {
	v, _ := strconv.Atoi(version)
	switch {
	case v > schemaVersion:
		return fmt.Errorf("capture schema version %s is newer than this ghsync understands (%d)", version, schemaVersion)
	case v < oldestUsable[dialect]:
		return fmt.Errorf("capture schema version %s was installed by an older ghsync (this one needs %d): run ghsync capture install again, which keeps the changes waiting in the outbox", version, oldestUsable[dialect])
	}
	return nil
}

// auditColumns are written by Tryton on every save; they are neither
// captured as changes nor enough to make one.
var auditColumns = []string{"create_uid", "create_date", "write_uid", "write_date"}

// Captured is one table the triggers watch: a model's own table, or the
// relation table of one of its Many2Many fields.
type Captured struct {
	Table string
	Model string
	Field string // the Many2Many field, for a relation table
	// columns is what the triggers read, comma-separated, as at install.
	columns string
}

// InstallReport says what Install did.
type InstallReport struct {
	Tables []Captured
	// Missing lists registered models whose table this database lacks
	// (their module is not activated): nothing of theirs is captured.
	Missing []string
	// Reconcile lists the models whose table had no capture triggers
	// before this install while the network already knows rows of it
	// (the records table maps them): capture was uninstalled, the table
	// is newly captured, or a restored dump lost the triggers. Edits made
	// there meanwhile are in no event, so projection is held
	// (projections.MetaReconcile) until Capturer.Reconcile has run.
	Reconcile []string
	// Rows says a table that had no capture triggers before this install
	// holds rows: rows the network may never have seen, which Reconcile
	// turns into events.
	Rows bool
}

// ErrNotInstalled is returned when a database has no capture schema.
var ErrNotInstalled = errors.New("capture is not installed in this database (run ghsync capture install)")

// Install creates the outbox and the triggers in the Tryton database at
// target, for every registered model whose table exists. It is
// idempotent: run again after activating a module, it adds the new
// tables' triggers and keeps pending changes. When it starts recording a
// table whose rows the network already knows, it holds projection until
// Reconcile has run (InstallReport.Reconcile; see hold.go).
func Install(ctx context.Context, target string, reg *models.Registry) (*InstallReport, error) {
	d, err := open(ctx, target)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	rep := &InstallReport{}
	tx, err := d.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	for _, m := range reg.Models() {
		ok, err := d.tableExists(ctx, tx, m.Table)
		if err != nil {
			return nil, fmt.Errorf("look for table %s: %w", m.Table, err)
		}
		if !ok {
			rep.Missing = append(rep.Missing, m.Name)
			continue
		}
		rep.Tables = append(rep.Tables, Captured{Table: m.Table, Model: m.Name})
		for _, f := range m.Fields {
			if f.Type != models.Many2Many || f.Relation == nil {
				continue
			}
			if ok, err := d.tableExists(ctx, tx, f.Relation.Table); err != nil {
				return nil, err
			} else if ok {
				rep.Tables = append(rep.Tables, Captured{Table: f.Relation.Table, Model: m.Name, Field: f.Name})
			}
		}
	}
	unrecorded, err := untriggered(ctx, d, tx, rep.Tables)
	if err != nil {
		return nil, err
	}
	stmts, err := bookkeepingDDL(ctx, d, tx)
	if err != nil {
		return nil, err
	}
	stmts = append(stmts, outboxDDL(d)...)
	stmts = append(stmts, heldDDL(d))
	compared := map[string][]string{} // table → the columns its update trigger compares
	for _, c := range rep.Tables {
		ts, cols, err := triggerDDL(ctx, d, tx, c.Table)
		if err != nil {
			return nil, err
		}
		stmts = append(stmts, ts...)
		compared[c.Table] = cols
	}
	if d.dialect == models.Postgres {
		// Installs before the per-table update functions had one for all.
		stmts = append(stmts, `DROP FUNCTION IF EXISTS ghsync.capture_update()`)
	}
	for _, s := range stmts {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			return nil, fmt.Errorf("install capture: %w\n%s", err, s)
		}
	}
	var idBytes [16]byte
	rand.Read(idBytes[:])
	meta := map[string]string{
		"version":      fmt.Sprint(schemaVersion),
		"install_id":   hex.EncodeToString(idBytes[:]),
		"installed_at": time.Now().UTC().Format(time.RFC3339),
	}
	for _, k := range []string{"version", "install_id", "installed_at"} {
		// An existing install keeps its id and date (the outbox's rows
		// still belong to it); the version follows this binary.
		conflict := "DO NOTHING"
		if k == "version" {
			conflict = "DO UPDATE SET value = excluded.value"
		}
		if _, err := tx.ExecContext(ctx, d.q(`INSERT INTO `+d.t("capture_meta")+` (name, value) VALUES (?, ?) ON CONFLICT (name) `+conflict), k, meta[k]); err != nil {
			return nil, err
		}
	}
	for _, c := range rep.Tables {
		if _, err := tx.ExecContext(ctx, d.q(`INSERT INTO `+d.t("capture_tables")+` (tbl, model, field, cols) VALUES (?, ?, ?, ?)`),
			c.Table, c.Model, c.Field, strings.Join(compared[c.Table], ",")); err != nil {
			return nil, err
		}
	}
	if rep.Reconcile, err = holdProjection(ctx, d, tx, unrecorded); err != nil {
		return nil, err
	}
	if rep.Rows, err = anyRows(ctx, d, tx, unrecorded); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("install capture: %w", err)
	}
	return rep, nil
}

// bookkeepingDDL is the projector's schema, which capture shares
// (projections.DDL), followed by the upgrade of a version-1 layout
// (projections.UpgradeDDL) if q finds one.
func bookkeepingDDL(ctx context.Context, d *db, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) ([]string, error) {
	stmts := slices.Clone(projections.DDL(d.dialect))
	marker, upgrade := projections.UpgradeDDL(d.dialect)
	if old, err := d.tableExists(ctx, q, marker); err != nil {
		return nil, err
	} else if old {
		stmts = append(stmts, upgrade...)
	}
	return stmts, nil
}

// upgradeBookkeeping brings a version-1 layout of the shared tables up to
// date, for a capturer run before any projector or install of this version.
func upgradeBookkeeping(ctx context.Context, d *db) error {
	marker, _ := projections.UpgradeDDL(d.dialect)
	if old, err := d.tableExists(ctx, d.DB, marker); err != nil || !old {
		return err
	}
	tx, err := d.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	stmts, err := bookkeepingDDL(ctx, d, tx)
	if err != nil {
		return err
	}
	for _, s := range stmts {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("upgrade ghsync's tables: %w\n%s", err, s)
		}
	}
	return tx.Commit()
}

// outboxDDL creates the outbox, capture_meta, capture_tables and the
// hand-off table, and on PostgreSQL the trigger functions.
func outboxDDL(d *db) []string {
	if d.dialect == models.Postgres {
		return []string{
			`CREATE TABLE IF NOT EXISTS ghsync.outbox (
				seq    BIGSERIAL PRIMARY KEY,
				tx     BIGINT NOT NULL DEFAULT txid_current(),
				at     TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
				tbl    TEXT NOT NULL,
				op     TEXT NOT NULL,
				row_id BIGINT NOT NULL,
				uid    BIGINT,
				old    JSONB,
				new    JSONB)`,
			`CREATE TABLE IF NOT EXISTS ghsync.capture_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)`,
			// Rewritten by every install: what it captures, and the columns
			// each table's update trigger compares (see Status.Outdated).
			`DROP TABLE IF EXISTS ghsync.capture_tables`,
			`CREATE TABLE ghsync.capture_tables (tbl TEXT PRIMARY KEY, model TEXT NOT NULL, field TEXT NOT NULL, cols TEXT NOT NULL)`,
			`CREATE TABLE IF NOT EXISTS ghsync.handoff (origin_seq BIGINT PRIMARY KEY, payload BYTEA NOT NULL)`,
			// Columns are read directly and each image is made once: the
			// planner would otherwise recompute to_jsonb of the row for every
			// reference to it (per column in the update diff: 10× slower).
			// Insert and delete images drop their nulls (half the bytes of a
			// party): a create carries no nulls, a delete no fields, and a
			// key part missing from an image is read from the row.
			pgFunction("insert", `
				INSERT INTO ghsync.outbox (tbl, op, row_id, uid, new)
				SELECT TG_TABLE_NAME, 'I', n.id, n.create_uid, jsonb_strip_nulls(to_jsonb(n) - `+pgAudit+`)
				FROM ghsync_new n;`),
			// Updates: pgUpdateFunction, one function per table.
			pgFunction("delete", `
				INSERT INTO ghsync.outbox (tbl, op, row_id, old)
				SELECT TG_TABLE_NAME, 'D', o.id, jsonb_strip_nulls(to_jsonb(o) - `+pgAudit+`)
				FROM ghsync_old o;`),
			`CREATE OR REPLACE FUNCTION ghsync.capture_truncate() RETURNS trigger LANGUAGE plpgsql AS $f$
			BEGIN
				IF current_setting('ghsync.projecting', true) = 'on' THEN RETURN NULL; END IF;
				RAISE EXCEPTION 'ghsync: TRUNCATE of synchronised table % cannot be captured; delete the rows instead, or run ghsync capture uninstall first', TG_TABLE_NAME;
			END $f$`,
		}
	}
	return []string{
		`CREATE TABLE IF NOT EXISTS ghsync_outbox (
			seq    INTEGER PRIMARY KEY AUTOINCREMENT,
			tx     INTEGER NOT NULL DEFAULT 0,
			at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
			tbl    TEXT NOT NULL,
			op     TEXT NOT NULL,
			row_id INTEGER NOT NULL,
			uid    INTEGER,
			old    TEXT,
			new    TEXT)`,
		`CREATE TABLE IF NOT EXISTS ghsync_capture_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)`,
		`DROP TABLE IF EXISTS ghsync_capture_tables`,
		`CREATE TABLE ghsync_capture_tables (tbl TEXT PRIMARY KEY, model TEXT NOT NULL, field TEXT NOT NULL, cols TEXT NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS ghsync_handoff (origin_seq INTEGER PRIMARY KEY, payload BLOB NOT NULL)`,
	}
}

// pgAudit is auditColumns as a PostgreSQL text[] literal.
var pgAudit = `'{` + strings.Join(auditColumns, ",") + `}'::text[]`

func pgFunction(kind, body string) string {
	return `CREATE OR REPLACE FUNCTION ghsync.capture_` + kind + `() RETURNS trigger LANGUAGE plpgsql AS $f$
	BEGIN
		IF current_setting('ghsync.projecting', true) = 'on' THEN RETURN NULL; END IF;` + body + `
		RETURN NULL;
	END $f$`
}

// triggerDDL (re)creates the triggers of one table.
//
// PostgreSQL: inserts and deletes fire statement-level AFTER triggers
// with transition tables, so a statement touching many rows (a bulk load,
// a cascade) costs one INSERT ... SELECT into the outbox rather than one
// per row; cascaded deletes run as statements of their own and are
// captured the same way. Updates fire a row-level trigger generated for
// the table (pgUpdateFunction), whose WHEN clause skips the projector's
// own writes.
// SQLite: row-level triggers whose column lists are generated from the
// table (SQLite has no generic row-to-JSON).
func triggerDDL(ctx context.Context, d *db, tx *sql.Tx, table string) (stmts, compared []string, err error) {
	t := quoteIdent(table)
	cols, err := d.columns(ctx, tx, table)
	if err != nil {
		return nil, nil, err
	}
	for _, c := range cols {
		compared = append(compared, c.name)
	}
	if d.dialect == models.Postgres {
		return []string{
			pgUpdateFunction(table, cols),
			`DROP TRIGGER IF EXISTS ghsync_capture_insert ON ` + t,
			`DROP TRIGGER IF EXISTS ghsync_capture_update ON ` + t,
			`DROP TRIGGER IF EXISTS ghsync_capture_delete ON ` + t,
			`DROP TRIGGER IF EXISTS ghsync_capture_truncate ON ` + t,
			`CREATE TRIGGER ghsync_capture_insert AFTER INSERT ON ` + t + ` REFERENCING NEW TABLE AS ghsync_new FOR EACH STATEMENT EXECUTE FUNCTION ghsync.capture_insert()`,
			`CREATE TRIGGER ghsync_capture_update AFTER UPDATE ON ` + t + ` FOR EACH ROW
				WHEN (current_setting('ghsync.projecting', true) IS DISTINCT FROM 'on')
				EXECUTE FUNCTION ` + pgUpdateFunctionName(table) + `()`,
			`CREATE TRIGGER ghsync_capture_delete AFTER DELETE ON ` + t + ` REFERENCING OLD TABLE AS ghsync_old FOR EACH STATEMENT EXECUTE FUNCTION ghsync.capture_delete()`,
			`CREATE TRIGGER ghsync_capture_truncate BEFORE TRUNCATE ON ` + t + ` FOR EACH STATEMENT EXECUTE FUNCTION ghsync.capture_truncate()`,
		}, compared, nil
	}
	name := func(kind string) string { return quoteIdent("ghsync_capture_" + kind + "_" + table) }
	lit := quoteLit(table)
	obj := func(row string) string { return sqliteObject(cols, row) }
	var changed, pairs []string
	for _, c := range cols {
		changed = append(changed, "NEW."+quoteIdent(c.name)+" IS NOT OLD."+quoteIdent(c.name))
		pairs = append(pairs, "SELECT "+quoteLit(c.name)+" AS k, "+c.expr("OLD")+" AS o, "+c.expr("NEW")+" AS n WHERE NEW."+
			quoteIdent(c.name)+" IS NOT OLD."+quoteIdent(c.name))
	}
	off := `NOT EXISTS (SELECT 1 FROM ghsync_capture_off)`
	return []string{
		`DROP TRIGGER IF EXISTS ` + name("insert"),
		`DROP TRIGGER IF EXISTS ` + name("update"),
		`DROP TRIGGER IF EXISTS ` + name("delete"),
		`CREATE TRIGGER ` + name("insert") + ` AFTER INSERT ON ` + t + ` WHEN ` + off + ` BEGIN
			INSERT INTO ghsync_outbox (tbl, op, row_id, uid, new) VALUES (` + lit + `, 'I', NEW.id, NEW.create_uid, ` + obj("NEW") + `);
		END`,
		`CREATE TRIGGER ` + name("update") + ` AFTER UPDATE ON ` + t + ` WHEN ` + off + ` AND (` + strings.Join(changed, " OR ") + `) BEGIN
			INSERT INTO ghsync_outbox (tbl, op, row_id, uid, old, new)
			SELECT ` + lit + `, 'U', NEW.id, NEW.write_uid, json_group_object(k, o), json_group_object(k, n)
			FROM (` + strings.Join(pairs, " UNION ALL ") + `);
		END`,
		`CREATE TRIGGER ` + name("delete") + ` AFTER DELETE ON ` + t + ` WHEN ` + off + ` BEGIN
			INSERT INTO ghsync_outbox (tbl, op, row_id, old) VALUES (` + lit + `, 'D', OLD.id, ` + obj("OLD") + `);
		END`,
	}, compared, nil
}

// sqliteMaxArgs bounds the arguments of any SQL function call capture
// generates for SQLite. SQLite before 3.48 (Debian 12's 3.40, which the
// sqlite3 CLI and Python's sqlite3, hence Tryton, link) allows 127
// (SQLITE_MAX_FUNCTION_ARG) and will not even open a database whose
// schema holds a trigger calling a function with more.
const sqliteMaxArgs = 100

// sqliteObject is SQL giving the columns of row (NEW, OLD or a table
// alias) as the JSON object text one json_object('c', row.c, ...) over
// them all would give, byte for byte, with no call over sqliteMaxArgs
// arguments: a wide table's columns are split into several json_object
// calls whose members are joined by text. Each chunk's text is {"c":v,...}
// with no space; a member starts with a quote and ends with a quote, a
// digit or a letter, so trimming the chunk's braces leaves its members
// whole.
func sqliteObject(cols []column, row string) string {
	const pairs = sqliteMaxArgs / 2
	var chunks []string
	for lo := 0; lo < len(cols) || lo == 0; lo += pairs {
		var parts []string
		for _, c := range cols[lo:min(lo+pairs, len(cols))] {
			parts = append(parts, quoteLit(c.name)+", "+c.expr(row))
		}
		chunks = append(chunks, "json_object("+strings.Join(parts, ", ")+")")
	}
	if len(chunks) == 1 {
		return chunks[0]
	}
	for i, c := range chunks {
		chunks[i] = "trim(" + c + ", '{}')"
	}
	return "('{' || " + strings.Join(chunks, " || ',' || ") + " || '}')"
}

// columnNames lists the columns of table that capture triggers read (all
// but the audit ones), as they are now.
func columnNames(ctx context.Context, d *db, q queryer, table string) ([]string, error) {
	cols, err := d.columns(ctx, q, table)
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.name
	}
	return names, err
}

// pgUpdateFunctionName is the update trigger function of table, within
// PostgreSQL's 63-byte identifiers.
func pgUpdateFunctionName(table string) string {
	name := "capture_update_" + table
	if len(name) > 63 {
		sum := sha256.Sum256([]byte(table))
		name = name[:50] + "_" + hex.EncodeToString(sum[:6])
	}
	return "ghsync." + quoteIdent(name)
}

// pgUpdateFunction generates the update trigger function of a table: it
// records only the columns that changed, old and new, and leaves no
// outbox row for a save that changed nothing but the audit columns.
//
// Comparing the columns one by one costs a fifth of turning both rows
// into jsonb and diffing those (on GNU Health's 37-column party_party,
// +10 µs against +50 µs an update), which matters on the clinic's write
// path. The price is that the function knows the table's columns as
// they were at install: a column dropped since makes the comparison
// fail, and the function then falls back on the generic jsonb diff (so
// the clinic's write still succeeds and is still captured); a column
// added since is not compared until capture install runs again, which
// capture status reports (Status.Outdated).
func pgUpdateFunction(table string, cols []column) string {
	var cmp strings.Builder
	for _, c := range cols {
		n, o := "NEW."+quoteIdent(c.name), "OLD."+quoteIdent(c.name)
		if !c.eq {
			n, o = n+"::text", o+"::text"
		}
		fmt.Fprintf(&cmp, "\t\t\tIF %s IS DISTINCT FROM %s THEN o := o || jsonb_build_object(%s, OLD.%s); n := n || jsonb_build_object(%[3]s, NEW.%[4]s); END IF;\n",
			n, o, quoteLit(c.name), quoteIdent(c.name))
	}
	return `CREATE OR REPLACE FUNCTION ` + pgUpdateFunctionName(table) + `() RETURNS trigger LANGUAGE plpgsql AS $f$
	DECLARE
		o jsonb := '{}';
		n jsonb := '{}';
	BEGIN
		BEGIN
` + cmp.String() + `		EXCEPTION WHEN OTHERS THEN
			-- The table changed since install: diff the whole rows.
			SELECT coalesce(jsonb_object_agg(e.key, to_jsonb(OLD)->e.key), '{}'), coalesce(jsonb_object_agg(e.key, e.value), '{}') INTO o, n
			FROM jsonb_each(to_jsonb(NEW) - ` + pgAudit + `) e
			WHERE e.value IS DISTINCT FROM to_jsonb(OLD)->e.key;
		END;
		IF n <> '{}' THEN
			INSERT INTO ghsync.outbox (tbl, op, row_id, uid, old, new) VALUES (TG_TABLE_NAME, 'U', NEW.id, NEW.write_uid, o, n);
		END IF;
		RETURN NULL;
	END $f$`
}

// queryer is a *sql.DB or a *sql.Tx.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// column is one column as a trigger reads it.
type column struct {
	name, typ string
	eq        bool // PostgreSQL: its type has an equality operator (json, for one, has none)
}

// expr is how a trigger puts the column of row (NEW or OLD) into JSON:
// blobs as hex (JSON cannot hold them).
func (c column) expr(row string) string {
	if strings.Contains(strings.ToUpper(c.typ), "BLOB") {
		col := row + "." + quoteIdent(c.name)
		return "CASE WHEN " + col + " IS NULL THEN NULL ELSE hex(" + col + ") END"
	}
	return row + "." + quoteIdent(c.name)
}

// columns lists a table's columns but the audit ones, in table order.
func (d *db) columns(ctx context.Context, q queryer, table string) ([]column, error) {
	query, arg := `SELECT name, type, 1 FROM pragma_table_info(?)`, table
	if d.dialect == models.Postgres {
		query, arg = `SELECT a.attname, format_type(a.atttypid, a.atttypmod), EXISTS (SELECT 1 FROM pg_operator o
				WHERE o.oprname = '=' AND o.oprleft = a.atttypid AND o.oprright = a.atttypid)
			FROM pg_attribute a WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
			ORDER BY a.attnum`, quoteIdent(table)
	}
	rows, err := q.QueryContext(ctx, query, arg)
	if err != nil {
		return nil, fmt.Errorf("columns of %s: %w", table, err)
	}
	defer rows.Close()
	var out []column
	for rows.Next() {
		var c column
		if err := rows.Scan(&c.name, &c.typ, &c.eq); err != nil {
			return nil, fmt.Errorf("columns of %s: %w", table, err)
		}
		if !slices.Contains(auditColumns, c.name) {
			out = append(out, c)
		}
	}
	return out, rows.Err()
}

// Uninstall removes the triggers, the trigger functions and the capture
// tables. It refuses while changes are still waiting to be drained (they
// would be lost) unless force is set. The projector's tables (id map,
// merge states) are the projector's and stay.
func Uninstall(ctx context.Context, target string, force bool) error {
	d, err := open(ctx, target)
	if err != nil {
		return err
	}
	defer d.Close()
	tx, err := d.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if ok, err := d.tableExists(ctx, tx, d.t("outbox")); err != nil {
		return err
	} else if ok && !force {
		var pending, handoff int64
		if err := tx.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM `+d.t("outbox")+`), (SELECT count(*) FROM `+d.t("handoff")+`)`).Scan(&pending, &handoff); err != nil {
			return err
		}
		if pending+handoff > 0 {
			return fmt.Errorf("uninstall capture: %d changes are not yet in the ledger (run ghsync capture drain first, or --force to discard them)", pending+handoff)
		}
	}
	// The database lists the DROP statements, names quoted: the triggers
	// first, then the functions they call.
	list := `SELECT 'DROP TRIGGER IF EXISTS "' || replace(name, '"', '""') || '"' FROM sqlite_master
		WHERE type = 'trigger' AND name LIKE 'ghsync\_capture\_%' ESCAPE '\'`
	if d.dialect == models.Postgres {
		list = `SELECT 1, format('DROP TRIGGER IF EXISTS %I ON %s', tgname, tgrelid::regclass) FROM pg_trigger WHERE tgname LIKE 'ghsync\_capture\_%'
			UNION ALL
			SELECT 2, format('DROP FUNCTION IF EXISTS %s', p.oid::regprocedure) FROM pg_proc p
			JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'ghsync' AND p.proname LIKE 'capture\_%'`
		list = `SELECT stmt FROM (` + list + `) AS s(kind, stmt) ORDER BY kind`
	}
	rows, err := tx.QueryContext(ctx, list)
	if err != nil {
		return err
	}
	var drops []string
	for rows.Next() {
		var stmt string
		if err := rows.Scan(&stmt); err != nil {
			rows.Close()
			return err
		}
		drops = append(drops, stmt)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	// Held rows stay in Tryton's tables; installed again, capture snapshot
	// finds them (they have no network identity) and holds them again.
	for _, t := range []string{"outbox", "capture_meta", "capture_tables", "handoff", "held"} {
		drops = append(drops, `DROP TABLE IF EXISTS `+d.t(t))
	}
	for _, s := range drops {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("uninstall capture: %s: %w", s, err)
		}
	}
	return tx.Commit()
}
