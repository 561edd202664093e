package projections

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/models"
)

// A natural key can borrow another record's through a Many2One key part:
// a patient's key is its person's code, a ward's begins with its
// institution's. When the lender's key changes, the capturer that
// captures the change moves the borrowers it knows with it
// (capture.moveBorrowers). A borrower created elsewhere before that
// instance heard of the change keeps the old key: a stale key. Its
// reference follows the lender to its new key, so its row would land on
// the same person as a record under the new key, registered by someone
// who knew the new code: two records, one place (gnuhealth_patient
// allows one patient a person), and a projection that would fail on
// every retry.
//
// So the records about to get a row contend for the place their keys
// lead to now (keyNow): a record already holding a row there keeps it;
// among new ones, the one whose key is the place's own, else the least
// key, gets it. The others wait, parked, for the key change that joins
// them: the instance that created the stale record captures it once its
// own projector has moved the lender's row (noticeBorrowers), and the
// record under the new key then takes the stale one's row, as any key
// change moves a row.

// keyNow is the key rec's key parts lead to now: each borrowed part
// replaced by the key its reference resolves to (rec.vals, references
// followed). ok is false when rec borrows no key or a borrowed reference
// resolves to nothing.
func (b *batch) keyNow(rec *record) (string, bool) {
	parts := rec.m.BorrowedKeyParts()
	if len(parts) == 0 || rec.vals == nil {
		return "", false
	}
	own := []string{rec.k.key}
	if len(rec.m.Key) > 1 {
		var err error
		if own, err = ledger.SplitKey(rec.k.key); err != nil || len(own) != len(rec.m.Key) {
			return "", false
		}
	}
	for _, kp := range parts {
		r, ok := rec.vals[kp.Field.Name].AsRef()
		if !ok {
			return "", false
		}
		own[kp.Index] = r.Key
	}
	return rec.m.KeyOf(own...), true
}

// keysLeadingTo lists the keys of model m whose borrowed parts lead to
// the key now: now itself, and now with each borrowed part replaced by a
// key its lender had before a key change (an alias to it).
func (b *batch) keysLeadingTo(m *models.Model, now string, formerly map[recKey][]string) []string {
	out := []string{now}
	parts := m.BorrowedKeyParts()
	if len(m.Key) > 1 {
		base, err := ledger.SplitKey(now)
		if err != nil || len(base) != len(m.Key) {
			return out
		}
		for _, kp := range parts {
			for _, k := range slices.Clone(out) {
				ps, _ := ledger.SplitKey(k)
				for _, old := range formerly[recKey{kp.Field.Target, ps[kp.Index]}] {
					ps[kp.Index] = old
					out = append(out, m.KeyOf(ps...))
				}
			}
		}
		return out
	}
	for _, kp := range parts {
		out = append(out, formerly[recKey{kp.Field.Target, now}]...)
	}
	return out
}

// contend makes new records whose keys lead to the same place wait for
// the one that holds it (see above); blockers reports the waits.
func (b *batch) contend(ctx context.Context, candidates map[recKey]*record) error {
	b.contention = nil
	type entry struct {
		rec   *record
		now   recKey
		other []recKey // other keys leading to the same place
	}
	var es []entry
	var formerly map[recKey][]string // lender key → its keys before key changes
	var probe []recKey
	for _, rec := range candidates {
		now, ok := b.keyNow(rec)
		if !ok {
			continue
		}
		if formerly == nil {
			formerly = map[recKey][]string{}
			for old := range b.alias {
				to := b.resolveAlias(old)
				formerly[to] = append(formerly[to], old.key)
			}
		}
		e := entry{rec: rec, now: recKey{rec.k.model, now}}
		for _, k := range b.keysLeadingTo(rec.m, now, formerly) {
			if k != rec.k.key {
				e.other = append(e.other, recKey{rec.k.model, k})
			}
		}
		slices.SortFunc(e.other, compareKeys)
		probe = append(probe, e.other...)
		es = append(es, e)
	}
	if len(es) == 0 {
		return nil
	}
	if err := b.lookupIDs(ctx, probe); err != nil {
		return err
	}
	waitOn := func(rec *record, on recKey) {
		if b.contention == nil {
			b.contention = map[recKey]wait{}
		}
		b.contention[rec.k] = wait{on, fmt.Sprintf("its key and %s's lead to the same row (a key it borrows changed): waits for the key change that joins them", on.key)}
	}
	groups := map[recKey][]*record{}
	for _, e := range es {
		holder := slices.IndexFunc(e.other, func(k recKey) bool {
			_, has := b.ids[k]
			r, loaded := b.recs[k]
			return has && (!loaded || r.st.Live()) // a deleted record's row goes first
		})
		if holder >= 0 {
			waitOn(e.rec, e.other[holder])
			continue
		}
		groups[e.now] = append(groups[e.now], e.rec)
	}
	for now, g := range groups {
		if len(g) < 2 {
			continue
		}
		slices.SortFunc(g, func(x, y *record) int {
			if (x.k == now) != (y.k == now) {
				if x.k == now {
					return -1
				}
				return 1
			}
			return strings.Compare(x.k.key, y.k.key)
		})
		for _, rec := range g[1:] {
			waitOn(rec, g[0].k)
		}
	}
	return nil
}

// noticeBorrowers asks this instance's capturer to move the records whose
// key borrows the one whose row just moved to lender (a key change made
// elsewhere), when this instance began them: it created them before it
// heard of the change, so only it captures their move. The notice is an
// outbox row of its own kind ('K'), committed with the move; the row
// stays as it is meanwhile, as for any local change waiting there.
func (b *batch) noticeBorrowers(ctx context.Context, lender recKey, id int64) error {
	if b.capturedAs == nil || b.p.rebuilding {
		// A rebuild replays moves whose notices were drained long ago:
		// the key changes they asked for are in the ledger.
		return nil
	}
	for _, kp := range b.p.reg.Borrowers(lender.model) {
		if !b.p.hasTable(kp.Model.Table) {
			continue
		}
		refs, err := b.tx.referrers(ctx, kp.Model.Name, kp.Model.Table, kp.Field.Column, []int64{id})
		if err != nil {
			return err
		}
		keys := make([]recKey, len(refs))
		for i, r := range refs {
			keys[i] = recKey{kp.Model.Name, r.key}
		}
		if err := b.load(ctx, keys); err != nil {
			return err
		}
		for i, r := range refs {
			if owner, ok := b.recs[keys[i]].st.Owner(); ok && owner != *b.capturedAs {
				continue
			}
			b.tx.queue(`INSERT INTO `+b.s+`outbox (tbl, op, row_id) VALUES (?, 'K', ?)`, kp.Model.Table, r.id)
		}
	}
	return nil
}
