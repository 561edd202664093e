package capture

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ghsync/ghsync/clocks"
	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/merge"
	"github.com/ghsync/ghsync/models"
)

// change is one outbox row.
type change struct {
	seq   int64
	tx    int64
	at    time.Time
	table string
	op    string // I, U or D
	id    int64
	uid   sql.NullInt64
	old   row
	new   row
	// whole: the row is captured whole, its Many2Many sets too (a
	// snapshot row, or one the network sees for the first time).
	whole bool
}

// Drain turns every change waiting in the outbox into ledger events, one
// batch per transaction, until the outbox is empty.
//
// When the batches may overlap (see overlaps), the next batch is read,
// built and stamped on other connections while the current one is
// appended and committed: the process and the database server then work
// at the same time rather than in turn. Exactly-once still holds because
// each batch's outbox rows leave in its own append transaction, and:
//
//   - the next read starts after the current batch's last seq, so it never
//     takes rows the current batch is deleting; a row below that seq that
//     became visible meanwhile (a transaction that committed late) makes
//     the prepared batch be discarded and read again from the start
//     (behind), so changes are still captured in the order the sequential
//     drain would see them;
//   - the next build sees the current batch's id map writes and stamps
//     through an overlay (inflight), since they are not committed yet;
//   - the next batch is stamped after the current one, so origin_seq, HLC
//     and the hash chain continue it; if the current append fails,
//     nothing of the next is kept and the sequencer is resumed from the
//     ledger before anything is stamped again.
func (c *Capturer) Drain(ctx context.Context) (Stats, error) {
	var st Stats
	if err := c.finishHandoff(ctx, true); err != nil {
		return st, err
	}
	cur, err := c.prepareNext(ctx, 0, nil)
	for err == nil && cur != nil {
		cur, err = c.step(ctx, cur, &st)
	}
	if err != nil {
		return st, err
	}
	return st, c.retryHeld(ctx, &st)
}

// prepared is a batch built and stamped, ready to append.
type prepared struct {
	b    *batch
	seqs []int64 // its outbox rows, in order (none for a snapshot chunk)
}

// step appends cur and returns the batch after it (nil when the outbox is
// empty), prepared while cur's append ran when the two may overlap.
func (c *Capturer) step(ctx context.Context, cur *prepared, st *Stats) (*prepared, error) {
	if !c.overlaps() {
		if err := c.append(ctx, cur); err != nil {
			c.stale = true
			return nil, err
		}
		c.committed(ctx, cur, st)
		return c.prepareNext(ctx, 0, nil)
	}
	done := make(chan error, 1) // buffered: the append never waits for us
	go func() { done <- c.append(ctx, cur) }()
	next, err := c.prepareNext(ctx, cur.seqs[len(cur.seqs)-1], cur.b.inflight())
	if aerr := <-done; aerr != nil {
		c.stale = true // next's stamps, if any, continued cur's
		return nil, aerr
	}
	c.committed(ctx, cur, st)
	if err != nil {
		c.stale = true
		return nil, err
	}
	if next != nil {
		late, err := c.behind(ctx, next.seqs[0])
		if err != nil || late {
			c.stale = true // next is dropped, its stamps with it
			if err != nil {
				return nil, err
			}
			next = nil
		}
	}
	if next == nil { // the outbox may still hold rows below cur's: look from the start
		return c.prepareNext(ctx, 0, nil)
	}
	return next, nil
}

// overlaps reports whether the next batch may be prepared while one is
// appended. Only with a PostgreSQL ledger in the Tryton database (the
// outbox rows leave in the append's transaction; reads run beside it on
// other connections) and a sequencer of our own: one shared with another
// writer of the origin (central's server) may be resynced by it while
// our stamps run ahead of the ledger. SQLite, a ledger elsewhere (the
// hand-off) and a shared sequencer drain one batch after the other.
func (c *Capturer) overlaps() bool {
	return c.sameDB && c.d.dialect == models.Postgres && c.opts.Sequencer == nil
}

