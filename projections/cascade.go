package projections

import (
	"context"
	"slices"

	"github.com/ghsync/ghsync/models"
)

// A deleted row takes with it the rows that point at it through an
// `ON DELETE CASCADE` foreign key (a party's addresses and contact
// mechanisms), and cannot go while a row points at it through `ON DELETE
// RESTRICT` (a party's patient record), as with Tryton's own deletes. At
// the origin those rows were deleted first, and their delete events
// remove them everywhere; but an address or a patient record a clinic
// added to a person while another clinic deleted them has no delete
// anywhere. At every site that never had its row it is parked, waiting on
// the deleted person. Where it has a row, the projector's delete of the
// person would take the row unnoticed (the record keeping a local id with
// no row) or fail, and fail again on every retry, halting projection. So
// before a round deletes rows, the records whose rows point at them
// through either kind of key, and at those in turn, lose their rows (the
// database takes the cascading ones, the projector deletes the
// restricting ones first) and are derived again: parked, as everywhere.

// cascadeRef is a Many2One whose foreign key cascades or restricts
// deletes.
type cascadeRef struct {
	m *models.Model
	f *models.Field
}

// cascadesTo lists the Many2One fields whose rows a delete of target's
// rows takes with it or must remove first.
func (p *Projector) cascadesTo(target string) []cascadeRef {
	if p.cascades == nil {
		p.cascades = map[string][]cascadeRef{}
		for _, m := range p.reg.Models() {
			for i := range m.Fields {
				if f := &m.Fields[i]; f.Type == models.Many2One && (f.OnDelete == models.Cascade || f.OnDelete == models.Restrict) {
					p.cascades[f.Target] = append(p.cascades[f.Target], cascadeRef{m, f})
				}
			}
		}
	}
	return p.cascades[target]
}

// nullsTo lists the Many2One fields whose rows a delete of target's rows
// leaves with NULL in them (ON DELETE SET NULL).
func (p *Projector) nullsTo(target string) []cascadeRef {
	if p.nulls == nil {
		p.nulls = map[string][]cascadeRef{}
		for _, m := range p.reg.Models() {
			for i := range m.Fields {
				if f := &m.Fields[i]; f.Type == models.Many2One && f.OnDelete == models.SetNull {
					p.nulls[f.Target] = append(p.nulls[f.Target], cascadeRef{m, f})
				}
			}
		}
	}
	return p.nulls[target]
}

// cascade finds the records whose rows the round's deletes (those below
// materialize's "Deletes first": ended lives, and deleted records' rows
// no local change keeps) take with them or must remove first, and so on
// down. Restricting rows are deleted here, deepest first, before the
// round's own deletes. Records of the round lose their id here; the
// others go to b.lost, to be derived again in the next round (loseRows).
func (b *batch) cascade(ctx context.Context, todo []*record, ended map[recKey]int64) error {
	var level goneRows
	var kept []goneRows // rows that go while their records live on
	levels := map[string][]int64{}
	for _, rec := range todo {
		id, goes := ended[rec.k]
		if goes && rec.st.Live() && len(b.p.nullsTo(rec.k.model)) > 0 {
			kept = append(kept, goneRows{rec.k.model, []int64{id}})
		}
		if len(b.p.cascadesTo(rec.k.model)) == 0 {
			continue
		}
		if !goes {
			var has bool
			id, has = b.ids[rec.k]
			goes = has && !rec.st.Live() && !b.pending[rec.m.Table][id] // keepsLocalChange, without its effects
		}
		if goes {
			levels[rec.k.model] = append(levels[rec.k.model], id)
		}
	}
	if len(levels) == 0 {
		return b.nulled(ctx, kept)
	}
	inRound := make(map[recKey]*record, len(todo))
	for _, rec := range todo {
		inRound[rec.k] = rec
	}
	seen := map[recKey]bool{}
	var restricted []cascaded // deleted by the projector, parents before children
	queue := make([]goneRows, 0, len(levels))
	for model, ids := range levels {
		queue = append(queue, goneRows{model, ids})
	}
	for len(queue) > 0 {
		level, queue = queue[0], queue[1:]
		for _, c := range b.p.cascadesTo(level.model) {
			if !b.p.hasField(c.m, c.f) {
				continue
			}
			found, err := b.tx.referrers(ctx, c.m.Name, c.m.Table, c.f.Column, level.ids)
			if err != nil {
				return err
			}
			found = append(found, b.carried(c, level)...)
			var next []int64
			for _, r := range found {
				k := recKey{c.m.Name, r.key}
				if to, ok := b.movedRow(c.m.Name, r.id); ok {
					k = to // the records table does not show the batch's moves yet
				}
				if seen[k] {
					continue
				}
				seen[k] = true
				next = append(next, r.id)
				if c.f.OnDelete == models.Restrict {
					restricted = append(restricted, cascaded{c.m, referrer{k.key, r.id, r.to}})
				}
				if rec, ok := inRound[k]; ok {
					if rec.st.Live() {
						delete(b.ids, k)
						rec.idSet = true
					}
				} else {
					// Its row goes now: this round's references to it find
					// none (a patient's current address, its person gone).
					b.looked[k] = true
					delete(b.ids, k)
					b.lost = append(b.lost, k)
				}
			}
			if len(next) > 0 && len(b.p.cascadesTo(c.m.Name)) > 0 {
				queue = append(queue, goneRows{c.m.Name, next})
			}
			if len(next) > 0 && len(b.p.nullsTo(c.m.Name)) > 0 {
				kept = append(kept, goneRows{c.m.Name, next})
			}
		}
	}
	if err := b.nulled(ctx, kept); err != nil {
		return err
	}
	for i := len(restricted) - 1; i >= 0; i-- {
		r := restricted[i]
		b.removeRow(&record{k: recKey{r.m.Name, r.key}, m: r.m}, r.id)
	}
	return nil
}

