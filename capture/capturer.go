package capture

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ghsync/ghsync/clocks"
	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/models"
	"github.com/ghsync/ghsync/projections"
)

// DefaultBatchSize is how many outbox rows one drain transaction takes.
const DefaultBatchSize = 2000

// Options tune a Capturer.
type Options struct {
	// Origin is this instance's synchronisation_id (0 at central).
	Origin uint16
	// Clock stamps the events; nil means the system clock with
	// clocks.DefaultMaxOffset.
	Clock     *clocks.Clock
	BatchSize int
	Logger    hclog.Logger
	// Correct, when set, corrects the time a change was made (the outbox's,
	// read from the database server's clock) by what the instance has
	// measured against central: on a satellite whose machine clock is
	// wrong, the database's clock is wrong alike.
	Correct func(time.Time) time.Time
	// Sequencer, when set, stamps the events (shared with another writer
	// of the same origin in this process: central's server). Default: one
	// resumed from the ledger.
	Sequencer *ledger.Sequencer
	// BeforeAppend, when set, runs after a batch is read and stamped and
	// just before it is appended (after the hand-off commit when the
	// ledger lives elsewhere). Crash tests kill the process there.
	BeforeAppend func()
}

// Capturer drains one database's outbox into a ledger. Only one may run
// per database at a time (Open takes a lock); it is not safe for
// concurrent use.
type Capturer struct {
	d      *db
	store  ledger.Store
	reg    *models.Registry
	opts   Options
	log    hclog.Logger
	seq    *ledger.Sequencer
	tables map[string]Captured
	users  map[int64]string // res_user id → login
	// sameDB: the ledger is this database, so outbox rows leave in the
	// append's own transaction.
	sameDB bool
	// stamped is the HLC of this capturer's latest write per record
	// field: the Base of the next local write of it, should the
	// projector not have applied the previous one yet.
	stamped map[recKeyOf]fieldStamps
	// deletes is this origin's deletes the projector has not applied
	// yet (deletes.go); nil until first read from the ledger.
	deletes map[recKeyOf]ownDelete
	// stale: stamps were taken that the ledger does not hold (an append
	// or a stamp failed, or a prepared batch was dropped); the sequencer
	// resumes from the ledger before it stamps again.
	stale  bool
	unlock func()
	// borrows: per model whose key borrows another's, its borrowed key
	// parts (lenders.go).
	borrows map[string][]lenderPart
}

// fieldStamps is an HLC per field of one record. A short list, not a map
// keyed by (model, key, field): a write touches few of a record's fields,
// and hashing three strings per field was a tenth of the drain's CPU.
type fieldStamps []fieldStamp

type fieldStamp struct {
	field string
	hlc   clocks.Timestamp
}

func (s fieldStamps) get(field string) clocks.Timestamp {
	for _, f := range s {
		if f.field == field {
			return f.hlc
		}
	}
	return 0
}

// noteStamps records e's HLC as the latest of each field it carries.
func noteStamps(m map[recKeyOf]fieldStamps, e *ledger.Event) {
	k := recKeyOf{e.Model, e.Key}
	s := m[k]
	for f := range e.Fields {
		s = s.set(f, e.HLC)
	}
	m[k] = s
}

func (s fieldStamps) set(field string, hlc clocks.Timestamp) fieldStamps {
	for i := range s {
		if s[i].field == field {
			s[i].hlc = hlc
			return s
		}
	}
	return append(s, fieldStamp{field, hlc})
}

// Stats says what a Drain or Snapshot did.
type Stats struct {
	Changes int // outbox rows (or snapshot rows) read
	Events  int // events appended
	Batches int
	// Held is how many rows are held back after a Drain, their changes
	// not captured (held.go; Status.Held lists them).
	Held int
}

