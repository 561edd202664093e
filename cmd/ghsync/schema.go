package main

import (
	"database/sql"
	"fmt"
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
	if err := fixtures.CreateTrytonSchema(env.Ctx, db, reg, dialect); err != nil {
		return err
	}
	fmt.Fprintf(env.Out, "created the tables of %d GNU Health models in %s\n", reg.Len(), redact(c.Target.Target))
	return nil
}
