package projections

import (
	"context"
	"errors"
	"time"

	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/merge"
	"github.com/ghsync/ghsync/models"
)

// What a row shows. The capturer compares the rows of a database whose
// capture was not recording for a while with what the projector wrote
// there (capture's Reconcile); it must derive that exactly as the
// projector does, so both use these.

// RowValues is the value of each field the projector derives from a
// record's merge state: the winners under the model's policy, references
// to renamed records followed through alias (old key to current key;
// nil: none), and a natural key's own fields filled in from the key when
// no event set them. Fields without a value are absent. Many2One and
// Many2Many values are network keys; the caller resolves them.
func RowValues(m *models.Model, key string, st *merge.State, alias func(model, key string) string) map[string]ledger.Value {
	vals := st.Values(m.Policy)
	if alias != nil {
		for name, v := range vals {
			vals[name] = FollowAlias(v, alias)
		}
	}
	if m.Kind == models.UUIDKey || len(m.Key) == 0 {
		return vals
	}
	parts := []string{key}
	if len(m.Key) > 1 {
		var err error
		if parts, err = ledger.SplitKey(key); err != nil || len(parts) != len(m.Key) {
			return vals // a malformed composite key: the row is parked for missing fields
		}
	}
	for i, name := range m.Key {
		if v, ok := vals[name]; ok && !v.IsNull() {
			continue
		}
		f, ok := m.Field(name)
		if !ok {
			continue
		}
		if f.Type == models.Many2One {
			if v, err := ledger.RefTo(f.Target, parts[i]); err == nil {
				vals[name] = v
			}
		} else {
			vals[name] = ledger.String(parts[i])
		}
	}
	return vals
}

// FollowAlias rewrites the references of v to renamed records (alias:
// old key to current key).
func FollowAlias(v ledger.Value, alias func(model, key string) string) ledger.Value {
	if r, ok := v.AsRef(); ok {
		if k := alias(r.Model, r.Key); k != r.Key {
			if nv, err := ledger.RefTo(r.Model, k); err == nil {
				return nv
			}
		}
		return v
	}
	if rs, ok := v.AsRefSet(); ok {
		out := make([]ledger.Ref, len(rs))
		for i, r := range rs {
			out[i] = ledger.Ref{Model: r.Model, Key: alias(r.Model, r.Key)}
		}
		if nv, err := ledger.RefSet(out...); err == nil {
			return nv
		}
	}
	return v
}

// ColumnValue is the value the projector writes in f's column for a
// field's derived value v (null when the state has none), other than a
// reference: active is true when unset (the column's database default is
// false, and the row would vanish from Tryton), and a DateTime column
// holds whole seconds (timestamp(0)) where a Timestamp keeps
// microseconds, so both backends store the same thing.
func ColumnValue(v ledger.Value, f *models.Field) ledger.Value {
	if f.Name == "active" && v.IsNull() {
		return ledger.Bool(true)
	}
	if t, ok := v.AsDateTime(); ok && f.Type == models.DateTime {
		if w, err := ledger.DateTime(t.Truncate(time.Second)); err == nil {
			return w
		}
	}
	return v
}

// MetaReconcile names the proj_meta row that holds projection back: capture
// install writes it when it starts recording a table whose rows the
// network already knows (capture was uninstalled, a module's table newly
// captured, triggers lost with a restored dump). Edits made there while
// nothing recorded them are in no event, so projecting would overwrite
// them with the network's values, silently; capture's Reconcile turns them
// into events and removes the row. Its value counts the installs that
// asked, so a reconcile that began before another install does not clear
// the later request.
const MetaReconcile = "capture_reconcile"

// ErrReconcile is returned by CatchUp and Rebuild while MetaReconcile is
// set.
var ErrReconcile = errors.New("capture was installed on rows the network already knows, and edits made while it was not recording are not events yet: run ghsync capture reconcile first (projecting now could overwrite them)")

// held refuses to project while a capture reconcile is due.
func (p *Projector) held(ctx context.Context) error {
	tx, err := p.d.begin(ctx)
	if err != nil {
		return err
	}
	defer tx.rollback(ctx)
	var n int64
	if err := scanOne(ctx, tx, []any{&n}, `SELECT count(*) FROM `+p.d.schemaPrefix()+`proj_meta WHERE name = ?`, MetaReconcile); err != nil {
		return err
	}
	if n > 0 {
		return ErrReconcile
	}
	return nil
}
