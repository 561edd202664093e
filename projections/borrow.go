package projections

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/merge"
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
// So the records a round writes contend for the place their keys lead
// to now (keyNow), with the rows already there (contend). The losers
// wait, parked, for the key change that joins them: the instance that
// created the stale record captures it once its own projector has moved
// the lender's row (noticeBorrowers), and the record under the new key
// then takes the stale one's row, as any key change moves a row.

// contentionReason begins the parked reason of a record that lost a
// place: it waits for a key change, not for its target to get a row.
const contentionReason = "its key and "

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

// claim is a record that will have a row at the place its key leads to
// now, or a row already there that the round does not touch.
type claim struct {
	k      recKey
	rec    *record // nil for a row outside the round
	row    bool    // it has a row (it is not a new one)
	stayed bool    // its row is at the place already
}

// contend makes the records whose keys lead to one place (see above)
// wait for the one that keeps it; blockers reports the waits. The
// claimants are the round's live records of models that borrow a key,
// new rows and existing ones alike (an existing row's reference can move
// too), and the rows already at a place that the round does not rewrite:
// those pointing at the lender's row, and those this batch or the one
// still committing put there (batch.placed). The place goes to
// a row already there, then to an existing row, then to a new one,
// preferring the record whose key is the place's own, then the least key.
// An existing row that loses keeps its row as it was and is parked, as
// one whose target vanished.
func (b *batch) contend(ctx context.Context, todo []*record, candidates map[recKey]*record) error {
	b.contention = nil
	places := map[recKey][]claim{} // the key a place is named by → its claims
	type probe struct {
		m   *models.Model
		col string
	}
	lenders := map[probe]map[int64][]recKey{} // the lenders' rows claimed, and the places they are
	type at struct {
		place recKey
		i     int
	}
	claimed := map[recKey]at{}
	for _, rec := range todo {
		now, ok := b.keyNow(rec)
		if !ok || !rec.st.Live() || b.waitMove[rec.k] {
			continue // a row left where it is is one already at its place
		}
		_, isNew := candidates[rec.k]
		if id, has := b.ids[rec.k]; !isNew && (!has || b.keepsLocalChange(rec, id)) {
			continue // no row to write; one kept for a local change stays where it is
		}
		place := recKey{rec.k.model, now}
		claimed[rec.k] = at{place, len(places[place])}
		places[place] = append(places[place], claim{k: rec.k, rec: rec, row: !isNew})
		for _, kp := range rec.m.BorrowedKeyParts() {
			// Rows already there matter where a row arrives: a new one,
			// or one whose reference the round changed.
			moved := isNew || rec.whole || rec.touched == nil || rec.touched[kp.Field.Name]
			r, _ := rec.vals[kp.Field.Name].AsRef()
			if lid, ok := b.ids[recKey{r.Model, r.Key}]; ok && moved {
				pr := probe{rec.m, kp.Field.Column}
				if lenders[pr] == nil {
					lenders[pr] = map[int64][]recKey{}
				}
				lenders[pr][lid] = append(lenders[pr][lid], place)
			}
		}
	}
	outside := map[recKey]bool{} // rows already at a place, not rewritten by the round
	for pr, byLender := range lenders {
		ids := slices.Sorted(maps.Keys(byLender))
		found, err := b.tx.referrers(ctx, pr.m.Name, pr.m.Table, pr.col, ids)
		if err != nil {
			return fmt.Errorf("rows whose key borrows through %s.%s: %w", pr.m.Name, pr.col, err)
		}
		for _, r := range found {
			k := recKey{pr.m.Name, r.key}
			if to, ok := b.movedRow(pr.m.Name, r.id); ok {
				k = to
			}
			if c, ok := claimed[k]; ok {
				// A row of the round already where the round puts it
				// keeps it: it cannot leave for another to move in.
				if cl := &places[c.place][c.i]; cl.row && b.lenderOf(cl.rec, pr.col) == r.to {
					cl.stayed = true
				}
				continue
			}
			if rec, loaded := b.recs[k]; outside[k] || loaded && !rec.st.Live() {
				continue // its row goes in this round
			}
			outside[k] = true
			// The row holds the lender's row, wherever its reference
			// leads now: the round does not rewrite it.
			for _, place := range byLender[r.to] {
				if sameOtherParts(pr.m, pr.col, k.key, place.key) {
					places[place] = append(places[place], claim{k: k, row: true, stayed: true})
				}
			}
		}
	}
	// Rows this batch, or the one still committing, put at a contested
	// place are there as far as this round goes: no read shows them.
	for place := range places {
		for _, placed := range []map[recKey]recKey{b.placed, b.prevPlaced()} {
			k, ok := placed[place]
			if _, round := claimed[k]; !ok || round || outside[k] {
				continue
			}
			if err := b.lookupIDs(ctx, []recKey{k}); err != nil {
				return err
			}
			if _, has := b.ids[k]; !has {
				continue // its row is gone since
			}
			if r, loaded := b.recs[k]; loaded && !r.st.Live() {
				continue
			}
			outside[k] = true
			places[place] = append(places[place], claim{k: k, row: true, stayed: true})
		}
	}
	rank := func(c claim, place recKey) int {
		switch {
		case c.stayed:
			return 0
		case c.row && c.k == place:
			return 1
		case c.row:
			return 2
		case c.k == place:
			return 3
		}
		return 4
	}
	for place, cs := range places {
		if len(cs) < 2 {
			continue
		}
		slices.SortFunc(cs, func(x, y claim) int {
			if d := rank(x, place) - rank(y, place); d != 0 {
				return d
			}
			return strings.Compare(x.k.key, y.k.key)
		})
		for _, c := range cs[1:] {
			if b.contention == nil {
				b.contention = map[recKey]wait{}
			}
			b.contention[c.k] = wait{cs[0].k, fmt.Sprintf(contentionReason+"%s's lead to the same row (a key it borrows changed): waits for the key change that joins them", cs[0].k.key)}
			if !c.row && c.k != place {
				b.noticeRowless(c.rec, place)
			}
		}
	}
	for place, cs := range places {
		if w := cs[0]; w.rec != nil {
			if b.placed == nil {
				b.placed = map[recKey]recKey{}
			}
			b.placed[place] = w.k
		}
	}
	return nil
}

