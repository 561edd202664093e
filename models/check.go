package models

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// Severity grades a check finding.
type Severity uint8

// Severities, from least to most serious.
const (
	Info    Severity = iota + 1 // worth knowing; nothing breaks
	Warning                     // some data will not synchronise, or may not
	Error                       // the projector would fail: fix before the first sync
)

func (s Severity) String() string {
	switch s {
	case Info:
		return "info"
	case Warning:
		return "warning"
	case Error:
		return "error"
	}
	return fmt.Sprintf("severity(%d)", uint8(s))
}

// Problem names what a finding is about, so tools and tests can match it.
type Problem string

// The problems Check reports.
const (
	ModelNotInstalled     Problem = "model-not-installed"     // error: no ir_model row (its module is not activated)
	ModuleNotInstalled    Problem = "module-not-installed"    // error: every field an extending module adds is missing
	TableMissing          Problem = "table-missing"           // error
	FieldMissing          Problem = "field-missing"           // error: no ir_model_field row
	FieldTypeMismatch     Problem = "field-type-mismatch"     // error: ttype differs from the catalogue's type
	TargetMismatch        Problem = "target-mismatch"         // error: Many2One/Many2Many relation differs
	ColumnMissing         Problem = "column-missing"          // error
	ColumnTypeMismatch    Problem = "column-type-mismatch"    // error, or warning when values still fit
	RelationMissing       Problem = "relation-missing"        // error: a Many2Many's table or columns
	UnknownRequiredColumn Problem = "unknown-required-column" // error: NOT NULL, no default, unknown to the catalogue
	RequiredNotSynced     Problem = "required-not-synced"     // warning: NOT NULL, no default, deliberately not synchronised
	NotNullOptional       Problem = "not-null-optional"       // warning: NOT NULL, no default, but optional in the catalogue
	ExtraFields           Problem = "extra-fields"            // info: fields/columns the catalogue does not synchronise
	NullKeys              Problem = "null-keys"               // warning: records without a network key
	DuplicateKeys         Problem = "duplicate-keys"          // error (warning for reference data)
	SequenceKeys          Problem = "sequence-keys"           // error: keys that look like a per-instance sequence
	KeyNotNetworkUnique   Problem = "key-not-network-unique"  // error: the key is filled from a sequence without an instance prefix
)

// Finding is one thing Check found about a model.
type Finding struct {
	Severity Severity
	Problem  Problem
	Field    string // field or column concerned, "" for the model as a whole
	Message  string // one line for an administrator; names no record values
	// Fix is the SQL statement that resolves the finding, where one
	// statement does (ghsync models check --create-indexes runs them).
	Fix string
}

// ModelCheck is what Check found about one catalogue model.
type ModelCheck struct {
	Model    string
	Table    string
	Module   string
	Findings []Finding
}

// Worst is the highest severity among the findings, 0 if none.
func (c *ModelCheck) Worst() Severity {
	var w Severity
	for _, f := range c.Findings {
		w = max(w, f.Severity)
	}
	return w
}

// CheckReport is the result of Check, model by model in registry order.
type CheckReport struct {
	Dialect string
	// Database is what Check found about the database as a whole (the
	// role ghsync connects as), before any model.
	Database []Finding
	Models   []ModelCheck
}

// Count is the number of findings of severity s.
func (r *CheckReport) Count(s Severity) int {
	n := 0
	for _, f := range r.Database {
		if f.Severity == s {
			n++
		}
	}
	for _, m := range r.Models {
		for _, f := range m.Findings {
			if f.Severity == s {
				n++
			}
		}
	}
	return n
}

// OK reports whether no finding is an error: the projector can write
// every catalogue model to this database.
func (r *CheckReport) OK() bool { return r.Count(Error) == 0 }

// Find returns model's findings about problem p.
func (r *CheckReport) Find(model string, p Problem) []Finding {
	var out []Finding
	for _, m := range r.Models {
		if m.Model != model {
			continue
		}
		for _, f := range m.Findings {
			if f.Problem == p {
				out = append(out, f)
			}
		}
	}
	return out
}

