package capture

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ghsync/ghsync/models"
)

// Status is what `ghsync capture status` shows an administrator.
type Status struct {
	InstallID   string
	Version     int
	InstalledAt time.Time
	Tables      []Captured
	// Triggers is how many capture triggers the database holds (enabled,
	// on PostgreSQL); fewer than the tables need means someone dropped or
	// disabled some (reinstall, then reconcile).
	Triggers     int
	WantTriggers int
	// Outdated lists tables whose columns changed since install (a module
	// updated): their triggers compare the columns they had, so changes
	// to a new column are missed until capture install runs again.
	Outdated  []string
	Pending   int64     // changes in the outbox
	Oldest    time.Time // when the oldest pending change was made; zero if none
	HandedOff int64     // stamped events not yet confirmed in the ledger
	// Held lists the rows whose changes capture holds back, by model and
	// local id: they cannot have a network identity yet (a plain-number
	// code, an empty key, or a reference to such a row). They are not in
	// the outbox and stay in Tryton's tables; the next drain captures
	// each once it can.
	Held []HeldRow
	// ReconcileDue says install held projection until Reconcile runs
	// (projections.MetaReconcile).
	ReconcileDue bool
}

// Inspect reads the capture state of the database at target; it returns
// ErrNotInstalled when there is none.
func Inspect(ctx context.Context, target string) (*Status, error) {
	d, err := open(ctx, target)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	if ok, err := d.tableExists(ctx, d.DB, d.t("capture_meta")); err != nil {
		return nil, err
	} else if !ok {
		return nil, ErrNotInstalled
	}
	st := &Status{}
	rows, err := d.QueryContext(ctx, `SELECT name, value FROM `+d.t("capture_meta"))
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			rows.Close()
			return nil, err
		}
		switch k {
		case "install_id":
			st.InstallID = v
		case "version":
			st.Version, _ = strconv.Atoi(v)
		case "installed_at":
			st.InstalledAt, _ = time.Parse(time.RFC3339, v)
		}
	}
	rows.Close()
	if err := checkVersion(strconv.Itoa(st.Version), d.dialect); err != nil {
		return nil, err
	}
	if st.Tables, err = capturedTables(ctx, d, d.DB); err != nil {
		return nil, err
	}
	st.WantTriggers = 3 * len(st.Tables)
	countTriggers := `SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'ghsync\_capture\_%' ESCAPE '\'`
	if d.dialect == models.Postgres {
		st.WantTriggers = 4 * len(st.Tables)
		// A disabled trigger records nothing either.
		countTriggers = `SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'ghsync\_capture\_%' AND tgenabled <> 'D'`
	}
	if err := d.QueryRowContext(ctx, countTriggers).Scan(&st.Triggers); err != nil {
		return nil, err
	}
	for _, c := range st.Tables {
		now, err := columnNames(ctx, d, d.DB, c.Table)
		if err != nil {
			return nil, err
		}
		if strings.Join(now, ",") != c.columns {
			st.Outdated = append(st.Outdated, c.Table)
		}
	}
	var oldest sql.NullString
	if err := d.QueryRowContext(ctx, `SELECT count(*), min(`+d.textAt()+`) FROM `+d.t("outbox")).Scan(&st.Pending, &oldest); err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	if oldest.Valid {
		st.Oldest, _ = parseAt(oldest.String)
	}
	if err := d.QueryRowContext(ctx, `SELECT count(*) FROM `+d.t("handoff")).Scan(&st.HandedOff); err != nil {
		return nil, err
	}
	held, err := readHeld(ctx, d)
	if err != nil {
		return nil, err
	}
	for _, h := range held {
		st.Held = append(st.Held, h.HeldRow)
	}
	asked, err := d.reconcileRequest(ctx)
	if err != nil {
		return nil, err
	}
	st.ReconcileDue = asked > 0
	return st, nil
}

// capturedTables reads what Install recorded.
func capturedTables(ctx context.Context, d *db, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}) ([]Captured, error) {
	rows, err := q.QueryContext(ctx, `SELECT tbl, model, field, cols FROM `+d.t("capture_tables")+` ORDER BY tbl`)
	if err != nil {
		return nil, fmt.Errorf("read captured tables: %w", err)
	}
	defer rows.Close()
	var out []Captured
	for rows.Next() {
		var c Captured
		if err := rows.Scan(&c.Table, &c.Model, &c.Field, &c.columns); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// textAt reads the outbox's at column as text in both dialects.
func (d *db) textAt() string {
	if d.dialect == models.Postgres {
		return `to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`
	}
	return "at"
}

// parseAt reads an outbox time (UTC, ISO 8601).
func parseAt(s string) (time.Time, error) {
	return time.Parse("2006-01-02T15:04:05.999999999Z", s)
}
