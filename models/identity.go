package models

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// WithUUIDIdentity returns a copy of r in which the named models are
// identified by UUID (Kind UUIDKey, no Key): the administrator's choice
// for a model whose natural key this installation cannot make unique
// across the network, for example party.party when the party codes come
// from a sequence without an instance prefix (Check reports it as
// KeyNotNetworkUnique). Each record then gets a UUID in ghsync's id map
// when it is first captured; its key field is synchronised as an
// ordinary field.
//
// r is not changed, and the other models are shared with it. The copy is
// validated like any registry (NewRegistry): in particular a model whose
// network key borrows the key of a named model (a Many2One key part, such
// as gnuhealth.patient's name → party.party) cannot keep a natural key,
// so it must be named too; the error (matching ErrInvalidRegistry) then
// lists every such model. An unknown model name is an error. Naming a model that is already
// identified by UUID changes nothing.
//
// Hazard: every instance of a network must use the same identities. A
// record captured under its natural key on one instance and under a UUID
// on another is two records to ghsync.
func (r *Registry) WithUUIDIdentity(models ...string) (*Registry, error) {
	named := map[string]bool{}
	var unknown []string
	for _, name := range models {
		if _, ok := r.byName[name]; !ok {
			unknown = append(unknown, name)
			continue
		}
		named[name] = true
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return nil, fmt.Errorf("models: UUID identity for %s: not in the registry", strings.Join(slices.Compact(unknown), ", "))
	}
	if borrowers := r.keyBorrowers(named); len(borrowers) > 0 {
		var what []string
		for _, b := range borrowers {
			what = append(what, b.model+" (key part "+b.field+" → "+b.target+")")
		}
		all := slices.Collect(maps.Keys(named))
		for _, b := range borrowers {
			all = append(all, b.model)
		}
		slices.Sort(all)
		return nil, fmt.Errorf("%w: UUID identity for %s: the network keys of %s are made from a natural key that would no longer exist; identify them by UUID too (WithUUIDIdentity(%s))", ErrInvalidRegistry,
			strings.Join(slices.Sorted(maps.Keys(named)), ", "), strings.Join(what, ", "), strings.Join(all, ", "))
	}
	out := make([]*Model, 0, len(r.models))
	for _, m := range r.models {
		if named[m.Name] && m.Kind != UUIDKey {
			cp := *m // Fields, NotSynced, Policy and the field index are shared: read-only
			cp.Kind, cp.Key = UUIDKey, nil
			m = &cp
		}
		out = append(out, m)
	}
	reg, err := NewRegistry(out...)
	if err != nil {
		return nil, fmt.Errorf("models: UUID identity for %s: %w", strings.Join(slices.Sorted(maps.Keys(named)), ", "), err)
	}
	return reg, nil
}

// borrower is a model whose network key has a Many2One part pointing at
// another model, whose key it borrows.
type borrower struct{ model, field, target string }

// keyBorrowers lists, in name order, the models outside named whose key
// borrows (directly or through other borrowers) the key of a named model.
func (r *Registry) keyBorrowers(named map[string]bool) []borrower {
	lost := map[string]bool{} // models that would lose their natural key
	for n := range named {
		lost[n] = true
	}
	var out []borrower
	for changed := true; changed; {
		changed = false
		for _, name := range r.sortedNames() {
			m := r.byName[name]
			if lost[name] || m.Kind == UUIDKey {
				continue
			}
			for _, k := range m.Key {
				if f, ok := m.Field(k); ok && f.Type == Many2One && lost[f.Target] {
					lost[name] = true
					changed = true
					out = append(out, borrower{name, k, f.Target})
					break
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b borrower) int { return strings.Compare(a.model, b.model) })
	return out
}