// Text renders the report for an administrator: the models with findings,
// most serious first within each model, then a summary and a verdict.
func (r *CheckReport) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "ghsync models check: %d catalogue models against a %s database\n", len(r.Models), r.Dialect)
	if len(r.Database) > 0 {
		b.WriteString("\nthe database\n")
		for _, f := range r.Database {
			fmt.Fprintf(&b, "  %-7s  %s\n", strings.ToUpper(f.Severity.String()), f.Message)
		}
	}
	clean := 0
	for _, m := range r.Models {
		if len(m.Findings) == 0 {
			clean++
			continue
		}
		fmt.Fprintf(&b, "\n%s (table %s, module %s)\n", m.Model, m.Table, m.Module)
		fs := slices.Clone(m.Findings)
		slices.SortStableFunc(fs, func(a, b Finding) int { return int(b.Severity) - int(a.Severity) })
		for _, f := range fs {
			fmt.Fprintf(&b, "  %-7s  %s\n", strings.ToUpper(f.Severity.String()), f.Message)
		}
	}
	errs, warns, infos := r.Count(Error), r.Count(Warning), r.Count(Info)
	fmt.Fprintf(&b, "\n%d of %d models have no findings; %s, %s, %s.\n", clean, len(r.Models),
		count(int64(errs), "error", "errors"), count(int64(warns), "warning", "warnings"), count(int64(infos), "note", "notes"))
	switch {
	case errs > 0:
		b.WriteString("NOT READY: fix the errors before the first synchronisation; ghsync could not write those models here.\n")
	case warns > 0:
		b.WriteString("READY, with warnings: some data will not synchronise as it stands; read them before the first synchronisation.\n")
	default:
		b.WriteString("READY: this database matches the catalogue.\n")
	}
	return b.String()
}

// ErrNotTryton is returned by Check when the database has no ir_model
// table.
var ErrNotTryton = errors.New("models: not a Tryton database (no ir_model table)")

// column is one table column as the database describes it.
type column struct {
	typ        string // normalised: lower case, no length ("character varying", "varchar")
	length     int    // declared maximum length, 0 if none
	notNull    bool
	hasDefault bool
}

type irField struct{ ttype, relation, module string }

// snapshot is what Check reads from the database before judging it.
type snapshot struct {
	models map[string]string             // ir_model: model → module
	fields map[string]map[string]irField // model → field → ir_model_field row
	tables map[string]map[string]column  // table → column → description
	// modules is ir_module: module → state; nil when the database has no
	// ir_module table (a test schema).
	modules map[string]string
}

// Check compares a Tryton database with the registry, before the first
// synchronisation: it reads ir_model, ir_model_field and the tables'
// columns (PostgreSQL: information_schema.columns of the current schema;
// SQLite: pragma table_info) and reports, model by model, what would stop
// the projector or keep data from synchronising. dialect is Postgres or
// SQLite. It only reads, as the connecting user: PostgreSQL hides the
// columns of tables that user may not access, which then look missing,
// so connect as the database owner. An error is returned only when the database
// cannot be read (ErrNotTryton when it has no ir_model).
func Check(ctx context.Context, db *sql.DB, dialect string, reg *Registry) (*CheckReport, error) {
	var s *snapshot
	var err error
	switch dialect {
	case Postgres:
		s, err = readPostgres(ctx, db)
	case SQLite:
		s, err = readSQLite(ctx, db, reg)
	default:
		return nil, fmt.Errorf("models: unknown dialect %q (want %s or %s)", dialect, Postgres, SQLite)
	}
	if err != nil {
		return nil, err
	}
	rep := &CheckReport{Dialect: dialect}
	for _, m := range reg.Models() {
		mc := ModelCheck{Model: m.Name, Table: m.Table, Module: m.Module}
		if complete := s.checkModel(m, dialect, &mc); complete {
			if err := checkKeys(ctx, db, dialect, m, &mc); err != nil {
				return nil, err
			}
			if err := s.checkKeySequences(ctx, db, m, &mc); err != nil {
				return nil, err
			}
		}
		rep.Models = append(rep.Models, mc)
	}
	if dialect == Postgres {
		if err := checkReferenceIndexes(ctx, db, reg, rep); err != nil {
			return nil, err
		}
		if err := checkReplicaRole(ctx, db, rep); err != nil {
			return nil, err
		}
	}
	return rep, nil
}

