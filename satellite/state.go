package satellite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ghsync/ghsync/internal/dbopen"
)

// State is what a satellite remembers about one central between runs:
// the pull cursor (a central position) and the last measured clock
// offset. It lives beside the satellite's ledger: table ghsync_sync_state
// in its SQLite file, or ghsync.sync_state in its PostgreSQL database.
type State struct {
	Cursor  uint64
	Offset  time.Duration
	Updated time.Time
}

// stateDB reads and writes State rows, one per central URL.
type stateDB struct {
	db *sql.DB
	pg bool
}

func openState(ctx context.Context, location string) (*stateDB, error) {
	s := &stateDB{}
	db, dialect, _, err := dbopen.Open(location)
	s.db, s.pg = db, dialect == dbopen.Postgres
	if err != nil {
		return nil, fmt.Errorf("open sync state: %w", err)
	}
	schema := `CREATE TABLE IF NOT EXISTS ghsync_sync_state (
		central   TEXT PRIMARY KEY,
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
		s.db.Close()
		return nil, fmt.Errorf("open sync state: %w", err)
	}
	return s, nil
}

func (s *stateDB) table() string {
	if s.pg {
		return "ghsync.sync_state"
	}
	return "ghsync_sync_state"
}

func (s *stateDB) load(ctx context.Context, central string) (State, error) {
	q := `SELECT cursor, offset_ns, updated_us FROM ` + s.table() + ` WHERE central = ?`
	if s.pg {
		q = strings.Replace(q, "?", "$1", 1)
	}
	var cur, off, upd int64
	err := s.db.QueryRowContext(ctx, q, central).Scan(&cur, &off, &upd)
	if errors.Is(err, sql.ErrNoRows) {
		return State{}, nil
	}
	if err != nil {
		return State{}, fmt.Errorf("read sync state: %w", err)
	}
	return State{Cursor: uint64(cur), Offset: time.Duration(off), Updated: time.UnixMicro(upd).UTC()}, nil
}

func (s *stateDB) save(ctx context.Context, central string, st State) error {
	q := `INSERT INTO ` + s.table() + ` (central, cursor, offset_ns, updated_us) VALUES (?, ?, ?, ?)
		ON CONFLICT (central) DO UPDATE SET cursor = excluded.cursor, offset_ns = excluded.offset_ns, updated_us = excluded.updated_us`
	if s.pg {
		q = strings.NewReplacer("(?, ?, ?, ?)", "($1, $2, $3, $4)").Replace(q)
	}
	if _, err := s.db.ExecContext(ctx, q, central, int64(st.Cursor), int64(st.Offset), st.Updated.UnixMicro()); err != nil {
		return fmt.Errorf("save sync state: %w", err)
	}
	return nil
}

// saveOffset records a new clock offset without touching the cursor.
func (s *stateDB) saveOffset(ctx context.Context, central string, off time.Duration, at time.Time) error {
	q := `INSERT INTO ` + s.table() + ` (central, cursor, offset_ns, updated_us) VALUES (?, 0, ?, ?)
		ON CONFLICT (central) DO UPDATE SET offset_ns = excluded.offset_ns, updated_us = excluded.updated_us`
	if s.pg {
		q = strings.NewReplacer("(?, 0, ?, ?)", "($1, 0, $2, $3)").Replace(q)
	}
	if _, err := s.db.ExecContext(ctx, q, central, int64(off), at.UnixMicro()); err != nil {
		return fmt.Errorf("save clock offset: %w", err)
	}
	return nil
}

func (s *stateDB) close() error { return s.db.Close() }
