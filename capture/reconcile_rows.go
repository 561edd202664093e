package capture

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/merge"
	"github.com/ghsync/ghsync/models"
	"github.com/ghsync/ghsync/projections"
)

// known is a row with a network identity, as a reconcile compares it.
type known struct {
	id   int64
	uid  sql.NullInt64 // write_uid, else create_uid: who made the row as it is
	img  row
	k    recKeyOf
	st   *merge.State
	vals map[string]ledger.Value // what the projector derives (projections.RowValues)
	// stale: the projector knowingly left the row behind the state
	// (deferred for a local change, parked, or the record deleted), so a
	// value the record had at some point is no edit.
	stale bool
}

// chunk reads the next rows of m after id after from the snapshot and
// returns the changes that capture what the network does not know of
// them, how many rows it read and the last id.
func (r *reconciler) chunk(ctx context.Context, m *models.Model, after int64, rs *ReconcileStats) ([]change, int, int64, error) {
	d := r.c.d
	img := `to_jsonb(t)::text`
	if d.dialect == models.SQLite {
		cols, ok := r.cols[m.Table]
		if !ok {
			var err error
			if cols, err = d.columns(ctx, r.tx, m.Table); err != nil {
				return nil, 0, 0, err
			}
			r.cols[m.Table] = cols
		}
		img = sqliteObject(cols, "t")
	}
	q := d.q(`SELECT t.id, t.create_uid, t.write_uid, ` + img + `, i.key, i.state FROM ` + quoteIdent(m.Table) + ` t
		LEFT JOIN ` + d.t("records") + ` i ON i.model = ? AND i.local_id = t.id
		WHERE t.id > ? ORDER BY t.id LIMIT ?`)
	rows, err := r.tx.QueryContext(ctx, q, m.Name, after, r.c.opts.BatchSize)
	if err != nil {
		return nil, 0, 0, err
	}
	type scanned struct {
		id         int64
		cuid, wuid sql.NullInt64
		img        row
		key        sql.NullString
		state      []byte
	}
	var got []scanned
	for rows.Next() {
		var s scanned
		var raw string
		if err := rows.Scan(&s.id, &s.cuid, &s.wuid, &raw, &s.key, &s.state); err != nil {
			rows.Close()
			return nil, 0, 0, err
		}
		if s.img, err = parseRow([]byte(raw)); err != nil {
			rows.Close()
			return nil, 0, 0, fmt.Errorf("id %d: %w", s.id, err)
		}
		got = append(got, s)
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(got) == 0 {
		return nil, 0, 0, err
	}
	var chs []change
	var ks []*known
	for _, s := range got {
		if !s.key.Valid {
			chs = append(chs, created(m, s.id, s.cuid, s.img))
			rs.Created++
			continue
		}
		k := recKeyOf{m.Name, s.key.String}
		st, err := r.state(ctx, k, s.state)
		if err != nil {
			return nil, 0, 0, err
		}
		if empty(st) {
			// An identity with no event (given to a reference target
			// before the row itself was captured): the network learns the
			// row whole.
			chs = append(chs, created(m, s.id, s.cuid, s.img))
			rs.Created++
			continue
		}
		uid := s.wuid
		if !uid.Valid {
			uid = s.cuid
		}
		ks = append(ks, &known{id: s.id, uid: uid, img: s.img, k: k, st: st})
	}
	if len(ks) > 0 {
		more, err := r.compareAll(ctx, m, ks, rs)
		if err != nil {
			return nil, 0, 0, err
		}
		chs = append(chs, more...)
	}
	return chs, len(got), got[len(got)-1].id, nil
}

// created is the insert change of a row the network has never seen,
// made when the row was last written, as far as this database knows.
func created(m *models.Model, id int64, uid sql.NullInt64, img row) change {
	ch := change{op: "I", table: m.Table, id: id, uid: uid, new: img, at: time.Now(), whole: true}
	for _, col := range []string{"write_date", "create_date"} {
		if s, ok := img.str(col); ok {
			if t, err := parseTimestamp(s); err == nil {
				ch.at = t
				break
			}
		}
	}
	return ch
}

// compareAll compares known rows of m with their records and returns the
// changes for what differs: one update of the differing columns per row
// and one relation change per differing Many2Many, stamped now.
func (r *reconciler) compareAll(ctx context.Context, m *models.Model, ks []*known, rs *ReconcileStats) ([]change, error) {
	keys := make([]string, len(ks))
	ids := make([]int64, len(ks))
	for i, kn := range ks {
		keys[i], ids[i] = kn.k.key, kn.id
	}
	behind := map[string]bool{}
	for _, table := range []string{"deferred", "parked"} {
		if err := r.eachKey(ctx, table, m.Name, keys, func(key string) { behind[key] = true }); err != nil {
			return nil, err
		}
	}
	for _, kn := range ks {
		kn.stale = behind[kn.k.key] || !kn.st.Live()
		kn.vals = projections.RowValues(m, kn.k.key, kn.st)
	}
	if err := r.loadLives(ctx, m, ks); err != nil {
		return nil, err
	}
	var refs []recKeyOf
	for _, kn := range ks {
		projections.FollowRefs(kn.vals, r.aliasOf, r.lifeOf)
		for i := range m.Fields {
			f := &m.Fields[i]
			if f.Type != models.Many2One && f.Type != models.Many2Many {
				continue
			}
			for _, v := range r.candidates(kn, f) {
				refs = appendRefs(refs, v)
			}
		}
	}
	if err := r.resolve(ctx, refs); err != nil {
		return nil, err
	}
	sets, err := r.relationSets(ctx, m, ids)
	if err != nil {
		return nil, err
	}
	var chs []change
	for _, kn := range ks {
		diff := row{}
		var owners []string
		regen := false
		for i := range m.Fields {
			f := &m.Fields[i]
			var same, again bool
			switch {
			case f.Type == models.Many2Many:
				set, ok := sets[f.Name]
				if !ok {
					continue // not captured here
				}
				same, again = r.sameSet(kn, f, set[kn.id])
				if !same {
					owners = append(owners, f.Name)
				}
			default:
				raw, ok := kn.img[f.Column]
				if !ok {
					continue // a column this database lacks
				}
				if same, again, err = r.sameColumn(kn, f, raw); err != nil {
					return nil, fmt.Errorf("%s id %d: field %s: %w", m.Name, kn.id, f.Name, err)
				}
				if !same {
					diff[f.Column] = raw
				}
			}
			regen = regen || again
		}
		if kn.st.Deleted != nil {
			rs.Deleted++
			regen = true
			r.c.log.Warn("a row of a record the network deleted is still here: the projector removes it; fields edited meanwhile are recorded as conflicts",
				"model", m.Name, "key", kn.k.key, "id", kn.id, "edited", len(diff)+len(owners))
		}
		if regen {
			r.rederive[kn.k] = basesOf(m, kn.st)
		}
		if len(diff) == 0 && len(owners) == 0 {
			continue
		}
		rs.Changed++
		if len(diff) > 0 {
			chs = append(chs, change{op: "U", table: m.Table, id: kn.id, uid: kn.uid, new: diff})
		}
		for _, name := range owners {
			f, _ := m.Field(name)
			chs = append(chs, change{op: "U", table: f.Relation.Table, uid: kn.uid,
				new: row{f.Relation.OriginColumn: json.RawMessage(strconv.FormatInt(kn.id, 10))}})
		}
	}
	return chs, nil
}

// candidates are the values of f that explain what a known row shows:
// the derived one, and where the row is stale every value the record had.
func (r *reconciler) candidates(kn *known, f *models.Field) []ledger.Value {
	out := []ledger.Value{kn.vals[f.Name]}
	if kn.stale {
		for _, w := range kn.st.Fields[f.Name] {
			out = append(out, projections.FollowRef(w.Value, r.aliasOf, r.lifeOf))
		}
	}
	return out
}

// loadLives reads the merge states of the natural keys the Many2One
// values of ks name, and of the keys their ended lives moved to, so that
// references follow the life their writer meant as the projector does
// (projections.MeantKey). Candidates of a stale row are written values
// as well as derived ones.
func (r *reconciler) loadLives(ctx context.Context, m *models.Model, ks []*known) error {
	if r.lives == nil || len(r.lives) > 200_000 { // bounded, as ids
		r.lives, r.live = map[recKeyOf]*merge.State{}, map[recKeyOf]bool{}
	}
	for range 16 { // each round reads the targets of key changes the last one found
		byModel := map[string][]string{}
		note := func(v ledger.Value) {
			if ref, ok := v.AsRef(); ok {
				if _, _, n := projections.MeantKey(r.c.reg, ref, r.lifeState); n != nil {
					byModel[n.Model] = append(byModel[n.Model], n.Key)
				}
			}
		}
		for _, kn := range ks {
			for i := range m.Fields {
				if f := &m.Fields[i]; f.Type == models.Many2One {
					note(kn.vals[f.Name])
					if kn.stale {
						for _, w := range kn.st.Fields[f.Name] {
							note(w.Value)
						}
					}
				}
			}
		}
		if len(byModel) == 0 {
			return nil
		}
		for model, keys := range byModel {
			slices.Sort(keys)
			keys = slices.Compact(keys)
			raws := map[string][]byte{}
			err := eachKeyed(ctx, r.tx, r.c.d, "key, state, live", "records", "key", "text", model, keys, func(rows *sql.Rows) error {
				var key string
				var raw []byte
				var live sql.NullBool
				if err := rows.Scan(&key, &raw, &live); err != nil {
					return err
				}
				raws[key] = raw
				r.live[recKeyOf{model, key}] = live.Bool
				return nil
			})
			if err != nil {
				return err
			}
			for _, key := range keys {
				k := recKeyOf{model, key}
				st := &merge.State{} // no delete: every reference means the current life
				if d, err := merge.LastDeleteOf(raws[key]); raws[key] != nil && (err != nil || d != 0) || r.tail[k] != nil {
					if st, err = r.state(ctx, k, raws[key]); err != nil {
						return err
					}
				}
				r.lives[k] = st
			}
		}
	}
	return nil
}

// lifeState gives loadLives' states to projections.MeantKey.
func (r *reconciler) lifeState(model, key string) (*merge.State, bool) {
	st, ok := r.lives[recKeyOf{model, key}]
	return st, ok
}

// lifeOf is the key a Many2One means now (projections.MeantKey).
func (r *reconciler) lifeOf(ref ledger.Ref) (string, bool, bool) {
	key, ok, _ := projections.MeantKey(r.c.reg, ref, r.lifeState)
	st, loaded := r.lifeState(ref.Model, key)
	return key, ok, loaded && projections.Named(st)
}

func appendRefs(out []recKeyOf, v ledger.Value) []recKeyOf {
	if ref, ok := v.AsRef(); ok {
		return append(out, recKeyOf{ref.Model, ref.Key})
	}
	if set, ok := v.AsRefSet(); ok {
		for _, ref := range set {
			out = append(out, recKeyOf{ref.Model, ref.Key})
		}
	}
	return out
}

// sameColumn reports whether a known row's column raw is explained by
// the record's values, and whether the row must be derived again anyway
// (it references a record whose row is gone, which the projector writes
// again under another id).
func (r *reconciler) sameColumn(kn *known, f *models.Field, raw json.RawMessage) (same, again bool, err error) {
	if f.Type == models.Many2One {
		id, has := kn.img.int(f.Column)
		for _, v := range r.candidates(kn, f) {
			ref, isRef := v.AsRef()
			if !isRef {
				if !has {
					return true, false, nil
				}
				continue
			}
			t := recKeyOf{ref.Model, ref.Key}
			tid := r.ids[t]
			_, gone := r.gone[t]
			switch {
			case tid.Valid && has && tid.Int64 == id:
				return true, false, nil
			case (!tid.Valid || gone) && !has:
				// The projector could not write the reference: its
				// target has no row here.
				return true, gone, nil
			}
		}
		return false, false, nil
	}
	got, err := valueOf(raw, f)
	if err != nil {
		return false, false, err
	}
	for _, v := range r.candidates(kn, f) {
		if sameValue(got, projections.ColumnValue(v, f)) {
			return true, false, nil
		}
	}
	return false, false, nil
}

// sameSet reports whether the local set of a known row's Many2Many
// (target ids, sorted) is explained by the record's values: each
// referenced record that has a row here, and only those.
func (r *reconciler) sameSet(kn *known, f *models.Field, local []int64) (same, again bool) {
	for _, v := range r.candidates(kn, f) {
		set, _ := v.AsRefSet() // null: empty
		want := make([]int64, 0, len(set))
		goneTarget := false
		for _, ref := range set {
			t := recKeyOf{ref.Model, ref.Key}
			if _, gone := r.gone[t]; gone {
				goneTarget = true
				continue
			}
			if tid := r.ids[t]; tid.Valid {
				want = append(want, tid.Int64)
			}
		}
		slices.Sort(want)
		if slices.Equal(slices.Compact(want), local) {
			return true, goneTarget
		}
	}
	return false, false
}

// sameValue compares a column's value with the one the projector writes.
// A number also matches when both read as the same float: a Float column
// (and SQLite's storage of a number) keeps only a double's precision.
func sameValue(got, want ledger.Value) bool {
	if got.Equal(want) {
		return true
	}
	a, ok1 := got.AsDecimal()
	b, ok2 := want.AsDecimal()
	if !ok1 || !ok2 {
		return false
	}
	fa, err1 := strconv.ParseFloat(a, 64)
	fb, err2 := strconv.ParseFloat(b, 64)
	return err1 == nil && err2 == nil && fa == fb
}

// resolve reads, from the snapshot, the local ids of referenced records
// not yet looked up.
func (r *reconciler) resolve(ctx context.Context, refs []recKeyOf) error {
	if len(r.ids) > 200_000 { // bounded: reference targets repeat, rows do not
		clear(r.ids)
	}
	byModel := map[string][]string{}
	for _, k := range refs {
		if _, ok := r.ids[k]; !ok {
			r.ids[k] = sql.NullInt64{} // none, unless found below
			byModel[k.model] = append(byModel[k.model], k.key)
		}
	}
	d := r.c.d
	for model, keys := range byModel {
		err := eachKeyed(ctx, r.tx, d, "key, local_id", "records", "key", "text", model, keys, func(rows *sql.Rows) error {
			var key string
			var id sql.NullInt64
			if err := rows.Scan(&key, &id); err != nil {
				return err
			}
			r.ids[recKeyOf{model, key}] = id
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// eachKey calls fn for each of keys of model that table (deferred or
// parked) lists, as the snapshot has it.
func (r *reconciler) eachKey(ctx context.Context, table, model string, keys []string, fn func(string)) error {
	return eachKeyed(ctx, r.tx, r.c.d, "key", table, "key", "text", model, keys, func(rows *sql.Rows) error {
		var key string
		err := rows.Scan(&key)
		if err == nil {
			fn(key)
		}
		return err
	})
}

// relationSets reads, from the snapshot, the target ids (sorted) each of
// the rows ids of m holds in every captured Many2Many, by field.
func (r *reconciler) relationSets(ctx context.Context, m *models.Model, ids []int64) (map[string]map[int64][]int64, error) {
	out := map[string]map[int64][]int64{}
	for i := range m.Fields {
		f := &m.Fields[i]
		if f.Type != models.Many2Many || f.Relation == nil || r.c.tables[f.Relation.Table].Field != f.Name {
			continue
		}
		rel := f.Relation
		rows, err := r.tx.QueryContext(ctx, `SELECT `+quoteIdent(rel.OriginColumn)+`, `+quoteIdent(rel.TargetColumn)+` FROM `+quoteIdent(rel.Table)+
			` WHERE `+quoteIdent(rel.OriginColumn)+` IN (`+intList(ids)+`) AND `+quoteIdent(rel.TargetColumn)+` IS NOT NULL`)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", rel.Table, err)
		}
		sets := map[int64][]int64{}
		for rows.Next() {
			var o, t int64
			if err := rows.Scan(&o, &t); err != nil {
				rows.Close()
				return nil, err
			}
			sets[o] = append(sets[o], t)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
		for o, s := range sets {
			slices.Sort(s)
			sets[o] = slices.Compact(s)
		}
		out[f.Name] = sets
	}
	return out, nil
}
