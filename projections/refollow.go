package projections

import (
	"context"
	"fmt"
	"slices"

	"github.com/ghsync/ghsync/merge"
	"github.com/ghsync/ghsync/models"
)

// A key change of a record made at a site not yet told the record was
// deleted reaches the others after the delete (merge.State.Meant: the
// person lives on under the new key). A reference that meant the record
// then leads there (MeantKey). A required one was parked waiting on every
// record it passes through (waitHops) and is woken by the change. An
// optional one was written NULL, at sites that had its row when the
// delete came (the database set it) and at those that got it afterwards
// alike, and nothing waits: refollow finds those rows and derives them
// again. Key changes of deleted records are rare (two clinics acting on
// one person at once), so a scan of the NULL rows is affordable.
//
// The same late key change can make a reference mean another row than the
// one it has: when two sites corrected one code concurrently, the person
// lives on under both new codes, and a reference made before means the
// first correction that lives on (MeantKey). A site's rows followed the
// correction it made or heard of first; refollow also derives again the
// records whose rows point at any of the corrections' rows, so that every
// site shows them on the same copy.

// refollow returns the live records with a NULL optional Many2One to a
// model one of b.movedLate belongs to whose state names a target there,
// and those whose rows point at a row one of b.movedLate's key changes
// led to, loaded for the batch to derive again. Records of the batch
// still committing are looked at whatever their rows hold: its writes
// may not show to the query.
func (b *batch) refollow(ctx context.Context) ([]*record, error) {
	if len(b.movedLate) == 0 {
		return nil, nil
	}
	targets := map[string]bool{}
	for _, k := range b.movedLate {
		targets[k.model] = true
	}
	pointing, err := b.splitReferrers(ctx, b.movedLate)
	if err != nil {
		return nil, err
	}
	b.movedLate = nil
	var keys []recKey
	type field struct {
		m *models.Model
		f *models.Field
	}
	var fields []field
	for target := range targets {
		for _, c := range b.p.pointersTo(target) {
			m, f := c.m, c.f
			if f.Required || !b.p.hasTable(m.Table) || !b.p.hasField(m, f) {
				continue
			}
			fields = append(fields, field{m, f})
			found, err := b.nullRows(ctx, m, f)
			if err != nil {
				return nil, fmt.Errorf("find %s rows with no %s: %w", m.Name, f.Name, err)
			}
			keys = append(keys, found...)
		}
	}
	if b.prev != nil { // rows the batch still committing wrote may not show
		for k := range b.prev.recs {
			if slices.ContainsFunc(fields, func(fl field) bool { return fl.m.Name == k.model }) {
				keys = append(keys, k)
			}
		}
	}
	loaded, err := b.reload(ctx, keys, nil)
	if err != nil {
		return nil, err
	}
	again, err := b.reload(ctx, pointing, nil)
	if err != nil {
		return nil, err
	}
	out := slices.Clone(again)
	for _, rec := range loaded {
		if slices.Contains(again, rec) {
			continue
		}
		for _, fl := range fields {
			if fl.m != rec.m {
				continue
			}
			if w, ok := rec.st.Value(rec.m.Policy, fl.f.Name); ok {
				if _, ok := w.Value.AsRef(); ok {
					out = append(out, rec)
					break
				}
			}
		}
	}
	return out, nil
}

// nullRows lists the records whose rows in m's table hold NULL in f.
func (b *batch) nullRows(ctx context.Context, m *models.Model, f *models.Field) ([]recKey, error) {
	rows, err := b.tx.query(ctx, `SELECT i.key FROM `+quoteIdent(m.Table)+` t JOIN `+b.s+`records i
		ON i.model = ? AND i.local_id = t.id WHERE t.`+quoteIdent(f.Column)+` IS NULL`, m.Name)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []recKey
	for rows.Next() {
		k := recKey{model: m.Name}
		if err := rows.Scan(&k.key); err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// splitReferrers lists the records whose rows point, through any
// Many2One, at the rows of the keys moved's key changes led to (every
// one of them, and on from there as far as the batch knows: Hops).
func (b *batch) splitReferrers(ctx context.Context, moved []recKey) ([]recKey, error) {
	var dests []recKey
	for _, k := range moved {
		rec, ok := b.recs[k]
		if !ok {
			continue
		}
		for _, w := range rec.st.Fields[merge.RenamedTo] {
			if r, ok := w.Value.AsRef(); ok {
				for _, h := range Hops(b.p.reg, r, b.state) {
					dests = append(dests, recKey{h.Model, h.Key})
				}
			}
		}
	}
	if err := b.lookupIDs(ctx, dests); err != nil {
		return nil, err
	}
	rows := map[string][]int64{}
	for _, d := range dests {
		if id, ok := b.ids[d]; ok && !slices.Contains(rows[d.model], id) {
			rows[d.model] = append(rows[d.model], id)
		}
	}
	var out []recKey
	for target, ids := range rows {
		for _, c := range b.p.pointersTo(target) {
			m, f := c.m, c.f
			if !b.p.hasTable(m.Table) || !b.p.hasField(m, f) {
				continue
			}
			found, err := b.tx.referrers(ctx, m.Name, m.Table, f.Column, ids)
			if err != nil {
				return nil, fmt.Errorf("find %s rows by %s: %w", m.Name, f.Name, err)
			}
			for _, r := range found {
				k := recKey{m.Name, r.key}
				if to, ok := b.movedRow(m.Name, r.id); ok {
					k = to
				}
				out = append(out, k)
			}
		}
	}
	return out, nil
}

// pointersTo lists every Many2One field to target.
func (p *Projector) pointersTo(target string) []cascadeRef {
	if p.pointers == nil {
		p.pointers = map[string][]cascadeRef{}
		for _, m := range p.reg.Models() {
			for i := range m.Fields {
				if f := &m.Fields[i]; f.Type == models.Many2One {
					p.pointers[f.Target] = append(p.pointers[f.Target], cascadeRef{m, f})
				}
			}
		}
	}
	return p.pointers[target]
}