// sameOtherParts reports whether two keys of m agree on every key part
// but the one borrowed through column col: a ward of the institution
// whose row both point at is at the same place only under the same name.
func sameOtherParts(m *models.Model, col, a, b string) bool {
	if len(m.Key) < 2 {
		return true
	}
	pa, errA := ledger.SplitKey(a)
	pb, errB := ledger.SplitKey(b)
	if errA != nil || errB != nil || len(pa) != len(pb) {
		return false
	}
	for i, name := range m.Key {
		if f, _ := m.Field(name); f.Column != col && pa[i] != pb[i] {
			return false
		}
	}
	return true
}

// prevPlaced is where the batch still committing put its rows of
// borrowing models (batch.placed).
func (b *batch) prevPlaced() map[recKey]recKey {
	if b.prev == nil {
		return nil
	}
	return b.prev.placed
}

// lenderOf is the local id of the row rec's borrowed key part in column
// col resolves to (0 if none).
func (b *batch) lenderOf(rec *record, col string) int64 {
	for _, kp := range rec.m.BorrowedKeyParts() {
		if kp.Field.Column == col {
			r, _ := rec.vals[kp.Field.Name].AsRef()
			return b.ids[recKey{r.Model, r.Key}]
		}
	}
	return 0
}

// noticeRowless asks this instance's capturer to move rec, a record
// under a stale key that waits for its move to place, when this instance
// began it but has no row of it: the row went with a delete of its
// lender that arrived before the key change (cascade), and the capturer,
// which moves a row's identity when the row's key changes, would never
// see one. The notice ('M') names both keys; the capturer moves the
// identity from the merged state (capture: moveRowless).
func (b *batch) noticeRowless(rec *record, place recKey) {
	if b.capturedAs == nil || b.p.rebuilding || rec == nil || b.rowless[rec.k] {
		return
	}
	if owner, ok := rec.st.Owner(); !ok || owner != *b.capturedAs {
		return
	}
	if b.rowless == nil {
		b.rowless = map[recKey]bool{}
	}
	b.rowless[rec.k] = true
	b.tx.queue(`INSERT INTO `+b.s+`outbox (tbl, op, row_id, old, new) VALUES (?, 'M', 0, ?, ?)`,
		rec.m.Table, keyImage(rec.k.key), keyImage(place.key))
}

// began reports whether this instance began st's current life, or a
// superseded registration (superseded.go) under its key, through
// borrowed key part kp: only it captures their moves.
func (b *batch) began(st *merge.State, kp models.KeyPart) bool {
	if owner, ok := st.Owner(); !ok || owner == *b.capturedAs {
		return true
	}
	for _, w := range st.Fields[kp.Field.Name] {
		if w.Stamp.Origin == *b.capturedAs && st.Superseded(w.Stamp) {
			return true
		}
	}
	return false
}

// keyImage is an outbox image naming a key (under a name no Tryton
// column has).
func keyImage(key string) string {
	b, _ := json.Marshal(map[string]string{"_key": key}) // a map of strings always encodes
	return string(b)
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
			if st := b.recs[keys[i]].st; !b.began(st, kp) {
				continue
			}
			b.tx.queue(`INSERT INTO `+b.s+`outbox (tbl, op, row_id) VALUES (?, 'K', ?)`, kp.Model.Table, r.id)
		}
	}
	return nil
}