// nulled notes, in b.renull, the records whose rows point through an ON
// DELETE SET NULL key at rows that go while their records live on (a
// person's address, its person deleted elsewhere). The database empties
// the reference; derived again, such a record waits for the row to come
// back, as it does at a site that never had it, so every site parks the
// same and all take the reference up again when it does.
func (b *batch) nulled(ctx context.Context, kept []goneRows) error {
	for _, g := range kept {
		for _, c := range b.p.nullsTo(g.model) {
			if !b.p.hasField(c.m, c.f) {
				continue
			}
			found, err := b.tx.referrers(ctx, c.m.Name, c.m.Table, c.f.Column, g.ids)
			if err != nil {
				return err
			}
			found = append(found, b.carried(c, g)...)
			for _, r := range found {
				k := recKey{c.m.Name, r.key}
				if to, ok := b.movedRow(c.m.Name, r.id); ok {
					k = to
				}
				b.renull = append(b.renull, k)
			}
		}
	}
	return nil
}

// movedRow is the key a row of model moved to in this batch (a key
// change), if it did and still belongs to it.
func (b *batch) movedRow(model string, id int64) (recKey, bool) {
	for i := len(b.moved) - 1; i >= 0; i-- {
		if m := b.moved[i]; m.id == id && m.to.model == model {
			return m.to, b.ids[m.to] == id
		}
	}
	return recKey{}, false
}

// goneRows is rows of a model that go in the round.
type goneRows struct {
	model string
	ids   []int64
}

// cascaded is a row a cascade reaches: its record's key and local id.
type cascaded struct {
	m *models.Model
	referrer
}

// referrer is a known record's row (key, id) that points at another
// row (to).
type referrer struct {
	key string
	id  int64
	to  int64
}

// carried lists the rows of c's model that the batch still committing
// wrote pointing at level's rows: the referrers read may not see them.
func (b *batch) carried(c cascadeRef, level goneRows) []referrer {
	if b.prev == nil {
		return nil
	}
	var out []referrer
	for k, rec := range b.prev.recs {
		id, has := b.prev.ids[k]
		if k.model != c.m.Name || !has || rec.vals == nil {
			continue
		}
		r, ok := rec.vals[c.f.Name].AsRef()
		if !ok {
			continue
		}
		if tid, ok := b.prev.ids[recKey{r.Model, r.Key}]; ok && slices.Contains(level.ids, tid) {
			out = append(out, referrer{k.key, id, tid})
		}
	}
	return out
}

// loseRows loads the records a cascade took the rows of (cascade) for
// the next round: their local id is gone, and they are derived again.
func (b *batch) loseRows(ctx context.Context, keys []recKey) ([]*record, error) {
	slices.SortFunc(keys, compareKeys)
	keys = slices.Compact(keys)
	if err := b.load(ctx, keys); err != nil {
		return nil, err
	}
	var out []*record
	for _, k := range keys {
		rec := b.recs[k]
		if !rec.st.Live() {
			continue
		}
		b.looked[k] = true // it has no row now, whatever the records table says
		delete(b.ids, k)
		rec.idSet, rec.whole = true, true
		out = append(out, rec)
	}
	return out, nil
}
