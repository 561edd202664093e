package models

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/ghsync/ghsync/merge"
)

// auditColumns are the columns Tryton gives every table and overwrites on
// every create and write: never catalogue fields.
var auditColumns = []string{"id", "create_uid", "create_date", "write_uid", "write_date"}

// IsAuditColumn reports whether column is one of the columns Tryton
// manages on every table (id, create_uid, create_date, write_uid,
// write_date).
func IsAuditColumn(column string) bool { return slices.Contains(auditColumns, column) }

// Registry is a validated set of models. It is immutable and safe for
// concurrent use.
type Registry struct {
	models  []*Model // dependency order
	byName  map[string]*Model
	byTable map[string]*Model
	lenders map[string][]KeyPart // target model → key parts that borrow its key
}

// NewRegistry checks models and returns them as a Registry. It reports
// every problem at once, as a *ValidationError (errors.Is
// ErrInvalidRegistry):
//
//   - names and tables are set and unique (a Many2Many relation table
//     counts as a table);
//   - each field has a valid type, a unique name that is not an audit
//     column (id, create_uid, create_date, write_uid, write_date), a
//     Column equal to its name (none for a Many2Many), a registered
//     target for Many2One/Many2Many (others skipped with Skip), a
//     Relation for a Many2Many, a valid OnDelete for a Many2One;
//   - the key matches the kind, names existing fields of a keyable type
//     (Char, Selection, Integer, BigInteger, Date, Many2One), and its
//     Many2One parts point at keyed models, without cycles;
//   - rules are valid (Union only on a Many2Many, Max/Min not on one),
//     Policy.Fields matches the fields' own rules;
//   - Active agrees with an "active" Boolean field; NotSynced names no
//     synchronised field and gives a reason;
//   - required Many2Ones form no cycle (else no insertion order exists).
func NewRegistry(models ...*Model) (*Registry, error) {
	r := &Registry{byName: map[string]*Model{}, byTable: map[string]*Model{}}
	var p problems
	tables := map[string]string{}
	for _, m := range models {
		if m == nil {
			p.add("", "nil model")
			continue
		}
		if m.Name == "" {
			p.add("", "model with no name (table %q)", m.Table)
			continue
		}
		if _, dup := r.byName[m.Name]; dup {
			p.add(m.Name, "registered twice")
			continue
		}
		r.byName[m.Name] = m
		claim := func(table, what string) {
			if table == "" {
				p.add(m.Name, "%s has no table", what)
				return
			}
			if other, dup := tables[table]; dup {
				p.add(m.Name, "table %s of %s is already %s", table, what, other)
				return
			}
			tables[table] = m.Name + " " + what
		}
		claim(m.Table, "model")
		if m.Table != "" {
			r.byTable[m.Table] = m
		}
		for _, f := range m.Fields {
			if f.Type == Many2Many && f.Relation != nil {
				claim(f.Relation.Table, "field "+f.Name+"'s relation")
			}
		}
	}
	for _, m := range models {
		if m != nil && r.byName[m.Name] == m {
			r.checkModel(m, &p)
		}
	}
	if len(p) == 0 {
		r.checkKeyCycles(&p)
	}
	if len(p) == 0 {
		order, err := r.order()
		if err != nil {
			p = append(p, err.Error())
		}
		r.models = order
	}
	if len(p) > 0 {
		return nil, &ValidationError{Problems: p}
	}
	r.lenders = map[string][]KeyPart{}
	for _, m := range r.models {
		for _, kp := range m.BorrowedKeyParts() {
			r.lenders[kp.Field.Target] = append(r.lenders[kp.Field.Target], kp)
		}
	}
	return r, nil
}

type problems []string

func (p *problems) add(model, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if model != "" {
		msg = model + ": " + msg
	}
	*p = append(*p, msg)
}

var onDeletes = []string{SetNull, Cascade, Restrict}

func validRule(r merge.Rule) bool {
	back, err := merge.ParseRule(r.String())
	return err == nil && back == r
}

func keyable(t Type) bool {
	switch t {
	case Char, Selection, Integer, BigInteger, Date, Many2One:
		return true
	}
	return false
}

