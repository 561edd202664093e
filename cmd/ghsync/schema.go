package main

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"

	"github.com/ghsync/ghsync/fixtures"
	"github.com/ghsync/ghsync/models"
)

// SchemaCmd creates empty GNU Health tables, for trying ghsync (and for
// tests and the demo) without a Tryton server.
type SchemaCmd struct{ Target }

func (c *SchemaCmd) Run(env *Env) error {
	driver, dsn, dialect := "pgx", c.Target.Target, models.Postgres
	if path, ok := strings.CutPrefix(dsn, "sqlite:"); ok {
		driver, dsn, dialect = "sqlite", strings.TrimPrefix(path, "//"), models.SQLite
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		return fmt.Errorf("open %s: %w", redact(c.Target.Target), err)
	}
	defer db.Close()
	reg := models.GNUHealth()
	// A database that has the tables already (a Tryton instance, or a
	// second run) is refused by name, before any statement runs.
	tables := schemaTables(reg)
	existing, err := existingTables(env.Ctx, db, dialect, tables)
	if err != nil {
		return fmt.Errorf("schema: %s: %w", redact(c.Target.Target), err)
	}
	if len(existing) > 0 {
		return fmt.Errorf("schema: %s has table %s already (%d of the %d tables schema creates exist): the GNU Health schema is there; nothing was created",
			redact(c.Target.Target), existing[0], len(existing), len(tables))
	}
	if err := fixtures.CreateTrytonSchema(env.Ctx, db, reg, dialect); err != nil {
		return err
	}
	fmt.Fprintf(env.Out, "created the tables of %d GNU Health models in %s\n", reg.Len(), redact(c.Target.Target))
	return nil
}

// schemaTables lists the tables fixtures.TrytonSchema creates: Tryton's
// metadata, each model's table and each Many2Many relation table.
func schemaTables(reg *models.Registry) []string {
	tables := []string{"res_user", "ir_model", "ir_model_field"}
	for _, m := range reg.Models() {
		tables = append(tables, m.Table)
		for _, f := range m.Fields {
			if f.Relation != nil && f.Relation.Table != "" && !slices.Contains(tables, f.Relation.Table) {
				tables = append(tables, f.Relation.Table)
			}
		}
	}
	return tables
}

// existingTables returns those of tables that db has (in PostgreSQL, in
// the current schema), in the order given.
func existingTables(ctx context.Context, db *sql.DB, dialect string, tables []string) ([]string, error) {
	q := `SELECT name FROM sqlite_master WHERE type = 'table'`
	if dialect == models.Postgres {
		q = `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()`
	}
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	defer rows.Close()
	have := map[string]bool{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, fmt.Errorf("list tables: %w", err)
		}
		have[name] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	var found []string
	for _, t := range tables {
		if have[t] {
			found = append(found, t)
		}
	}
	return found, nil
}
