package models

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/merge"
)

// Kind is how a model's records are identified across the network.
type Kind uint8

// The sync kinds. The zero Kind is invalid, so a Model literal that forgets
// it is refused by NewRegistry.
const (
	// UniqueKey: one field whose value is unique across the whole network,
	// e.g. party.party's code. The field may be a Many2One to a keyed model,
	// whose key it then borrows (gnuhealth.patient is its party's code).
	UniqueKey Kind = iota + 1
	// CompositeKey: two or more fields, typically parent keys plus a local
	// field (a ward is its institution's code plus its own name). Many2One
	// parts contribute their target's network key; the parts are joined
	// with ledger.JoinKey.
	CompositeKey
	// UUIDKey: no natural key (clinical events, whose local codes come from
	// per-instance sequences and collide). The record's UUID lives in
	// ghsync's id map; Tryton tables get no extra column.
	UUIDKey
	kindEnd
)

var kindNames = [...]string{"", "unique-key", "composite-key", "uuid"}

func (k Kind) String() string {
	if k > 0 && k < kindEnd {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// ParseKind reads the names Kind.String writes.
func ParseKind(s string) (Kind, error) {
	for k := UniqueKey; k < kindEnd; k++ {
		if s == kindNames[k] {
			return k, nil
		}
	}
	return 0, fmt.Errorf("models: unknown sync kind %q (want unique-key, composite-key or uuid)", s)
}

// Type is a Tryton field type. Its String is Tryton's ttype, the name
// ir.model.field stores ("char", "many2one", ...).
type Type uint8

// The Tryton field types a catalogue field can have. The zero Type is
// invalid.
const (
	Char Type = iota + 1
	Text
	Selection
	Integer
	BigInteger
	Float
	Numeric
	Boolean
	Date
	DateTime
	Timestamp
	Time
	Binary
	Many2One
	Reference
	Many2Many
	typeEnd
)

var typeNames = [...]string{"", "char", "text", "selection", "integer", "biginteger", "float", "numeric",
	"boolean", "date", "datetime", "timestamp", "time", "binary", "many2one", "reference", "many2many"}

func (t Type) String() string {
	if t > 0 && t < typeEnd {
		return typeNames[t]
	}
	return "type(" + strconv.Itoa(int(t)) + ")"
}

// ParseType reads a Tryton ttype ("many2one") or a Tryton class name
// ("Many2One"); case does not matter.
func ParseType(s string) (Type, error) {
	l := strings.ToLower(strings.TrimSpace(s))
	for t := Char; t < typeEnd; t++ {
		if l == typeNames[t] {
			return t, nil
		}
	}
	return 0, fmt.Errorf("models: unknown field type %q", s)
}

// ValueKind is the ledger.Kind a non-null value of a field of this type
// must have.
func (t Type) ValueKind() ledger.Kind {
	switch t {
	case Char, Text, Selection, Reference, Time: // Time as "HH:MM:SS"
		return ledger.KindString
	case Integer, BigInteger:
		return ledger.KindInt
	case Float, Numeric:
		return ledger.KindDecimal
	case Boolean:
		return ledger.KindBool
	case Date:
		return ledger.KindDate
	case DateTime, Timestamp:
		return ledger.KindDateTime
	case Binary:
		return ledger.KindBytes
	case Many2One:
		return ledger.KindRef
	case Many2Many:
		return ledger.KindRefSet
	}
	return ledger.KindNull
}

// The database dialects ghsync knows. Dialect strings are what Check,
// Field.SQLType and the fixtures take.
const (
	Postgres = "postgres"
	SQLite   = "sqlite"
)

// The ON DELETE actions Tryton gives Many2One foreign keys.
const (
	SetNull  = "SET NULL"
	Cascade  = "CASCADE"
	Restrict = "RESTRICT"
)

// Relation is the table that stores a Many2Many: one row per link, with a
// column pointing at the origin record and one at the target record.
type Relation struct {
	Table        string // e.g. party_category_rel
	OriginColumn string // e.g. party
	TargetColumn string // e.g. category
}

// Field is one stored, synchronised field of a model.
type Field struct {
	Name     string     // Tryton field name
	Column   string     // SQL column: Name for stored fields, "" for Many2Many
	Type     Type       // Tryton field type
	Target   string     // Many2One / Many2Many target model
	Required bool       // required in Tryton (NOT NULL in the database)
	Rule     merge.Rule // used only if HasRule; otherwise the model's Policy.Default
	HasRule  bool       // the field has its own Rule (also entered in Policy.Fields)
	Relation *Relation  // Many2Many only
	OnDelete string     // Many2One FK action as Tryton creates it: SetNull, Cascade or Restrict
	Module   string     // Tryton module that declares the field (ir.model.field's module)
	Size     int        // Char only: maximum length (character varying(Size)); 0 = unbounded
}

// ValueKind is the ledger.Kind a non-null value of f must have. A null is
// always allowed unless f is Required.
func (f *Field) ValueKind() ledger.Kind { return f.Type.ValueKind() }

// Accepts reports whether v is a valid value for f: null (when f is not
// Required) or a value of f's ValueKind.
func (f *Field) Accepts(v ledger.Value) bool {
	if v.Kind() == ledger.KindNull {
		return !f.Required
	}
	return v.Kind() == f.ValueKind()
}

// SQLType is the column type Tryton 6.0 creates for f in dialect, as
// PostgreSQL's information_schema or SQLite's table_info spell it
// ("character varying(2)", "timestamp(0) without time zone", "VARCHAR").
// It is "" for a Many2Many, which has no column.
//
// A DateTime is timestamp(0) in PostgreSQL (Tryton stores whole seconds,
// see the gnuhealth_appointment dump); a Timestamp keeps microseconds.
func (f *Field) SQLType(dialect string) string {
	if dialect == SQLite {
		switch f.Type {
		case Char, Selection, Reference:
			if f.Size > 0 {
				return "VARCHAR(" + strconv.Itoa(f.Size) + ")"
			}
			return "VARCHAR"
		case Text:
			return "TEXT"
		case Integer, BigInteger, Many2One:
			return "INTEGER"
		case Float:
			return "FLOAT"
		case Numeric:
			return "NUMERIC"
		case Boolean:
			return "BOOLEAN"
		case Date:
			return "DATE"
		case DateTime, Timestamp:
			return "TIMESTAMP"
		case Time:
			return "TIME"
		case Binary:
			return "BLOB"
		}
		return ""
	}
	switch f.Type {
	case Char, Selection, Reference:
		if f.Size > 0 {
			return "character varying(" + strconv.Itoa(f.Size) + ")"
		}
		return "character varying"
	case Text:
		return "text"
	case Integer, Many2One:
		return "integer"
	case BigInteger:
		return "bigint"
	case Float:
		return "double precision"
	case Numeric:
		return "numeric"
	case Boolean:
		return "boolean"
	case Date:
		return "date"
	case DateTime:
		return "timestamp(0) without time zone"
	case Timestamp:
		return "timestamp(6) without time zone"
	case Time:
		return "time without time zone"
	case Binary:
		return "bytea"
	}
	return ""
}

// Model is one Tryton model as ghsync synchronises it. Models are built
// once (Define, or a literal checked by NewRegistry) and then only read:
// a registered Model must not be modified, and is then safe for
// concurrent use.
type Model struct {
	Name   string // Tryton model, e.g. "gnuhealth.patient"
	Table  string // SQL table, e.g. "gnuhealth_patient"
	Module string // Tryton module that declares the model
	Kind   Kind
	// Key names the fields forming the network key: UniqueKey: one field;
	// CompositeKey: the parts, in key order (a Many2One part contributes
	// its target's network key); UUIDKey: nil.
	Key []string
	// Fields are the stored, synchronised fields only: no Function or
	// One2Many fields, and no field whose target is not synchronised
	// (those are listed in NotSynced).
	Fields []Field
	// NotSynced lists the stored fields deliberately left out, with the
	// reason: field → reason, e.g. "internal_user": "target res.user is
	// instance-local".
	NotSynced map[string]string
	Policy    merge.Policy
	// Active: the table has an 'active' column (DeactivableMixin). Its
	// database default is false, while the ORM's is true, so writers must
	// set it or the row is hidden from Tryton.
	Active bool
	// Reference: data preloaded (or configured) on every instance and
	// never replicated; records are only resolved by key on the receiving
	// instance (country, subdivision, product, company).
	Reference bool

	index    map[string]int // field name → position in Fields
	byColumn map[string]int // column → position in Fields
}

// Field returns the synchronised field called name.
func (m *Model) Field(name string) (*Field, bool) {
	return m.find(m.index, name, func(f *Field) string { return f.Name })
}

// FieldByColumn returns the synchronised field stored in column col, so
// a row image (column → value) is read without trying every field.
func (m *Model) FieldByColumn(col string) (*Field, bool) {
	return m.find(m.byColumn, col, func(f *Field) string { return f.Column })
}

// find looks want up in index, or, for a model built without Define (no
// index), compares key of every field.
func (m *Model) find(index map[string]int, want string, key func(*Field) string) (*Field, bool) {
	if index != nil {
		i, ok := index[want]
		if !ok {
			return nil, false
		}
		return &m.Fields[i], true
	}
	for i := range m.Fields {
		if key(&m.Fields[i]) == want {
			return &m.Fields[i], true
		}
	}
	return nil, false
}

// KeyOf builds a record's network key from the values of its key parts,
// in Key order, each already resolved to a string (a Many2One part is its
// target's network key): one part is the key itself, several are joined
// with ledger.JoinKey.
func (m *Model) KeyOf(parts ...string) string {
	if len(parts) == 1 {
		return parts[0]
	}
	return ledger.JoinKey(parts...)
}

// Rule is the merge rule of field: its own if it has one, else the
// model's default.
func (m *Model) Rule(field string) merge.Rule { return m.Policy.Rule(field) }

func (m *Model) buildIndex() {
	m.index = make(map[string]int, len(m.Fields))
	m.byColumn = make(map[string]int, len(m.Fields))
	for i := range m.Fields {
		m.index[m.Fields[i].Name] = i
		if f := &m.Fields[i]; f.Column != "" && f.Type != Many2Many {
			m.byColumn[f.Column] = i
		}
	}
}

// TableName is the SQL table Tryton gives a model: its name with '.'
// replaced by '_'.
func TableName(model string) string { return strings.ReplaceAll(model, ".", "_") }

// RenamedFrom is the reserved field a create event carries when a record's
// unique key changed in place: its value is a reference to the old key.
// The record's identity moves (the local row, and everything pointing at
// it, stay); it is not a delete plus an unrelated create. Tryton field
// names never start with '_', so it cannot collide with a real field.
const RenamedFrom = "_renamed_from"
