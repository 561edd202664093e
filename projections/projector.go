package projections

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ghsync/ghsync/clocks"
	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/merge"
	"github.com/ghsync/ghsync/models"
)

// DefaultBatchSize is how many ledger events one projection transaction
// applies: large enough to amortise round trips, small enough that a
// crash repeats little work.
const DefaultBatchSize = 2000

// Options tune a Projector. The zero value is the production setting.
type Options struct {
	// Name identifies the projector's checkpoint, so several projectors
	// (e.g. a test's) can share a database. Default "tryton".
	Name      string
	BatchSize int
	// StateCache is how many records' merge states are kept decoded
	// between batches: 0 means DefaultStateCache, negative none.
	StateCache int
	// NoPipeline prepares each batch only once the previous one has
	// committed, for comparison and debugging (see pipeline.go).
	NoPipeline bool
	// RowTriggers keeps every trigger of the target firing for the rows
	// the projector inserts and updates, PostgreSQL's per-row foreign-key
	// checks among them, as where the role may not set
	// session_replication_role (references.go): for targets with
	// triggers of their own, and for comparison.
	RowTriggers bool
	Logger      hclog.Logger
}

// Projector keeps a Tryton database equal to the merged state of a ledger.
// It is not safe for concurrent use. Several on one target database (in
// one process or several) take turns batch by batch and stay correct
// (concurrency.go), though only one does useful work at a time.
type Projector struct {
	d     dialect
	store ledger.Store
	reg   *models.Registry
	opts  Options
	log   hclog.Logger
	users map[string]int64 // Tryton login → res_user id
	clock func() time.Time // apply time for write_date; replaceable in tests
	// rebuilding makes new rows take their pre-rebuild ids (idmap_prior).
	rebuilding bool
	rank       map[string]int             // model → position in dependency order
	cascades   map[string][]cascadeRef    // target model → Many2Ones that cascade its deletes
	nulls      map[string][]cascadeRef    // target model → Many2Ones its deletes set NULL
	pointers   map[string][]cascadeRef    // target model → every Many2One to it
	own        ownTables                  // the names of its own tables in writes
	shapes     map[string]*shape          // model → its table's column lists
	partials   map[string]*shape          // model and touched fields → an update's column lists
	columns    map[string]map[string]bool // table → columns the target has
	cache      *stateCache                // decoded merge states between batches
	// frontier is the network's stability frontier (SetFrontier): merge
	// states are compacted up to it as they are saved.
	frontier atomic.Uint64
	// capturedAs is the origin the target's changes are captured as,
	// once read (lives.go).
	capturedAs atomic.Pointer[uint16]
	// late is the records a CatchUp brought events at or before the
	// frontier: their history is arriving (a patient fetched with new, a
	// record joining a satellite's scope), perhaps across batches, so
	// they are not compacted until the next CatchUp, by which time all
	// of it has been applied. Past maxLate records, nothing is compacted
	// until then (lateAll), which bounds the memory a catch-up of old
	// history takes. Touched only while preparing a batch.
	late    map[recKey]bool
	lateAll bool
	// hold, when set, says whether a batch about to be prepared must
	// not compact (HoldCompaction).
	hold atomic.Pointer[func() bool]
}

// HoldCompaction makes every batch prepared while held() is true compact
// nothing, as during a rebuild. A satellite whose scope widened pulls
// central's ledger again from the start: the histories of records new to
// it then arrive in central's order across many pages and catch-ups, not
// whole in one, so the frontier's premise (every write at or before it
// is here) holds for them only once that pull has passed where its
// cursor was. held is called once a batch, from the goroutine running
// CatchUp; nil removes the hold.
func (p *Projector) HoldCompaction(held func() bool) {
	if held == nil {
		p.hold.Store(nil)
		return
	}
	p.hold.Store(&held)
}

// compactionHeld reports whether HoldCompaction's function says so now.
func (p *Projector) compactionHeld() bool {
	h := p.hold.Load()
	return h != nil && (*h)()
}

