package projections

import (
	"strings"

	"github.com/ghsync/ghsync/models"
)

// schemaVersion is stored beside the tables; Open refuses newer ones.
const schemaVersion = 1

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
	// idmap: network identity ↔ local Tryton id. Kept across rebuilds, so a
	// rebuilt row gets its old id back.
	`CREATE TABLE IF NOT EXISTS {s}idmap (
		model    TEXT NOT NULL,
		key      TEXT NOT NULL,
		local_id BIGINT NOT NULL,
		PRIMARY KEY (model, key),
		UNIQUE (model, local_id))`,
	// idmap_prior: a rebuild's previous id map, so rebuilt rows get their
	// old ids back (other Tryton tables may point at them).
	`CREATE TABLE IF NOT EXISTS {s}idmap_prior (
		model    TEXT NOT NULL,
		key      TEXT NOT NULL,
		local_id BIGINT NOT NULL,
		PRIMARY KEY (model, key))`,
	// state: each record's merge state (merge.State, canonical bytes).
	`CREATE TABLE IF NOT EXISTS {s}state (
		model TEXT NOT NULL,
		key   TEXT NOT NULL,
		live  BOOLEAN NOT NULL,
		state {blob} NOT NULL,
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
	if d.schemaPrefix() == "ghsync." {
		out = append(out, `CREATE SCHEMA IF NOT EXISTS ghsync`)
	} else {
		out = append(out, captureOff)
	}
	for _, s := range schemaTables {
		s = strings.ReplaceAll(s, "{s}", d.schemaPrefix())
		// Index names take no schema in PostgreSQL.
		s = strings.Replace(s, "INDEX IF NOT EXISTS ghsync.", "INDEX IF NOT EXISTS ", 1)
		out = append(out, strings.ReplaceAll(s, "{blob}", d.blobType()))
	}
	if d.schemaPrefix() == "ghsync." {
		// Every write event rewrites its record's state: room on the page
		// lets PostgreSQL update it in place (HOT), without touching the
		// index. Applies to pages written from now on.
		out = append(out, `DO $$ BEGIN
			IF NOT coalesce((SELECT reloptions @> ARRAY['fillfactor=70'] FROM pg_class WHERE oid = 'ghsync.state'::regclass), false) THEN
				ALTER TABLE ghsync.state SET (fillfactor = 70);
			END IF;
		END $$`)
	}
	return out
}
