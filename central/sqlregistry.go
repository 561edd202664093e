package central

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/ghsync/ghsync/clocks"
	"github.com/ghsync/ghsync/internal/dbopen"
	"github.com/ghsync/ghsync/internal/sqltext"
	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/wire"
)

// OpenRegistry opens central's registry in the database a ledger location
// names: "sqlite:PATH" (or a bare path) or a postgres:// URL. It creates
// its tables if they are missing.
func OpenRegistry(ctx context.Context, location string) (Registry, error) {
	r := &sqlRegistry{}
	db, dialect, _, err := dbopen.Open(location)
	r.db, r.pg = db, dialect == dbopen.Postgres
	if err != nil {
		return nil, fmt.Errorf("open registry: %w", err)
	}
	if err := r.init(ctx); err != nil {
		r.db.Close()
		return nil, fmt.Errorf("open registry: %w", err)
	}
	return r, nil
}

type sqlRegistry struct {
	db *sql.DB
	pg bool
}

const sqliteSchema = `
CREATE TABLE IF NOT EXISTS ghsync_satellites (
	id         INTEGER PRIMARY KEY CHECK (id BETWEEN 1 AND 511),
	name       TEXT    NOT NULL,
	scope      TEXT    NOT NULL,
	token_hash BLOB    NOT NULL UNIQUE,  -- sha256 of the bearer token; the token is never stored
	created_us INTEGER NOT NULL,
	revoked_us INTEGER,
	widened    INTEGER NOT NULL DEFAULT 0  -- times the scope went from local to all
) STRICT;
CREATE TABLE IF NOT EXISTS ghsync_satellite_held (
	satellite INTEGER NOT NULL,
	model     TEXT    NOT NULL,
	key       TEXT    NOT NULL,
	expand    INTEGER NOT NULL,
	join_pos  INTEGER NOT NULL,
	PRIMARY KEY (satellite, model, key)
) STRICT, WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ghsync_satellite_held_join ON ghsync_satellite_held (satellite, join_pos);
CREATE TABLE IF NOT EXISTS ghsync_held_events (
	origin      INTEGER NOT NULL,
	seq         INTEGER NOT NULL,
	id          BLOB    NOT NULL,
	model       TEXT    NOT NULL,
	key         TEXT    NOT NULL,
	hlc         INTEGER NOT NULL,
	payload     BLOB    NOT NULL,
	reason      TEXT    NOT NULL,
	skew_ms     INTEGER NOT NULL,
	received_us INTEGER NOT NULL,
	PRIMARY KEY (origin, seq)
) STRICT;
CREATE TABLE IF NOT EXISTS ghsync_central_refs (
	src_model TEXT NOT NULL,
	src_key   TEXT NOT NULL,
	dst_model TEXT NOT NULL,
	dst_key   TEXT NOT NULL,
	PRIMARY KEY (src_model, src_key, dst_model, dst_key)
) STRICT, WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ghsync_central_refs_dst ON ghsync_central_refs (dst_model, dst_key);
CREATE TABLE IF NOT EXISTS ghsync_central_puid (
	party  TEXT PRIMARY KEY,
	ref    TEXT,
	hlc    INTEGER NOT NULL,
	origin INTEGER NOT NULL,
	id     BLOB    NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS ghsync_central_puid_ref ON ghsync_central_puid (ref);
CREATE TABLE IF NOT EXISTS ghsync_central_puid_seen (
	ref   TEXT NOT NULL,
	party TEXT NOT NULL,
	PRIMARY KEY (ref, party)
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ghsync_central_state (
	name  TEXT PRIMARY KEY,
	value INTEGER NOT NULL
) STRICT;
INSERT OR IGNORE INTO ghsync_central_state (name, value) VALUES ('index_position', 0);
CREATE TABLE IF NOT EXISTS ghsync_central_identity (
	one INTEGER PRIMARY KEY CHECK (one = 1),
	id  TEXT    NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS ghsync_stability (
	origin      INTEGER PRIMARY KEY CHECK (origin BETWEEN 0 AND 511),
	hlc         INTEGER NOT NULL,
	applied     INTEGER NOT NULL,
	reported_us INTEGER NOT NULL
) STRICT;
`

