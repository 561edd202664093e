package postgres

// schemaVersion is stored in ghsync.meta; Open refuses a ledger written by
// a newer ghsync rather than misreading it.
const schemaVersion = 1

// Indexes are those the reads need: position (ReadAll, Subscribe), id
// (idempotency), (origin, origin_seq) (ReadOrigin, duplicates, the chain)
// and (model, key, position) (ReadStream).
const schema = `
CREATE SCHEMA IF NOT EXISTS ghsync;
CREATE TABLE IF NOT EXISTS ghsync.meta (
	name  text PRIMARY KEY,
	value bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS ghsync.ledger (
	one  boolean PRIMARY KEY DEFAULT true CHECK (one),
	head bigint NOT NULL            -- last position; its row lock is the append lock
);
CREATE TABLE IF NOT EXISTS ghsync.events (
	position   bigint   PRIMARY KEY,
	id         uuid     NOT NULL UNIQUE,
	origin     smallint NOT NULL CHECK (origin BETWEEN 0 AND 511),
	origin_seq bigint   NOT NULL CHECK (origin_seq > 0),
	hlc        bigint   NOT NULL,
	model      text     NOT NULL,
	key        text     NOT NULL,
	tx         bigint   NOT NULL,
	hash       bytea    NOT NULL,
	prev_hash  bytea    NOT NULL,
	payload    bytea    NOT NULL,   -- canonical encoding; hash = sha256(payload)
	UNIQUE (origin, origin_seq)
);
CREATE INDEX IF NOT EXISTS events_stream ON ghsync.events (model, key, position);
CREATE TABLE IF NOT EXISTS ghsync.origins (
	origin  smallint PRIMARY KEY,
	seq     bigint   NOT NULL,
	hash    bytea    NOT NULL,
	count   bigint   NOT NULL,
	max_hlc bigint   NOT NULL
);
INSERT INTO ghsync.ledger (one, head) VALUES (true, 0) ON CONFLICT DO NOTHING;
INSERT INTO ghsync.meta (name, value) VALUES ('schema_version', 1) ON CONFLICT DO NOTHING;
`
