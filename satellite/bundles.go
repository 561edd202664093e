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
	// carried, from a bundle that left no gap in the coverage, and
	// FrontierAt the central position that bundle covered up to: every
	// write at or before Frontier is at central at or below FrontierAt,
	// so the frontier holds here once Applied reaches it (Usable).
	Frontier   clocks.Timestamp
	FrontierAt uint64
}

// UsableFrontier is the frontier this satellite's projector may compact
// to: Frontier once the tables reflect central through FrontierAt, 0
// before. A satellite registered after central derived a frontier gets it
// in central's next bundle, but holds the writes it covers only then.
func (o Offline) UsableFrontier() clocks.Timestamp {
	if o.Frontier != 0 && o.Applied >= o.FrontierAt {
		return o.Frontier
	}
	return 0
}

// BundleState keeps Offline beside the satellite's ledger (one row of
// table ghsync_bundle_state in its SQLite file, ghsync.bundle_state in its
// PostgreSQL database), so the import and export commands and the sync
// cycle, separate processes, share it.
type BundleState struct {
	db    *sql.DB
	table string
	ph    func(i int) string // the i-th placeholder
}

// OpenBundleState opens, creating if needed, the state at location (the
// ledger's: a postgres:// URL or sqlite:PATH).
func OpenBundleState(ctx context.Context, location string) (*BundleState, error) {
	db, dialect, _, err := dbopen.Open(location)
	if err != nil {
		return nil, fmt.Errorf("open bundle state: %w", err)
	}
	b := &BundleState{db: db, table: "ghsync_bundle_state", ph: func(int) string { return "?" }}
	columns := `(
		id INTEGER PRIMARY KEY CHECK (id = 1),
		covered INTEGER NOT NULL DEFAULT 0, covered_at INTEGER NOT NULL DEFAULT 0, applied INTEGER NOT NULL DEFAULT 0,
		report_hlc INTEGER NOT NULL DEFAULT 0, report_seq INTEGER NOT NULL DEFAULT 0,
		frontier INTEGER NOT NULL DEFAULT 0, frontier_at INTEGER NOT NULL DEFAULT 0)`
	schema := `CREATE TABLE IF NOT EXISTS ghsync_bundle_state ` + columns + ` STRICT`
	if dialect == dbopen.Postgres {
		b.table, b.ph = "ghsync.bundle_state", func(i int) string { return fmt.Sprintf("$%d", i) }
		schema = `CREATE SCHEMA IF NOT EXISTS ghsync; CREATE TABLE IF NOT EXISTS ghsync.bundle_state ` +
			strings.ReplaceAll(columns, "INTEGER", "bigint")
	}
	if err := createSchema(ctx, db, dialect == dbopen.Postgres, schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("open bundle state: %w", err)
	}
	return b, nil
}

// createSchema runs schema; on PostgreSQL under a lock, since concurrent
// first opens (an import and a sync) would race on CREATE ... IF NOT
// EXISTS.
func createSchema(ctx context.Context, db *sql.DB, pg bool, schema string) error {
	if !pg {
		_, err := db.ExecContext(ctx, schema)
		return err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtext('ghsync.bundle_state'))`); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, schema); err != nil {
		return err
	}
	return tx.Commit()
}

// Close releases the database handle.
func (b *BundleState) Close() error { return b.db.Close() }

const bundleColumns = `covered, covered_at, applied, report_hlc, report_seq, frontier, frontier_at`

type queryRower interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (b *BundleState) load(ctx context.Context, q queryRower) (Offline, error) {
	var o Offline
	var v [7]int64
	err := q.QueryRowContext(ctx, `SELECT `+bundleColumns+` FROM `+b.table).Scan(&v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6])
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return o, fmt.Errorf("read bundle state: %w", err)
	}
	o = Offline{Covered: uint64(v[0]), CoveredAt: uint64(v[1]), Applied: uint64(v[2]),
		ReportHLC: clocks.Timestamp(v[3]), ReportSeq: uint64(v[4]), Frontier: clocks.Timestamp(v[5]), FrontierAt: uint64(v[6])}
	return o, nil
}

// Load returns the state (zero before anything was recorded).
func (b *BundleState) Load(ctx context.Context) (Offline, error) { return b.load(ctx, b.db) }

// update changes the state in one transaction. Import and sync may run at
// once: the transaction takes the row's lock (on SQLite, the database's
// write lock) before it reads.
func (b *BundleState) update(ctx context.Context, f func(*Offline)) (Offline, error) {
	tx, err := b.db.BeginTx(ctx, nil)
	if err != nil {
		return Offline{}, fmt.Errorf("bundle state: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO `+b.table+` (id) VALUES (1) ON CONFLICT (id) DO UPDATE SET id = excluded.id`); err != nil {
		return Offline{}, fmt.Errorf("bundle state: %w", err)
	}
	o, err := b.load(ctx, tx)
	if err != nil {
		return o, err
	}
	f(&o)
	var set []string
	for i, c := range strings.Split(bundleColumns, ", ") {
		set = append(set, c+" = "+b.ph(i+1))
	}
	if _, err := tx.ExecContext(ctx, `UPDATE `+b.table+` SET `+strings.Join(set, ", "),
		int64(o.Covered), int64(o.CoveredAt), int64(o.Applied), int64(o.ReportHLC), int64(o.ReportSeq), int64(o.Frontier), int64(o.FrontierAt)); err != nil {
		return o, fmt.Errorf("save bundle state: %w", err)
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
// a bundle past a gap records nothing and returns ErrCoverageGap.
func (b *BundleState) CentralImported(ctx context.Context, since, through, head uint64, frontier clocks.Timestamp) (Offline, error) {
	var gap error
	o, err := b.update(ctx, func(o *Offline) {
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
		if gap == nil && frontier > o.Frontier {
			o.Frontier, o.FrontierAt = frontier, through
		}
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
	return b.update(ctx, func(o *Offline) {
		if o.CoveredAt <= checkpoint {
			o.Applied = max(o.Applied, o.Covered)
		}
		if mark > o.ReportHLC {
			o.ReportHLC, o.ReportSeq = mark, max(o.ReportSeq, seq)
		}
	})
}