const pgSchema = `
CREATE SCHEMA IF NOT EXISTS ghsync;
CREATE TABLE IF NOT EXISTS ghsync.satellites (
	id         smallint PRIMARY KEY CHECK (id BETWEEN 1 AND 511),
	name       text     NOT NULL,
	scope      text     NOT NULL,
	token_hash bytea    NOT NULL UNIQUE,
	created_us bigint   NOT NULL,
	revoked_us bigint,
	widened    bigint   NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS ghsync.satellite_held (
	satellite smallint NOT NULL,
	model     text     NOT NULL,
	key       text     NOT NULL,
	expand    smallint NOT NULL,
	join_pos  bigint   NOT NULL,
	PRIMARY KEY (satellite, model, key)
);
CREATE INDEX IF NOT EXISTS satellite_held_join ON ghsync.satellite_held (satellite, join_pos);
CREATE TABLE IF NOT EXISTS ghsync.held_events (
	origin      smallint NOT NULL,
	seq         bigint   NOT NULL,
	id          bytea    NOT NULL,
	model       text     NOT NULL,
	key         text     NOT NULL,
	hlc         bigint   NOT NULL,
	payload     bytea    NOT NULL,
	reason      text     NOT NULL,
	skew_ms     bigint   NOT NULL,
	received_us bigint   NOT NULL,
	PRIMARY KEY (origin, seq)
);
CREATE TABLE IF NOT EXISTS ghsync.central_refs (
	src_model text NOT NULL,
	src_key   text NOT NULL,
	dst_model text NOT NULL,
	dst_key   text NOT NULL,
	PRIMARY KEY (src_model, src_key, dst_model, dst_key)
);
CREATE INDEX IF NOT EXISTS central_refs_dst ON ghsync.central_refs (dst_model, dst_key);
CREATE TABLE IF NOT EXISTS ghsync.central_puid (
	party  text PRIMARY KEY,
	ref    text,
	hlc    bigint   NOT NULL,
	origin smallint NOT NULL,
	id     bytea    NOT NULL
);
CREATE INDEX IF NOT EXISTS central_puid_ref ON ghsync.central_puid (ref);
CREATE TABLE IF NOT EXISTS ghsync.central_puid_seen (
	ref   text NOT NULL,
	party text NOT NULL,
	PRIMARY KEY (ref, party)
);
CREATE TABLE IF NOT EXISTS ghsync.central_state (
	name  text PRIMARY KEY,
	value bigint NOT NULL
);
INSERT INTO ghsync.central_state (name, value) VALUES ('index_position', 0) ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS ghsync.central_identity (
	one smallint PRIMARY KEY CHECK (one = 1),
	id  text     NOT NULL
);
CREATE TABLE IF NOT EXISTS ghsync.stability (
	origin      smallint PRIMARY KEY CHECK (origin BETWEEN 0 AND 511),
	hlc         bigint   NOT NULL,
	applied     bigint   NOT NULL,
	reported_us bigint   NOT NULL
);
`

func (r *sqlRegistry) init(ctx context.Context) error {
	schema, seen := sqliteSchema, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'ghsync_central_puid_seen'`
	if r.pg {
		schema, seen = pgSchema, `SELECT count(*) FROM pg_tables WHERE schemaname = 'ghsync' AND tablename = 'central_puid_seen'`
	}
	return r.tx(ctx, func(tx *sql.Tx) error {
		if r.pg {
			// Concurrent first opens would race on CREATE ... IF NOT EXISTS.
			if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtext('ghsync.central'))`); err != nil {
				return err
			}
		}
		var had int
		if err := tx.QueryRowContext(ctx, seen).Scan(&had); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, schema); err != nil {
			return err
		}
		if err := r.upgrade(ctx, tx); err != nil {
			return err
		}
		// Central's identity, made once: the satellites' cursors are
		// keyed by it.
		if _, err := tx.ExecContext(ctx, r.q(`INSERT INTO `+r.t("central_identity")+` (one, id) VALUES (1, ?) ON CONFLICT (one) DO NOTHING`), uuid.NewString()); err != nil {
			return err
		}
		if had == 0 {
			// The index of every PUID a party ever had is new: build the
			// reference index again from the start (its writes are
			// idempotent), so it covers the ledger's past too.
			_, err := tx.ExecContext(ctx, `UPDATE `+r.t("central_state")+` SET value = 0 WHERE name = 'index_position'`)
			return err
		}
		return nil
	})
}