// behind reports whether the outbox holds rows below seq: rows of a
// transaction that committed after the batch before seq was read, which a
// read starting after that batch skipped. min(seq) walks the index from
// its start; a parameter (seq < $1) would let the planner scan the table,
// through every row the drain has deleted so far.
func (c *Capturer) behind(ctx context.Context, seq int64) (bool, error) {
	var first sql.NullInt64
	if err := c.d.QueryRowContext(ctx, `SELECT min(seq) FROM `+c.d.t("outbox")).Scan(&first); err != nil {
		return false, fmt.Errorf("read outbox before seq %d: %w", seq, err)
	}
	return first.Valid && first.Int64 < seq, nil
}

// prepareNext reads the outbox rows after seq after (all when 0) and
// builds and stamps their events; nil when there are none. fl, when not
// nil, is what the batch being appended meanwhile will have written.
func (c *Capturer) prepareNext(ctx context.Context, after int64, fl *inflight) (*prepared, error) {
	chs, err := c.read(ctx, after)
	if err != nil || len(chs) == 0 {
		return nil, err
	}
	return c.prepare(ctx, chs, true, fl)
}

// read takes the next batch of outbox rows after seq after (from the
// start when 0), in the order they were written.
func (c *Capturer) read(ctx context.Context, after int64) ([]change, error) {
	cast := ""
	if c.d.dialect == models.Postgres {
		cast = "::text"
	}
	rows, err := c.d.QueryContext(ctx, c.d.q(`SELECT seq, tx, `+c.d.textAt()+`, tbl, op, row_id, uid, old`+cast+`, new`+cast+`
		FROM `+c.d.t("outbox")+` WHERE seq > ? ORDER BY seq LIMIT ?`), after, c.opts.BatchSize)
	if err != nil {
		return nil, fmt.Errorf("read outbox after seq %d: %w", after, err)
	}
	defer rows.Close()
	out := make([]change, 0, c.opts.BatchSize)
	for rows.Next() {
		var ch change
		var at string
		var old, new []byte // nil for NULL; the parsed images keep slices of them
		if err := rows.Scan(&ch.seq, &ch.tx, &at, &ch.table, &ch.op, &ch.id, &ch.uid, &old, &new); err != nil {
			return nil, fmt.Errorf("read outbox after seq %d: %w", after, err)
		}
		if ch.at, err = parseAt(at); err != nil {
			return nil, fmt.Errorf("outbox seq %d: time %q: %w", ch.seq, at, err)
		}
		if c.opts.Correct != nil {
			ch.at = c.opts.Correct(ch.at)
		}
		if ch.old, err = parseRow(old); err != nil {
			return nil, fmt.Errorf("outbox seq %d: old values: %w", ch.seq, err)
		}
		if ch.new, err = parseRow(new); err != nil {
			return nil, fmt.Errorf("outbox seq %d: new values: %w", ch.seq, err)
		}
		out = append(out, ch)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read outbox after seq %d: %w", after, err)
	}
	return out, nil
}

// commit turns a batch of changes into events and makes both durable
// together: events appended, outbox rows (when fromOutbox) removed, id map
// updated. It returns how many events were appended. fl, when not nil,
// holds writes the ledger has that the projector's states lack (see
// inflight): the Base of later writes of the same fields.
func (c *Capturer) commit(ctx context.Context, chs []change, fromOutbox bool, fl *inflight) (int, error) {
	p, err := c.prepare(ctx, chs, fromOutbox, fl)
	if err != nil {
		return 0, err
	}
	if err := c.append(ctx, p); err != nil {
		c.stale = true
		return 0, err
	}
	var st Stats
	c.committed(ctx, p, &st)
	return st.Events, nil
}

// prepare builds chs's events and stamps them. fl, when not nil, is what
// the batch being appended meanwhile will have written. A failure after
// stamping began leaves the sequencer to resume.
func (c *Capturer) prepare(ctx context.Context, chs []change, fromOutbox bool, fl *inflight) (*prepared, error) {
	p, err := c.prepareWith(ctx, fl, func(b *batch) error { return b.build(ctx, chs) })
	if err != nil {
		return nil, err
	}
	if fromOutbox {
		p.seqs = make([]int64, len(chs))
		for i, ch := range chs {
			p.seqs[i] = ch.seq
		}
	}
	return p, nil
}

