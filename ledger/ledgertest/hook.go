package ledgertest

import (
	"context"
	"errors"
	"testing"

	"github.com/ghsync/ghsync/ledger"
)

// testAppendHook proves a TxHook's writes commit with the events or not at
// all, and that a hook runs when every event was already held.
func testAppendHook(t *testing.T, h Harness) {
	s := h.open(t, h.NewLocation(t), Options{})
	defer s.Close()
	ha, ok := s.(ledger.HookAppender)
	if !ok {
		t.Fatalf("%s store does not implement ledger.HookAppender", h.Name)
	}
	exec := func(q string) ledger.TxHook {
		return func(ctx context.Context, tx ledger.Tx) error {
			_, err := tx.Exec(ctx, q)
			return err
		}
	}
	count := func() (n int64) {
		t.Helper()
		if _, err := ha.AppendHook(ctx(t), nil, func(ctx context.Context, tx ledger.Tx) error {
			return tx.QueryRow(ctx, `SELECT count(*) FROM hook_probe`).Scan(&n)
		}); err != nil {
			t.Fatalf("count hook rows: %v", err)
		}
		return n
	}
	if _, err := ha.AppendHook(ctx(t), nil, exec(`CREATE TABLE hook_probe (n INTEGER)`)); err != nil {
		t.Fatalf("hook with no events: %v", err)
	}
	o := NewOrigin(3)
	rng := Rand(t)
	evs := o.Patients(t, rng, 5)
	if _, err := ha.AppendHook(ctx(t), evs, exec(`INSERT INTO hook_probe (n) VALUES (1)`)); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 1 {
		t.Fatalf("hook rows after a committed append: %d, want 1", n)
	}
	// A failing hook takes its own writes and the events with it.
	more := o.Patients(t, rng, 3)
	boom := errors.New("boom")
	_, err := ha.AppendHook(ctx(t), more, func(ctx context.Context, tx ledger.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO hook_probe (n) VALUES (2)`); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("failing hook: err = %v, want boom", err)
	}
	if head, _ := s.Head(ctx(t)); head != 5 || count() != 1 {
		t.Fatalf("after a failing hook: head %d, hook rows %d; want 5 and 1", head, count())
	}
	// Only duplicates: the hook still runs and commits (a retried hand-off).
	res, err := ha.AppendHook(ctx(t), evs, exec(`INSERT INTO hook_probe (n) VALUES (3)`))
	if err != nil || res.Duplicates != 5 || res.Appended != 0 {
		t.Fatalf("duplicate append with hook: %+v, %v", res, err)
	}
	if n := count(); n != 2 {
		t.Fatalf("hook rows after a duplicate-only append: %d, want 2", n)
	}
}