func (c *ModelCheck) add(sev Severity, p Problem, field, format string, args ...any) {
	c.Findings = append(c.Findings, Finding{Severity: sev, Problem: p, Field: field, Message: fmt.Sprintf(format, args...)})
}

// checkModel judges m's metadata and columns. It reports whether the
// table and its key columns are there, so the key data can be examined.
func (s *snapshot) checkModel(m *Model, dialect string, mc *ModelCheck) bool {
	if _, installed := s.models[m.Name]; !installed {
		mc.add(Error, ModelNotInstalled, "", "model %s is not installed (no ir_model row): activate the Tryton module %s, or leave the model out of the catalogue", m.Name, m.Module)
		return false
	}
	irFields := s.fields[m.Name]
	cols, hasTable := s.tables[m.Table]
	if !hasTable {
		mc.add(Error, TableMissing, "", "table %s is missing although the model is installed: run trytond-admin --update for module %s", m.Table, m.Module)
	}

	// Fields an extending module adds, when all of them are missing, are
	// one finding: the module is not activated.
	missingModule := map[string]bool{}
	byModule := map[string][]string{}
	for _, f := range m.Fields {
		if f.Module != m.Module {
			byModule[f.Module] = append(byModule[f.Module], f.Name)
		}
	}
	for _, mod := range slices.Sorted(maps.Keys(byModule)) {
		names := byModule[mod]
		all := true
		for _, n := range names {
			if _, ok := irFields[n]; ok {
				all = false
				break
			}
		}
		if all {
			missingModule[mod] = true
			mc.add(Error, ModuleNotInstalled, "", "module %s is not activated: its %d fields on this model are missing (%s); activate it, or leave those fields out of the catalogue",
				mod, len(names), abbreviate(names, 8))
		}
	}

	for i := range m.Fields {
		f := &m.Fields[i]
		if missingModule[f.Module] {
			continue
		}
		irf, ok := irFields[f.Name]
		if !ok {
			mc.add(Error, FieldMissing, f.Name, "field %s (%s, module %s) is not in ir_model_field: the installed module %s is older or different from GNU Health 4.0",
				f.Name, f.Type, f.Module, f.Module)
		} else {
			if got, err := ParseType(irf.ttype); err != nil || got != f.Type {
				mc.add(Error, FieldTypeMismatch, f.Name, "field %s is a %s in this database, the catalogue says %s", f.Name, irf.ttype, f.Type)
			} else if (f.Type == Many2One || f.Type == Many2Many) && irf.relation != f.Target {
				mc.add(Error, TargetMismatch, f.Name, "field %s points at %s in this database, the catalogue says %s", f.Name, orNone(irf.relation), f.Target)
			}
		}
		if !hasTable {
			continue
		}
		if f.Type == Many2Many {
			s.checkRelation(m, f, mc)
			continue
		}
		col, ok := cols[f.Column]
		if !ok {
			mc.add(Error, ColumnMissing, f.Name, "column %s.%s is missing (field %s, %s): ghsync cannot write it", m.Table, f.Column, f.Name, f.SQLType(dialect))
			continue
		}
		checkColumnType(m, f, col, dialect, mc)
		if col.notNull && !col.hasDefault && !f.Required {
			mc.add(Warning, NotNullOptional, f.Name, "column %s.%s is NOT NULL without a default, but the field is optional in the catalogue: records without a value would be refused here", m.Table, f.Column)
		}
	}

	if hasTable {
		var extra []string
		for _, name := range slices.Sorted(maps.Keys(cols)) {
			if IsAuditColumn(name) {
				continue
			}
			if _, ok := m.Field(name); ok {
				continue
			}
			col := cols[name]
			reason, skipped := m.NotSynced[name]
			switch {
			case col.notNull && !col.hasDefault && skipped && m.Reference:
				// Reference data is never inserted by ghsync.
			case col.notNull && !col.hasDefault && skipped:
				mc.add(Warning, RequiredNotSynced, name, "column %s.%s is NOT NULL but not synchronised, so records created on another instance cannot be inserted here: %s", m.Table, name, reason)
			case col.notNull && !col.hasDefault:
				mc.add(Error, UnknownRequiredColumn, name, "column %s.%s is NOT NULL without a default and unknown to the catalogue: ghsync could not fill it, so every insert would fail; add the field to the catalogue (or Skip it with a reason)", m.Table, name)
			case !skipped:
				extra = append(extra, name)
			}
		}
		if len(extra) > 0 {
			mc.add(Info, ExtraFields, "", "%s not in the catalogue and will not synchronise: %s", count(int64(len(extra)), "stored column is", "stored columns are"), abbreviate(extra, 10))
		}
	}
	var extraFields []string
	for _, name := range slices.Sorted(maps.Keys(irFields)) {
		if _, ok := m.Field(name); ok || IsAuditColumn(name) {
			continue
		}
		if _, ok := m.NotSynced[name]; ok {
			continue
		}
		if _, ok := cols[name]; ok {
			continue // already reported as a column
		}
		extraFields = append(extraFields, name)
	}
	if len(extraFields) > 0 {
		mc.add(Info, ExtraFields, "", "%s no column here (One2Many, Function, or not catalogued) and will not synchronise: %s", count(int64(len(extraFields)), "field has", "fields have"), abbreviate(extraFields, 10))
	}

	if !hasTable {
		return false
	}
	for _, k := range m.Key {
		if _, ok := cols[k]; !ok {
			return false
		}
	}
	return true
}