// prepareWith builds a batch with build and stamps its events.
func (c *Capturer) prepareWith(ctx context.Context, fl *inflight, build func(*batch) error) (*prepared, error) {
	b := newBatch(c)
	b.fl = fl
	if err := build(b); err != nil {
		return nil, err
	}
	b.fl = nil // only the build reads it; holding it would chain the batches
	// Stale never while a batch is appended: a failure ends the drain first.
	if c.stale {
		if err := c.resume(ctx); err != nil {
			return nil, fmt.Errorf("resume the sequencer: %w", err)
		}
		c.stale = false
	}
	if err := c.stamp(b); err != nil {
		c.stale = true
		return nil, err
	}
	return &prepared{b: b}, nil
}

// append makes p durable: its events appended and, in the same
// transaction (or the hand-off's), its outbox rows removed and the id map
// updated. It may run beside the next batch's prepare, so it changes no
// state of the Capturer: after a failure the caller marks the sequencer
// stale.
func (c *Capturer) append(ctx context.Context, p *prepared) error {
	if !c.sameDB {
		return c.handOff(ctx, p.b, p.seqs)
	}
	if c.opts.BeforeAppend != nil {
		c.opts.BeforeAppend()
	}
	hook := func(ctx context.Context, tx ledger.Tx) error { return p.b.bookkeep(ctx, tx, p.seqs) }
	if ea, ok := c.store.(ledger.EncodedAppender); ok {
		_, err := ea.AppendEncoded(ctx, p.b.events, p.b.encoded, hook)
		return err
	}
	_, err := c.store.(ledger.HookAppender).AppendHook(ctx, p.b.events, hook)
	return err
}

// committed notes an appended batch: its stamps become the Base of this
// capturer's next writes of the same fields, its deletes are remembered
// until projected (deletes.go), and it counts in st.
func (c *Capturer) committed(ctx context.Context, p *prepared, st *Stats) {
	c.appendedDeletes(ctx, p.b.events)
	for k, fs := range p.b.stamps { // stamp gathered them per record already
		if old, ok := c.stamped[k]; ok {
			for _, f := range fs {
				old = old.set(f.field, f.hlc)
			}
			fs = old
		}
		c.stamped[k] = fs
	}
	if len(c.stamped) > 1<<18 { // bounded: the projector's state takes over
		clear(c.stamped)
	}
	st.Changes += len(p.seqs)
	st.Events += len(p.b.events)
	st.Batches++
	if len(p.seqs) > 0 {
		c.log.Debug("outbox batch captured", "changes", len(p.seqs), "events", len(p.b.events), "last_seq", p.seqs[len(p.seqs)-1])
	}
}