func (r *Registry) checkModel(m *Model, p *problems) {
	if m.Module == "" {
		p.add(m.Name, "no module")
	}
	if want := TableName(m.Name); m.Table != want {
		p.add(m.Name, "table %q, Tryton names it %q", m.Table, want)
	}
	seen := map[string]bool{}
	columns := map[string]string{} // column → the field stored in it
	hasActive := false
	for i := range m.Fields {
		f := &m.Fields[i]
		if f.Name == "" {
			p.add(m.Name, "field %d has no name", i)
			continue
		}
		if seen[f.Name] {
			p.add(m.Name, "field %s declared twice", f.Name)
		}
		seen[f.Name] = true
		if other, dup := columns[f.Column]; dup && other != f.Name && f.Type != Many2Many {
			p.add(m.Name, "fields %s and %s share column %s", other, f.Name, f.Column)
		} else if f.Type != Many2Many {
			columns[f.Column] = f.Name
		}
		if IsAuditColumn(f.Name) {
			p.add(m.Name, "field %s is an audit column Tryton manages itself", f.Name)
		}
		if f.Type == 0 || f.Type >= typeEnd {
			p.add(m.Name, "field %s has invalid type %s", f.Name, f.Type)
			continue
		}
		if f.Name == "active" {
			hasActive = f.Type == Boolean
		}
		switch f.Type {
		case Many2Many:
			if f.Column != "" {
				p.add(m.Name, "Many2Many %s has a column (%q); it is stored in its relation table", f.Name, f.Column)
			}
			if f.Relation == nil || f.Relation.Table == "" || f.Relation.OriginColumn == "" || f.Relation.TargetColumn == "" ||
				f.Relation.OriginColumn == f.Relation.TargetColumn {
				p.add(m.Name, "Many2Many %s needs a relation table with two distinct columns", f.Name)
			}
		default:
			if f.Column != f.Name {
				p.add(m.Name, "field %s has column %q; a stored Tryton field's column is its name", f.Name, f.Column)
			}
			if f.Relation != nil {
				p.add(m.Name, "field %s is a %s and cannot have a relation table", f.Name, f.Type)
			}
		}
		switch f.Type {
		case Many2One, Many2Many:
			if f.Target == "" {
				p.add(m.Name, "%s %s has no target", f.Type, f.Name)
			} else if _, ok := r.byName[f.Target]; !ok {
				p.add(m.Name, "%s %s targets %s, which is not registered: Skip the field with a reason, or register its target", f.Type, f.Name, f.Target)
			}
		default:
			if f.Target != "" {
				p.add(m.Name, "field %s is a %s and cannot have a target", f.Name, f.Type)
			}
		}
		if f.Type == Many2One {
			if !slices.Contains(onDeletes, f.OnDelete) {
				p.add(m.Name, "Many2One %s has ON DELETE %q (want SET NULL, CASCADE or RESTRICT)", f.Name, f.OnDelete)
			}
		} else if f.OnDelete != "" {
			p.add(m.Name, "field %s is a %s and cannot have ON DELETE", f.Name, f.Type)
		}
		if f.Size < 0 || f.Size > 0 && f.Type != Char {
			p.add(m.Name, "field %s: a size is for Char fields only", f.Name)
		}
		if f.HasRule {
			checkRule(m, p, "field "+f.Name, f.Rule, f.Type)
			if got, ok := m.Policy.Fields[f.Name]; !ok || got != f.Rule {
				p.add(m.Name, "field %s has rule %s but Policy.Fields says otherwise", f.Name, f.Rule)
			}
		}
	}
	if !validRule(m.Policy.Default) || m.Policy.Default == merge.Union {
		p.add(m.Name, "default rule %s is not valid for every field", m.Policy.Default)
	}
	for name, rule := range m.Policy.Fields {
		f, ok := m.Field(name)
		if !ok {
			p.add(m.Name, "Policy.Fields names %s, which is not a synchronised field", name)
			continue
		}
		if !f.HasRule || f.Rule != rule {
			p.add(m.Name, "Policy.Fields gives %s rule %s but the field does not", name, rule)
		}
	}
	if m.Active != hasActive {
		p.add(m.Name, "Active is %v but an \"active\" Boolean field is %s", m.Active, map[bool]string{true: "declared", false: "missing"}[hasActive])
	}
	for name, reason := range m.NotSynced {
		if seen[name] {
			p.add(m.Name, "field %s is both synchronised and in NotSynced", name)
		}
		if strings.TrimSpace(reason) == "" {
			p.add(m.Name, "NotSynced field %s has no reason", name)
		}
	}
	switch m.Kind {
	case UniqueKey:
		if len(m.Key) != 1 {
			p.add(m.Name, "a unique key has one field, not %d", len(m.Key))
		}
	case CompositeKey:
		if len(m.Key) < 2 {
			p.add(m.Name, "a composite key has two or more fields, not %d", len(m.Key))
		}
	case UUIDKey:
		if len(m.Key) != 0 {
			p.add(m.Name, "a UUID-keyed model has no key fields (got %v)", m.Key)
		}
	default:
		p.add(m.Name, "invalid sync kind %s", m.Kind)
	}
	keySeen := map[string]bool{}
	for _, k := range m.Key {
		if keySeen[k] {
			p.add(m.Name, "key field %s listed twice", k)
		}
		keySeen[k] = true
		f, ok := m.Field(k)
		if !ok {
			p.add(m.Name, "key field %s is not a synchronised field", k)
			continue
		}
		if !keyable(f.Type) {
			p.add(m.Name, "key field %s is a %s, which cannot be part of a key", k, f.Type)
			continue
		}
		if f.Type == Many2One {
			if t, ok := r.byName[f.Target]; ok && t.Kind != UniqueKey && t.Kind != CompositeKey {
				p.add(m.Name, "key field %s targets %s, which has no natural key (%s)", k, f.Target, t.Kind)
			}
		}
	}
}