// maxLate bounds Projector.late.
const maxLate = 100_000

// compactable reports whether rec's state may be compacted now (see late).
func (p *Projector) compactable(k recKey) bool { return !p.lateAll && !p.late[k] }

// arrivedLate notes that k received an event at or before the frontier.
func (p *Projector) arrivedLate(k recKey) {
	switch {
	case p.lateAll || p.late[k]:
	case len(p.late) >= maxLate:
		p.lateAll, p.late = true, nil
	default:
		if p.late == nil {
			p.late = map[recKey]bool{}
		}
		p.late[k] = true
	}
}

// order ranks models for writing: the targets of a model's Many2Ones
// before it, optional ones included wherever no cycle forbids it. A
// reference to a row inserted later in the same round costs an UPDATE of
// the referrer after its insert (appointments and evaluations written
// before their patient did, about one create in forty of a clinic mix).
// Models whose references form a cycle keep the registry's order among
// themselves, which puts the targets of required references first.
func (p *Projector) order() map[string]int {
	if p.rank != nil {
		return p.rank
	}
	ms := p.reg.Models()
	index := make(map[string]int, len(ms))
	for i, m := range ms {
		index[m.Name] = i
	}
	targets := make([][]int, len(ms))
	for i, m := range ms {
		for _, f := range m.Fields {
			if t, ok := index[f.Target]; ok && f.Type == models.Many2One && t != i {
				targets[i] = append(targets[i], t)
			}
		}
	}
	p.rank = make(map[string]int, len(ms))
	for _, scc := range components(targets) { // targets' components first
		slices.Sort(scc) // the registry's order within a cycle
		for _, i := range scc {
			p.rank[ms[i].Name] = len(p.rank)
		}
	}
	return p.rank
}

// components returns the strongly connected components of the graph
// whose edges go from i to each of targets[i] (Tarjan's algorithm), in an
// order where a component comes after every component it has an edge to.
func components(targets [][]int) [][]int {
	n := len(targets)
	index, low := make([]int, n), make([]int, n)
	onStack := make([]bool, n)
	for i := range index {
		index[i] = -1
	}
	var stack []int
	var out [][]int
	next := 0
	var visit func(v int)
	visit = func(v int) {
		index[v], low[v] = next, next
		next++
		stack = append(stack, v)
		onStack[v] = true
		for _, w := range targets[v] {
			if index[w] < 0 {
				visit(w)
				low[v] = min(low[v], low[w])
			} else if onStack[w] {
				low[v] = min(low[v], index[w])
			}
		}
		if low[v] == index[v] {
			var scc []int
			for {
				w := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				onStack[w] = false
				scc = append(scc, w)
				if w == v {
					break
				}
			}
			out = append(out, scc)
		}
	}
	for v := range targets {
		if index[v] < 0 {
			visit(v)
		}
	}
	return out
}

// Stats says what a CatchUp or Rebuild did.
type Stats struct {
	Events     int    // events read
	Rejected   int    // events set aside (see Rejected)
	Batches    int    // transactions committed
	Checkpoint uint64 // ledger position applied through
}

// ErrNoTables says a target has none of the registry's tables: not the
// GNU Health database (a mistyped path, an empty database), where every
// record would only be parked. Open refuses it before writing anything.
var ErrNoTables = errors.New("not a GNU Health database")

// noTables is ErrNoTables when found, of tables, is zero.
func noTables(found int, tables []string) error {
	if found > 0 {
		return nil
	}
	some := tables[:min(3, len(tables))]
	return fmt.Errorf("none of the %d synchronised models' tables (%s...): %w", len(tables), strings.Join(some, ", "), ErrNoTables)
}

