// Package ledgertest is the contract every ledger.Store backend must meet,
// written once and run against each backend (as Litestream does for its
// replica clients), plus helpers that make realistic sealed events.
package ledgertest

import (
	"context"
	"testing"

	"github.com/ghsync/ghsync/ledger"
)

// Options are the test hooks a backend must honour.
type Options struct {
	// BeforeCommit runs inside each append transaction after positions are
	// assigned and before commit.
	BeforeCommit func(ctx context.Context) error
}

// Harness adapts one backend to the suite.
type Harness struct {
	// Name is the backend's type, used in messages.
	Name string
	// NewLocation returns a fresh, empty ledger location (a file path, a
	// database URL) that lives until the test ends.
	NewLocation func(t testing.TB) string
	// Open opens the ledger at location. The suite closes what it opens.
	// It runs in crash-test child processes too, where there is no test.
	Open func(ctx context.Context, location string, opts Options) (ledger.Store, error)
	// Corrupt flips one byte inside the stored payload at position,
	// behind the store's back (as a failing disk would).
	Corrupt func(t testing.TB, location string, position uint64)
	// SetColumn overwrites a column stored beside the payload at
	// position (one the payload's hash does not cover: origin, model,
	// key, hlc, tx...), behind the store's back.
	SetColumn func(t testing.TB, location string, position uint64, column string, value any)
}

func (h Harness) open(t testing.TB, loc string, opts Options) ledger.Store {
	t.Helper()
	s, err := h.Open(context.Background(), loc, opts)
	if err != nil {
		t.Fatalf("open %s ledger at %s: %v", h.Name, loc, err)
	}
	return s
}
