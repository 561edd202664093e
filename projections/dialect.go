package projections

import (
	"context"

	"github.com/ghsync/ghsync/internal/sqltext"
	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/models"
)

// dialect isolates what differs between the PostgreSQL and SQLite targets:
// how statements reach the server, key-set lookups, id allocation and
// value encodings. Everything else (merging, references, parking, what
// to write) is one code path in projector.go.
type dialect interface {
	name() string
	schemaPrefix() string // "ghsync." (PostgreSQL) or "ghsync_" (SQLite)
	blobType() string
	// text renders a column of type t as comparable text, for Dump; NULL
	// stays NULL.
	text(col string, t models.Type) string
	begin(ctx context.Context) (dtx, error)
	// beginProjection begins a transaction that writes projected state:
	// it holds the target's projection lock from its start to its end
	// (concurrency.go).
	beginProjection(ctx context.Context) (dtx, error)
	// skipsRowChecks says inserts and updates run without the target's
	// per-row foreign-key checks, so the projector locks what they
	// reference itself (references.go).
	skipsRowChecks() bool
	close()
}

// dtx is one projection transaction.
type dtx interface {
	// query runs at once; placeholders are '?'.
	query(ctx context.Context, q string, args ...any) (rowIter, error)
	// exec runs a statement at once (schema changes: a PostgreSQL batch
	// prepares all its statements before running any).
	exec(ctx context.Context, q string, args ...any) error
	// queue defers a write to flush; PostgreSQL sends a flush's
	// statements in one round trip.
	queue(q string, args ...any)
	// queueOp defers a set-based write to flush.
	queueOp(o *op)
	flush(ctx context.Context) error
	// commitIf sends what is queued and commits, if cond, a statement that
	// must change exactly one row (a guarded checkpoint update), does;
	// otherwise it rolls back, nothing written, with errMoved.
	commitIf(ctx context.Context, cond string, args ...any) error
	// loadStates returns the records table's rows of the keys that have
	// one: merge state and local id.
	loadStates(ctx context.Context, keys []recKey) (map[recKey]stored, error)
	// loadIDs returns the local ids of keys in a table that maps them
	// ("records", or "idmap_prior" during a rebuild).
	loadIDs(ctx context.Context, table string, keys []recKey) (map[recKey]int64, error)
	// referrers returns the keys of model's records whose rows in table
	// point at any of ids through column.
	referrers(ctx context.Context, model, table, column string, ids []int64) ([]referrer, error)
	// parkedOn returns records parked waiting for any of targets; with
	// arrivals, only those waiting for a target to get a row (not those
	// contending for one, borrow.go).
	parkedOn(ctx context.Context, targets []recKey, arrivals bool) ([]recKey, error)
	// reserveIDs takes n ids for table as Tryton would (its sequence).
	reserveIDs(ctx context.Context, table string, n int) ([]int64, error)
	// arg converts a typed value to what the driver stores in a column.
	arg(v ledger.Value, f *models.Field) any
	commit(ctx context.Context) error
	rollback(ctx context.Context) error
}

// splitter is a dialect whose batches can be prepared while the previous
// one commits (pipeline.go): PostgreSQL, where the server's work on one
// batch then overlaps the projector's on the next. A split transaction's
// reads run at once, outside any transaction; its writes wait for
// commitIf, which takes the projection lock and checks cond before it
// sends them. flush keeps them.
type splitter interface {
	beginSplit() dtx
}

type rowIter interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

// stored is what the target holds for a record.
type stored struct {
	state []byte // nil: no merge state
	id    int64
	hasID bool // the record has a row in its Tryton table
}

// recKey names one record.
type recKey struct{ model, key string }

// boolText renders a boolean column as '1', '0' or NULL.
func boolText(col string) string {
	return "CASE WHEN " + col + " THEN '1' WHEN NOT " + col + " THEN '0' END"
}

// dollarize and quoteIdent are the shared SQL text helpers, under the
// short names this package's statements use.
var (
	dollarize  = sqltext.Dollarize
	quoteIdent = sqltext.Ident
)

// native is a value as a Go driver value: bool, int64, string (decimals
// too, to stay exact), time.Time, []byte or nil. References never reach a
// column as values: the projector resolves them to local ids.
func native(v ledger.Value) any {
	switch v.Kind() {
	case ledger.KindBool:
		b, _ := v.AsBool()
		return b
	case ledger.KindInt:
		i, _ := v.AsInt()
		return i
	case ledger.KindDecimal:
		s, _ := v.AsDecimal()
		return s
	case ledger.KindString:
		s, _ := v.AsString()
		return s
	case ledger.KindDate:
		d, _ := v.AsDate()
		return d
	case ledger.KindDateTime:
		t, _ := v.AsDateTime()
		return t
	case ledger.KindBytes:
		b, _ := v.AsBytes()
		return b
	}
	return nil
}