// upgrade adds the columns later versions brought to tables an older
// ghsync made.
func (r *sqlRegistry) upgrade(ctx context.Context, tx *sql.Tx) error {
	if r.pg {
		_, err := tx.ExecContext(ctx, `ALTER TABLE ghsync.satellites ADD COLUMN IF NOT EXISTS widened bigint NOT NULL DEFAULT 0`)
		return err
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM pragma_table_info('ghsync_satellites') WHERE name = 'widened'`).Scan(&n); err != nil || n > 0 {
		return err
	}
	_, err := tx.ExecContext(ctx, `ALTER TABLE ghsync_satellites ADD COLUMN widened INTEGER NOT NULL DEFAULT 0`)
	return err
}

func (r *sqlRegistry) Close() error { return r.db.Close() }

func (r *sqlRegistry) Identity(ctx context.Context) (string, error) {
	var id string
	if err := r.db.QueryRowContext(ctx, `SELECT id FROM `+r.t("central_identity")).Scan(&id); err != nil {
		return "", fmt.Errorf("read central's identity: %w", err)
	}
	return id, nil
}

// t names a table: ghsync_NAME in SQLite, ghsync.NAME in PostgreSQL.
func (r *sqlRegistry) t(name string) string {
	if r.pg {
		return "ghsync." + name
	}
	return "ghsync_" + name
}

// q rewrites ? placeholders as $1, $2... for PostgreSQL.
func (r *sqlRegistry) q(query string) string {
	if !r.pg {
		return query
	}
	return sqltext.Dollarize(query)
}

func (r *sqlRegistry) tx(ctx context.Context, f func(*sql.Tx) error) error {
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := f(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// batch is how many rows one multi-row statement carries: well under both
// databases' parameter limits.
const batch = 400

func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(us sql.NullInt64) time.Time {
	if !us.Valid {
		return time.Time{}
	}
	return time.UnixMicro(us.Int64).UTC()
}

const satCols = `id, name, scope, token_hash, created_us, revoked_us, widened`

func scanSatellite(row interface{ Scan(...any) error }) (Satellite, error) {
	var s Satellite
	var id int64
	var hash []byte
	var created int64
	var revoked sql.NullInt64
	var widened int64
	if err := row.Scan(&id, &s.Name, &s.Scope, &hash, &created, &revoked, &widened); err != nil {
		return s, err
	}
	s.Widened = uint64(widened)
	s.ID = uint16(id)
	copy(s.TokenHash[:], hash)
	s.Created = time.UnixMicro(created).UTC()
	s.Revoked = fromMicros(revoked)
	return s, nil
}

func (r *sqlRegistry) AddSatellite(ctx context.Context, s Satellite) error {
	if s.ID < 1 || s.ID > ledger.MaxOrigin {
		return fmt.Errorf("satellite id %d outside 1..%d (0 is central)", s.ID, ledger.MaxOrigin)
	}
	return r.tx(ctx, func(tx *sql.Tx) error {
		old, err := scanSatellite(tx.QueryRowContext(ctx, r.q(`SELECT `+satCols+` FROM `+r.t("satellites")+` WHERE id = ?`), s.ID))
		switch {
		case err == nil && old.Active():
			return fmt.Errorf("%w: satellite %d (%s) is registered; remove it first", ErrExists, s.ID, old.Name)
		case err == nil:
			// The instance registered again keeps its ledger and cursor:
			// a wider scope than before is a widening.
			_, err = tx.ExecContext(ctx, r.q(`UPDATE `+r.t("satellites")+` SET name = ?, scope = ?, token_hash = ?, created_us = ?, revoked_us = NULL, widened = ? WHERE id = ?`),
				s.Name, s.Scope, s.TokenHash[:], micros(s.Created), int64(old.Widened+widening(old.Scope, s.Scope)), s.ID)
			if err == nil {
				// What the revoked instance vouched for does not speak for
				// this one: the frontier waits for its own first report.
				_, err = tx.ExecContext(ctx, r.q(`DELETE FROM `+r.t("stability")+` WHERE origin = ?`), s.ID)
			}
		case errors.Is(err, sql.ErrNoRows):
			_, err = tx.ExecContext(ctx, r.q(`INSERT INTO `+r.t("satellites")+` (id, name, scope, token_hash, created_us) VALUES (?, ?, ?, ?, ?)`),
				s.ID, s.Name, s.Scope, s.TokenHash[:], micros(s.Created))
		}
		if err != nil {
			return fmt.Errorf("add satellite %d: %w", s.ID, err)
		}
		return nil
	})
}

// widening is 1 when a satellite's scope goes from local to all.
func widening(from, to string) uint64 {
	if from == wire.ScopeLocal && to == wire.ScopeAll {
		return 1
	}
	return 0
}

func (r *sqlRegistry) ChangeSatellite(ctx context.Context, id uint16, c SatelliteChange) (before, after Satellite, err error) {
	if c.Scope != "" && !wire.ValidScope(c.Scope) {
		return before, after, fmt.Errorf("change satellite %d: scope %q: want %s or %s", id, c.Scope, wire.ScopeAll, wire.ScopeLocal)
	}
	err = r.tx(ctx, func(tx *sql.Tx) error {
		var err error
		before, err = scanSatellite(tx.QueryRowContext(ctx, r.q(`SELECT `+satCols+` FROM `+r.t("satellites")+` WHERE id = ?`), id))
		if errors.Is(err, sql.ErrNoRows) || err == nil && !before.Active() {
			return fmt.Errorf("%w: no active satellite %d", ErrNotFound, id)
		}
		if err != nil {
			return err
		}
		after = before
		if c.Name != "" {
			after.Name = c.Name
		}
		if c.Scope != "" {
			after.Scope = c.Scope
		}
		after.Widened += widening(before.Scope, after.Scope)
		_, err = tx.ExecContext(ctx, r.q(`UPDATE `+r.t("satellites")+` SET name = ?, scope = ?, widened = ? WHERE id = ?`),
			after.Name, after.Scope, int64(after.Widened), id)
		return err
	})
	if err != nil {
		return Satellite{}, Satellite{}, fmt.Errorf("change satellite %d: %w", id, err)
	}
	return before, after, nil
}

func (r *sqlRegistry) Satellites(ctx context.Context) ([]Satellite, error) {
	rows, err := r.db.QueryContext(ctx, `SELECT `+satCols+` FROM `+r.t("satellites")+` ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list satellites: %w", err)
	}
	defer rows.Close()
	var out []Satellite
	for rows.Next() {
		s, err := scanSatellite(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

func (r *sqlRegistry) SatelliteByToken(ctx context.Context, h TokenHash) (Satellite, error) {
	s, err := scanSatellite(r.db.QueryRowContext(ctx, r.q(`SELECT `+satCols+` FROM `+r.t("satellites")+` WHERE token_hash = ?`), h[:]))
	if errors.Is(err, sql.ErrNoRows) {
		return s, ErrNotFound
	}
	return s, err
}

func (r *sqlRegistry) RevokeSatellite(ctx context.Context, id uint16, at time.Time) error {
	res, err := r.db.ExecContext(ctx, r.q(`UPDATE `+r.t("satellites")+` SET revoked_us = ? WHERE id = ? AND revoked_us IS NULL`), micros(at), id)
	if err != nil {
		return fmt.Errorf("revoke satellite %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%w: no active satellite %d", ErrNotFound, id)
	}
	return nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (r *sqlRegistry) Hold(ctx context.Context, satellite uint16, streams []HeldStream) error {
	if len(streams) == 0 {
		return nil
	}
	return r.tx(ctx, func(tx *sql.Tx) error {
		for len(streams) > 0 {
			n := min(len(streams), batch)
			var b strings.Builder
			args := make([]any, 0, 5*n)
			b.WriteString(`INSERT INTO ` + r.t("satellite_held") + ` AS h (satellite, model, key, expand, join_pos) VALUES `)
			for i, s := range streams[:n] {
				if i > 0 {
					b.WriteByte(',')
				}
				b.WriteString("(?, ?, ?, ?, ?)")
				args = append(args, satellite, s.Stream.Model, s.Stream.Key, b2i(s.Expand), int64(s.Join))
			}
			b.WriteString(` ON CONFLICT (satellite, model, key) DO UPDATE SET expand = CASE WHEN excluded.expand > h.expand THEN excluded.expand ELSE h.expand END`)
			if _, err := tx.ExecContext(ctx, r.q(b.String()), args...); err != nil {
				return fmt.Errorf("hold streams for satellite %d: %w", satellite, err)
			}
			streams = streams[n:]
		}
		return nil
	})
}

// pairs writes "(?, ?), (?, ?)..." for streams and appends their args.
func pairs(b *strings.Builder, args []any, streams []ledger.Stream) []any {
	for i, s := range streams {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(?, ?)")
		args = append(args, s.Model, s.Key)
	}
	return args
}

func (r *sqlRegistry) HeldAmong(ctx context.Context, satellite uint16, streams []ledger.Stream) (map[ledger.Stream]HeldStream, error) {
	out := make(map[ledger.Stream]HeldStream)
	for len(streams) > 0 {
		n := min(len(streams), batch)
		var b strings.Builder
		b.WriteString(`SELECT model, key, expand, join_pos FROM ` + r.t("satellite_held") + ` WHERE satellite = ? AND (model, key) IN (VALUES `)
		args := pairs(&b, []any{satellite}, streams[:n])
		b.WriteByte(')')
		if err := r.heldRows(ctx, b.String(), args, func(h HeldStream) { out[h.Stream] = h }); err != nil {
			return nil, fmt.Errorf("read held set of satellite %d: %w", satellite, err)
		}
		streams = streams[n:]
	}
	return out, nil
}

func (r *sqlRegistry) heldRows(ctx context.Context, query string, args []any, f func(HeldStream)) error {
	rows, err := r.db.QueryContext(ctx, r.q(query), args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var h HeldStream
		var expand, join int64
		if err := rows.Scan(&h.Stream.Model, &h.Stream.Key, &expand, &join); err != nil {
			return err
		}
		h.Expand, h.Join = expand != 0, uint64(join)
		f(h)
	}
	return rows.Err()
}

func (r *sqlRegistry) JoinedBetween(ctx context.Context, satellite uint16, after, through uint64) ([]HeldStream, error) {
	var out []HeldStream
	err := r.heldRows(ctx, `SELECT model, key, expand, join_pos FROM `+r.t("satellite_held")+
		` WHERE satellite = ? AND join_pos > ? AND join_pos <= ? ORDER BY join_pos, model, key`,
		[]any{satellite, int64(after), int64(through)}, func(h HeldStream) { out = append(out, h) })
	if err != nil {
		return nil, fmt.Errorf("read held set of satellite %d: %w", satellite, err)
	}
	return out, nil
}

func (r *sqlRegistry) HeldCount(ctx context.Context, satellite uint16) (int, error) {
	var n int
	err := r.db.QueryRowContext(ctx, r.q(`SELECT count(*) FROM `+r.t("satellite_held")+` WHERE satellite = ?`), satellite).Scan(&n)
	return n, err
}

func (r *sqlRegistry) KeepEvents(ctx context.Context, events []HeldEvent) (int, error) {
	added := 0
	err := r.tx(ctx, func(tx *sql.Tx) error {
		added = 0
		for _, e := range events {
			res, err := tx.ExecContext(ctx, r.q(`INSERT INTO `+r.t("held_events")+
				` (origin, seq, id, model, key, hlc, payload, reason, skew_ms, received_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT (origin, seq) DO NOTHING`),
				e.Origin, int64(e.Seq), e.ID[:], e.Model, e.Key, int64(e.HLC), e.Payload, e.Reason, e.SkewMillis, micros(e.Received))
			if err != nil {
				return fmt.Errorf("keep event origin %d seq %d: %w", e.Origin, e.Seq, err)
			}
			n, _ := res.RowsAffected()
			added += int(n)
		}
		return nil
	})
	return added, err
}

func (r *sqlRegistry) HeldEvents(ctx context.Context, origin int) ([]HeldEvent, error) {
	query := `SELECT origin, seq, id, model, key, hlc, payload, reason, skew_ms, received_us FROM ` + r.t("held_events")
	var args []any
	if origin >= 0 {
		query += ` WHERE origin = ?`
		args = append(args, origin)
	}
	rows, err := r.db.QueryContext(ctx, r.q(query+` ORDER BY origin, seq`), args...)
	if err != nil {
		return nil, fmt.Errorf("list held events: %w", err)
	}
	defer rows.Close()
	var out []HeldEvent
	for rows.Next() {
		var e HeldEvent
		var o, seq, hlc, recv int64
		var id []byte
		if err := rows.Scan(&o, &seq, &id, &e.Model, &e.Key, &hlc, &e.Payload, &e.Reason, &e.SkewMillis, &recv); err != nil {
			return nil, err
		}
		e.Origin, e.Seq, e.HLC, e.Received = uint16(o), uint64(seq), clocks.Timestamp(hlc), time.UnixMicro(recv).UTC()
		e.ID, _ = uuid.FromBytes(id)
		out = append(out, e)
	}
	return out, rows.Err()
}

func (r *sqlRegistry) ForgetEvents(ctx context.Context, origin uint16, through uint64) error {
	_, err := r.db.ExecContext(ctx, r.q(`DELETE FROM `+r.t("held_events")+` WHERE origin = ? AND seq <= ?`), origin, int64(through))
	if err != nil {
		return fmt.Errorf("forget held events of origin %d: %w", origin, err)
	}
	return nil
}

func (r *sqlRegistry) IndexPosition(ctx context.Context) (uint64, error) {
	var p int64
	err := r.db.QueryRowContext(ctx, `SELECT value FROM `+r.t("central_state")+` WHERE name = 'index_position'`).Scan(&p)
	return uint64(p), err
}

func (r *sqlRegistry) AddToIndex(ctx context.Context, from, through uint64, edges []Edge, puids []PUID) error {
	return r.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, r.q(`UPDATE `+r.t("central_state")+` SET value = ? WHERE name = 'index_position' AND value = ?`), int64(through), int64(from))
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return ErrIndexMoved
		}
		refs := make([][]any, len(edges))
		for i, e := range edges {
			refs[i] = []any{e.From.Model, e.From.Key, e.To.Model, e.To.Key}
		}
		if err := r.insertNew(ctx, tx, "central_refs", "src_model, src_key, dst_model, dst_key", refs); err != nil {
			return fmt.Errorf("index references: %w", err)
		}
		var seen [][]any
		for _, p := range puids {
			if p.Ref != "" {
				seen = append(seen, []any{p.Ref, p.Party})
			}
		}
		if err := r.insertNew(ctx, tx, "central_puid_seen", "ref, party", seen); err != nil {
			return fmt.Errorf("index the PUIDs parties had: %w", err)
		}
		for _, p := range puids {
			var ref any
			if p.Ref != "" {
				ref = p.Ref
			}
			// Keep the latest value by the ledger's total order (hlc, origin, id).
			if _, err := tx.ExecContext(ctx, r.q(`INSERT INTO `+r.t("central_puid")+` AS p (party, ref, hlc, origin, id) VALUES (?, ?, ?, ?, ?)
				ON CONFLICT (party) DO UPDATE SET ref = excluded.ref, hlc = excluded.hlc, origin = excluded.origin, id = excluded.id
				WHERE (excluded.hlc, excluded.origin, excluded.id) > (p.hlc, p.origin, p.id)`),
				p.Party, ref, int64(p.HLC), p.Origin, p.ID[:]); err != nil {
				return fmt.Errorf("index puid of party %s: %w", p.Party, err)
			}
		}
		return nil
	})
}

