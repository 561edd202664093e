package satellite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/ghsync/ghsync/clocks"
	"github.com/ghsync/ghsync/internal/dbopen"
)

// Offline is what a satellite exchanging bundles with central remembers
// for the stability exchange: which of central's positions the bundles it
// imported covered, what its tables reflect, what it last vouched for,
// and the frontier central's bundles announced. Over the network the same
// facts travel in the pull cursor and POST /v1/stable.
type Offline struct {
	// Covered: central's bundles imported so far hold every event of
	// central's ledger through this position (a contiguous coverage from
	// the start); CoveredAt is this ledger's head once they were appended.
	Covered, CoveredAt uint64
	// Applied is the central position the Tryton tables reflect: Covered
	// once the projector's checkpoint reached CoveredAt.
	Applied uint64
	// The last report a completed local cycle made: every event this
	// instance stamped at or before ReportHLC has an origin seq at or
	// below ReportSeq, and was in the ledger then (0: no cycle yet).
	ReportHLC clocks.Timestamp
	ReportSeq uint64
	// Frontier is the greatest stability frontier central's bundles
	// carried.
	Frontier clocks.Timestamp
}

// BundleState keeps Offline beside the satellite's ledger (table
// ghsync_bundle_state in its SQLite file, ghsync.bundle_state in its
// PostgreSQL database), so the import and export commands and the sync
// cycle, separate processes, share it.
type BundleState struct {
	db *sql.DB
	pg bool
}

// The fields of Offline, one row each.
var offlineFields = []string{"covered", "covered_at", "applied", "report_hlc", "report_seq", "frontier"}

// OpenBundleState opens, creating if needed, the state at location (the
// ledger's: a postgres:// URL or sqlite:PATH).
func OpenBundleState(ctx context.Context, location string) (*BundleState, error) {
	db, dialect, _, err := dbopen.Open(location)
	if err != nil {
		return nil, fmt.Errorf("open bundle state: %w", err)
	}
	b := &BundleState{db: db, pg: dialect == dbopen.Postgres}
	schema := `CREATE TABLE IF NOT EXISTS ghsync_bundle_state (name TEXT PRIMARY KEY, value INTEGER NOT NULL) STRICT`
	if b.pg {
		schema = `CREATE SCHEMA IF NOT EXISTS ghsync;
		CREATE TABLE IF NOT EXISTS ghsync.bundle_state (name text PRIMARY KEY, value bigint NOT NULL)`
	}
	if _, err := db.ExecContext(ctx, schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("open bundle state: %w", err)
	}
	return b, nil
}

// Close releases the database handle.
func (b *BundleState) Close() error { return b.db.Close() }

func (b *BundleState) table() string {
	if b.pg {
		return "ghsync.bundle_state"
	}
	return "ghsync_bundle_state"
}

// Load returns the state (zero before anything was recorded).
func (b *BundleState) Load(ctx context.Context) (Offline, error) {
	return load(ctx, b.db, b.table())
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func load(ctx context.Context, q querier, table string) (Offline, error) {
	var o Offline
	rows, err := q.QueryContext(ctx, `SELECT name, value FROM `+table)
	if err != nil {
		return o, fmt.Errorf("read bundle state: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var v int64
		if err := rows.Scan(&name, &v); err != nil {
			return o, fmt.Errorf("read bundle state: %w", err)
		}
		switch name {
		case "covered":
			o.Covered = uint64(v)
		case "covered_at":
			o.CoveredAt = uint64(v)
		case "applied":
			o.Applied = uint64(v)
		case "report_hlc":
			o.ReportHLC = clocks.Timestamp(v)
		case "report_seq":
			o.ReportSeq = uint64(v)
		case "frontier":
			o.Frontier = clocks.Timestamp(v)
		}
	}
	if err := rows.Err(); err != nil {
		return o, fmt.Errorf("read bundle state: %w", err)
	}
	return o, nil
}

// update changes the state in one transaction.
func (b *BundleState) update(ctx context.Context, f func(*Offline) error) (Offline, error) {
	tx, err := b.db.BeginTx(ctx, nil)
	if err != nil {
		return Offline{}, fmt.Errorf("bundle state: %w", err)
	}
	defer tx.Rollback()
	if b.pg {
		// Import and sync may run at once: one read-modify-write at a time.
		if _, err := tx.ExecContext(ctx, `LOCK TABLE ghsync.bundle_state IN EXCLUSIVE MODE`); err != nil {
			return Offline{}, fmt.Errorf("bundle state: %w", err)
		}
	}
	o, err := load(ctx, tx, b.table())
	if err != nil {
		return o, err
	}
	if err := f(&o); err != nil {
		return o, err
	}
	q := `INSERT INTO ` + b.table() + ` (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value`
	if b.pg {
		q = strings.NewReplacer("(?, ?)", "($1, $2)").Replace(q)
	}
	values := []uint64{o.Covered, o.CoveredAt, o.Applied, uint64(o.ReportHLC), o.ReportSeq, uint64(o.Frontier)}
	for i, name := range offlineFields {
		if _, err := tx.ExecContext(ctx, q, name, int64(values[i])); err != nil {
			return o, fmt.Errorf("save bundle state: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return o, fmt.Errorf("save bundle state: %w", err)
	}
	return o, nil
}

// ErrCoverageGap: a central bundle starts after the positions earlier
// ones covered; its events are imported, but the tables cannot be said to
// reflect central through its end until the bundles in between are.
var ErrCoverageGap = errors.New("central's bundle starts after the positions imported so far")

// CentralImported records that a complete bundle of central's positions
// (since, through] was appended, leaving this ledger's head at head, and
// the frontier it carried (0: none). Coverage grows only contiguously:
// a bundle past a gap returns ErrCoverageGap (the frontier is still
// recorded).
func (b *BundleState) CentralImported(ctx context.Context, since, through, head uint64, frontier clocks.Timestamp) (Offline, error) {
	var gap error
	o, err := b.update(ctx, func(o *Offline) error {
		o.Frontier = max(o.Frontier, frontier)
		switch {
		case since > o.Covered:
			held := "none"
			if o.Covered > 0 {
				held = fmt.Sprintf("1..%d", o.Covered)
			}
			gap = fmt.Errorf("%w: it holds central's positions %d..%d, the bundles imported so far %s (import central's bundle since %d, then this one again)",
				ErrCoverageGap, since+1, through, held, o.Covered)
		case through > o.Covered:
			o.Covered, o.CoveredAt = through, head
		}
		return nil
	})
	if err != nil {
		return o, err
	}
	return o, gap
}

// CycleDone records what a completed local cycle vouches for: every event
// stamped at or before mark has an origin seq at or below seq and is in
// the ledger, and the projector's checkpoint is at this ledger's position
// checkpoint (which makes Covered Applied, once it reaches CoveredAt).
func (b *BundleState) CycleDone(ctx context.Context, mark clocks.Timestamp, seq, checkpoint uint64) (Offline, error) {
	return b.update(ctx, func(o *Offline) error {
		if o.CoveredAt <= checkpoint {
			o.Applied = max(o.Applied, o.Covered)
		}
		if mark > o.ReportHLC {
			o.ReportHLC, o.ReportSeq = mark, max(o.ReportSeq, seq)
		}
		return nil
	})
}
