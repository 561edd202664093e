package models

import (
	"github.com/ghsync/ghsync/merge"
)

// This file is the small language the catalogue is written in, e.g.
//
//	Define("party.party", "party", Key("code"),
//		F("name", Char),
//		F("code", Char).Required(),
//		M2O("replaced_by", "party.party"),
//		Skip("internal_user", "target res.user is instance-local"),
//		Ext("health_socioeconomics", M2O("occupation", "gnuhealth.occupation")),
//	)
//
// Define only assembles; NewRegistry checks the result.

// KeySpec says how a model is identified: Key(fields...) or ByUUID.
type KeySpec struct {
	kind   Kind
	fields []string
}

// Key names the fields of a natural network key: one field makes a
// UniqueKey, several a CompositeKey (in key order).
func Key(fields ...string) KeySpec {
	if len(fields) == 1 {
		return KeySpec{kind: UniqueKey, fields: fields}
	}
	return KeySpec{kind: CompositeKey, fields: fields}
}

// ByUUID identifies a model's records by a UUID kept in ghsync's id map.
var ByUUID = KeySpec{kind: UUIDKey}

// Part is one element of a Define: a field (FieldDef), a Skip, an Ext
// group or a policy setting.
type Part interface {
	apply(m *Model, module string)
}

// FieldDef is a field being declared; its methods refine it.
type FieldDef struct{ f Field }

// F declares a stored field of a scalar type (Char ... Binary, Reference).
func F(name string, t Type) FieldDef {
	return FieldDef{Field{Name: name, Column: name, Type: t}}
}

// M2O declares a Many2One to target. Its foreign key's ON DELETE is what
// Tryton gives it: RESTRICT when required, SET NULL otherwise, unless
// OnDelete says otherwise.
func M2O(name, target string) FieldDef {
	return FieldDef{Field{Name: name, Column: name, Type: Many2One, Target: target}}
}

// M2M declares a Many2Many to target stored in table, whose originCol
// points at this model and targetCol at target. A Many2Many merges as a
// set (merge.Union).
func M2M(name, target, table, originCol, targetCol string) FieldDef {
	return FieldDef{Field{Name: name, Type: Many2Many, Target: target,
		Relation: &Relation{Table: table, OriginColumn: originCol, TargetColumn: targetCol},
		Rule:     merge.Union, HasRule: true}}
}

// Required marks the field required (NOT NULL).
func (d FieldDef) Required() FieldDef { d.f.Required = true; return d }

// Rule gives the field its own merge rule.
func (d FieldDef) Rule(r merge.Rule) FieldDef { d.f.Rule, d.f.HasRule = r, true; return d }

// Size bounds a Char field's length.
func (d FieldDef) Size(n int) FieldDef { d.f.Size = n; return d }

// OnDelete sets a Many2One's foreign key action (SetNull, Cascade,
// Restrict).
func (d FieldDef) OnDelete(action string) FieldDef { d.f.OnDelete = action; return d }

// Field returns the declared field (its Module is set by Define).
func (d FieldDef) Field() Field { return d.f }

func (d FieldDef) apply(m *Model, module string) {
	f := d.f
	if f.Module == "" {
		f.Module = module
	}
	if f.Type == Many2One && f.OnDelete == "" {
		f.OnDelete = SetNull
		if f.Required {
			f.OnDelete = Restrict
		}
	}
	m.Fields = append(m.Fields, f)
}

type skip struct{ name, reason string }

// Skip records a stored field that is deliberately not synchronised, and
// why. Nothing is ever dropped silently: NewRegistry refuses a Many2One
// whose target is not registered, so such fields must be Skipped.
func Skip(field, reason string) Part { return skip{field, reason} }

func (s skip) apply(m *Model, _ string) {
	if m.NotSynced == nil {
		m.NotSynced = map[string]string{}
	}
	m.NotSynced[s.name] = s.reason
}

type ext struct {
	module string
	parts  []Part
}

// Ext groups the fields another module adds to the model (GNU Health
// extends party.party, gnuhealth.patient, ...).
func Ext(module string, parts ...Part) Part { return ext{module, parts} }

func (e ext) apply(m *Model, _ string) {
	for _, p := range e.parts {
		p.apply(m, e.module)
	}
}

type setting func(m *Model)

func (s setting) apply(m *Model, _ string) { s(m) }

// DefaultRule sets the rule of the model's fields that have none of their
// own.
func DefaultRule(r merge.Rule) Part { return setting(func(m *Model) { m.Policy.Default = r }) }

// OwnedByOrigin makes the model origin-owned: only the instance that
// created a record may change it (merge.Policy.OriginOwned).
func OwnedByOrigin() Part { return setting(func(m *Model) { m.Policy.OriginOwned = true }) }

// ReferenceData marks the model as preloaded on every instance: resolved
// by key, never replicated.
func ReferenceData() Part { return setting(func(m *Model) { m.Reference = true }) }

// Define assembles a model named name, declared by module, identified as
// key says, from parts. The table is TableName(name); Active is set when
// the model has an "active" field; each field with its own rule is
// entered in Policy.Fields.
func Define(name, module string, key KeySpec, parts ...Part) *Model {
	m := &Model{Name: name, Table: TableName(name), Module: module, Kind: key.kind}
	if key.kind != UUIDKey {
		m.Key = append([]string(nil), key.fields...)
	}
	for _, p := range parts {
		p.apply(m, module)
	}
	for _, f := range m.Fields {
		if f.Name == "active" && f.Type == Boolean {
			m.Active = true
		}
		if f.HasRule {
			if m.Policy.Fields == nil {
				m.Policy.Fields = map[string]merge.Rule{}
			}
			m.Policy.Fields[f.Name] = f.Rule
		}
	}
	m.buildIndex()
	return m
}