func (s *snapshot) checkRelation(m *Model, f *Field, mc *ModelCheck) {
	rel := f.Relation
	cols, ok := s.tables[rel.Table]
	if !ok {
		mc.add(Error, RelationMissing, f.Name, "relation table %s of Many2Many %s is missing", rel.Table, f.Name)
		return
	}
	for _, c := range []string{rel.OriginColumn, rel.TargetColumn} {
		if _, ok := cols[c]; !ok {
			mc.add(Error, RelationMissing, f.Name, "relation table %s of Many2Many %s has no column %s", rel.Table, f.Name, c)
		}
	}
}

// typeClass groups column types whose values are written the same way.
func typeClass(typ string) string {
	switch typ {
	case "character varying", "varchar", "text", "character", "char", "bpchar", "nvarchar", "clob":
		return "string"
	case "integer", "int", "int4", "int8", "bigint", "smallint", "int2":
		return "int"
	case "double precision", "real", "float", "float8", "float4", "double":
		return "float"
	case "numeric", "decimal":
		return "numeric"
	case "boolean", "bool":
		return "bool"
	case "date":
		return "date"
	case "timestamp without time zone", "timestamp with time zone", "timestamp", "datetime":
		return "timestamp"
	case "time without time zone", "time with time zone", "time":
		return "time"
	case "bytea", "blob":
		return "bytes"
	}
	return typ
}

var lengthRE = regexp.MustCompile(`\s*\(\s*(\d+)(?:\s*,\s*\d+)?\s*\)`)

// normaliseType lower-cases a declared column type and splits off its
// length or precision: "VARCHAR(2)" → ("varchar", 2),
// "timestamp(0) without time zone" → ("timestamp without time zone", 0).
func normaliseType(decl string) (string, int) {
	t := strings.ToLower(strings.TrimSpace(decl))
	n := 0
	if m := lengthRE.FindStringSubmatch(t); m != nil {
		fmt.Sscan(m[1], &n)
		t = lengthRE.ReplaceAllString(t, "")
	}
	t = strings.Join(strings.Fields(t), " ")
	if strings.HasPrefix(t, "character varying") || t == "varchar" || t == "character" || t == "char" {
		return t, n
	}
	return t, 0
}

