package projections

import (
	"strings"
)

// opKind is what a set-based write does.
type opKind uint8

const (
	opInsert opKind = iota // INSERT rows (cols) [suffix]
	opUpdate               // UPDATE rows: the first keys cols identify the row, the rest are set
	opDelete               // DELETE the rows whose cols equal a row's values
)

// op is one set-based write: many rows, one statement on PostgreSQL (an
// unnest of column arrays), one prepared statement run per row on SQLite.
type op struct {
	kind   opKind
	table  string   // already qualified/quoted as needed
	cols   []string // column names
	types  []string // PostgreSQL types of cols, for casts ("bytea" travels as bytes)
	suffix string   // e.g. ON CONFLICT ... for inserts
	keys   int      // opUpdate: how many leading cols identify the row
	rows   [][]any
	// cascades says the rows' deletion must fire the table's ON DELETE
	// actions (references.go): it runs in the origin role.
	cascades bool
}

// writes gathers one round's ops in the order they must run: the order in
// which each op first received a row. The projector adds rows in
// dependency order (deletes of referrers first, inserts of targets first),
// so the ops inherit it.
type writes struct {
	order []*op
	by    map[string]*op
	sig   []byte // scratch: an op's signature, built once a row without allocating
}

func (w *writes) add(kind opKind, table string, cols, types []string, suffix string, row ...any) {
	w.addOp(kind, 1, table, cols, types, suffix, row)
}

// updateBy adds a row to an UPDATE whose first keys cols identify rows.
func (w *writes) updateBy(keys int, table string, cols, types []string, row ...any) {
	w.addOp(opUpdate, keys, table, cols, types, "", row)
}

func (w *writes) addOp(kind opKind, keys int, table string, cols, types []string, suffix string, row []any) {
	o := w.declare(kind, keys, table, cols, types, suffix)
	o.rows = append(o.rows, row)
}

// addAlone adds a row as a statement of its own, run in its place in the
// order: a row whose unique key another row of the round takes next.
func (w *writes) addAlone(kind opKind, table string, cols, types []string, row ...any) {
	w.order = append(w.order, &op{kind: kind, table: table, cols: cols, types: types, keys: 1, rows: [][]any{row}})
}

// declare returns the op, giving it its place in the order if it has none
// yet: an op declared early runs before ops first added to later, even if
// its own rows come after theirs.
func (w *writes) declare(kind opKind, keys int, table string, cols, types []string, suffix string) *op {
	sig := append(w.sig[:0], byte('0'+kind), byte('0'+keys), 0)
	sig = append(append(sig, table...), 0)
	for _, c := range cols {
		sig = append(append(sig, c...), ',')
	}
	sig = append(append(sig, 0), suffix...)
	w.sig = sig
	o := w.by[string(sig)] // no allocation: the compiler looks up the bytes
	if o == nil {
		if w.by == nil {
			w.by = map[string]*op{}
		}
		o = &op{kind: kind, table: table, cols: cols, types: types, suffix: suffix, keys: keys}
		w.by[string(sig)] = o
		w.order = append(w.order, o)
	}
	return o
}

// sqlitePerRow renders an op as one statement with ? placeholders, run per row.
func (o *op) sqlitePerRow() string {
	q := make([]string, len(o.cols))
	for i := range q {
		q[i] = "?"
	}
	switch o.kind {
	case opInsert:
		return "INSERT INTO " + o.table + " (" + joinIdents(o.cols) + ") VALUES (" + strings.Join(q, ", ") + ") " + o.suffix
	case opUpdate:
		set := make([]string, len(o.cols)-o.keys)
		for i, c := range o.cols[o.keys:] {
			set[i] = quoteIdent(c) + " = ?"
		}
		where := make([]string, o.keys)
		for i, c := range o.cols[:o.keys] {
			where[i] = quoteIdent(c) + " = ?"
		}
		return "UPDATE " + o.table + " SET " + strings.Join(set, ", ") + " WHERE " + strings.Join(where, " AND ")
	default:
		where := make([]string, len(o.cols))
		for i, c := range o.cols {
			where[i] = quoteIdent(c) + " = ?"
		}
		return "DELETE FROM " + o.table + " WHERE " + strings.Join(where, " AND ")
	}
}

// sqliteArgs orders a row's values for sqlitePerRow's placeholders.
func (o *op) sqliteArgs(row []any) []any {
	if o.kind == opUpdate {
		return append(append([]any{}, row[o.keys:]...), row[:o.keys]...)
	}
	return row
}

// postgresSet renders an op as one statement over unnest($1, $2, ...), one
// array parameter per column, each of its wire type and cast to the
// column's type.
func (o *op) postgresSet(wires []wire) string {
	arrays := make([]string, len(o.cols))
	alias := make([]string, len(o.cols))
	cast := make([]string, len(o.cols))
	for i, t := range o.types {
		alias[i] = "c" + itoa(i)
		arrays[i] = "$" + itoa(i+1) + "::" + wires[i].name + "[]"
		if wires[i] == wireBytea {
			cast[i] = "u." + alias[i]
		} else {
			cast[i] = "u." + alias[i] + "::" + t
		}
	}
	from := " FROM unnest(" + strings.Join(arrays, ", ") + ") AS u(" + strings.Join(alias, ", ") + ")"
	switch o.kind {
	case opInsert:
		return "INSERT INTO " + o.table + " (" + joinIdents(o.cols) + ") SELECT " + strings.Join(cast, ", ") + from + " " + o.suffix
	case opUpdate:
		set := make([]string, len(o.cols)-o.keys)
		for i, c := range o.cols[o.keys:] {
			set[i] = quoteIdent(c) + " = " + cast[o.keys+i]
		}
		where := make([]string, o.keys)
		for i, c := range o.cols[:o.keys] {
			where[i] = "t." + quoteIdent(c) + " = " + cast[i]
		}
		return "UPDATE " + o.table + " AS t SET " + strings.Join(set, ", ") + from + " WHERE " + strings.Join(where, " AND ")
	default:
		if len(o.cols) == 1 { // no join: one scan or index probe whatever the planner's settings
			return "DELETE FROM " + o.table + " WHERE " + quoteIdent(o.cols[0]) + " = ANY (" + arrays[0] + "::" + o.types[0] + "[])"
		}
		return "DELETE FROM " + o.table + " WHERE (" + joinIdents(o.cols) + ") IN (SELECT " + strings.Join(cast, ", ") + from + ")"
	}
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}
