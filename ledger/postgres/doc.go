// Package postgres is the production ledger backend. Its tables live in
// the schema "ghsync" inside the GNU Health database itself, so capture can
// later append events in the same transaction as the clinic's change.
//
// # Gap safety
//
// PostgreSQL commits in an order unrelated to the order rows were inserted:
// with a sequence, position 11 can become visible before position 10, and a
// reader that moved its cursor to 11 skips 10 for ever (this broke Marten,
// Axon and SQLStreamStore). Here every append takes a row lock on the
// single row of ghsync.ledger before it assigns positions, and holds it to
// commit. PostgreSQL releases a transaction's locks only after its commit
// is visible, so the next appender can assign positions only after the
// previous positions are visible: positions become visible in order, and
// any snapshot holds a gap-free prefix. Readers take the page and the head
// in one statement (one snapshot), so a subscriber's cursor never passes a
// position that can still appear.
//
// The cost is that appends are serialised; batching (one lock per call, a
// thousand events or more) amortises it: a batched append runs at about
// half the speed of one server-side INSERT ... SELECT of the same rows
// (docs/benchmarks.md).
//
// # Wake-ups
//
// Each append sends NOTIFY ghsync_events at commit; subscribers LISTEN on
// one connection per Store and also poll, so a lost notification costs
// latency, never an event.
package postgres
