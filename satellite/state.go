package satellite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ghsync/ghsync/internal/dbopen"
	"github.com/ghsync/ghsync/internal/sqltext"
)

// State is what a satellite remembers about its central between runs: the
// pull cursor (a central position), the last measured clock offset, and
// what it knows of its scope. It lives beside the satellite's ledger:
// table ghsync_sync_state in its SQLite file, or ghsync.sync_state in its
// PostgreSQL database, one row keyed by central's identity (wire.Heads),
// so that reaching central at another URL (https, a DNS name) keeps the
// cursor. Rows written before centrals had identities are keyed by the
// URL; the first contact through that URL moves such a row to the
// identity.
type State struct {
	Cursor  uint64
	Offset  time.Duration
	Updated time.Time
	// URL is where central was last reached.
	URL string
	// Widened is central's count of this satellite's scope widenings as
	// last seen (wire.HeaderWidened).
	Widened uint64
	// RescanThrough is the cursor a widening (or pull --from-start) found:
	// until the cursor is back past it, the satellite is fetching
	// history again from the start (Client.Rescanning).
	RescanThrough uint64
}

// stateDB reads and writes State rows.
type stateDB struct {
	db *sql.DB
	pg bool
}

// stateColumns are added to a table an older ghsync made, by name.
var stateColumns = []struct{ name, sqlite, pg string }{
	{"url", "TEXT NOT NULL DEFAULT ''", "text NOT NULL DEFAULT ''"},
	{"widened", "INTEGER NOT NULL DEFAULT 0", "bigint NOT NULL DEFAULT 0"},
	{"rescan_through", "INTEGER NOT NULL DEFAULT 0", "bigint NOT NULL DEFAULT 0"},
}

func openState(ctx context.Context, location string) (*stateDB, error) {
	s := &stateDB{}
	db, dialect, _, err := dbopen.Open(location)
	s.db, s.pg = db, dialect == dbopen.Postgres
	if err != nil {
		return nil, fmt.Errorf("open sync state: %w", err)
	}
	if err := s.init(ctx); err != nil {
		s.db.Close()
		return nil, fmt.Errorf("open sync state: %w", err)
	}
	return s, nil
}

func (s *stateDB) init(ctx context.Context) error {
	schema := `CREATE TABLE IF NOT EXISTS ghsync_sync_state (
		central   TEXT PRIMARY KEY,  -- central's identity; its URL in rows from before identities
		cursor    INTEGER NOT NULL,
		offset_ns INTEGER NOT NULL,
		updated_us INTEGER NOT NULL
	) STRICT`
	if s.pg {
		schema = `CREATE SCHEMA IF NOT EXISTS ghsync;
		CREATE TABLE IF NOT EXISTS ghsync.sync_state (
			central    text   PRIMARY KEY,
			cursor     bigint NOT NULL,
			offset_ns  bigint NOT NULL,
			updated_us bigint NOT NULL
		)`
	}
	if _, err := s.db.ExecContext(ctx, schema); err != nil {
		return err
	}
	for _, c := range stateColumns {
		if s.pg {
			if _, err := s.db.ExecContext(ctx, `ALTER TABLE ghsync.sync_state ADD COLUMN IF NOT EXISTS `+c.name+` `+c.pg); err != nil {
				return err
			}
			continue
		}
		var n int
		if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM pragma_table_info('ghsync_sync_state') WHERE name = ?`, c.name).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			if _, err := s.db.ExecContext(ctx, `ALTER TABLE ghsync_sync_state ADD COLUMN `+c.name+` `+c.sqlite); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *stateDB) table() string {
	if s.pg {
		return "ghsync.sync_state"
	}
	return "ghsync_sync_state"
}

func (s *stateDB) q(query string) string {
	if s.pg {
		return sqltext.Dollarize(query)
	}
	return query
}

// stateRow is a row with its key.
type stateRow struct {
	Key string
	State
}

// legacy reports whether a row's key is a URL (a row written before
// centrals had identities) rather than an identity.
func (r stateRow) legacy() bool { return strings.Contains(r.Key, "://") }

func (s *stateDB) rows(ctx context.Context) ([]stateRow, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT central, cursor, offset_ns, updated_us, url, widened, rescan_through FROM `+s.table()+` ORDER BY updated_us DESC`)
	if err != nil {
		return nil, fmt.Errorf("read sync state: %w", err)
	}
	defer rows.Close()
	var out []stateRow
	for rows.Next() {
		var r stateRow
		var cur, off, upd, wid, rescan int64
		if err := rows.Scan(&r.Key, &cur, &off, &upd, &r.URL, &wid, &rescan); err != nil {
			return nil, fmt.Errorf("read sync state: %w", err)
		}
		r.Cursor, r.Offset, r.Updated = uint64(cur), time.Duration(off), time.UnixMicro(upd).UTC()
		r.Widened, r.RescanThrough = uint64(wid), uint64(rescan)
		out = append(out, r)
	}
	return out, rows.Err()
}

// rekey moves the row keyed from to key to, and drops the rows of drop.
func (s *stateDB) rekey(ctx context.Context, from, to string, drop []string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sync state: %w", err)
	}
	defer tx.Rollback()
	for _, k := range drop {
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM `+s.table()+` WHERE central = ?`), k); err != nil {
			return fmt.Errorf("sync state: forget %s: %w", k, err)
		}
	}
	if from != "" && from != to {
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE `+s.table()+` SET central = ? WHERE central = ?`), to, from); err != nil {
			return fmt.Errorf("sync state: key the cursor of %s by central's identity %s: %w", from, to, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sync state: %w", err)
	}
	return nil
}

func (s *stateDB) save(ctx context.Context, key string, st State) error {
	q := s.q(`INSERT INTO ` + s.table() + ` (central, cursor, offset_ns, updated_us, url, widened, rescan_through) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (central) DO UPDATE SET cursor = excluded.cursor, offset_ns = excluded.offset_ns, updated_us = excluded.updated_us,
		url = excluded.url, widened = excluded.widened, rescan_through = excluded.rescan_through`)
	if _, err := s.db.ExecContext(ctx, q, key, int64(st.Cursor), int64(st.Offset), st.Updated.UnixMicro(), st.URL, int64(st.Widened), int64(st.RescanThrough)); err != nil {
		return fmt.Errorf("save sync state: %w", err)
	}
	return nil
}

// saveOffset records a new clock offset without touching the cursor.
func (s *stateDB) saveOffset(ctx context.Context, key, url string, off time.Duration, at time.Time) error {
	q := s.q(`INSERT INTO ` + s.table() + ` (central, cursor, offset_ns, updated_us, url) VALUES (?, 0, ?, ?, ?)
		ON CONFLICT (central) DO UPDATE SET offset_ns = excluded.offset_ns, updated_us = excluded.updated_us, url = excluded.url`)
	if _, err := s.db.ExecContext(ctx, q, key, int64(off), at.UnixMicro(), url); err != nil {
		return fmt.Errorf("save clock offset: %w", err)
	}
	return nil
}

func (s *stateDB) close() error { return s.db.Close() }

// ErrOtherCentral: the central reached answers as another central than the
// one this satellite's pull cursor belongs to (a mistyped URL, another
// network's central, or a central rebuilt from scratch).
var ErrOtherCentral = errors.New("another central")
