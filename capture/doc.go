// Package capture turns every change made in a GNU Health database into a
// ledger event, exactly once.
//
// Install puts a transactional outbox and triggers inside the Tryton
// database (schema ghsync on PostgreSQL, ghsync_ tables on SQLite): every
// insert, update and delete on a synchronised table, including those of
// ON DELETE CASCADE and of Tryton's cron jobs, adds an outbox row in the
// writer's own transaction, holding the changed columns (old and new),
// the transaction, the time and the Tryton user. Nothing is added to
// Tryton's tables. Changes made while ghsync is stopped wait in the
// outbox.
//
// A Capturer drains the outbox: it maps local ids to network keys (the
// projector's id map is shared, so a record has one identity whichever
// side made it), translates Many2One ids to the target's key, diffs to the
// synchronised fields, names the Base each writer saw, stamps origin,
// origin_seq, HLC (at the time of the change, see clocks.Clock.At) and
// transaction, and appends. When the ledger lives in the same database the
// outbox rows go in the append's own transaction (ledger.HookAppender);
// otherwise the stamped events are first committed to a hand-off table
// with the outbox deletion, then appended (idempotently) and cleared, so a
// crash between the two repeats the append and never loses or doubles a
// change.
//
// No echo: the projector marks its transactions (a transaction-local
// setting on PostgreSQL, a row in ghsync_capture_off on SQLite) and the
// triggers skip them, so applied remote changes are not captured again.
//
// A row whose key is not network-unique (a plain-number party code, as
// every instance's Tryton sequence makes; an empty key) is not given an
// identity: it is held back, with what references it, until it can have
// one (held.go); Status.Held lists it.
//
// What the triggers did not see (rows from before install, edits made
// while capture was uninstalled or its triggers were missing) is in no
// event: Reconcile compares every row with what the network knows of it
// and captures the differences, and Install holds projection until it has
// run wherever the network already knows rows, since projecting would
// overwrite those edits.
//
// HAZARD: a change of a record's unique key moves its identity. It is
// captured as a create of the new key carrying models.RenamedFrom (the old
// key) followed by a delete of the old key, and the id map entry moves
// with it, so the local row and everything pointing at it stay; other
// instances' projectors follow the alias.
package capture
