package projections

import (
	"context"
	"fmt"
	"strconv"

	"github.com/ghsync/ghsync/merge"
)

// A natural key used again after its record was deleted begins a new life
// of the record (merge.Revives). When the delete and the new life reach a
// target in one batch, the row the target holds is the old life's: rows
// of tables ghsync does not synchronise still point at it (a clinic's own
// notes on the deleted person). It is deleted, firing the table's ON
// DELETE actions, and the new life gets a new row, exactly as when the
// two arrive in separate batches.
//
// Two rows are not the old life's although the record was live when the
// batch began:
//   - a row renamed to the key and back (models.RenamedFrom): the row
//     moved with the record's identity and stays;
//   - on a target whose changes are captured, a row a local user saved:
//     the capturer maps the key to it as it captures the user's delete
//     and new registration, before the projector sees either. A life
//     ended or begun by the origin the target's changes are captured as
//     (capture_meta: the capturer binds it before it maps any row) may
//     thus have the user's row.

// life is the life a record is in: whether it is live, and the create
// that began it (the zero Stamp for the first life).
type life struct {
	known, live bool
	start       merge.Stamp
}

// lifeOf is the life st is in now.
func lifeOf(st *merge.State) life {
	l := life{known: true, live: st.Live()}
	if r := st.Revival(); r != nil {
		l.start = *r
	}
	return l
}

// lifeEnded reports whether rec's row belongs to a life that ended in
// this batch while a later one began.
func (b *batch) lifeEnded(rec *record) bool {
	if rec.st.Deleted == nil || !rec.entered.live || !rec.st.Live() {
		return false
	}
	from := rec.entered.start
	if now := lifeOf(rec.st); now.start == from || rec.st.Superseded(from) {
		return false // the same life, or a superseded registration's (superseded.go)
	}
	if b.capturedAs == nil {
		return true
	}
	own := *b.capturedAs
	st := rec.st
	if st.Deleted.Compare(from) > 0 && st.Deleted.Origin == own {
		return false
	}
	for _, d := range st.Redeleted {
		if d.Compare(from) > 0 && d.Origin == own {
			return false
		}
	}
	for _, w := range st.Fields[merge.Revives] {
		if w.Stamp.Compare(from) > 0 && w.Stamp.Origin == own {
			return false
		}
	}
	return true
}

// rowLife is the create that began the life rec's row belongs to: the
// life the record was in when the batch came to it, or, on a target whose
// changes are captured, a later one its own users began (the capturer maps
// the key to the user's row as it captures the registration).
func (b *batch) rowLife(rec *record) merge.Stamp {
	start := rec.entered.start
	if b.capturedAs != nil {
		for _, w := range rec.st.Fields[merge.Revives] {
			if w.Stamp.Origin == *b.capturedAs && w.Stamp.Compare(start) > 0 {
				start = w.Stamp
			}
		}
	}
	return start
}

// captureOrigin reads the origin the target's changes are captured as;
// nil while no capturer has opened on it. Once known it is kept: the
// capturer refuses to change it.
func (b *batch) captureOrigin(ctx context.Context) (*uint16, error) {
	if o := b.p.capturedAs.Load(); o != nil {
		return o, nil
	}
	var v string
	if err := scanOne(ctx, b.tx, []any{&v}, `SELECT coalesce(max(value), '') FROM `+b.s+`capture_meta WHERE name = 'origin'`); err != nil {
		return nil, fmt.Errorf("read the origin changes are captured as: %w", err)
	}
	if v == "" {
		return nil, nil
	}
	n, err := strconv.ParseUint(v, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("capture_meta origin %q: %w", v, err)
	}
	o := uint16(n)
	b.p.capturedAs.Store(&o)
	return &o, nil
}
