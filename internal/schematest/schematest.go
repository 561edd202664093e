// Package schematest gives tests PostgreSQL databases that already hold
// a registry's Tryton tables. Making GNU Health's 75 tables takes about a
// second of DDL on a server with fsync on, and most tests that touch SQL
// make two or three such databases; a copy of a template made once per
// test binary takes about a third of that.
package schematest

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"

	"github.com/ghsync/ghsync/fixtures"
	"github.com/ghsync/ghsync/internal/pgtest"
	"github.com/ghsync/ghsync/models"
)

// NewPostgres returns the URL of a new database on the test server holding
// reg's tables as fixtures.CreateTrytonSchema makes them, dropped when tb
// ends (pgtest.NewDatabaseFrom). Registries with the same tables share a
// template: it is keyed by the schema's statements.
func NewPostgres(tb testing.TB, reg *models.Registry) string {
	tb.Helper()
	stmts, err := fixtures.TrytonSchema(reg, models.Postgres)
	if err != nil {
		tb.Fatalf("schematest: %v", err)
	}
	sum := sha256.Sum256([]byte(strings.Join(stmts, ";\n")))
	return pgtest.NewDatabaseFrom(tb, "tryton-"+hex.EncodeToString(sum[:8]), func(ctx context.Context, url string) error {
		db, err := sql.Open("pgx", url)
		if err != nil {
			return err
		}
		defer db.Close()
		return fixtures.CreateTrytonSchema(ctx, db, reg, models.Postgres)
	})
}
