package projections

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/ghsync/ghsync/clocks"
	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/merge"
	"github.com/ghsync/ghsync/models"
)

// What the projector does in a database whose own changes are captured
// (package capture):
//
//   - A row with a local change still in the outbox is left as it is: the
//     merged state would overwrite the user's edit until the capturer
//     drained it. The record is listed in deferred, with the HLC of each
//     value the row shows (the capturer names them as the change's Base),
//     and re-derived once the outbox no longer holds a change to it. A
//     row whose fields the capturer holds back (capture's held table: they
//     reference a record with no network identity yet) is left alone the
//     same way until they are captured.
//   - A record whose unique key changed (models.RenamedFrom) keeps its row:
//     the id map entry moves to the new key, and references to the old key
//     resolve to the new one (alias).

// loadLocal reads the outbox's pending rows (and the rows with held
// fields) and the aliases.
func (b *batch) loadLocal(ctx context.Context) error {
	b.pending = map[string]map[int64]bool{}
	b.alias = map[recKey]string{}
	exists := func(table string) (bool, error) {
		probe := `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'ghsync_` + table + `'`
		if b.p.d.name() == "postgres" {
			probe = `SELECT count(*) FROM pg_class WHERE oid = to_regclass('ghsync.` + table + `')`
		}
		var n int64
		err := scanOne(ctx, b.tx, []any{&n}, probe)
		return n > 0, err
	}
	var pending []string
	if ok, err := exists("outbox"); err != nil {
		return err
	} else if ok {
		if b.capturedAs, err = b.captureOrigin(ctx); err != nil {
			return err
		}
		pending = append(pending, `SELECT DISTINCT tbl, row_id FROM `+b.s+`outbox`)
	}
	if ok, err := exists("held"); err != nil {
		return err
	} else if ok {
		pending = append(pending, `SELECT tbl, local_id FROM `+b.s+`held WHERE fields <> ''`)
	}
	if len(pending) > 0 {
		rows, err := b.tx.query(ctx, strings.Join(pending, " UNION "))
		if err != nil {
			return err
		}
		for rows.Next() {
			var tbl string
			var id int64
			if err := rows.Scan(&tbl, &id); err != nil {
				rows.Close()
				return err
			}
			if b.pending[tbl] == nil {
				b.pending[tbl] = map[int64]bool{}
			}
			b.pending[tbl][id] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	if b.prev != nil {
		b.alias = maps.Clone(b.prev.alias)
		return nil
	}
	rows, err := b.tx.query(ctx, `SELECT model, old_key, new_key FROM `+b.s+`alias`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var k recKey
		var to string
		if err := rows.Scan(&k.model, &k.key, &to); err != nil {
			return err
		}
		b.alias[k] = to
	}
	return rows.Err()
}

// resolveAlias follows renames from k to the record's current key.
func (b *batch) resolveAlias(k recKey) recKey {
	for range 16 { // a rename chain longer than this is a loop
		to, ok := b.alias[k]
		if !ok {
			break
		}
		k.key = to
	}
	return k
}

// rename records that e moved a record's identity from the key it names
// (the old key) and queues the move of the local id to the new key, so
// the row and what points at it stay (moveIDs). A rename made before the
// old key's current life began concerns an earlier life: the key is
// another record's now, so it gets no alias, and the renamed record a row
// of its own.
func (b *batch) rename(ctx context.Context, e *ledger.Event) error {
	r, ok := e.Fields[models.RenamedFrom].AsRef()
	if !ok || e.Op != ledger.OpCreate || r.Model != e.Model || r.Key == e.Key {
		return nil
	}
	from, to := recKey{r.Model, r.Key}, recKey{e.Model, e.Key}
	b.unalias(to) // renamed back: the key is the record's again
	if err := b.load(ctx, []recKey{from}); err != nil {
		return err
	}
	old := b.recs[from]
	if !old.entered.known {
		old.entered = lifeOf(old.st)
	}
	at := merge.StampOf(b.clamp(e)) // as the merge orders it
	if rv := old.st.Revival(); rv != nil && rv.Compare(at) > 0 {
		return nil
	}
	b.alias[from] = to.key
	b.tx.queue(`INSERT INTO `+b.s+`alias (model, old_key, new_key) VALUES (?, ?, ?)
		ON CONFLICT (model, old_key) DO UPDATE SET new_key = excluded.new_key`, from.model, from.key, to.key)
	// This database's own capturer moved the id when it captured the
	// rename; the id map shows what the users did since (the old key may
	// name another row by now), so it is left as it is (own).
	own := b.capturedAs != nil && e.Origin == *b.capturedAs
	b.moves = append(b.moves, idMove{from: from, to: to, at: at, own: own})
	return nil
}

// rowMoved notes that a row moved to another key in this batch. The row
// shows the old key's record: every column of it is written again, from
// the record it moved to (which may hold values the row never showed: a
// stale borrowed key joining the record of its new key, borrow.go).
func (b *batch) rowMoved(to recKey) {
	if rec, ok := b.recs[to]; ok {
		rec.whole = true
	}
}

// idMove is a rename's move of the local id, done once the batch's events
// are merged (moveIDs).
type idMove struct {
	from, to recKey
	at       merge.Stamp
	own      bool // captured here: the id moved already
}

// entered notes that the row of mv's new key is now the life the rename
// began: a later rename of that life in this batch moves it on, and a
// delete of it ends the row with it (lifeEnded).
func (b *batch) entered(mv idMove) {
	if to := b.recs[mv.to]; to != nil {
		to.entered = life{known: true, live: true, start: to.st.LifeStart(mv.at)}
	}
}

// moveIDs moves the local ids of the batch's renames, in ledger order,
// when the old key's row belongs to the life that was renamed. A row of a
// later life (the key used again meanwhile) stays; a row of an earlier one
// (the key's person deleted and the key used again before the rename, all
// in this batch) is that ended life's, and goes. Either way the renamed
// record gets a row of its own.
func (b *batch) moveIDs(ctx context.Context) error {
	for _, mv := range b.moves {
		if mv.own {
			b.entered(mv)
			b.rowMoved(mv.to)
			b.landed = append(b.landed, mv.to)
			continue
		}
		old := b.recs[mv.from]
		if b.rowLife(old) != old.st.LifeStart(renameDelete(old.st, mv)) {
			continue
		}
		if err := b.lookupIDs(ctx, []recKey{mv.from, mv.to}); err != nil {
			return err
		}
		id, has := b.ids[mv.from]
		if !has {
			continue
		}
		if held, taken := b.ids[mv.to]; taken {
			// The new key's row is another person's, who had the key
			// before: it goes, unless that life lives on. The moved row
			// takes the key only if the life the move began is the one
			// the key has now (not deleted, or followed by another, later
			// in the batch): otherwise both rows go where they are.
			to := b.recs[mv.to]
			if to == nil || !to.st.Live() || !b.lifeEnded(to) || b.keepsLocalChange(to, held) ||
				to.st.LifeStart(mv.at) != lifeOf(to.st).start {
				continue
			}
			b.endedRows = append(b.endedRows, endedRow{mv.to, held})
		}
		b.tx.queue(`UPDATE `+b.s+`records SET local_id = NULL WHERE model = ? AND key = ?`, mv.from.model, mv.from.key)
		b.tx.queue(`INSERT INTO `+b.s+`records (model, key, local_id) VALUES (?, ?, ?)
		ON CONFLICT (model, key) DO UPDATE SET local_id = excluded.local_id`, mv.to.model, mv.to.key, id)
		b.ids[mv.to] = id
		delete(b.ids, mv.from)
		b.entered(mv)
		b.moved = append(b.moved, rowMove{id: id, from: mv.from, to: mv.to})
		b.rowMoved(mv.to)
		b.landed = append(b.landed, mv.to)
		if err := b.noticeBorrowers(ctx, mv.to, id); err != nil {
			return err
		}
	}
	b.moves = nil
	return nil
}

// endedRow is the row of an ended life of k, still under k.
type endedRow struct {
	k  recKey
	id int64
}

// rowMove is one move of a row's local id from a key to another.
type rowMove struct {
	id       int64
	from, to recKey
}

// moveOrder lists the keys the batch's moved rows end under, each row
// once, so that a row is written after the row whose key it takes: the
// table still shows every row under the key it had when the batch
// began. A code corrected back and forth and on (A-1 to A-2, back, then
// to A-3) while another row takes A-1 is written A-3 first. Rows that
// take each other's keys (a swap, through
// A-3) cannot be ordered: one of them that canAside allows is listed in
// aside, to be given a key no other row has first (setAside), and the
// rest follow; with none allowed, they come last, in the order they
// moved.
func (b *batch) moveOrder(canAside func(rowMove) bool) (order []rowMove, aside []rowMove) {
	type row struct {
		model string
		id    int64
	}
	start, final := map[row]recKey{}, map[row]recKey{}
	var rows []row
	for _, m := range b.moved {
		r := row{m.to.model, m.id}
		if _, ok := start[r]; !ok {
			start[r] = m.from
			rows = append(rows, r)
		}
		final[r] = m.to
	}
	holder := make(map[recKey]row, len(rows)) // key → the row the table shows under it
	for _, r := range rows {
		holder[start[r]] = r
	}
	order = make([]rowMove, 0, len(rows))
	for len(rows) > 0 {
		var wait []row
		for _, r := range rows {
			if h, ok := holder[final[r]]; ok && h != r {
				wait = append(wait, r)
				continue
			}
			delete(holder, start[r])
			order = append(order, rowMove{id: r.id, from: start[r], to: final[r]})
		}
		if len(wait) == len(rows) { // a cycle: one of its rows leaves its key first
			i := slices.IndexFunc(wait, func(r row) bool { return canAside(rowMove{id: r.id, from: start[r], to: final[r]}) })
			if i < 0 {
				for _, r := range wait {
					order = append(order, rowMove{id: r.id, from: start[r], to: final[r]})
				}
				break
			}
			r := wait[i]
			aside = append(aside, rowMove{id: r.id, from: start[r], to: final[r]})
			delete(holder, start[r])
		}
		rows = wait
	}
	return order, aside
}

// setAside gives the row of each mv, before the round's moved rows are
// written, key columns no other row holds (the key it starts from with
// " (moving <id>)" appended to each text part), so that a row of a swap
// can take its key. A key made of references alone cannot be set aside;
// its row is written in turn and may still collide.
func (b *batch) setAside(aside []rowMove) {
	for _, mv := range aside {
		m, ok := b.p.reg.Lookup(mv.from.model)
		if !ok {
			continue
		}
		parts := []string{mv.from.key}
		if len(m.Key) > 1 {
			var err error
			if parts, err = ledger.SplitKey(mv.from.key); err != nil || len(parts) != len(m.Key) {
				continue
			}
		}
		cols, types, row := []string{"id"}, []string{"integer"}, []any{mv.id}
		for i, name := range m.Key {
			f, ok := m.Field(name)
			if !ok || f.Type == models.Many2One || !b.p.hasField(m, f) {
				continue
			}
			cols, types = append(cols, f.Column), append(types, f.SQLType(models.Postgres))
			row = append(row, parts[i]+" (moving "+strconv.FormatInt(mv.id, 10)+")")
		}
		if len(cols) > 1 {
			b.w.addAlone(opUpdate, quoteIdent(m.Table), cols, types, row...)
		}
	}
}

// renameDelete is the stamp of the delete half of rename mv in the old
// key's state: the first delete after the create by the same origin that
// names the new key (merge.RenamedTo). Without it (an older ghsync's
// event), the create's stamp.
func renameDelete(st *merge.State, mv idMove) merge.Stamp {
	for _, w := range st.Fields[merge.RenamedTo] {
		if r, ok := w.Value.AsRef(); ok && r.Key == mv.to.key && w.Stamp.Origin == mv.at.Origin && w.Stamp.Compare(mv.at) > 0 {
			return w.Stamp
		}
	}
	return mv.at
}

// unalias ends the alias of a key that names a record again (a rename
// back, or a key used again after its record was renamed away: see
// merge.Revives): references to it are the record's own.
func (b *batch) unalias(k recKey) {
	if _, ok := b.alias[k]; !ok {
		return
	}
	delete(b.alias, k)
	b.tx.queue(`DELETE FROM `+b.s+`alias WHERE model = ? AND old_key = ?`, k.model, k.key)
}

// keepsLocalChange reports whether rec's row has a change waiting in the
// outbox; if so the row is left alone and the record deferred.
func (b *batch) keepsLocalChange(rec *record, id int64) bool {
	if !b.pending[rec.m.Table][id] {
		return false
	}
	shown := rec.prior
	if shown == nil {
		shown = rec.st
	}
	bases := map[string]clocks.Timestamp{}
	for f := range shown.Fields {
		if w, ok := shown.Value(rec.m.Policy, f); ok {
			bases[f] = w.Stamp.HLC
		}
	}
	raw, _ := json.Marshal(bases)
	b.deferred[rec.k] = true
	b.tx.queue(`INSERT INTO `+b.s+`deferred (model, key, bases) VALUES (?, ?, ?) ON CONFLICT (model, key) DO NOTHING`,
		rec.k.model, rec.k.key, string(raw))
	return true
}

// redoDeferred returns the deferred records whose local change has been
// captured since: their rows are derived again.
func (b *batch) redoDeferred(ctx context.Context) ([]*record, error) {
	if err := b.loadDeferred(ctx); err != nil {
		return nil, err
	}
	var keys []recKey
	for k := range b.deferred {
		if _, ok := b.p.reg.Lookup(k.model); ok {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil, nil
	}
	slices.SortFunc(keys, compareKeys)
	if err := b.load(ctx, keys); err != nil {
		return nil, err
	}
	if err := b.lookupIDs(ctx, keys); err != nil {
		return nil, err
	}
	var out []*record
	for _, k := range keys {
		rec := b.recs[k]
		if id, has := b.ids[k]; has && b.pending[rec.m.Table][id] {
			continue // still waiting for the capturer
		}
		b.tx.queue(`DELETE FROM `+b.s+`deferred WHERE model = ? AND key = ?`, k.model, k.key)
		delete(b.deferred, k)
		out = append(out, rec)
	}
	return out, nil
}

// loadDeferred reads the deferred table's keys, or takes them from the
// batch still committing.
func (b *batch) loadDeferred(ctx context.Context) error {
	if b.prev != nil {
		b.deferred = maps.Clone(b.prev.deferred)
		return nil
	}
	b.deferred = map[recKey]bool{}
	rows, err := b.tx.query(ctx, `SELECT model, key FROM `+b.s+`deferred`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var k recKey
		if err := rows.Scan(&k.model, &k.key); err != nil {
			return err
		}
		b.deferred[k] = true
	}
	return rows.Err()
}

// hasDeferred reports whether any record waits to be derived again.
func (p *Projector) hasDeferred(ctx context.Context) (bool, error) {
	tx, err := p.d.begin(ctx)
	if err != nil {
		return false, err
	}
	defer tx.rollback(ctx)
	var n int64
	err = scanOne(ctx, tx, []any{&n}, `SELECT count(*) FROM `+p.d.schemaPrefix()+`deferred`)
	return n > 0, err
}