// Open connects to the Tryton database at target (a postgres:// URL or
// sqlite:PATH) and creates the projector's bookkeeping tables there. A
// target with none of reg's tables is refused (ErrNoTables), untouched.
func Open(ctx context.Context, target string, store ledger.Store, reg *models.Registry, opts Options) (*Projector, error) {
	if opts.Name == "" {
		opts.Name = "tryton"
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultBatchSize
	}
	if opts.StateCache == 0 {
		opts.StateCache = DefaultStateCache
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	var d dialect
	var err error
	tables := make([]string, 0, reg.Len())
	for _, m := range reg.Models() {
		tables = append(tables, m.Table)
	}
	switch {
	case strings.HasPrefix(target, "postgres://"), strings.HasPrefix(target, "postgresql://"):
		var pg *pgDialect
		if pg, err = openPostgres(ctx, target, opts.RowTriggers); err == nil {
			if err = pg.hasTables(ctx, tables); err != nil {
				pg.close()
			} else {
				d = pg
			}
		}
	case strings.HasPrefix(target, "sqlite:"):
		d, err = openSQLite(ctx, strings.TrimPrefix(strings.TrimPrefix(target, "sqlite:"), "//"), tables)
	default:
		err = fmt.Errorf("unknown target %q (want postgres://... or sqlite:PATH)", target)
	}
	if err != nil {
		return nil, fmt.Errorf("open projection target: %w", err)
	}
	p := &Projector{d: d, store: store, reg: reg, opts: opts, log: opts.Logger.Named("projector"), clock: time.Now, own: newOwnTables(d.schemaPrefix()),
		cache: newStateCache(opts.StateCache)}
	if err := p.init(ctx); err != nil {
		d.close()
		return nil, fmt.Errorf("open projection target: %w", err)
	}
	if d.name() == "postgres" && !d.skipsRowChecks() && !opts.RowTriggers {
		p.log.Info("the database role may not set session_replication_role: foreign keys are checked row by row, which is slower",
			"fix", "GRANT SET ON PARAMETER session_replication_role TO <role> (PostgreSQL 15 and later), or connect as a superuser")
	}
	return p, nil
}

// SkipsRowTriggers reports whether the projector's inserts and updates run
// without the target's per-row triggers (references.go), so an
// administrator can tell whether triggers of their own see projected rows.
func (p *Projector) SkipsRowTriggers() bool { return p.d.skipsRowChecks() }

func (p *Projector) init(ctx context.Context) error {
	tx, err := p.d.beginProjection(ctx) // two Opens at once take turns creating the schema
	if err != nil {
		return err
	}
	defer tx.rollback(ctx)
	s := p.d.schemaPrefix()
	stmts := append(ddl(p.d),
		`INSERT INTO `+s+`proj_meta (name, value) VALUES ('schema_version', ?) ON CONFLICT (name) DO NOTHING`,
		`INSERT INTO `+s+`checkpoint (name, position) VALUES (?, 0) ON CONFLICT (name) DO NOTHING`)
	args := map[int][]any{len(stmts) - 2: {schemaVersion}, len(stmts) - 1: {p.opts.Name}}
	for i, q := range stmts {
		if err := tx.exec(ctx, q, args[i]...); err != nil {
			return fmt.Errorf("create projection schema: %w", err)
		}
	}
	marker, upgrade := UpgradeDDL(p.d.name())
	old, err := p.tableExists(ctx, tx, marker)
	if err != nil {
		return err
	}
	if old {
		for _, q := range upgrade {
			if err := tx.exec(ctx, q); err != nil {
				return fmt.Errorf("upgrade projection schema: %w", err)
			}
		}
	}
	var v int64
	if err := scanOne(ctx, tx, []any{&v}, `SELECT value FROM `+s+`proj_meta WHERE name = 'schema_version'`); err != nil {
		return err
	}
	if v > schemaVersion {
		return fmt.Errorf("projection schema version %d is newer than this ghsync understands (%d)", v, schemaVersion)
	}
	var f int64
	switch err := scanOne(ctx, tx, []any{&f}, `SELECT coalesce(max(value), 0) FROM `+s+`proj_meta WHERE name = 'frontier'`); {
	case err != nil:
		return err
	case f > 0:
		p.frontier.Store(uint64(f))
	}
	if err := p.loadUsers(ctx, tx); err != nil {
		return err
	}
	if err := p.loadColumns(ctx, tx); err != nil {
		return err
	}
	return tx.commit(ctx)
}

// loadUsers reads Tryton's logins so audit columns name real users. A
// target without res_user (a bare test schema) gets uid 0, Tryton's root.
func (p *Projector) loadUsers(ctx context.Context, tx dtx) error {
	p.users = map[string]int64{}
	if ok, err := p.tableExists(ctx, tx, "res_user"); err != nil || !ok {
		return err
	}
	rows, err := tx.query(ctx, `SELECT login, id FROM res_user`)
	if err != nil {
		return fmt.Errorf("read res_user: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var login string
		var id int64
		if err := rows.Scan(&login, &id); err != nil {
			return err
		}
		p.users[login] = id
	}
	return rows.Err()
}

// tableExists reports whether the target has a table of that name
// (PostgreSQL: on the search path, or schema-qualified).
func (p *Projector) tableExists(ctx context.Context, tx dtx, name string) (bool, error) {
	probe := `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?`
	if p.d.name() == "postgres" {
		probe = `SELECT count(*) FROM pg_class WHERE oid = to_regclass(?)`
	}
	var n int64
	err := scanOne(ctx, tx, []any{&n}, probe, name)
	return n > 0, err
}

func scanOne(ctx context.Context, tx dtx, dest []any, q string, args ...any) error {
	rows, err := tx.query(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return err
		}
		return fmt.Errorf("no row for %q", q)
	}
	return rows.Scan(dest...)
}

// Close releases the target connection (not the ledger).
func (p *Projector) Close() { p.d.close() }

// SetFrontier records the network's stability frontier, as central last
// computed it: every write stamped at or before f has reached every
// instance, so merge states need not keep it unless it still decides
// something (merge.State.Compact). States are compacted as they are next
// saved; a frontier below the one recorded changes nothing, so an older
// answer arriving late cannot undo compaction's premise.
func (p *Projector) SetFrontier(ctx context.Context, f clocks.Timestamp) error {
	if uint64(f) <= p.frontier.Load() {
		return nil
	}
	if uint64(f) > math.MaxInt64 {
		return fmt.Errorf("frontier %s: beyond what the projection stores", f)
	}
	tx, err := p.d.begin(ctx)
	if err != nil {
		return err
	}
	defer tx.rollback(ctx)
	s := p.d.schemaPrefix()
	own := strings.TrimPrefix(s+"proj_meta", "ghsync.") // the existing row goes by the table's name
	if err := tx.exec(ctx, `INSERT INTO `+s+`proj_meta (name, value) VALUES ('frontier', ?)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value WHERE `+own+`.value < excluded.value`, int64(f)); err != nil {
		return fmt.Errorf("record frontier %s: %w", f, err)
	}
	if err := tx.commit(ctx); err != nil {
		return fmt.Errorf("record frontier %s: %w", f, err)
	}
	for {
		old := p.frontier.Load()
		if uint64(f) <= old || p.frontier.CompareAndSwap(old, uint64(f)) {
			return nil
		}
	}
}

// Frontier is the stability frontier recorded (zero: none yet, nothing is
// compacted).
func (p *Projector) Frontier() clocks.Timestamp { return clocks.Timestamp(p.frontier.Load()) }

// Checkpoint is the ledger position the target reflects.
func (p *Projector) Checkpoint(ctx context.Context) (uint64, error) {
	cp, _, err := p.checkpoint(ctx)
	return cp, err
}

// checkpointEvent is the event recorded at a checkpoint.
type checkpointEvent struct {
	position uint64 // 0: none recorded
	hash     string // hex
}

// checkpoint reads the checkpoint and the event recorded at it.
func (p *Projector) checkpoint(ctx context.Context) (uint64, checkpointEvent, error) {
	tx, err := p.d.begin(ctx)
	if err != nil {
		return 0, checkpointEvent{}, err
	}
	defer tx.rollback(ctx)
	s := p.d.schemaPrefix()
	var pos, at int64
	var hash string
	err = scanOne(ctx, tx, []any{&pos, &at, &hash}, `SELECT c.position, coalesce(e.position, 0), coalesce(e.hash, '') FROM `+s+`checkpoint c
		LEFT JOIN `+s+`checkpoint_event e ON e.name = c.name WHERE c.name = ?`, p.opts.Name)
	return uint64(pos), checkpointEvent{uint64(at), hash}, err
}

// queueCheckpointEvent records, with a batch's checkpoint, the hash of
// the event there (sameLedger reads it).
func (p *Projector) queueCheckpointEvent(tx dtx, last ledger.Record) {
	tx.queue(`INSERT INTO `+p.d.schemaPrefix()+`checkpoint_event (name, position, hash) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET position = excluded.position, hash = excluded.hash`,
		p.opts.Name, int64(last.Position), hex.EncodeToString(last.Event.Hash[:]))
}

// ErrOtherLedger says the target's checkpoint does not fit the ledger: it
// was built from another one, and catching up from this one would skip
// or misapply events.
var ErrOtherLedger = errors.New("the target was probably built from another ledger")

// sameLedger checks, with one read, that the ledger holds the event the
// target's checkpoint cp was recorded at (or at least position cp, where
// no event was recorded: a target an older ghsync last moved).
func (p *Projector) sameLedger(ctx context.Context, cp uint64, at checkpointEvent) error {
	return sameLedger(ctx, p.store, cp, at)
}

func sameLedger(ctx context.Context, store ledger.Store, cp uint64, at checkpointEvent) error {
	if cp == 0 {
		return nil
	}
	recs, err := store.ReadAll(ctx, cp-1, 1, ledger.Filter{})
	if err != nil {
		return fmt.Errorf("read ledger position %d (the target's checkpoint): %w", cp, err)
	}
	if len(recs) == 0 || recs[0].Position != cp {
		head, err := store.Head(ctx)
		if err != nil {
			return fmt.Errorf("read ledger head: %w", err)
		}
		return fmt.Errorf("the target reflects ledger positions through %d, but the ledger ends at position %d: %w", cp, head, ErrOtherLedger)
	}
	if got := hex.EncodeToString(recs[0].Event.Hash[:]); at.position == cp && got != at.hash {
		return fmt.Errorf("the target reflects ledger positions through %d, whose event had hash %s, but the ledger's event %d has hash %s: %w",
			cp, at.hash, cp, got, ErrOtherLedger)
	}
	return nil
}

// CheckLedger checks that store is the ledger every projection in the
// target database db (of dialect models.Postgres or models.SQLite) was
// built from, ErrOtherLedger otherwise. Capture calls it before it
// appends: an instance's changes drained into another ledger (a mistyped
// --ledger) would be stranded there, their outbox rows gone. A target
// nothing was projected into passes.
func CheckLedger(ctx context.Context, db *sql.DB, dialect string, store ledger.Store) error {
	prefix, exists := "ghsync_", `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('ghsync_checkpoint', 'ghsync_checkpoint_event')`
	if dialect == models.Postgres {
		prefix, exists = "ghsync.", `SELECT count(*) FROM pg_tables WHERE schemaname = 'ghsync' AND tablename IN ('checkpoint', 'checkpoint_event')`
	}
	var n int
	if err := db.QueryRowContext(ctx, exists).Scan(&n); err != nil {
		return fmt.Errorf("look for the target's checkpoints: %w", err)
	}
	q := `SELECT name, position, 0, '' FROM ` + prefix + `checkpoint`
	switch n {
	case 0:
		return nil
	case 2:
		q = `SELECT c.name, c.position, coalesce(e.position, 0), coalesce(e.hash, '') FROM ` + prefix + `checkpoint c
			LEFT JOIN ` + prefix + `checkpoint_event e ON e.name = c.name`
	}
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return fmt.Errorf("read the target's checkpoints: %w", err)
	}
	type cp struct {
		name string
		pos  uint64
		at   checkpointEvent
	}
	var cps []cp
	for rows.Next() {
		var c cp
		var pos, at int64
		if err := rows.Scan(&c.name, &pos, &at, &c.at.hash); err != nil {
			rows.Close()
			return fmt.Errorf("read the target's checkpoints: %w", err)
		}
		c.pos, c.at.position = uint64(pos), uint64(at)
		cps = append(cps, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read the target's checkpoints: %w", err)
	}
	for _, c := range cps {
		if err := sameLedger(ctx, store, c.pos, c.at); err != nil {
			return fmt.Errorf("projection %q: %w", c.name, err)
		}
	}
	return nil
}

// CatchUp applies every event after the checkpoint, one batch per
// transaction, until it reaches the ledger's head. The next page is read
// from the ledger while the current one is applied: reading and decoding
// is the projector's own CPU work, applying mostly waits on the target.
// On PostgreSQL the next batch is also prepared while the current one
// commits (pipeline.go). A target whose checkpoint does not fit the
// ledger is refused (ErrOtherLedger), unchanged; so is one a rebuild
// holds (ErrRebuilding), and one whose capture must be reconciled first
// (ErrReconcile). Another projector catching up on the same target at the
// same time is harmless: whichever commits a batch first applies it, and
// the other goes on from there (concurrency.go).
func (p *Projector) CatchUp(ctx context.Context) (Stats, error) {
	var st Stats
	if err := p.held(ctx); err != nil {
		return st, err
	}
	p.late, p.lateAll = nil, false
	cp, at, err := p.checkpoint(ctx)
	if err != nil {
		return st, err
	}
	if err := p.sameLedger(ctx, cp, at); err != nil {
		return st, err
	}
	st.Checkpoint = cp
	if sp, ok := p.d.(splitter); ok && !p.opts.NoPipeline {
		err := p.catchUpPipelined(ctx, sp, &st)
		if !errors.Is(err, errMoved) {
			return st, err
		}
		p.log.Debug("checkpoints moved while a batch was prepared: going on batch by batch")
	}
	for {
		err := p.catchUp(ctx, &st)
		if !errors.Is(err, errMoved) {
			return st, err
		}
		// Another projector applied the events this batch held: go on
		// from where it left the checkpoint, once it is known to be
		// this ledger's.
		cp, at, err := p.checkpoint(ctx)
		if err != nil {
			return st, err
		}
		if err := p.sameLedger(ctx, cp, at); err != nil {
			return st, err
		}
		p.log.Debug("another projector moved the checkpoint: going on from there", "from", st.Checkpoint, "to", cp)
		st.Checkpoint = cp
	}
}

// catchUp applies one batch after another, each prepared in the
// transaction that commits it.
func (p *Projector) catchUp(ctx context.Context, st *Stats) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pages := p.readAhead(ctx, st.Checkpoint)
	for {
		pg, err := nextPage(ctx, pages)
		if err != nil {
			return err
		}
		if pg.err != nil {
			return pg.err
		}
		recs := pg.recs
		if len(recs) == 0 {
			return p.finish(ctx, st.Checkpoint)
		}
		rejected, err := p.applyBatch(ctx, st.Checkpoint, recs)
		if err != nil {
			return err
		}
		st.Events += len(recs)
		st.Rejected += rejected
		st.Batches++
		st.Checkpoint = recs[len(recs)-1].Position
		p.log.Debug("batch applied", "events", len(recs), "rejected", rejected, "checkpoint", st.Checkpoint)
	}
}

