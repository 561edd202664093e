package projections_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ghsync/ghsync/internal/pgtest"
	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/ledger/ledgertest"
	"github.com/ghsync/ghsync/projections"
)

// TestOpenRefusesNonTrytonTarget: a target with none of the registry's
// tables (a mistyped SQLite path, an empty file, an empty PostgreSQL
// database) is refused before anything is written there; one with some
// of them (a plain Tryton) is not.
func TestOpenRefusesNonTrytonTarget(t *testing.T) {
	reg := clinicRegistry(t)
	store := memLedger(t)
	ctx := context.Background()
	dir := t.TempDir()
	refused := func(t *testing.T, target string) {
		t.Helper()
		p, err := projections.Open(ctx, target, store, reg, projections.Options{})
		if err == nil {
			p.Close()
			t.Fatalf("opened %s, which has none of the registry's tables", target)
		}
		if !errors.Is(err, projections.ErrNoTables) {
			t.Fatalf("open %s: %v, want ErrNoTables", target, err)
		}
	}
	t.Run("missing sqlite file", func(t *testing.T) {
		path := filepath.Join(dir, "typo.db")
		refused(t, "sqlite:"+path)
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("refusing a missing target created it (%v)", err)
		}
	})
	t.Run("empty sqlite file", func(t *testing.T) {
		path := filepath.Join(dir, "empty.db")
		if err := os.WriteFile(path, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		refused(t, "sqlite:"+path)
		if fi, err := os.Stat(path); err != nil || fi.Size() != 0 {
			t.Fatalf("refusing an empty target wrote to it: %v, %v", fi, err)
		}
	})
	t.Run("empty postgres database", func(t *testing.T) {
		target := pgtest.NewDatabase(t)
		refused(t, target)
		db, err := sql.Open("pgx", target)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM pg_namespace WHERE nspname = 'ghsync'`).Scan(&n); err != nil || n != 0 {
			t.Fatalf("refusing an empty database created schema ghsync there (%d, %v)", n, err)
		}
	})
	t.Run("some tables", func(t *testing.T) {
		path := filepath.Join(dir, "plain.db")
		db, err := sql.Open("sqlite", path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.Exec(`CREATE TABLE party_party (id INTEGER PRIMARY KEY AUTOINCREMENT, code VARCHAR, name VARCHAR)`); err != nil {
			t.Fatal(err)
		}
		openProjector(t, "sqlite:"+path, store, reg, 10)
	})
}

// TestCatchUpRefusesOtherLedger: a target's checkpoint is checked against
// the ledger it catches up from: a shorter ledger and one of the same
// length with other events are refused, naming the positions, and the
// target is left as it was; its own ledger goes on, and a rebuild starts
// over from another. On both backends (PostgreSQL's batches commit
// pipelined).
func TestCatchUpRefusesOtherLedger(t *testing.T) {
	rng := ledgertest.Rand(t)
	reg := clinicRegistry(t)
	a := newWorkload(t, reg, rng, 0, 1)
	a.build(t, 150)
	b := newWorkload(t, reg, rng, 0, 2)
	b.build(t, 150)
	n := min(len(a.events), len(b.events)) - 10
	ledgerOf := func(evs []*ledger.Event) ledger.Store {
		s := memLedger(t)
		if _, err := s.Append(context.Background(), evs); err != nil {
			t.Fatal(err)
		}
		return s
	}
	for name, target := range map[string]func() string{
		"postgres": func() string { return pgTarget(t, reg) },
		"sqlite":   func() string { return sqliteTarget(t, reg) },
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			own, short, same := ledgerOf(a.events[:n]), ledgerOf(a.events[:n/2]), ledgerOf(b.events[:n])
			target := target()
			built := project(t, openProjector(t, target, own, reg, 7))
			for _, tc := range []struct {
				store ledger.Store
				says  string
			}{
				{short, fmt.Sprintf("through %d, but the ledger ends at position %d", n, n/2)},
				{same, fmt.Sprintf("the ledger's event %d has hash", n)},
			} {
				p := openProjector(t, target, tc.store, reg, 7)
				st, err := p.CatchUp(ctx)
				if !errors.Is(err, projections.ErrOtherLedger) || !strings.Contains(err.Error(), tc.says) {
					t.Fatalf("catch up from another ledger: %+v, %v; want ErrOtherLedger saying %q", st, err, tc.says)
				}
				if cp, err := p.Checkpoint(ctx); cp != uint64(n) || err != nil {
					t.Fatalf("checkpoint after a refused catch-up: %d, %v; want %d", cp, err, n)
				}
				sameOutcome(t, "after a refused catch-up", observe(t, p), built)
			}
			// Its own ledger goes on.
			if _, err := own.Append(ctx, a.events[n:]); err != nil {
				t.Fatal(err)
			}
			p := openProjector(t, target, own, reg, 7)
			if st, err := p.CatchUp(ctx); err != nil || st.Checkpoint != uint64(len(a.events)) {
				t.Fatalf("catch up from its own ledger: %+v, %v", st, err)
			}
			// Rebuilding from another ledger starts over from it.
			q := openProjector(t, target, same, reg, 7)
			if _, err := q.Rebuild(ctx); err != nil {
				t.Fatalf("rebuild from another ledger: %v", err)
			}
			if _, err := q.CatchUp(ctx); err != nil {
				t.Fatalf("catch up after a rebuild: %v", err)
			}
			if _, err := openProjector(t, target, own, reg, 7).CatchUp(ctx); !errors.Is(err, projections.ErrOtherLedger) {
				t.Fatalf("the ledger it was first built from, after a rebuild from another: %v, want ErrOtherLedger", err)
			}
		})
	}
}

// TestCheckpointWithoutEvent: a target whose checkpoint an older ghsync
// moved (no event recorded at it) still has its position checked against
// the ledger's head, and its next batch records the event.
func TestCheckpointWithoutEvent(t *testing.T) {
	rng := ledgertest.Rand(t)
	reg := clinicRegistry(t)
	w := newWorkload(t, reg, rng, 0, 1)
	w.build(t, 100)
	half := len(w.events) / 2
	own, short := memLedger(t), memLedger(t)
	ctx := context.Background()
	for _, x := range []struct {
		s   ledger.Store
		evs []*ledger.Event
	}{{own, w.events[:half]}, {short, w.events[:half/2]}} {
		if _, err := x.s.Append(ctx, x.evs); err != nil {
			t.Fatal(err)
		}
	}
	target := sqliteTarget(t, reg)
	project(t, openProjector(t, target, own, reg, 10))
	db, err := sql.Open("sqlite", strings.TrimPrefix(target, "sqlite:"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`DELETE FROM ghsync_checkpoint_event`); err != nil {
		t.Fatal(err)
	}
	if _, err := openProjector(t, target, short, reg, 10).CatchUp(ctx); !errors.Is(err, projections.ErrOtherLedger) {
		t.Fatalf("a shorter ledger, no event recorded: %v, want ErrOtherLedger", err)
	}
	if _, err := own.Append(ctx, w.events[half:]); err != nil {
		t.Fatal(err)
	}
	if _, err := openProjector(t, target, own, reg, 10).CatchUp(ctx); err != nil {
		t.Fatalf("its own ledger, no event recorded: %v", err)
	}
	var pos int64
	var hash string
	if err := db.QueryRow(`SELECT position, hash FROM ghsync_checkpoint_event WHERE name = 'tryton'`).Scan(&pos, &hash); err != nil ||
		pos != int64(len(w.events)) || len(hash) != 64 {
		t.Fatalf("the next batch recorded position %d hash %q (%v), want position %d", pos, hash, err, len(w.events))
	}
}