func checkColumnType(m *Model, f *Field, col column, dialect string, mc *ModelCheck) {
	want, _ := normaliseType(f.SQLType(dialect))
	if col.typ != want {
		wc, gc := typeClass(want), typeClass(col.typ)
		fits := wc == gc || wc == "numeric" && gc == "float" || wc == "float" && gc == "numeric" ||
			wc == "int" && (gc == "numeric" || gc == "float")
		if fits {
			mc.add(Warning, ColumnTypeMismatch, f.Name, "column %s.%s is %s, Tryton would create %s for a %s: values still fit, but check precision", m.Table, f.Column, col.typ, want, f.Type)
		} else {
			mc.add(Error, ColumnTypeMismatch, f.Name, "column %s.%s is %s, but field %s is a %s (Tryton creates %s): ghsync's values would not fit", m.Table, f.Column, col.typ, f.Name, f.Type, want)
		}
		return
	}
	if f.Type == Char && col.length > 0 && (f.Size == 0 || col.length < f.Size) {
		mc.add(Warning, ColumnTypeMismatch, f.Name, "column %s.%s holds at most %d characters, the catalogue allows %s: longer values would be refused", m.Table, f.Column, col.length, sizeText(f.Size))
	}
}

func sizeText(n int) string {
	if n == 0 {
		return "any length"
	}
	return fmt.Sprintf("%d", n)
}

// checkKeys looks at the key data of a keyed model: records without a
// key, key values several records share, and keys that look like a
// per-instance sequence.
func checkKeys(ctx context.Context, db *sql.DB, dialect string, m *Model, mc *ModelCheck) error {
	if m.Kind != UniqueKey && m.Kind != CompositeKey {
		return nil
	}
	table := quote(m.Table)
	var isNull, notNull, cols []string
	for _, k := range m.Key {
		f, _ := m.Field(k)
		c := quote(f.Column)
		cols = append(cols, c)
		if f.Type == Char {
			isNull = append(isNull, fmt.Sprintf("(%s IS NULL OR %s = '')", c, c))
			notNull = append(notNull, fmt.Sprintf("(%s IS NOT NULL AND %s <> '')", c, c))
		} else {
			isNull = append(isNull, c+" IS NULL")
			notNull = append(notNull, c+" IS NOT NULL")
		}
	}
	keyText := strings.Join(m.Key, ", ")

	var n int64
	q := fmt.Sprintf("SELECT count(*) FROM %s WHERE %s", table, strings.Join(isNull, " OR "))
	if err := db.QueryRowContext(ctx, q).Scan(&n); err != nil {
		return fmt.Errorf("count %s records without a key: %w", m.Name, err)
	}
	if n > 0 {
		which := keyText + " is empty"
		if len(m.Key) > 1 {
			which = "one of " + keyText + " is empty"
		}
		it := "they"
		if n == 1 {
			it = "it"
		}
		mc.add(Warning, NullKeys, "", "%s no network key (%s): %s cannot be synchronised until it is set", count(n, "record has", "records have"), which, it)
	}

	q = fmt.Sprintf("SELECT count(*) FROM (SELECT 1 FROM %s WHERE %s GROUP BY %s HAVING count(*) > 1) d",
		table, strings.Join(notNull, " AND "), strings.Join(cols, ", "))
	if err := db.QueryRowContext(ctx, q).Scan(&n); err != nil {
		return fmt.Errorf("count %s duplicate keys: %w", m.Name, err)
	}
	if n > 0 {
		if m.Reference {
			mc.add(Warning, DuplicateKeys, "", "%s shared by several records (key: %s): references to them are ambiguous", count(n, "key value is", "key values are"), keyText)
		} else {
			mc.add(Error, DuplicateKeys, "", "%s shared by several records (key: %s): ghsync would merge each group into one network record; make them unique first", count(n, "key value is", "key values are"), keyText)
		}
	}

	// The capturer refuses the same values one record at a time
	// (CheckNetworkKey): the rule is sequenceKey and plainNumberSQL.
	f, ok := m.sequenceKey()
	if !ok {
		return nil
	}
	q = fmt.Sprintf("SELECT count(*) FROM %s WHERE %s", table, plainNumberSQL(quote(f.Column), dialect))
	if err := db.QueryRowContext(ctx, q).Scan(&n); err != nil {
		return fmt.Errorf("count %s sequence-like keys: %w", m.Name, err)
	}
	if n > 0 {
		mc.add(Error, SequenceKeys, "", "%s a plain number as %s (\"1\", \"2\", ...), as a per-instance sequence generates: other instances generate the same ones, so different records would share a network key; give them network-unique codes (GNU Health's uuid-based party codes, or an instance prefix) before the first synchronisation", count(n, "record has", "records have"), keyText)
	}
	return nil
}