// finish ends a catch-up at the ledger's head: rows left alone for a
// local change the capturer has drained since are derived again, even
// with no new events. at is the checkpoint it reached.
func (p *Projector) finish(ctx context.Context, at uint64) error {
	if again, err := p.hasDeferred(ctx); err != nil || !again {
		return err
	}
	_, err := p.applyBatch(ctx, at, nil)
	return err
}

// page is one read of the ledger; an empty one ends a catch-up.
type page struct {
	recs []ledger.Record
	err  error
}

// nextPage waits for the reader's next page, or ctx's end.
func nextPage(ctx context.Context, pages <-chan page) (page, error) {
	select {
	case pg := <-pages:
		return pg, nil
	case <-ctx.Done():
		return page{}, ctx.Err()
	}
}

// readAhead reads the ledger after position in pages of the batch size,
// one page ahead of the consumer, until an empty page, an error or ctx's end.
func (p *Projector) readAhead(ctx context.Context, after uint64) <-chan page {
	out := make(chan page, 1)
	go func() {
		for {
			recs, err := p.store.ReadAll(ctx, after, p.opts.BatchSize, ledger.Filter{})
			if err != nil {
				err = fmt.Errorf("read ledger after %d: %w", after, err)
			}
			select {
			case out <- page{recs, err}:
			case <-ctx.Done():
				return
			}
			if err != nil || len(recs) == 0 {
				return
			}
			after = recs[len(recs)-1].Position
		}
	}()
	return out
}

