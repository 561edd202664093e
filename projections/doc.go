// Package projections materialises GNU Health's Tryton tables from the
// ledger. A Projector reads events after its checkpoint, merges them into
// each record's merge state (package merge), and writes the rows the
// states imply, with real Tryton ids, audit columns and foreign keys.
//
// # Exactly once
//
// One batch is one transaction: table rows, merge states and local ids,
// parked records, conflicts, rejected events and the checkpoint commit
// together. Killed at any point, a restarted projector repeats at most the
// uncommitted batch, and merging is idempotent, so the tables come out the
// same as after an uninterrupted run.
//
// # Identities
//
// Events name records by network key; Tryton rows have local integer ids
// from the table's own sequence. The records table (ghsync.records) links
// the two, in the same row as the record's merge state. Tryton's tables
// get no extra column.
//
// # References and parking
//
// A Many2One is carried as the target's network key and resolved to the
// target's local id. A record whose required reference has not arrived (or
// that lacks a required value) is parked: its merge state is kept, its row
// waits, and it is written as soon as what it waits for arrives. An
// optional reference that does not resolve yet is written as NULL and the
// record is parked until the target arrives. `Parked` lists all of them.
//
// # Bad input
//
// An event for an unknown model, a field the registry does not know or
// does not synchronise, a value of the wrong type, or a reference to a
// model that is not synchronised is set aside whole (see Rejected), with
// a message naming model, key, field and event; the rest of its batch
// applies.
//
// # Dialects
//
// PostgreSQL (pgx, production) and SQLite (the embedded default, which
// Tryton also supports) share one code path; dialect.go isolates what
// differs: statement batching, key-set lookups, id allocation, value
// encodings.
//
// Hazard: rows of non-synchronised Tryton tables that point at projected
// rows with ON DELETE RESTRICT make a replicated delete (and Rebuild) fail;
// the projector stops with the database's error rather than skip the delete.
package projections
