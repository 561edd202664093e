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
}

// Drain turns every change waiting in the outbox into ledger events, one
// batch per transaction, until the outbox is empty.
func (c *Capturer) Drain(ctx context.Context) (Stats, error) {
	var st Stats
	if err := c.finishHandoff(ctx); err != nil {
		return st, err
	}
	for {
		chs, err := c.read(ctx)
		if err != nil {
			return st, err
		}
		if len(chs) == 0 {
			return st, nil
		}
		n, err := c.commit(ctx, chs, true)
		if err != nil {
			return st, err
		}
		st.Changes += len(chs)
		st.Events += n
		st.Batches++
		c.log.Debug("outbox batch captured", "changes", len(chs), "events", n, "last_seq", chs[len(chs)-1].seq)
	}
}

// read takes the next batch of outbox rows, in the order they were written.
func (c *Capturer) read(ctx context.Context) ([]change, error) {
	cast := ""
	if c.d.dialect == "postgres" {
		cast = "::text"
	}
	rows, err := c.d.QueryContext(ctx, c.d.q(`SELECT seq, tx, `+c.d.textAt()+`, tbl, op, row_id, uid, old`+cast+`, new`+cast+`
		FROM `+c.d.t("outbox")+` ORDER BY seq LIMIT ?`), c.opts.BatchSize)
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	defer rows.Close()
	var out []change
	for rows.Next() {
		var ch change
		var at string
		var old, new []byte // nil for NULL; the parsed images keep slices of them
		if err := rows.Scan(&ch.seq, &ch.tx, &at, &ch.table, &ch.op, &ch.id, &ch.uid, &old, &new); err != nil {
			return nil, fmt.Errorf("read outbox: %w", err)
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
	return out, rows.Err()
}

// commit turns a batch of changes into events and makes both durable
// together: events appended, outbox rows (when fromOutbox) removed, id map
// updated. It returns how many events were appended.
func (c *Capturer) commit(ctx context.Context, chs []change, fromOutbox bool) (int, error) {
	b := newBatch(c)
	if err := b.build(ctx, chs); err != nil {
		return 0, err
	}
	evs := b.events
	if err := c.stamp(b); err != nil {
		return 0, err
	}
	var seqs []int64
	if fromOutbox {
		for _, ch := range chs {
			seqs = append(seqs, ch.seq)
		}
	}
	var err error
	if c.sameDB {
		if c.opts.BeforeAppend != nil {
			c.opts.BeforeAppend()
		}
		_, err = c.store.(ledger.HookAppender).AppendHook(ctx, evs, func(ctx context.Context, tx ledger.Tx) error {
			return b.bookkeep(ctx, tx, seqs)
		})
	} else {
		err = c.handOff(ctx, b, seqs)
	}
	if err != nil {
		if rerr := c.resume(ctx); rerr != nil {
			c.log.Error("cannot resume the sequencer after a failed append", "error", rerr)
		}
		return 0, err
	}
	for _, e := range evs {
		noteStamps(c.stamped, e)
	}
	if len(c.stamped) > 1<<18 { // bounded: the projector's state takes over
		clear(c.stamped)
	}
	return len(evs), nil
}

// stamp stamps the batch's events in order. A write names as Base the
// latest earlier write of the same field in this batch (Tryton often saves
// a record twice in one transaction), and is stamped after every value it
// replaced, even one from an instance whose clock runs a little ahead:
// otherwise the user's edit would lose to the value it overwrote.
func (c *Capturer) stamp(b *batch) error {
	here := map[recKeyOf]fieldStamps{}
	for _, p := range b.pending {
		e := p.e
		var floor clocks.Timestamp
		if e.Op == ledger.OpWrite {
			earlier := here[recKeyOf{e.Model, e.Key}]
			for f := range e.Fields {
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
		if err := c.seq.StampAt(e, p.at); err != nil {
			return err
		}
		noteStamps(here, e)
	}
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
	for _, e := range b.events {
		payload, err := ledger.Marshal(e)
		if err != nil {
			return err
		}
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
	return c.finishHandoff(ctx)
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
