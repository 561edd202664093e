package capture

import (
	"context"
	"slices"

	"github.com/ghsync/ghsync/clocks"
	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/merge"
	"github.com/ghsync/ghsync/models"
)

// A record whose key borrows another's (a patient's is its person's code)
// names, on every change, the life of that lender its row belongs to
// (merge.Lender), and so does every reference to it (ledger.Ref.Lender):
// a person's code corrected at one clinic and given to someone else keys
// the new person's patient record and a stale one a clinic not told yet
// made for the person who had the code; the lender life keeps them apart.
// The life is the lender's current one as this instance knows it: its
// merged state's (merge.State.LenderLife) or, while the lender's row lives
// here, a later one a revival captured here began after a delete this
// instance knows (merged, or captured and not applied yet: deletes.go),
// or one a revival earlier in the batch began. The delete half of
// a move that followed the lender's own key changes (both halves: the
// create's reference to the old key too) names the life the row had under
// the old key: the one those changes took to its new key
// (merge.State.LenderLifeMovedTo), or the current one if the first of them
// is in the same batch.

// lenderPart is a key part a model borrows: its index in the key, and the
// lender's model.
type lenderPart struct {
	index  int
	lender string
	parts  int // the borrowing model's key parts
}

// borrowedParts lists, per model, the key parts it borrows from models
// with natural keys.
func borrowedParts(reg *models.Registry) map[string][]lenderPart {
	out := map[string][]lenderPart{}
	for _, m := range reg.Models() {
		for _, kp := range m.BorrowedKeyParts() {
			if t, ok := reg.Lookup(kp.Field.Target); ok && t.Kind != models.UUIDKey {
				out[m.Name] = append(out[m.Name], lenderPart{kp.Index, t.Name, len(m.Key)})
			}
		}
	}
	return out
}

// lenderKeys lists the records the key of a record of model borrows from;
// nil if it borrows none (or the key does not split into its parts).
func (c *Capturer) lenderKeys(model, key string) []recKeyOf {
	lps := c.borrows[model]
	if len(lps) == 0 {
		return nil
	}
	parts := []string{key}
	if lps[0].parts > 1 {
		var err error
		if parts, err = ledger.SplitKey(key); err != nil || len(parts) != lps[0].parts {
			return nil
		}
	}
	out := make([]recKeyOf, len(lps))
	for i, lp := range lps {
		out[i] = recKeyOf{lp.lender, parts[lp.index]}
	}
	return out
}

// lenderLives is what setLenders found: each lender's life as this
// instance knows it before the batch, and for the delete half of a
// borrower's move, the life its row had under the old key.
type lenderLives struct {
	known map[recKeyOf]clocks.Timestamp
	moved map[borrowerMove]clocks.Timestamp
}

// borrowerMove is a key change of a borrower: both halves of it name the
// life its row had under the old key.
type borrowerMove struct{ model, from, to string }

// setLenders reads the lives of the records the batch's borrowers, and
// the borrowers its references point at, borrow from (stamp names them,
// since a revival earlier in the batch counts).
func (b *batch) setLenders(ctx context.Context) error {
	b.lenders = lenderLives{}
	if len(b.c.borrows) == 0 {
		return nil
	}
	byModel := map[string][]string{}
	add := func(model, key string) {
		for _, lk := range b.c.lenderKeys(model, key) {
			byModel[lk.model] = append(byModel[lk.model], lk.key)
		}
	}
	var moves []borrowerMove
	movedHere := map[recKeyOf][]string{} // per key, the keys this batch's key changes to it came from
	for _, e := range b.events {
		add(e.Model, e.Key)
		if to, ok := e.Fields[merge.RenamedTo].AsRef(); ok && b.c.borrows[e.Model] != nil {
			moves = append(moves, borrowerMove{e.Model, e.Key, to.Key})
		}
		if r, ok := e.Fields[models.RenamedFrom].AsRef(); ok {
			k := recKeyOf{e.Model, e.Key}
			movedHere[k] = append(movedHere[k], r.Key)
		}
		for _, v := range e.Fields {
			if r, ok := v.AsRef(); ok && b.c.borrows[r.Model] != nil {
				add(r.Model, r.Key)
			}
		}
	}
	if len(byModel) == 0 {
		return nil
	}
	unapplied, err := b.c.unappliedDeletes(ctx)
	if err != nil {
		return err
	}
	b.lenders.known = map[recKeyOf]clocks.Timestamp{}
	states := map[recKeyOf]*merge.State{}
	for model, keys := range byModel {
		slices.Sort(keys)
		keys = slices.Compact(keys)
		byModel[model] = keys
		err := b.recordRows(ctx, model, keys, func(key string, r *recordRow) error {
			k := recKeyOf{model, key}
			var st *merge.State
			if r.state != nil {
				var err error
				if st, err = merge.DecodeState(r.state); err != nil {
					return err
				}
				states[k] = st
				b.lenders.known[k] = st.LenderLife()
			}
			if !r.id.Valid {
				return nil
			}
			// Its row lives here: if the instance knows a delete that
			// ended its life (merged, or captured and not applied yet),
			// the row is of the life a revival captured here began,
			// named by that delete.
			life := unapplied[k].hlc
			if st != nil && !st.Live() {
				life = max(life, st.LastDelete().HLC)
			}
			b.lenders.known[k] = max(b.lenders.known[k], life)
			return nil
		})
		if err != nil {
			return err
		}
	}
	if b.fl != nil {
		for k, d := range b.fl.deletes { // the records of the batch in flight are not written yet
			if _, ok := slices.BinarySearch(byModel[k.model], k.key); ok {
				b.lenders.known[k] = max(b.lenders.known[k], d)
			}
		}
	}
	for _, mv := range moves {
		from, dest := b.c.lenderKeys(mv.model, mv.from), b.c.lenderKeys(mv.model, mv.to)
		if len(from) != len(dest) {
			continue
		}
		for i := range from {
			if from[i] == dest[i] {
				continue
			}
			life, ok, err := b.lenderMoved(ctx, states, movedHere, from[i], dest[i])
			if err != nil {
				return err
			}
			if ok {
				if b.lenders.moved == nil {
					b.lenders.moved = map[borrowerMove]clocks.Timestamp{}
				}
				b.lenders.moved[mv] = max(b.lenders.moved[mv], life)
			}
		}
	}
	return nil
}