// insertNew inserts rows (values of cols) into table in multi-row
// statements, skipping rows it holds already.
func (r *sqlRegistry) insertNew(ctx context.Context, tx *sql.Tx, table, cols string, rows [][]any) error {
	for len(rows) > 0 {
		n := min(len(rows), batch)
		var b strings.Builder
		var args []any
		b.WriteString(`INSERT INTO ` + r.t(table) + ` (` + cols + `) VALUES `)
		for i, row := range rows[:n] {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString("(" + strings.TrimSuffix(strings.Repeat("?, ", len(row)), ", ") + ")")
			args = append(args, row...)
		}
		b.WriteString(` ON CONFLICT DO NOTHING`)
		if _, err := tx.ExecContext(ctx, r.q(b.String()), args...); err != nil {
			return err
		}
		rows = rows[n:]
	}
	return nil
}

func (r *sqlRegistry) edges(ctx context.Context, col string, streams []ledger.Stream) ([]Edge, error) {
	var out []Edge
	for len(streams) > 0 {
		n := min(len(streams), batch)
		var b strings.Builder
		b.WriteString(`SELECT src_model, src_key, dst_model, dst_key FROM ` + r.t("central_refs") + ` WHERE (` + col + `_model, ` + col + `_key) IN (VALUES `)
		args := pairs(&b, nil, streams[:n])
		b.WriteByte(')')
		rows, err := r.db.QueryContext(ctx, r.q(b.String()), args...)
		if err != nil {
			return nil, fmt.Errorf("read reference index: %w", err)
		}
		for rows.Next() {
			var e Edge
			if err := rows.Scan(&e.From.Model, &e.From.Key, &e.To.Model, &e.To.Key); err != nil {
				rows.Close()
				return nil, err
			}
			out = append(out, e)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
		streams = streams[n:]
	}
	return out, nil
}

func (r *sqlRegistry) Referrers(ctx context.Context, targets []ledger.Stream) ([]Edge, error) {
	return r.edges(ctx, "dst", targets)
}

func (r *sqlRegistry) Targets(ctx context.Context, sources []ledger.Stream) ([]Edge, error) {
	return r.edges(ctx, "src", sources)
}

func (r *sqlRegistry) PartiesByPUID(ctx context.Context, puid string) ([]string, error) {
	return r.parties(ctx, "central_puid", puid)
}

func (r *sqlRegistry) PartiesOnceByPUID(ctx context.Context, puid string) ([]string, error) {
	return r.parties(ctx, "central_puid_seen", puid)
}

// parties lists the parties whose ref is puid in table.
func (r *sqlRegistry) parties(ctx context.Context, table, puid string) ([]string, error) {
	rows, err := r.db.QueryContext(ctx, r.q(`SELECT party FROM `+r.t(table)+` WHERE ref = ? ORDER BY party`), puid)
	if err != nil {
		return nil, fmt.Errorf("look up PUID: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

func (r *sqlRegistry) ReportStable(ctx context.Context, st Stability) error {
	if st.Origin > ledger.MaxOrigin || st.HLC > math.MaxInt64 || st.Applied > math.MaxInt64 {
		return fmt.Errorf("stability report of origin %d: hlc %d or position %d out of range", st.Origin, uint64(st.HLC), st.Applied)
	}
	_, err := r.db.ExecContext(ctx, r.q(`INSERT INTO `+r.t("stability")+` (origin, hlc, applied, reported_us) VALUES (?, ?, ?, ?)
		ON CONFLICT (origin) DO UPDATE SET hlc = excluded.hlc, applied = excluded.applied, reported_us = excluded.reported_us`),
		int64(st.Origin), int64(st.HLC), int64(st.Applied), micros(st.Reported))
	if err != nil {
		return fmt.Errorf("stability report of origin %d: %w", st.Origin, err)
	}
	return nil
}

func (r *sqlRegistry) RaiseStable(ctx context.Context, st Stability) (bool, error) {
	if st.Origin > ledger.MaxOrigin || st.HLC > math.MaxInt64 || st.Applied > math.MaxInt64 {
		return false, fmt.Errorf("stability report of origin %d: hlc %d or position %d out of range", st.Origin, uint64(st.HLC), st.Applied)
	}
	greatest := "max"
	if r.pg {
		greatest = "GREATEST"
	}
	res, err := r.db.ExecContext(ctx, r.q(`INSERT INTO `+r.t("stability")+` AS s (origin, hlc, applied, reported_us) VALUES (?, ?, ?, ?)
		ON CONFLICT (origin) DO UPDATE SET hlc = `+greatest+`(s.hlc, excluded.hlc), applied = `+greatest+`(s.applied, excluded.applied), reported_us = excluded.reported_us
		WHERE excluded.hlc > s.hlc OR excluded.applied > s.applied`),
		int64(st.Origin), int64(st.HLC), int64(st.Applied), micros(st.Reported))
	if err != nil {
		return false, fmt.Errorf("stability report of origin %d: %w", st.Origin, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("stability report of origin %d: %w", st.Origin, err)
	}
	return n > 0, nil
}

func (r *sqlRegistry) RaiseFrontier(ctx context.Context, f clocks.Timestamp) error {
	if f > math.MaxInt64 {
		return fmt.Errorf("record stability frontier %d: out of range", uint64(f))
	}
	_, err := r.db.ExecContext(ctx, r.q(`INSERT INTO `+r.t("central_state")+` AS s (name, value) VALUES ('frontier', ?)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value WHERE excluded.value > s.value`), int64(f))
	if err != nil {
		return fmt.Errorf("record stability frontier: %w", err)
	}
	return nil
}

func (r *sqlRegistry) LastFrontier(ctx context.Context) (clocks.Timestamp, error) {
	var f int64
	err := r.db.QueryRowContext(ctx, `SELECT value FROM `+r.t("central_state")+` WHERE name = 'frontier'`).Scan(&f)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read stability frontier: %w", err)
	}
	return clocks.Timestamp(f), nil
}

func (r *sqlRegistry) SetClockPolicy(ctx context.Context, p ClockPolicy) error {
	return r.tx(ctx, func(tx *sql.Tx) error {
		for name, v := range map[string]int64{"max_ahead_ms": p.MaxAhead.Milliseconds(), "skew": int64(p.Skew)} {
			if _, err := tx.ExecContext(ctx, r.q(`INSERT INTO `+r.t("central_state")+` (name, value) VALUES (?, ?)
				ON CONFLICT (name) DO UPDATE SET value = excluded.value`), name, v); err != nil {
				return fmt.Errorf("record clock policy: %w", err)
			}
		}
		return nil
	})
}

func (r *sqlRegistry) ClockPolicy(ctx context.Context) (ClockPolicy, bool, error) {
	rows, err := r.db.QueryContext(ctx, `SELECT name, value FROM `+r.t("central_state")+` WHERE name IN ('max_ahead_ms', 'skew')`)
	if err != nil {
		return ClockPolicy{}, false, fmt.Errorf("read clock policy: %w", err)
	}
	defer rows.Close()
	var p ClockPolicy
	n := 0
	for rows.Next() {
		var name string
		var v int64
		if err := rows.Scan(&name, &v); err != nil {
			return ClockPolicy{}, false, fmt.Errorf("read clock policy: %w", err)
		}
		if name == "skew" {
			p.Skew = SkewPolicy(v)
		} else {
			p.MaxAhead = time.Duration(v) * time.Millisecond
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return ClockPolicy{}, false, fmt.Errorf("read clock policy: %w", err)
	}
	return p, n == 2, nil
}

func (r *sqlRegistry) Stabilities(ctx context.Context) ([]Stability, error) {
	rows, err := r.db.QueryContext(ctx, `SELECT origin, hlc, applied, reported_us FROM `+r.t("stability")+` ORDER BY origin`)
	if err != nil {
		return nil, fmt.Errorf("list stability reports: %w", err)
	}
	defer rows.Close()
	var out []Stability
	for rows.Next() {
		var origin, hlc, applied, at int64
		if err := rows.Scan(&origin, &hlc, &applied, &at); err != nil {
			return nil, fmt.Errorf("list stability reports: %w", err)
		}
		out = append(out, Stability{Origin: uint16(origin), HLC: clocks.Timestamp(hlc), Applied: uint64(applied), Reported: time.UnixMicro(at).UTC()})
	}
	return out, rows.Err()
}

// Registered counts the satellites ever registered (revoked ones too) in
// the ledger database at location, without creating central's tables where they are
// missing (0 then): how a command tells central's ledger from a clinic's.
func Registered(ctx context.Context, location string) (int, error) {
	db, dialect, _, err := dbopen.Open(location)
	if err != nil {
		return 0, fmt.Errorf("open registry: %w", err)
	}
	defer db.Close()
	table, exists := "ghsync_satellites", `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'ghsync_satellites'`
	if dialect == dbopen.Postgres {
		table, exists = "ghsync.satellites", `SELECT count(*) FROM pg_tables WHERE schemaname = 'ghsync' AND tablename = 'satellites'`
	}
	var n int
	if err := db.QueryRowContext(ctx, exists).Scan(&n); err != nil || n == 0 {
		return 0, err
	}
	err = db.QueryRowContext(ctx, `SELECT count(*) FROM `+table).Scan(&n)
	return n, err
}
