package projections

import (
	"context"
	"slices"
)

// A person's code corrected at one clinic and given to someone else keys
// two patient registrations alike: the new person's, and a stale one a
// clinic not told yet made for the person who had the code. The merge
// keeps them apart by the lender life each was made for (merge.Lender):
// the record's current life is the new person's, and the stale one is
// superseded until the clinic that made it moves it to its person's new
// code. The key's row must be the current life's, so where the key's row
// is still the stale registration's (its reference names the person it
// was made for, under their new code now):
//   - at the instance that made it, the current life waits, parked, with
//     the row left as it is, until the capturer (told by noticeBorrowers)
//     moves that row's identity to the new code; the key then gets a new
//     row;
//   - elsewhere the row goes, as an ended life's (lifeEnded), and the
//     current life gets a new row; the stale registration comes back under
//     its person's new code with its instance's move.

// supersededReason is the parked reason of a record waiting for the move
// of the stale registration that holds its row.
const supersededReason = "its row holds a registration made for an earlier life of the record its key borrows: waits for that registration's move to its person's new key"

// supersededRow reports whether rec's row (id) belongs to a superseded
// registration, and whether this instance made that registration.
func (b *batch) supersededRow(ctx context.Context, rec *record, id int64) (stale, own bool, err error) {
	if rec.vals == nil || !rec.st.Live() {
		return false, false, nil
	}
	kps := rec.m.BorrowedKeyParts()
	for _, kp := range kps {
		// Only a create writes a key part (a change of it is a move):
		// these are the registrations' creates.
		for _, w := range rec.st.Fields[kp.Field.Name] {
			if rec.st.Superseded(w.Stamp) {
				stale = true
				own = own || b.capturedAs != nil && w.Stamp.Origin == *b.capturedAs
			}
		}
	}
	if !stale {
		return false, false, nil
	}
	// The row is the current life's if it points at the lender rows the
	// current life's references lead to.
	for _, kp := range kps {
		r, ok := rec.vals[kp.Field.Name].AsRef()
		if !ok {
			return false, false, nil
		}
		lid, has := b.ids[recKey{r.Model, r.Key}]
		if !has {
			return true, own, nil // its lender has no row yet: the row cannot point at it
		}
		found, err := b.tx.referrers(ctx, rec.m.Name, rec.m.Table, kp.Field.Column, []int64{lid})
		if err != nil {
			return false, false, err
		}
		if !slices.ContainsFunc(found, func(f referrer) bool { return f.id == id }) {
			return true, own, nil
		}
	}
	return false, false, nil
}