// lenderMoved names the life of lender from that key changes took, one
// after another, to dest (merge.State.LenderLifeMovedTo), walking back
// from dest through the keys each change came from; ok is false if they
// did not, or if the first of them is in this batch (the life is then the
// current one). states caches the lenders' merged states; movedHere
// holds this batch's key changes, by the key they went to.
func (b *batch) lenderMoved(ctx context.Context, states map[recKeyOf]*merge.State, movedHere map[recKeyOf][]string, from, dest recKeyOf) (life clocks.Timestamp, ok bool, err error) {
	state := func(k recKeyOf) (*merge.State, error) {
		if st, loaded := states[k]; loaded {
			return st, nil
		}
		var st *merge.State
		err := b.recordRows(ctx, k.model, []string{k.key}, func(_ string, r *recordRow) error {
			if r.state == nil {
				return nil // a row the network does not know yet
			}
			var err error
			st, err = merge.DecodeState(r.state)
			return err
		})
		states[k] = st
		return st, err
	}
	type hop struct {
		key     recKeyOf
		inBatch bool // the change that led here is in this batch
	}
	// cameFrom lists the keys the changes that led to k came from, this
	// batch's first, then the latest first.
	cameFrom := func(k recKeyOf) ([]hop, error) {
		var out []hop
		for _, key := range movedHere[k] {
			out = append(out, hop{recKeyOf{k.model, key}, true})
		}
		st, err := state(k)
		if st == nil || err != nil {
			return out, err
		}
		ws := st.Fields[models.RenamedFrom]
		for i := len(ws) - 1; i >= 0; i-- {
			if r, isRef := ws[i].Value.AsRef(); isRef {
				out = append(out, hop{recKeyOf{k.model, r.Key}, false})
			}
		}
		return out, nil
	}
	seen := map[recKeyOf]bool{dest: true}
	for at, steps := []recKeyOf{dest}, 0; len(at) > 0 && steps < 16; steps++ { // a longer chain is a loop
		var next []recKeyOf
		for _, k := range at {
			hops, err := cameFrom(k)
			if err != nil {
				return 0, false, err
			}
			for _, h := range hops {
				if h.key == from {
					if h.inBatch {
						return 0, false, nil
					}
					st, err := state(from)
					if st == nil || err != nil {
						return 0, false, err
					}
					life, ok := st.LenderLifeMovedTo(k.key)
					return life, ok, nil
				}
				if !seen[h.key] {
					seen[h.key] = true
					next = append(next, h.key)
				}
			}
		}
		at = next
	}
	return 0, false, nil
}

// lenderLife is the life of the lenders of model's key, as this instance
// knows it, given the revivals of lenders stamped earlier in the batch
// (revived: the delete each saw).
func (b *batch) lenderLife(model, key string, revived map[recKeyOf]clocks.Timestamp) clocks.Timestamp {
	var life clocks.Timestamp
	for _, lk := range b.c.lenderKeys(model, key) {
		life = max(life, b.lenders.known[lk], revived[lk])
	}
	return life
}

// nameLenders sets e's lender life (merge.Lender) and that of each
// reference it holds to a borrower (ledger.Ref.Lender). A create of a
// later lender life begins that life: it carries merge.Revives, 0 if its
// writer knew of no delete of the record.
func (b *batch) nameLenders(e *ledger.Event, revived map[recKeyOf]clocks.Timestamp) error {
	if len(b.c.borrows) == 0 {
		return nil
	}
	for f, v := range e.Fields {
		r, ok := v.AsRef()
		if !ok || b.c.borrows[r.Model] == nil {
			continue
		}
		// A move's _renamed_to names the life it begins under the new
		// key (references following the move mean it); its
		// _renamed_from, the life the row had under the old key.
		life, moved := b.lenders.moved[borrowerMove{e.Model, r.Key, e.Key}]
		if f != models.RenamedFrom || !moved {
			life = b.lenderLife(r.Model, r.Key, revived)
		}
		if r.Lender = life; r.Lender != 0 {
			nv, err := ledger.RefValue(r)
			if err != nil {
				return err
			}
			e.Fields[f] = nv
		}
	}
	if b.c.borrows[e.Model] == nil {
		return nil
	}
	var life clocks.Timestamp
	moved := false
	if to, ok := e.Fields[merge.RenamedTo].AsRef(); ok {
		life, moved = b.lenders.moved[borrowerMove{e.Model, e.Key, to.Key}]
	}
	if !moved {
		life = b.lenderLife(e.Model, e.Key, revived)
	}
	if life == 0 {
		return nil
	}
	if e.Fields == nil {
		e.Fields = map[string]ledger.Value{}
	}
	e.Fields[merge.Lender] = ledger.Int(int64(life))
	if _, ok := e.Fields[merge.Revives]; !ok && e.Op == ledger.OpCreate {
		e.Fields[merge.Revives] = ledger.Int(0)
	}
	return nil
}
