package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/ledger/postgres"
	"github.com/ghsync/ghsync/ledger/sqlite"
	"github.com/ghsync/ghsync/models"
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

// openOnLedger opens the ledger and the model registry the settings name
// and builds what works on them (a projector, a capturer, a site); the
// returned done closes both, and the ledger is closed if build fails.
func openOnLedger[T any](env *Env, build func(store ledger.Store, reg *models.Registry) (T, func(), error)) (T, func(), error) {
	var zero T
	store, err := openLedger(env.Ctx, env.Ledger)
	if err != nil {
		return zero, nil, err
	}
	reg, err := env.registry()
	if err != nil {
		store.Close()
		return zero, nil, err
	}
	v, closeV, err := build(store, reg)
	if err != nil {
		store.Close()
		return zero, nil, err
	}
	return v, func() { closeV(); store.Close() }, nil
}
