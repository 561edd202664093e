package ledger

import (
	"context"
	"database/sql"
)

// Tx is the part of an append transaction that a TxHook may use. A
// caller whose own bookkeeping lives in the ledger's database (the
// capturer's outbox) commits it with the events or not at all, instead of
// needing a two-step hand-off. Placeholders are the backend's own: $1 on
// PostgreSQL, ? on SQLite.
type Tx interface {
	Exec(ctx context.Context, query string, args ...any) (rowsAffected int64, err error)
	QueryRow(ctx context.Context, query string, args ...any) Row
}

// Row is one result row of Tx.QueryRow.
type Row interface{ Scan(dest ...any) error }

// TxHook runs inside an append transaction after the events are written
// and before commit; an error aborts the append and the hook's writes.
// It runs also when every event was already held, so a retried hand-off
// still completes.
type TxHook func(ctx context.Context, tx Tx) error

// HookAppender is a Store that can run a TxHook inside its append
// transaction. Both backends implement it.
type HookAppender interface {
	Store
	AppendHook(ctx context.Context, events []*Event, hook TxHook) (AppendResult, error)
}

// SQLTx lends a database/sql transaction as a Tx: the SQLite backend's
// append transactions, or a caller's own where it runs the same
// bookkeeping outside an append.
func SQLTx(tx *sql.Tx) Tx { return sqlTx{tx} }

type sqlTx struct{ tx *sql.Tx }

func (t sqlTx) Exec(ctx context.Context, q string, args ...any) (int64, error) {
	r, err := t.tx.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	return r.RowsAffected()
}

func (t sqlTx) QueryRow(ctx context.Context, q string, args ...any) Row {
	return t.tx.QueryRowContext(ctx, q, args...)
}
