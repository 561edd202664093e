package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/ledger/postgres"
	"github.com/ghsync/ghsync/ledger/sqlite"
)

// openLedger opens the store a ledger location names: "sqlite:PATH" (or a
// bare path) for the embedded backend, a postgres:// or postgresql:// URL
// for PostgreSQL.
func openLedger(ctx context.Context, loc string) (ledger.Store, error) {
	switch {
	case strings.HasPrefix(loc, "postgres://"), strings.HasPrefix(loc, "postgresql://"):
		return postgres.Open(ctx, loc, postgres.Options{})
	case strings.HasPrefix(loc, "sqlite:"):
		path := strings.TrimPrefix(strings.TrimPrefix(loc, "sqlite:"), "//")
		if path == "" {
			return nil, fmt.Errorf("ledger %q names no file", loc)
		}
		return sqlite.Open(ctx, path, sqlite.Options{})
	case strings.Contains(loc, "://"):
		return nil, fmt.Errorf("ledger %q: unknown scheme (want sqlite:PATH or postgres://...)", loc)
	default:
		return sqlite.Open(ctx, loc, sqlite.Options{})
	}
}
