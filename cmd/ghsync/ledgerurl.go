package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/ledger/postgres"
	"github.com/ghsync/ghsync/ledger/sqlite"
	"github.com/ghsync/ghsync/models"
)

// ledgerBackend splits a ledger location: "sqlite:PATH" (or a bare path)
// for the embedded backend gives the file's path, a postgres:// or
// postgresql:// URL gives pg.
func ledgerBackend(loc string) (pg bool, path string, err error) {
	switch {
	case strings.HasPrefix(loc, "postgres://"), strings.HasPrefix(loc, "postgresql://"):
		return true, "", nil
	case strings.HasPrefix(loc, "sqlite:"):
		path = strings.TrimPrefix(strings.TrimPrefix(loc, "sqlite:"), "//")
		if path == "" {
			return false, "", fmt.Errorf("ledger %q names no file", loc)
		}
		return false, path, nil
	case strings.Contains(loc, "://"):
		return false, "", fmt.Errorf("ledger %q: unknown scheme (want sqlite:PATH or postgres://...)", loc)
	}
	return false, loc, nil
}

// openLedger opens the store a ledger location names: "sqlite:PATH" (or a
// bare path) for the embedded backend, a postgres:// or postgresql:// URL
// for PostgreSQL. It creates the ledger if there is none; commands that
// only read have had requireLedger refuse that first (see checks.go).
func openLedger(ctx context.Context, loc string) (ledger.Store, error) {
	pg, path, err := ledgerBackend(loc)
	switch {
	case err != nil:
		return nil, err
	case pg:
		return postgres.Open(ctx, loc, postgres.Options{})
	}
	return sqlite.Open(ctx, path, sqlite.Options{})
}

// requireLedger refuses a location that holds no ledger yet, without
// creating one: a SQLite file that does not exist, or a PostgreSQL
// database without the ghsync schema. A mistyped path given to a command
// that only reads is then an error instead of an empty ledger.
func requireLedger(ctx context.Context, loc string) error {
	pg, path, err := ledgerBackend(loc)
	if err != nil {
		return err
	}
	if !pg {
		_, err := os.Stat(path)
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("no ledger at %s: the file does not exist (a mistyped --ledger? only commands that write, such as generate, import, pull, sync and serve, create a ledger)", path)
		}
		if err != nil {
			return fmt.Errorf("ledger %s: %w", loc, err)
		}
		return nil
	}
	conn, err := pgx.Connect(ctx, loc)
	if err != nil {
		return fmt.Errorf("ledger %s: %w", redact(loc), err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// The ghsync schema alone is not a ledger: capture and the projector
	// make it too, in a GNU Health database that holds no ledger.
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('ghsync.events') IS NOT NULL`).Scan(&exists); err != nil {
		return fmt.Errorf("ledger %s: look for the ghsync ledger: %w", redact(loc), err)
	}
	if !exists {
		return fmt.Errorf("no ledger in %s: the database has no ghsync.events table (a mistyped --ledger? only commands that write, such as generate, import, pull, sync and serve, create a ledger)", redact(loc))
	}
	return nil
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
