package sqlite

// schemaVersion is stored in ghsync_meta; Open refuses a ledger written by
// a newer ghsync rather than misreading it.
const schemaVersion = 1

// Tables carry a ghsync_ prefix because the same file may also hold the
// instance's Tryton tables (SQLite has no schemas to keep them apart).
const schema = `
CREATE TABLE IF NOT EXISTS ghsync_meta (
	name  TEXT PRIMARY KEY,
	value INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS ghsync_events (
	position   INTEGER PRIMARY KEY,   -- dense, assigned under the write lock
	id         BLOB    NOT NULL UNIQUE,
	origin     INTEGER NOT NULL,
	origin_seq INTEGER NOT NULL,
	hlc        INTEGER NOT NULL,
	model      TEXT    NOT NULL,
	key        TEXT    NOT NULL,
	tx         INTEGER NOT NULL,
	hash       BLOB    NOT NULL,
	prev_hash  BLOB    NOT NULL,
	payload    BLOB    NOT NULL,      -- canonical encoding; hash = sha256(payload)
	UNIQUE (origin, origin_seq)
) STRICT;
CREATE INDEX IF NOT EXISTS ghsync_events_stream ON ghsync_events (model, key, position);
CREATE TABLE IF NOT EXISTS ghsync_origins (
	origin  INTEGER PRIMARY KEY,
	seq     INTEGER NOT NULL,
	hash    BLOB    NOT NULL,
	count   INTEGER NOT NULL,
	max_hlc INTEGER NOT NULL
) STRICT;
INSERT OR IGNORE INTO ghsync_meta (name, value) VALUES ('schema_version', 1);
`