// Run keeps the target up to date until ctx ends: it catches up, then
// waits for new events and applies them.
func (p *Projector) Run(ctx context.Context) error {
	for {
		st, err := p.CatchUp(ctx)
		if err != nil {
			return err
		}
		for _, err := range p.store.Subscribe(ctx, st.Checkpoint, ledger.Filter{}) {
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			break // something new: catch up in batches
		}
	}
}

// applyBatch projects one batch, the events after position from, in one
// transaction: table rows, merge states, id map, parked records,
// conflicts, rejects and the checkpoint commit together, so a crash at
// any point repeats the batch exactly. It returns errMoved, nothing
// written, if the checkpoint is no longer from (another projector
// applied these events).
func (p *Projector) applyBatch(ctx context.Context, from uint64, recs []ledger.Record) (rejected int, err error) {
	tx, err := p.d.beginProjection(ctx)
	if err != nil {
		return 0, fmt.Errorf("begin projection: %w", err)
	}
	defer func() {
		if err != nil {
			tx.rollback(ctx)
		}
	}()
	b, rejected, err := p.prepare(ctx, tx, from, recs, nil)
	if err != nil {
		return 0, err
	}
	var guard string
	var args []any
	if len(recs) > 0 {
		p.queueCheckpointEvent(tx, recs[len(recs)-1])
		guard, args = p.checkpointGuard(from, recs[len(recs)-1].Position, nil)
	}
	if err := tx.commitIf(ctx, guard, args...); err != nil {
		if errors.Is(err, errMoved) {
			p.cache.reset() // moved by a projector without the lock
			return 0, err
		}
		if len(recs) == 0 {
			return 0, fmt.Errorf("derive deferred rows again: %w", err)
		}
		return 0, fmt.Errorf("project positions %d..%d: %w", recs[0].Position, recs[len(recs)-1].Position, err)
	}
	if len(recs) > 0 {
		p.cache.keep(b.recs, recs[len(recs)-1].Position)
	}
	return rejected, nil
}

