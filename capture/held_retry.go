package capture

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/ghsync/ghsync/models"
)

// retryHeld tries the held rows again, once the outbox is drained: a row
// held because it referenced a held row has no change of its own when
// that row is released, and a model identified by UUID since the row was
// held needs none. Each retry takes the rows as they are now: a row that
// can be captured becomes the create of the whole row (a record the
// network knows, a write of its held fields), stamped at its latest held
// change; the others stay, unchanged. A retry that releases rows may
// release their referrers next, so it runs again until one releases
// nothing. Nothing is written when nothing changes.
func (c *Capturer) retryHeld(ctx context.Context, st *Stats) error {
	for {
		hs, err := readHeld(ctx, c.d)
		if err != nil {
			return err
		}
		if len(hs) == 0 {
			st.Held = 0
			return nil
		}
		p, err := c.prepareWith(ctx, nil, func(b *batch) error { return b.retry(ctx, hs) })
		if err != nil {
			return fmt.Errorf("retry held rows: %w", err)
		}
		released := 0
		for ref := range p.b.heldDirty {
			if p.b.held[ref] == nil {
				released++
			}
		}
		if len(p.b.events) > 0 || len(p.b.heldDirty) > 0 {
			if err := c.append(ctx, p); err != nil {
				c.stale = true
				return fmt.Errorf("retry held rows: %w", err)
			}
			c.committed(ctx, p, st)
		}
		if released == 0 {
			st.Held = len(hs)
			c.log.Warn("records held back, their changes not captured: they cannot have a network identity yet (ghsync capture status lists them)", "held", len(hs))
			return nil
		}
	}
}

// retry builds the held rows hs again, as changes: the create of a row
// the network has never seen, the write of a known record's held fields.
func (b *batch) retry(ctx context.Context, hs []*heldRow) error {
	if err := b.startHeld(ctx); err != nil {
		return err
	}
	order := map[string]int{}
	for i, m := range b.c.reg.Models() {
		order[m.Name] = i
	}
	hs = slices.Clone(hs)
	slices.SortFunc(hs, func(x, y *heldRow) int { // targets first, as a snapshot goes
		if c := cmp.Compare(order[x.Model], order[y.Model]); c != 0 {
			return c
		}
		return cmp.Compare(x.LocalID, y.LocalID)
	})
	refs := make([]localRef, len(hs))
	for i, h := range hs {
		refs[i] = h.ref()
	}
	if err := b.loadKeys(ctx, refs); err != nil {
		return err
	}
	if err := b.loadHeld(ctx, refs); err != nil {
		return err
	}
	imgs, err := b.c.readRows(ctx, hs)
	if err != nil {
		return err
	}
	var chs []change
	for _, h := range hs {
		ref := h.ref()
		m, ok := b.c.reg.Lookup(h.Model)
		if ok {
			_, ok = b.c.tables[m.Table]
		}
		if !ok { // no longer synchronised here: nothing to hold
			if _, err := b.setHeld(ctx, ref, nil); err != nil {
				return err
			}
			continue
		}
		img := imgs[ref]
		if img == nil { // gone without a delete captured (triggers missing)
			if err := b.release(ctx, m, ref); err != nil {
				return err
			}
			continue
		}
		ch := change{table: m.Table, id: h.LocalID, at: h.At, uid: h.uid}
		known, err := b.known(ctx, ref)
		if err != nil {
			return err
		}
		if !known || h.whole() {
			ch.op, ch.new, ch.whole = "I", img, true
			chs = append(chs, ch)
			continue
		}
		ch.op, ch.new = "U", row{}
		for _, name := range h.Fields {
			f, ok := m.Field(name)
			switch {
			case !ok:
			case f.Type == models.Many2Many:
				b.owners = append(b.owners, owner{ref: ref, field: name, at: h.At, uid: h.uid})
			default:
				if raw, ok := img[f.Column]; ok {
					ch.new[f.Column] = raw
				}
			}
		}
		if len(ch.new) > 0 {
			chs = append(chs, ch)
		}
	}
	return b.build(ctx, chs)
}

// readRows reads the held rows as they are now, by model, a few hundred
// ids a query.
func (c *Capturer) readRows(ctx context.Context, hs []*heldRow) (map[localRef]row, error) {
	byTable := map[string][]int64{}
	modelOf := map[string]string{}
	for _, h := range hs {
		m, ok := c.reg.Lookup(h.Model)
		if !ok {
			continue
		}
		if _, ok := c.tables[m.Table]; !ok {
			continue
		}
		byTable[m.Table] = append(byTable[m.Table], h.LocalID)
		modelOf[m.Table] = m.Name
	}
	out := map[localRef]row{}
	for table, ids := range byTable {
		img := `to_jsonb(t)::text`
		if c.d.dialect == models.SQLite {
			cols, err := c.d.columns(ctx, c.d.DB, table)
			if err != nil {
				return nil, err
			}
			img = sqliteObject(cols, "t")
		}
		for len(ids) > 0 {
			n := min(len(ids), 500)
			rows, err := c.d.QueryContext(ctx, `SELECT t.id, `+img+` FROM `+quoteIdent(table)+` t WHERE t.id IN (`+intList(ids[:n])+`)`)
			if err != nil {
				return nil, fmt.Errorf("read held rows of %s: %w", table, err)
			}
			for rows.Next() {
				var id int64
				var raw string
				if err := rows.Scan(&id, &raw); err != nil {
					rows.Close()
					return nil, fmt.Errorf("read held rows of %s: %w", table, err)
				}
				r, err := parseRow([]byte(raw))
				if err != nil {
					rows.Close()
					return nil, fmt.Errorf("%s id %d: %w", table, id, err)
				}
				out[localRef{modelOf[table], id}] = r
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return nil, fmt.Errorf("read held rows of %s: %w", table, err)
			}
			ids = ids[n:]
		}
	}
	return out, nil
}
