package projections

import (
	"context"
	"errors"
	"slices"
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
// record's merge state: the winners under the model's policy, and a
// natural key's own fields filled in from the key when no event set them.
// Fields without a value are absent. Many2One and Many2Many values are
// network keys as their writers named them: FollowRefs turns them into
// the keys they mean now, and the caller resolves those.
func RowValues(m *models.Model, key string, st *merge.State) map[string]ledger.Value {
	vals := st.Values(m.Policy)
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

// Alias follows renames from an old key to the record's current key
// (ghsync.alias). For a Many2One, MeantKey follows key changes by the
// life its reference means; the alias table is then only what a key
// change captured before deletes named where they moved (RenamedTo)
// leaves to follow, and callers consult it only for a key whose current
// life has ended.
type Alias func(model, key string) string

// Lives maps a Many2One reference to the key of the life of its target it
// means (MeantKey); ok is false when that life was deleted. final says
// that key's merge state names where its key changes went (Named), so
// the alias table, which holds the last rename applied to any life of a
// key, has nothing to add: for a key deleted and used again, it could
// name where an earlier life moved and take the reference there.
type Lives func(r ledger.Ref) (key string, ok, final bool)

// Named reports whether the alias table has nothing to add for a key of
// merge state st: the record is live, or its deletes name where key
// changes took it (merge.RenamedTo; only events of an older ghsync lack
// it), which MeantKey followed.
func Named(st *merge.State) bool {
	return st.Live() || len(st.Fields[merge.RenamedTo]) > 0
}

// FollowRefs rewrites the references among vals to the keys they mean
// now: a Many2One first to the life its writer meant (lives; a deleted
// life leaves the field null), then both kinds through renames (alias).
// Nil functions skip their step.
func FollowRefs(vals map[string]ledger.Value, alias Alias, lives Lives) {
	for name, v := range vals {
		vals[name] = FollowRef(v, alias, lives)
	}
}

// FollowRef is FollowRefs for one value.
func FollowRef(v ledger.Value, alias Alias, lives Lives) ledger.Value {
	if r, ok := v.AsRef(); ok {
		key, final := r.Key, false
		if lives != nil {
			if key, ok, final = lives(r); !ok {
				return ledger.Null()
			}
		}
		if alias != nil && !final {
			key = alias(r.Model, key)
		}
		if key == r.Key && r.Saw == 0 && r.Lender == 0 {
			return v
		}
		if nv, err := ledger.RefTo(r.Model, key); err == nil {
			return nv
		}
		return v
	}
	if rs, ok := v.AsRefSet(); ok && alias != nil {
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

// MeantKey follows a Many2One reference to the key of the life of its
// target it means (ledger.Ref.Saw, merge.State.Meant): where key changes
// took that life, else its own key while that life is the target's
// current one (live or not), and ok false when the life was deleted and
// another has begun. Where key changes of one life went different ways,
// the first that leads to a life still going is taken (the person lives
// on there), else the first. state gives a record's merge state, loaded
// false when the caller has not read it yet: MeantKey then returns that
// record as need, for the caller to load and ask again. A reference to a
// UUID model means its key.
func MeantKey(reg *models.Registry, r ledger.Ref, state func(model, key string) (st *merge.State, loaded bool)) (key string, ok bool, need *ledger.Ref) {
	steps := 0
	var follow func(r ledger.Ref) (string, bool, bool, *ledger.Ref)
	// follow also says whether the life it ends at is going (live).
	follow = func(r ledger.Ref) (string, bool, bool, *ledger.Ref) {
		if m, known := reg.Lookup(r.Model); !known || m.Kind == models.UUIDKey {
			return r.Key, true, true, nil
		}
		st, loaded := state(r.Model, r.Key)
		if !loaded {
			return "", false, false, &r
		}
		current, moves := st.Meant(r.Lender, r.Saw)
		if len(moves) == 0 || steps >= 16 { // a chain of key changes longer than this is a loop
			return r.Key, current, current && st.Live(), nil
		}
		steps++
		var firstKey string
		var firstOK bool
		for i, to := range moves {
			key, ok, going, need := follow(to)
			if need != nil || going {
				return key, ok, going, need
			}
			if i == 0 {
				firstKey, firstOK = key, ok
			}
		}
		return firstKey, firstOK, false, nil
	}
	key, ok, _, need = follow(r)
	if !ok {
		key = ""
	}
	return key, ok, need
}

// Hops lists the records a reference to r passes through on its way to
// the key it means (MeantKey), r first: every key change of a life it
// follows, on every branch. A reference that ends at a deleted life must
// be looked at again when any of them changes key once more (a site that
// had not heard of the delete recoded it too), so its waits name them
// all. Records whose state is not loaded end their branch.
func Hops(reg *models.Registry, r ledger.Ref, state func(model, key string) (st *merge.State, loaded bool)) []ledger.Ref {
	out := []ledger.Ref{r}
	for i := 0; i < len(out) && len(out) < 32; i++ { // more than this is a loop
		at := out[i]
		if m, known := reg.Lookup(at.Model); !known || m.Kind == models.UUIDKey {
			continue
		}
		st, loaded := state(at.Model, at.Key)
		if !loaded {
			continue
		}
		_, moves := st.Meant(at.Lender, at.Saw)
		for _, to := range moves {
			if !slices.ContainsFunc(out, func(o ledger.Ref) bool { return o.Model == to.Model && o.Key == to.Key }) {
				out = append(out, to)
			}
		}
	}
	return out
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