// Open prepares to drain the database at target (where Install ran) into
// store. It finishes a hand-off an earlier run left half done before
// anything else.
func Open(ctx context.Context, target string, store ledger.Store, reg *models.Registry, opts Options) (*Capturer, error) {
	if opts.Sequencer != nil {
		opts.Clock = opts.Sequencer.Clock()
	}
	if opts.Clock == nil {
		opts.Clock = clocks.NewClock(nil, clocks.DefaultMaxOffset)
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultBatchSize
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	d, err := open(ctx, target)
	if err != nil {
		return nil, err
	}
	c := &Capturer{d: d, store: store, reg: reg, opts: opts, log: opts.Logger.Named("capture"),
		users: map[int64]string{}, stamped: map[recKeyOf]fieldStamps{}, borrows: borrowedParts(reg)}
	if err := c.init(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("open capture on %s: %w", d.dialect, err)
	}
	return c, nil
}

func (c *Capturer) init(ctx context.Context) error {
	if ok, err := c.d.tableExists(ctx, c.d.DB, c.d.t("capture_meta")); err != nil {
		return err
	} else if !ok {
		return ErrNotInstalled
	}
	var version, installID string
	if err := c.d.QueryRowContext(ctx, `SELECT
		(SELECT value FROM `+c.d.t("capture_meta")+` WHERE name = 'version'),
		(SELECT value FROM `+c.d.t("capture_meta")+` WHERE name = 'install_id')`).Scan(&version, &installID); err != nil {
		return err
	}
	if err := checkVersion(version, c.d.dialect); err != nil {
		return err
	}
	unlock, err := c.d.lock(ctx)
	if err != nil {
		return err
	}
	c.unlock = unlock
	if err := upgradeBookkeeping(ctx, c.d); err != nil {
		return err
	}
	// Installed before rows could be held back (held.go).
	if _, err := c.d.ExecContext(ctx, heldDDL(c.d)); err != nil {
		return fmt.Errorf("create the held table: %w", err)
	}
	// Nothing leaves the outbox for the wrong instance or the wrong
	// ledger: either would strand the clinic's changes where no sync
	// finds them.
	if err := c.bindOrigin(ctx); err != nil {
		return err
	}
	if err := projections.CheckLedger(ctx, c.d.DB, c.d.dialect, c.store); err != nil {
		return fmt.Errorf("%w (is --ledger this instance's ledger?); nothing was drained", err)
	}
	tables, err := capturedTables(ctx, c.d, c.d.DB)
	if err != nil {
		return err
	}
	c.tables = map[string]Captured{}
	for _, t := range tables {
		if _, ok := c.reg.Lookup(t.Model); !ok {
			return fmt.Errorf("captured table %s belongs to model %s, which the registry does not hold", t.Table, t.Model)
		}
		c.tables[t.Table] = t
	}
	if err := c.loadUsers(ctx); err != nil {
		return err
	}
	// The ledger is this very database if its transaction sees our install.
	if ha, ok := c.store.(ledger.HookAppender); ok {
		var seen string
		_, err := ha.AppendHook(ctx, nil, func(ctx context.Context, tx ledger.Tx) error {
			return tx.QueryRow(ctx, `SELECT value FROM `+c.d.t("capture_meta")+` WHERE name = 'install_id'`).Scan(&seen)
		})
		c.sameDB = err == nil && seen == installID
	}
	if err := c.finishHandoff(ctx, true); err != nil {
		return err
	}
	return c.resume(ctx)
}

// bindOrigin records, the first time, the instance this database's
// changes are stamped as (capture_meta 'origin'), and refuses a capturer
// opened as another: a wrong --id would split the instance's own events
// under two origins, and those stamped as the other would never be pushed.
func (c *Capturer) bindOrigin(ctx context.Context) error {
	want := strconv.Itoa(int(c.opts.Origin))
	var got string
	err := c.d.QueryRowContext(ctx, `SELECT value FROM `+c.d.t("capture_meta")+` WHERE name = 'origin'`).Scan(&got)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		_, err = c.d.ExecContext(ctx, c.d.q(`INSERT INTO `+c.d.t("capture_meta")+` (name, value) VALUES ('origin', ?)`), want)
		return err
	case err != nil:
		return fmt.Errorf("read the captured instance: %w", err)
	case got != want:
		return fmt.Errorf("this database's changes are captured as instance %s, not %s: check --id (synchronisation_id); if the instance's id really changed, drain with the old one, then capture uninstall and install; nothing was drained", got, want)
	}
	return nil
}