// count writes n with the singular or plural noun phrase.
func count(n int64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

func quote(ident string) string { return `"` + strings.ReplaceAll(ident, `"`, `""`) + `"` }

func orNone(s string) string {
	if s == "" {
		return "nothing"
	}
	return s
}

func abbreviate(names []string, n int) string {
	if len(names) <= n {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:n], ", "), len(names)-n)
}

func readPostgres(ctx context.Context, db *sql.DB) (*snapshot, error) {
	s := &snapshot{tables: map[string]map[string]column{}}
	rows, err := db.QueryContext(ctx, `SELECT table_name, column_name, data_type, COALESCE(character_maximum_length, 0),
		is_nullable = 'NO', column_default IS NOT NULL
		FROM information_schema.columns WHERE table_schema = current_schema()`)
	if err != nil {
		return nil, fmt.Errorf("read columns: %w", err)
	}
	for rows.Next() {
		var table, name, typ string
		var c column
		if err := rows.Scan(&table, &name, &typ, &c.length, &c.notNull, &c.hasDefault); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read columns: %w", err)
		}
		c.typ = strings.ToLower(typ)
		if s.tables[table] == nil {
			s.tables[table] = map[string]column{}
		}
		s.tables[table][name] = c
	}
	if err := rows.Close(); err != nil {
		return nil, fmt.Errorf("read columns: %w", err)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read columns: %w", err)
	}
	return s, s.readIR(ctx, db)
}

func readSQLite(ctx context.Context, db *sql.DB, reg *Registry) (*snapshot, error) {
	s := &snapshot{tables: map[string]map[string]column{}}
	rows, err := db.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table'`)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	present := map[string]bool{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			rows.Close()
			return nil, fmt.Errorf("list tables: %w", err)
		}
		present[name] = true
	}
	if err := rows.Close(); err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	wanted := []string{"ir_model", "ir_model_field", "ir_module", "ir_model_data", "ir_sequence"}
	for _, ks := range keySequences {
		wanted = append(wanted, ks.config)
	}
	for _, m := range reg.Models() {
		wanted = append(wanted, m.Table)
		for _, f := range m.Fields {
			if f.Relation != nil {
				wanted = append(wanted, f.Relation.Table)
			}
		}
	}
	sort.Strings(wanted)
	for _, table := range slices.Compact(wanted) {
		if !present[table] {
			continue
		}
		cols := map[string]column{}
		rows, err := db.QueryContext(ctx, `SELECT name, type, "notnull", dflt_value IS NOT NULL, pk FROM pragma_table_info(?)`, table)
		if err != nil {
			return nil, fmt.Errorf("read columns of %s: %w", table, err)
		}
		for rows.Next() {
			var name, typ string
			var notNull, hasDefault bool
			var pk int
			if err := rows.Scan(&name, &typ, &notNull, &hasDefault, &pk); err != nil {
				rows.Close()
				return nil, fmt.Errorf("read columns of %s: %w", table, err)
			}
			t, n := normaliseType(typ)
			// An INTEGER PRIMARY KEY is the rowid: it fills itself.
			cols[name] = column{typ: t, length: n, notNull: notNull || pk > 0, hasDefault: hasDefault || pk > 0}
		}
		if err := rows.Close(); err != nil {
			return nil, fmt.Errorf("read columns of %s: %w", table, err)
		}
		s.tables[table] = cols
	}
	return s, s.readIR(ctx, db)
}