// prepare merges a batch's events, those after position from, and queues
// its writes on tx (all but the checkpoint's). prev is what the batch
// still committing changed, if one is (pipeline.go); without one, the
// checkpoints are checked first (checkTurn).
func (p *Projector) prepare(ctx context.Context, tx dtx, from uint64, recs []ledger.Record, prev *carry) (*batch, int, error) {
	if prev == nil {
		if err := p.checkTurn(ctx, tx, from); err != nil {
			return nil, 0, err
		}
	}
	b := newBatch(p, tx, prev)
	if err := b.loadLocal(ctx); err != nil {
		return nil, 0, fmt.Errorf("read capture state: %w", err)
	}
	if err := b.loadBounds(ctx); err != nil {
		return nil, 0, fmt.Errorf("read clock bounds: %w", err)
	}
	if err := b.loadParkedNone(ctx); err != nil {
		return nil, 0, fmt.Errorf("read parked records: %w", err)
	}
	var good []ledger.Record
	rejected := 0
	for _, r := range recs {
		if rej := p.validate(r.Event); rej != nil {
			b.reject(r, rej)
			rejected++
			continue
		}
		good = append(good, r)
	}
	if err := b.apply(ctx, good); err != nil {
		return nil, 0, err
	}
	return b, rejected, nil
}