// resume rebuilds the sequencer from the ledger: after Open, and before
// stamping again after an append failed (the sequence numbers it took are
// not held).
func (c *Capturer) resume(ctx context.Context) error {
	if c.seq == nil && c.opts.Sequencer != nil {
		c.seq = c.opts.Sequencer
	}
	if c.seq != nil {
		return c.seq.Resync(ctx, c.store)
	}
	seq, err := ledger.Resume(ctx, c.store, c.opts.Origin, c.opts.Clock)
	if err != nil {
		return err
	}
	c.seq = seq
	return nil
}

// Resync makes the next drain continue the sequence from the ledger, not
// from what this capturer stamped last: after events of its origin were
// appended by someone else (a satellite recovering its own events from
// central after a restore).
func (c *Capturer) Resync() { c.stale = true }

// SameDatabase reports whether outbox rows leave in the ledger append's
// own transaction (the ledger lives in the Tryton database).
func (c *Capturer) SameDatabase() bool { return c.sameDB }

// Close releases the database and the capture lock (not the ledger).
func (c *Capturer) Close() error {
	if c.unlock != nil {
		c.unlock()
	}
	return c.d.Close()
}

// loadUsers reads Tryton's logins, so events name who made a change.
func (c *Capturer) loadUsers(ctx context.Context) error {
	ok, err := c.d.tableExists(ctx, c.d.DB, "res_user")
	if err != nil || !ok {
		return err
	}
	rows, err := c.d.QueryContext(ctx, `SELECT id, login FROM res_user`)
	if err != nil {
		return fmt.Errorf("read res_user: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var login string
		if err := rows.Scan(&id, &login); err != nil {
			return err
		}
		c.users[id] = login
	}
	return rows.Err()
}

// login names the Tryton user with id uid, reloading once for a user
// created since.
func (c *Capturer) login(ctx context.Context, uid sql.NullInt64) string {
	if !uid.Valid {
		return ""
	}
	if l, ok := c.users[uid.Int64]; ok {
		return l
	}
	if err := c.loadUsers(ctx); err != nil {
		c.log.Warn("cannot read res_user", "error", err)
	}
	if l, ok := c.users[uid.Int64]; ok {
		return l
	}
	c.users[uid.Int64] = "uid:" + strconv.FormatInt(uid.Int64, 10) // a deleted user: keep the id
	return c.users[uid.Int64]
}

// finishHandoff appends the events a previous run stamped and committed
// to the hand-off table but may not have appended (a crash between the
// two), then clears them. Appending is idempotent, so this is safe
// whether or not they reached the ledger.
func (c *Capturer) finishHandoff(ctx context.Context, recovering bool) error {
	rows, err := c.d.QueryContext(ctx, `SELECT origin_seq, payload FROM `+c.d.t("handoff")+` ORDER BY origin_seq`)
	if err != nil {
		return fmt.Errorf("read hand-off: %w", err)
	}
	var evs []*ledger.Event
	var last int64
	for rows.Next() {
		var payload []byte
		if err := rows.Scan(&last, &payload); err != nil {
			rows.Close()
			return err
		}
		e, err := ledger.Unmarshal(payload)
		if err != nil {
			rows.Close()
			return fmt.Errorf("hand-off event origin_seq %d: %w", last, err)
		}
		evs = append(evs, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(evs) == 0 {
		return err
	}
	res, err := c.store.Append(ctx, evs)
	if err != nil {
		return fmt.Errorf("append %d handed-off events: %w", len(evs), err)
	}
	if recovering {
		c.appendedDeletes(ctx, evs) // a batch handed off now is noted by committed
		c.log.Info("finished an interrupted hand-off", "events", len(evs), "new", res.Appended, "already_held", res.Duplicates)
	} else {
		c.log.Debug("handed off", "events", len(evs), "new", res.Appended)
	}
	_, err = c.d.ExecContext(ctx, c.d.q(`DELETE FROM `+c.d.t("handoff")+` WHERE origin_seq <= ?`), last)
	return err
}

// now is the time of a change made now, as the outbox would have timed it.
func (c *Capturer) now() time.Time {
	if c.opts.Correct != nil {
		return c.opts.Correct(time.Now())
	}
	return time.Now()
}

// errBusy: another capturer holds the database.
var errBusy = errors.New("another ghsync capturer is draining this database")