// readIR reads ir_model and ir_model_field.
func (s *snapshot) readIR(ctx context.Context, db *sql.DB) error {
	if _, ok := s.tables["ir_model"]; !ok {
		return ErrNotTryton
	}
	s.models = map[string]string{}
	s.fields = map[string]map[string]irField{}
	rows, err := db.QueryContext(ctx, `SELECT model, COALESCE(module, '') FROM ir_model`)
	if err != nil {
		return fmt.Errorf("read ir_model: %w", err)
	}
	for rows.Next() {
		var model, module string
		if err := rows.Scan(&model, &module); err != nil {
			rows.Close()
			return fmt.Errorf("read ir_model: %w", err)
		}
		s.models[model] = module
	}
	if err := rows.Close(); err != nil {
		return fmt.Errorf("read ir_model: %w", err)
	}
	rows, err = db.QueryContext(ctx, `SELECT m.model, f.name, COALESCE(f.ttype, ''), COALESCE(f.relation, ''), COALESCE(f.module, '')
		FROM ir_model_field f JOIN ir_model m ON m.id = f.model`)
	if err != nil {
		return fmt.Errorf("read ir_model_field: %w", err)
	}
	for rows.Next() {
		var model, name string
		var f irField
		if err := rows.Scan(&model, &name, &f.ttype, &f.relation, &f.module); err != nil {
			rows.Close()
			return fmt.Errorf("read ir_model_field: %w", err)
		}
		if s.fields[model] == nil {
			s.fields[model] = map[string]irField{}
		}
		s.fields[model][name] = f
	}
	if err := rows.Close(); err != nil {
		return fmt.Errorf("read ir_model_field: %w", err)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read ir_model_field: %w", err)
	}
	return s.readModules(ctx, db)
}

// keySequence is where Tryton configures the ir.sequence that fills a
// model's key field when a record is created without a value for it.
type keySequence struct {
	model, field string
	// config is the configuration table (a MultiValue of a singleton
	// configuration model) and column the column holding the ir_sequence
	// id.
	config, column string
	// module and xmlID name the default sequence (ir_model_data) that
	// Tryton uses while the configuration holds no row; "" if unknown.
	module, xmlID string
	// filledBy is a module that, when activated, fills the field itself
	// so that the sequence is not used; "" if none.
	filledBy string
}

// keySequences are the sequences known to fill catalogue keys. Plain
// Tryton numbers party codes from the "Party" sequence ("1", "2", ...;
// tryton_schema.txt); GNU Health's health module fills them with
// "<uuid4>-<name>" instead, so its still unprefixed Party sequence is
// harmless there. GNU Health's own per-instance sequences (appointments
// "APP 2026/1", evaluations, prescriptions: gnuhealth.sequences,
// health_schema.txt) fill fields of models the catalogue identifies by
// UUID; they matter only to a registry that keys those models by that
// field.
var keySequences = []keySequence{
	{model: "party.party", field: "code", config: "party_configuration_party_sequence", column: "party_sequence",
		module: "party", xmlID: "sequence_party", filledBy: "health"},
	{model: "gnuhealth.appointment", field: "name", config: "gnuhealth_sequences_appointment_sequence", column: "appointment_sequence"},
	{model: "gnuhealth.patient.evaluation", field: "code", config: "gnuhealth_sequences_patient_evaluation_sequence", column: "patient_evaluation_sequence"},
	{model: "gnuhealth.prescription.order", field: "prescription_id", config: "gnuhealth_sequences_prescription_sequence", column: "prescription_sequence"},
}

// irSequence is an ir_sequence row.
type irSequence struct {
	id             int64
	name           string
	prefix, suffix string
}