// stamp stamps the batch's events in order. A write names as Base the
// latest earlier write of the same field in this batch (Tryton often saves
// a record twice in one transaction), and is stamped after every value it
// replaced, even one from an instance whose clock runs a little ahead:
// otherwise the user's edit would lose to the value it overwrote.
func (c *Capturer) stamp(b *batch) error {
	here := map[recKeyOf]fieldStamps{}
	deleted := map[recKeyOf]clocks.Timestamp{} // deletes stamped in this batch
	revived := map[recKeyOf]clocks.Timestamp{} // revivals stamped in this batch: the delete each saw
	b.encoded = make([][]byte, 0, len(b.pending))
	for _, p := range b.pending {
		e := p.e
		if err := b.nameLenders(e, revived); err != nil {
			return err
		}
		var floor clocks.Timestamp
		if d, ok := deleted[recKeyOf{e.Model, e.Key}]; ok && e.Op == ledger.OpCreate {
			// The key's record was deleted by this very batch (a rename
			// undone, a row deleted and saved again): a new life.
			e.Fields[merge.Revives] = ledger.Int(int64(d))
		}
		if d, ok := deleted[recKeyOf{e.Model, e.Key}]; ok && e.Op != ledger.OpCreate && c.natural(e.Model) {
			// A change after this batch's delete of the key: of the life
			// begun since (the delete's own key names it too).
			if v, _ := e.Fields[merge.Saw].AsInt(); clocks.Timestamp(v) < d {
				if e.Fields == nil {
					e.Fields = map[string]ledger.Value{}
				}
				e.Fields[merge.Saw] = ledger.Int(int64(d))
			}
		}
		if len(deleted) > 0 {
			// A reference to a key this batch deleted before: to the life
			// begun since.
			for f, v := range e.Fields {
				if r, ok := v.AsRef(); ok && r.Saw < deleted[recKeyOf{r.Model, r.Key}] && c.livesOf(e.Model, f, r) {
					r.Saw = deleted[recKeyOf{r.Model, r.Key}]
					v, err := ledger.RefValue(r)
					if err != nil {
						return err
					}
					e.Fields[f] = v
				}
			}
		}
		for _, name := range [...]string{merge.Revives, merge.Saw} {
			if v, ok := e.Fields[name]; ok {
				saw, _ := v.AsInt()
				floor = max(floor, clocks.Timestamp(saw)) // after the delete it saw
			}
		}
		if e.Op == ledger.OpWrite {
			earlier := here[recKeyOf{e.Model, e.Key}]
			for f := range e.Fields {
				if f == merge.Saw || f == merge.Lender {
					continue
				}
				base := max(e.Base[f], earlier.get(f))
				if base != 0 {
					if e.Base == nil {
						e.Base = map[string]clocks.Timestamp{}
					}
					e.Base[f] = base
				}
				floor = max(floor, base)
			}
		}
		if floor != 0 && floor >= c.opts.Clock.Last() {
			// Restore, not Observe: the receive rule would also move the
			// clock to now, and the change keeps the time it was made.
			if max := c.opts.Clock.MaxOffset(); max > 0 && time.Until(floor.Time()) > max {
				c.log.Warn("a replaced value is stamped beyond the tolerated clock offset; stamping after it anyway", "model", e.Model, "key", e.Key, "replaced", floor.String())
			}
			c.opts.Clock.Restore(floor)
		}
		payload, err := c.seq.StampAt(e, p.at)
		if err != nil {
			return err
		}
		b.encoded = append(b.encoded, payload)
		noteStamps(here, e)
		if e.Op == ledger.OpDelete {
			deleted[recKeyOf{e.Model, e.Key}] = e.HLC
		}
		if v, ok := e.Fields[merge.Revives].AsInt(); ok && e.Op == ledger.OpCreate && v > 0 {
			k := recKeyOf{e.Model, e.Key}
			revived[k] = max(revived[k], clocks.Timestamp(v))
		}
	}
	b.stamps = here
	return nil
}

// handOff is the two-step commit for a ledger outside this database: the
// stamped events are committed here, with the outbox deletion and the id
// map, then appended, then cleared. A crash in between leaves them in the
// hand-off table, and finishHandoff appends them (idempotently) first
// thing next time.
func (c *Capturer) handOff(ctx context.Context, b *batch, seqs []int64) error {
	tx, err := c.d.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for i, e := range b.events {
		payload := b.encoded[i]
		if _, err := tx.ExecContext(ctx, c.d.q(`INSERT INTO `+c.d.t("handoff")+` (origin_seq, payload) VALUES (?, ?)`), int64(e.OriginSeq), payload); err != nil {
			return fmt.Errorf("hand-off: %w", err)
		}
	}
	if err := b.bookkeep(ctx, ledger.SQLTx(tx), seqs); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("hand-off commit: %w", err)
	}
	if c.opts.BeforeAppend != nil {
		c.opts.BeforeAppend()
	}
	return c.finishHandoff(ctx, false)
}

// intList renders ids as a literal IN list (they are integers we read).
func intList(ids []int64) string {
	var b strings.Builder
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(id, 10))
	}
	return b.String()
}

// natural reports whether model's keys can be used again after a delete
// (not UUIDs), so its changes name the delete they saw (merge.Saw).
func (c *Capturer) natural(model string) bool {
	m, ok := c.reg.Lookup(model)
	return ok && m.Kind != models.UUIDKey
}

// livesOf reports whether field of a model's event, which holds r, names
// the life of r's target (ledger.Ref.Saw): a Many2One to a natural key,
// or where a key change took the record (merge.RenamedTo). RenamedFrom
// names the key the record left, not a life of it.
func (c *Capturer) livesOf(model, field string, r ledger.Ref) bool {
	if !c.natural(r.Model) {
		return false
	}
	if field == merge.RenamedTo {
		return true
	}
	m, _ := c.reg.Lookup(model)
	f, ok := m.Field(field)
	return ok && f.Type == models.Many2One
}
