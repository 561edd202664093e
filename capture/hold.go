package capture

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/ghsync/ghsync/models"
	"github.com/ghsync/ghsync/projections"
)

// A table without working capture triggers loses its edits: nothing adds
// them to the outbox. If the network already knows its rows, the
// projector would then overwrite those edits with the network's values
// at its next write of the record, and nobody would know. Install
// therefore holds projection (projections.MetaReconcile) when it starts
// recording such a table, until Reconcile has turned what differs into
// events.

// captureTriggers are the triggers whose absence loses edits (TRUNCATE's
// only refuses one).
var captureTriggers = []string{"insert", "update", "delete"}

// untriggered lists the tables of ts that lack one of their capture
// triggers, or have one disabled, as the database is now (before install
// recreates them).
func untriggered(ctx context.Context, d *db, tx *sql.Tx, ts []Captured) ([]Captured, error) {
	var out []Captured
	for _, c := range ts {
		var q string
		args := []any{}
		if d.dialect == models.Postgres {
			q = `SELECT count(*) FROM pg_trigger WHERE tgrelid = to_regclass($1) AND tgenabled <> 'D' AND tgname IN ('ghsync_capture_` +
				strings.Join(captureTriggers, `', 'ghsync_capture_`) + `')`
			args = append(args, quoteIdent(c.Table))
		} else {
			q = `SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ? AND name IN (?, ?, ?)`
			args = append(args, c.Table)
			for _, k := range captureTriggers {
				args = append(args, "ghsync_capture_"+k+"_"+c.Table)
			}
		}
		var n int
		if err := tx.QueryRowContext(ctx, q, args...).Scan(&n); err != nil {
			return nil, fmt.Errorf("look for the capture triggers of %s: %w", c.Table, err)
		}
		if n < len(captureTriggers) {
			out = append(out, c)
		}
	}
	return out, nil
}

// holdProjection sets projections.MetaReconcile, inside install's
// transaction, if the network knows rows of any of the tables that were
// not recorded, and returns their models.
func holdProjection(ctx context.Context, d *db, tx *sql.Tx, unrecorded []Captured) ([]string, error) {
	var held []string
	seen := map[string]bool{}
	for _, c := range unrecorded {
		if seen[c.Model] {
			continue
		}
		seen[c.Model] = true
		var n int
		err := tx.QueryRowContext(ctx, d.q(`SELECT count(*) FROM (SELECT 1 FROM `+d.t("records")+`
			WHERE model = ? AND local_id IS NOT NULL LIMIT 1) k`), c.Model).Scan(&n)
		if err != nil {
			return nil, fmt.Errorf("look for known rows of %s: %w", c.Model, err)
		}
		if n > 0 {
			held = append(held, c.Model)
		}
	}
	if len(held) == 0 {
		return nil, nil
	}
	meta := d.t("proj_meta")
	_, err := tx.ExecContext(ctx, d.q(`INSERT INTO `+meta+` (name, value) VALUES (?, 1)
		ON CONFLICT (name) DO UPDATE SET value = `+strings.TrimPrefix(meta, "ghsync.")+`.value + 1`), projections.MetaReconcile)
	if err != nil {
		return nil, fmt.Errorf("hold projection until capture is reconciled: %w", err)
	}
	return held, nil
}

// anyRows reports whether a model table of ts holds a row.
func anyRows(ctx context.Context, d *db, tx *sql.Tx, ts []Captured) (bool, error) {
	for _, c := range ts {
		if c.Field != "" {
			continue
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM `+quoteIdent(c.Table)+` LIMIT 1) k`).Scan(&n); err != nil {
			return false, fmt.Errorf("look for rows in %s: %w", c.Table, err)
		}
		if n > 0 {
			return true, nil
		}
	}
	return false, nil
}

// reconcileRequest reads projections.MetaReconcile (0: none).
func (d *db) reconcileRequest(ctx context.Context) (int64, error) {
	var v sql.NullInt64
	err := d.QueryRowContext(ctx, d.q(`SELECT max(value) FROM `+d.t("proj_meta")+` WHERE name = ?`), projections.MetaReconcile).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("read whether capture must be reconciled: %w", err)
	}
	return v.Int64, nil
}

// releaseProjection clears projections.MetaReconcile if no install asked
// again since the reconcile read it as asked.
func (d *db) releaseProjection(ctx context.Context, asked int64) error {
	if asked == 0 {
		return nil
	}
	_, err := d.ExecContext(ctx, d.q(`DELETE FROM `+d.t("proj_meta")+` WHERE name = ? AND value = ?`), projections.MetaReconcile, asked)
	if err != nil {
		return fmt.Errorf("release projection: %w", err)
	}
	return nil
}