// checkKeySequences refuses a unique key that Tryton fills from a
// per-database sequence without an instance marker: every instance then
// generates the same keys ("1", "2", ...), so different records would
// share one network identity. This is judged from the configuration, so
// it is caught on an empty database, before the first record exists.
//
// Only a sequence with neither prefix nor suffix is refused: whether a
// prefix is shared by several instances cannot be known from one
// database (GNU Health's "APP ${year}/" is the same everywhere).
func (s *snapshot) checkKeySequences(ctx context.Context, db *sql.DB, m *Model, mc *ModelCheck) error {
	if m.Kind != UniqueKey {
		return nil
	}
	for _, ks := range keySequences {
		if ks.model != m.Name || m.Key[0] != ks.field {
			continue
		}
		if ks.filledBy != "" && s.activated(ks.filledBy, m.Name) {
			continue
		}
		seqs, err := s.keySequenceRows(ctx, db, ks)
		if err != nil {
			return fmt.Errorf("read the sequence of %s.%s: %w", m.Name, ks.field, err)
		}
		for _, seq := range seqs {
			if strings.TrimSpace(seq.prefix) != "" || strings.TrimSpace(seq.suffix) != "" {
				continue
			}
			mc.add(Error, KeyNotNetworkUnique, ks.field,
				"key %s of %s is filled from the sequence %q (ir_sequence id %d), which has no prefix: every instance generates the same values from it (\"1\", \"2\", ...), so different records made on different instances would share one network key and be merged; before the first synchronisation either give that sequence a prefix unique to this instance (Tryton: Administration > Sequences > %s, e.g. \"A-\" here and \"B-\" on the next instance), or identify %s by UUID in ghsync's configuration (models.Registry.WithUUIDIdentity)",
				ks.field, m.Name, seq.name, seq.id, seq.name, m.Name)
		}
	}
	return nil
}

// activated reports whether module is activated: from ir_module when the
// database has it, else from whether ir_model_field lists a field of
// model declared by module.
func (s *snapshot) activated(module, model string) bool {
	if s.modules != nil {
		switch s.modules[module] {
		case "activated", "to upgrade", "to remove":
			return true
		}
		return false
	}
	for _, f := range s.fields[model] {
		if f.module == module {
			return true
		}
	}
	return false
}

// keySequenceRows reads the sequences ks's configuration names: every
// configured one (a MultiValue may hold one per company), or the default
// sequence while the configuration holds no row. A configuration row
// naming no sequence means codes are typed by hand: nothing to judge.
func (s *snapshot) keySequenceRows(ctx context.Context, db *sql.DB, ks keySequence) ([]irSequence, error) {
	cfg, ok := s.tables[ks.config]
	if _, col := cfg[ks.column]; !ok || !col {
		return nil, nil
	}
	seqCols, ok := s.tables["ir_sequence"]
	if !ok {
		return nil, nil
	}
	fix := func(col string) string {
		if _, ok := seqCols[col]; ok {
			return "COALESCE(s." + quote(col) + ", '')"
		}
		return "''"
	}
	sel := "SELECT s.id, s.name, " + fix("prefix") + ", " + fix("suffix") + " FROM ir_sequence s "
	var rows int64
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM "+quote(ks.config)).Scan(&rows); err != nil {
		return nil, err
	}
	var q string
	switch {
	case rows > 0:
		q = sel + "JOIN " + quote(ks.config) + " c ON c." + quote(ks.column) + " = s.id ORDER BY s.id"
	case ks.xmlID != "" && s.tables["ir_model_data"] != nil:
		q = sel + "JOIN ir_model_data d ON d.db_id = s.id WHERE d.model = 'ir.sequence' AND d.module = " +
			literal(ks.module) + " AND d.fs_id = " + literal(ks.xmlID)
	default:
		return nil, nil
	}
	r, err := db.QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var out []irSequence
	for r.Next() {
		var seq irSequence
		if err := r.Scan(&seq.id, &seq.name, &seq.prefix, &seq.suffix); err != nil {
			return nil, err
		}
		if len(out) == 0 || out[len(out)-1].id != seq.id {
			out = append(out, seq)
		}
	}
	return out, r.Err()
}

// readModules reads ir_module, if the database has it.
func (s *snapshot) readModules(ctx context.Context, db *sql.DB) error {
	if _, ok := s.tables["ir_module"]; !ok {
		return nil
	}
	rows, err := db.QueryContext(ctx, `SELECT name, COALESCE(state, '') FROM ir_module`)
	if err != nil {
		return fmt.Errorf("read ir_module: %w", err)
	}
	defer rows.Close()
	s.modules = map[string]string{}
	for rows.Next() {
		var name, state string
		if err := rows.Scan(&name, &state); err != nil {
			return fmt.Errorf("read ir_module: %w", err)
		}
		s.modules[name] = state
	}
	return rows.Err()
}

// literal quotes an SQL string literal (ghsync's own constants only).
func literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
