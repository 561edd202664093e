package projections

import (
	"strings"

	"github.com/ghsync/ghsync/models"
)

// schemaVersion is stored beside the tables; Open refuses newer ones.
const schemaVersion = 2

// The projector's own tables. In PostgreSQL they live in schema ghsync
// (beside the ledger when it shares the database); in SQLite they carry a
// ghsync_ prefix. Tryton's tables are never altered: what ghsync needs to
// know about a row (its network key, its merge state) lives here.
var schemaTables = []string{
	`CREATE TABLE IF NOT EXISTS {s}proj_meta (
		name  TEXT PRIMARY KEY,
		value BIGINT NOT NULL)`,
	// checkpoint: the last ledger position applied, per projector.
	`CREATE TABLE IF NOT EXISTS {s}checkpoint (
		name     TEXT PRIMARY KEY,
		position BIGINT NOT NULL)`,
	// checkpoint_event: the hash of the event at a projector's checkpoint,
	// committed with it, so a catch-up can tell whether the ledger it
	// reads is the one the target was built from. position says which
	// checkpoint the hash belongs to: a ghsync without this table moves
	// checkpoints without it, and the check then waits for the next batch.
	`CREATE TABLE IF NOT EXISTS {s}checkpoint_event (
		name     TEXT PRIMARY KEY,
		position BIGINT NOT NULL,
		hash     TEXT NOT NULL)`,
	// records: one row per record the network knows here: its local
	// Tryton id (NULL while it has no row: parked, deleted, or not
	// materialised yet) and its merge state (merge.State, canonical bytes;
	// NULL for a local row whose first event the projector has not seen).
	// Identity and state share a row so a batch probes and writes each
	// record once. Kept across rebuilds only through idmap_prior. Keys
	// compare bytewise: the database's linguistic collation would cost
	// every index probe and insert a strcoll per comparison, for an order
	// nothing reads.
	`CREATE TABLE IF NOT EXISTS {s}records (
		model    TEXT{bytewise} NOT NULL,
		key      TEXT{bytewise} NOT NULL,
		local_id BIGINT,
		live     BOOLEAN,
		state    {blob},
		PRIMARY KEY (model, key))`,
	`CREATE UNIQUE INDEX IF NOT EXISTS {s}records_local_id ON {s}records (model, local_id) WHERE local_id IS NOT NULL`,
	// idmap_prior: a rebuild's previous id map, so rebuilt rows get their
	// old ids back (other Tryton tables may point at them).
	`CREATE TABLE IF NOT EXISTS {s}idmap_prior (
		model    TEXT NOT NULL,
		key      TEXT NOT NULL,
		local_id BIGINT NOT NULL,
		PRIMARY KEY (model, key))`,
	// parked: records that cannot be materialised yet, and what they wait for.
	`CREATE TABLE IF NOT EXISTS {s}parked (
		model       TEXT NOT NULL,
		key         TEXT NOT NULL,
		waits_model TEXT NOT NULL,
		waits_key   TEXT NOT NULL,
		reason      TEXT NOT NULL,
		position    BIGINT NOT NULL,
		PRIMARY KEY (model, key, waits_model, waits_key))`,
	`CREATE INDEX IF NOT EXISTS {s}parked_waits ON {s}parked (waits_model, waits_key)`,
	// conflicts: the derived conflict set of every record (merge.Conflicts).
	`CREATE TABLE IF NOT EXISTS {s}conflicts (
		model         TEXT NOT NULL,
		key           TEXT NOT NULL,
		field         TEXT NOT NULL,
		loser_event   TEXT NOT NULL,
		reason        TEXT NOT NULL,
		loser_origin  INTEGER NOT NULL,
		loser_hlc     TEXT NOT NULL,
		loser_value   TEXT NOT NULL,
		winner_event  TEXT NOT NULL,
		winner_origin INTEGER NOT NULL,
		winner_hlc    TEXT NOT NULL,
		winner_value  TEXT NOT NULL,
		PRIMARY KEY (model, key, field, loser_event))`,
	// deferred: records whose row was left as it is because the capturer
	// has not yet drained a local change to it (see projector.go); bases
	// holds the HLC each field's shown value had, which the capturer names
	// as the local change's Base. Re-derived once the change is drained.
	`CREATE TABLE IF NOT EXISTS {s}deferred (
		model TEXT NOT NULL,
		key   TEXT NOT NULL,
		bases TEXT NOT NULL,
		PRIMARY KEY (model, key))`,
	// alias: a record whose unique key changed (models.RenamedFrom): old
	// references resolve to the new key.
	`CREATE TABLE IF NOT EXISTS {s}alias (
		model   TEXT NOT NULL,
		old_key TEXT NOT NULL,
		new_key TEXT NOT NULL,
		PRIMARY KEY (model, old_key))`,
	// clock_bounds: central's clock corrections (ledger.ClockBound): events
	// of origin from_seq..to_seq merge as if stamped at bound.
	`CREATE TABLE IF NOT EXISTS {s}clock_bounds (
		origin   INTEGER NOT NULL,
		from_seq BIGINT NOT NULL,
		to_seq   BIGINT NOT NULL,
		bound    BIGINT NOT NULL,
		PRIMARY KEY (origin, from_seq))`,
	// rejected: events set aside because they break the registry's rules.
	`CREATE TABLE IF NOT EXISTS {s}rejected (
		position BIGINT PRIMARY KEY,
		event_id TEXT NOT NULL,
		model    TEXT NOT NULL,
		key      TEXT NOT NULL,
		field    TEXT NOT NULL,
		problem  TEXT NOT NULL)`,
}