func checkRule(m *Model, p *problems, what string, rule merge.Rule, t Type) {
	switch {
	case !validRule(rule):
		p.add(m.Name, "%s has invalid rule %s", what, rule)
	case rule == merge.Union && t != Many2Many:
		p.add(m.Name, "%s: union merges sets, it needs a Many2Many", what)
	case (rule == merge.Max || rule == merge.Min) && t == Many2Many:
		p.add(m.Name, "%s: %s does not apply to a Many2Many", what, rule)
	}
}

// keyDeps are the models a model's key borrows from (its Many2One key
// parts' targets).
func (r *Registry) keyDeps(m *Model) []string {
	var out []string
	for _, k := range m.Key {
		if f, ok := m.Field(k); ok && f.Type == Many2One {
			out = append(out, f.Target)
		}
	}
	return out
}

// checkKeyCycles refuses keys that borrow from themselves (A's key is
// B's, B's is A's): such a key could never be computed.
func (r *Registry) checkKeyCycles(p *problems) {
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var visit func(name string, path []string)
	visit = func(name string, path []string) {
		switch color[name] {
		case grey:
			p.add(name, "network key borrows from itself: %s", strings.Join(append(path, name), " → "))
			return
		case black:
			return
		}
		color[name] = grey
		for _, t := range r.keyDeps(r.byName[name]) {
			visit(t, append(path, name))
		}
		color[name] = black
	}
	for _, name := range r.sortedNames() {
		visit(name, nil)
	}
}

func (r *Registry) sortedNames() []string {
	names := make([]string, 0, len(r.byName))
	for n := range r.byName {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// deps are the models that must exist before a record of m can be
// created: targets of required Many2Ones and of Many2One key parts.
// Self references are left out (a tree's parent is optional in Tryton).
func (r *Registry) deps(m *Model) []string {
	set := map[string]bool{}
	for _, f := range m.Fields {
		if f.Type == Many2One && f.Target != m.Name && (f.Required || slices.Contains(m.Key, f.Name)) {
			set[f.Target] = true
		}
	}
	out := make([]string, 0, len(set))
	for t := range set {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// order sorts the models so that every model comes after its deps
// (Kahn's algorithm, always taking the smallest name that is ready, so
// the order is stable).
func (r *Registry) order() ([]*Model, error) {
	waiting := map[string]int{}
	users := map[string][]string{}
	for _, name := range r.sortedNames() {
		m := r.byName[name]
		d := r.deps(m)
		waiting[name] = len(d)
		for _, t := range d {
			users[t] = append(users[t], name)
		}
		for _, f := range m.Fields {
			if f.Type == Many2One && f.Required && f.Target == m.Name {
				return nil, fmt.Errorf("%s: required Many2One %s points at its own model, so no first record can be inserted", m.Name, f.Name)
			}
		}
	}
	var ready []string
	for name, n := range waiting {
		if n == 0 {
			ready = append(ready, name)
		}
	}
	sort.Strings(ready)
	out := make([]*Model, 0, len(r.byName))
	for len(ready) > 0 {
		name := ready[0]
		ready = ready[1:]
		out = append(out, r.byName[name])
		for _, u := range users[name] {
			waiting[u]--
			if waiting[u] == 0 {
				i, _ := slices.BinarySearch(ready, u)
				ready = slices.Insert(ready, i, u)
			}
		}
	}
	if len(out) < len(r.byName) {
		var stuck []string
		for _, name := range r.sortedNames() {
			if waiting[name] > 0 {
				stuck = append(stuck, name)
			}
		}
		return nil, fmt.Errorf("required Many2Ones form a cycle among %s: no insertion order exists", strings.Join(stuck, ", "))
	}
	return out, nil
}

// Lookup returns the model called name.
func (r *Registry) Lookup(name string) (*Model, bool) {
	m, ok := r.byName[name]
	return m, ok
}

// ByTable returns the model stored in table.
func (r *Registry) ByTable(table string) (*Model, bool) {
	m, ok := r.byTable[table]
	return m, ok
}

// Models returns the models in dependency order: the targets of a
// model's required Many2Ones (and of its Many2One key parts) come before
// it; ties are broken by name. Cycles through optional Many2Ones are
// fine: such a reference is filled once its target exists. The slice is
// a copy; the models are shared and must not be modified.
func (r *Registry) Models() []*Model { return slices.Clone(r.models) }

// KeyPart is a Many2One part of a model's natural key: the model's key
// borrows its target's (a patient's key is its person's code), so a change
// of the target's key changes the key of every record that borrows it.
type KeyPart struct {
	Model *Model
	Field *Field
	Index int // in Model.Key
}

// BorrowedKeyParts lists m's key parts that borrow another model's key.
func (m *Model) BorrowedKeyParts() []KeyPart {
	if m.Kind == UUIDKey {
		return nil
	}
	var out []KeyPart
	for i, name := range m.Key {
		if f, ok := m.Field(name); ok && f.Type == Many2One {
			out = append(out, KeyPart{Model: m, Field: f, Index: i})
		}
	}
	return out
}

// Borrowers lists the key parts, in dependency order of their models,
// that borrow target's key: the records whose identity moves when a
// record of target changes its key.
func (r *Registry) Borrowers(target string) []KeyPart { return r.lenders[target] }

// Len is the number of models.
func (r *Registry) Len() int { return len(r.models) }
