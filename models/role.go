package models

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// RowByRowForeignKeys notes that the role ghsync connects as may not set
// session_replication_role, so the projector cannot skip PostgreSQL's
// per-row foreign-key checks as logical replication does (it locks what a
// batch references once a table instead where it may): a catch-up then
// costs the server about a quarter more. Nothing is wrong with the data.
const RowByRowForeignKeys Problem = "row-by-row-foreign-keys"

// checkReplicaRole tries the setting in a transaction it rolls back.
func checkReplicaRole(ctx context.Context, db *sql.DB, rep *CheckReport) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("check the role: %w", err)
	}
	defer tx.Rollback()
	var role string
	var version int
	if err := tx.QueryRowContext(ctx, `SELECT current_user, current_setting('server_version_num')::int`).Scan(&role, &version); err != nil {
		return fmt.Errorf("check the role: %w", err)
	}
	_, err = tx.ExecContext(ctx, `SELECT set_config('session_replication_role', 'replica', true)`)
	var state interface{ SQLState() string }
	switch {
	case err == nil:
		return nil
	case !errors.As(err, &state) || state.SQLState() != "42501": // insufficient_privilege
		return fmt.Errorf("check the role: %w", err)
	}
	fix := "connect as a superuser (PostgreSQL before 15 has no finer grant)"
	if version >= 150000 {
		fix = fmt.Sprintf("as a superuser: GRANT SET ON PARAMETER session_replication_role TO %s", quote(role))
	}
	rep.Database = append(rep.Database, Finding{Severity: Info, Problem: RowByRowForeignKeys,
		Message: fmt.Sprintf("role %s may not set session_replication_role, so the projector checks foreign keys row by row, as Tryton does, instead of once a batch; catch-ups take about a quarter more server time: %s",
			role, fix)})
	return nil
}