// captureOff is where a projector transaction on SQLite says "do not
// capture me": the capture triggers skip changes while it holds a row,
// which only the projector's own uncommitted transaction can see.
// PostgreSQL uses a transaction-local setting instead.
const captureOff = `CREATE TABLE IF NOT EXISTS ghsync_capture_off (projector INTEGER NOT NULL)`

// DDL is the projector's bookkeeping schema in a dialect (models.Postgres
// or models.SQLite). The capturer creates it too: both share the id map,
// so a record keeps one network identity whichever side wrote it.
func DDL(dialect string) []string {
	if dialect == models.Postgres {
		return ddl(&pgDialect{})
	}
	return ddl(&sqliteDialect{})
}

// ddl renders the schema for a dialect.
func ddl(d interface {
	schemaPrefix() string
	blobType() string
}) []string {
	out := make([]string, 0, len(schemaTables)+1)
	bytewise := "" // SQLite's default collation already is
	if d.schemaPrefix() == "ghsync." {
		out = append(out, `CREATE SCHEMA IF NOT EXISTS ghsync`)
		bytewise = ` COLLATE "C"`
	} else {
		out = append(out, captureOff)
	}
	for _, s := range schemaTables {
		s = strings.ReplaceAll(s, "{s}", d.schemaPrefix())
		s = strings.ReplaceAll(s, "{bytewise}", bytewise)
		// Index names take no schema in PostgreSQL.
		s = strings.Replace(s, "INDEX IF NOT EXISTS ghsync.", "INDEX IF NOT EXISTS ", 1)
		out = append(out, strings.ReplaceAll(s, "{blob}", d.blobType()))
	}
	if d.schemaPrefix() == "ghsync." {
		// Every write event rewrites its record's state: room on the page
		// lets PostgreSQL update it in place (HOT), without touching the
		// index. Applies to pages written from now on.
		out = append(out, `DO $$ BEGIN
			IF NOT coalesce((SELECT reloptions @> ARRAY['fillfactor=70'] FROM pg_class WHERE oid = 'ghsync.records'::regclass), false) THEN
				ALTER TABLE ghsync.records SET (fillfactor = 70);
			END IF;
		END $$`,
			// The few large states (busy records a frontier has not yet
			// compacted) are compressed in TOAST at every save: lz4 does it
			// several times faster than the default pglz (a third of the
			// records updates' time in the clinic benchmark). Where the
			// server has it (PostgreSQL 14, built with lz4).
			`DO $$ BEGIN
			IF EXISTS (SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)) THEN
				IF (SELECT attcompression FROM pg_attribute WHERE attrelid = 'ghsync.records'::regclass AND attname = 'state') <> 'l' THEN
					ALTER TABLE ghsync.records ALTER COLUMN state SET COMPRESSION lz4;
				END IF;
			END IF;
		END $$`, lockReferencesDDL)
	}
	return out
}

// UpgradeDDL returns the statements that bring a version-1 bookkeeping
// schema (merge states and the id map in two tables, state and idmap) to
// this version, and the table whose presence says a database is at
// version 1. Whoever runs DDL (the projector, capture install) runs them
// next, in the same transaction, when that table exists: the records
// table DDL just created is still empty then.
func UpgradeDDL(dialect string) (marker string, stmts []string) {
	s := "ghsync_"
	if dialect == models.Postgres {
		s = "ghsync."
	}
	stmts = []string{
		`INSERT INTO {s}records (model, key, local_id, live, state)
			SELECT s.model, s.key, i.local_id, s.live, s.state FROM {s}state s
			LEFT JOIN {s}idmap i ON i.model = s.model AND i.key = s.key`,
		`INSERT INTO {s}records (model, key, local_id)
			SELECT i.model, i.key, i.local_id FROM {s}idmap i
			WHERE NOT EXISTS (SELECT 1 FROM {s}state s WHERE s.model = i.model AND s.key = i.key)`,
		`DROP TABLE {s}state`,
		`DROP TABLE {s}idmap`,
		`UPDATE {s}proj_meta SET value = 2 WHERE name = 'schema_version' AND value < 2`,
	}
	for i, q := range stmts {
		stmts[i] = strings.ReplaceAll(q, "{s}", s)
	}
	return s + "idmap", stmts
}