// Rejection says why an event was set aside: it names the model, key,
// field and event, and is stored for administrators (Rejected).
type Rejection struct {
	Position uint64
	EventID  string
	Model    string
	Key      string
	Field    string
	Problem  string
}

func (r *Rejection) Error() string {
	return fmt.Sprintf("event %s (%s %s) field %q: %s", r.EventID, r.Model, r.Key, r.Field, r.Problem)
}

// ErrRejected is what Rejection errors wrap for errors.Is.
var ErrRejected = errors.New("projections: event rejected")

func (r *Rejection) Unwrap() error { return ErrRejected }

// validate checks an event against the registry before it touches any
// state: a bad event is set aside whole, and the rest of its batch applies.
func (p *Projector) validate(e *ledger.Event) *Rejection {
	rej := func(field, format string, args ...any) *Rejection {
		return &Rejection{EventID: e.ID.String(), Model: e.Model, Key: e.Key, Field: field, Problem: fmt.Sprintf(format, args...)}
	}
	if e.Model == ledger.ClockBoundModel {
		if _, err := ledger.ParseClockBound(e); err != nil {
			return rej("", "%v", err)
		}
		return nil
	}
	m, ok := p.reg.Lookup(e.Model)
	if !ok {
		return rej("", "model %s is not synchronised (not in the registry)", e.Model)
	}
	for name, v := range e.Fields {
		if name == models.RenamedFrom {
			if r, ok := v.AsRef(); !ok || r.Model != e.Model || e.Op != ledger.OpCreate {
				return rej(name, "a rename names a record of the same model, on a create")
			}
			continue
		}
		if name == merge.Revives {
			if _, ok := v.AsInt(); !ok || e.Op != ledger.OpCreate || m.Kind == models.UUIDKey {
				return rej(name, "a revival names the delete it saw (an integer clock), on a create of a natural key")
			}
			continue
		}
		if name == merge.RenamedTo {
			if r, ok := v.AsRef(); !ok || r.Model != e.Model || e.Op != ledger.OpDelete || m.Kind == models.UUIDKey {
				return rej(name, "a key change names the key the record moved to (same model), on a delete of a natural key")
			}
			continue
		}
		if name == merge.Saw {
			if _, ok := v.AsInt(); !ok || e.Op == ledger.OpCreate || m.Kind == models.UUIDKey {
				return rej(name, "a change names the delete its writer saw (an integer clock), on a write or delete of a natural key")
			}
			continue
		}
		if name == merge.Lender {
			if l, ok := v.AsInt(); !ok || l <= 0 || len(m.BorrowedKeyParts()) == 0 {
				return rej(name, "a change names its lender's life (a positive integer clock), on a model whose key borrows another's")
			}
			if _, ok := e.Fields[merge.Revives]; !ok && e.Op == ledger.OpCreate {
				return rej(name, "a create of a later lender life names the delete of the record it saw (%s)", merge.Revives)
			}
			continue
		}
		f, ok := m.Field(name)
		if !ok {
			if why, known := m.NotSynced[name]; known {
				return rej(name, "field is not synchronised: %s", why)
			}
			return rej(name, "model %s has no synchronised field %s", m.Name, name)
		}
		if v.IsNull() {
			continue
		}
		if want := f.ValueKind(); v.Kind() != want {
			return rej(name, "value is %s, field %s (%s) wants %s", v.Kind(), name, f.Type, want)
		}
		var refs []ledger.Ref
		if r, ok := v.AsRef(); ok {
			refs = append(refs, r)
		}
		if rs, ok := v.AsRefSet(); ok {
			refs = rs
		}
		for _, r := range refs {
			if _, ok := p.reg.Lookup(r.Model); !ok {
				return rej(name, "references model %s, which is not synchronised", r.Model)
			}
			if r.Model != f.Target {
				return rej(name, "references model %s, field targets %s", r.Model, f.Target)
			}
		}
	}
	return nil
}
