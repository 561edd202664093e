package projections

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ghsync/ghsync/internal/pgtest"
)

// TestWireValuesAsServerReadsThem sends ops through pgBatch's binary
// arrays and reads every column back as the server's text: what the
// server stores must be exactly what the values' text forms say, for the
// corner cases of each encoding (NULLs, empty strings, wall clocks in
// other zones, days before 2000 and before 1970, sub-microsecond parts).
func TestWireValuesAsServerReadsThem(t *testing.T) {
	ctx := context.Background()
	d, err := openPostgres(ctx, pgtest.NewDatabase(t), false)
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	if _, err := d.pool.Exec(ctx, `CREATE TABLE w (k integer PRIMARY KEY, i integer, b bigint, bo boolean,
		ts timestamp(6) without time zone, dt date, tx text, v character varying(20), n numeric, f double precision, by bytea)`); err != nil {
		t.Fatal(err)
	}
	cols := []string{"k", "i", "b", "bo", "ts", "dt", "tx", "v", "n", "f", "by"}
	types := []string{"integer", "integer", "bigint", "boolean", "timestamp(6) without time zone", "date", "text",
		"character varying(20)", "numeric", "double precision", "bytea"}
	east := time.FixedZone("UTC+5", 5*3600)
	west := time.FixedZone("UTC-7", -7*3600)
	cases := []struct {
		row  []any
		want string // the row as the server renders it
	}{
		{[]any{int64(1), int64(-2147483648), int64(9223372036854775807), true,
			time.Date(2026, 11, 30, 15, 4, 5, 123456789, time.UTC), time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC),
			"Ana María", "ñandú", "12.50", 0.1, []byte{0, 1, 0xfe}},
			`(1,-2147483648,9223372036854775807,t,"2026-11-30 15:04:05.123456",2026-11-30,"Ana María",ñandú,12.50,0.1,"\\x0001fe")`},
		{[]any{int64(2), nil, nil, nil, nil, nil, nil, nil, nil, nil, nil}, `(2,,,,,,,,,,)`},
		{[]any{int(3), int(0), int64(-1), false,
			time.Date(1969, 12, 31, 23, 59, 59, 999999999, east), time.Date(1999, 12, 31, 23, 30, 0, 0, east),
			"", "", "-0.001", -2.5e-300, []byte{}},
			`(3,0,-1,f,"1969-12-31 23:59:59.999999",1999-12-31,"","",-0.001,-2.5e-300,"\\x")`},
		{[]any{int64(4), int64(7), int64(8), true,
			time.Date(1900, 1, 1, 0, 0, 0, 1000, west), time.Date(1900, 1, 1, 0, 0, 0, 0, west),
			`quote " and \ backslash`, "{braces,}", "1e3", 3.0, []byte("x")},
			`(4,7,8,t,"1900-01-01 00:00:00.000001",1900-01-01,"quote "" and \\ backslash","{braces,}",1000,3,"\\x78")`},
		// A value the column's wire type does not carry sends the column as text.
		{[]any{int64(5), "42", int64(9), true,
			time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC),
			"t", "v", "0", 1.0, []byte("y")},
			`(5,42,9,t,"2000-01-01 00:00:00",2000-01-01,t,v,0,1,"\\x79")`},
	}
	insert := &op{kind: opInsert, table: "w", cols: cols, types: types}
	for _, c := range cases {
		insert.rows = append(insert.rows, c.row)
	}
	tx, err := d.begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tx.queueOp(insert)
	if err := tx.flush(ctx); err != nil {
		t.Fatalf("insert: %v", err)
	}
	if err := tx.commit(ctx); err != nil {
		t.Fatal(err)
	}
	read := func() map[int]string {
		t.Helper()
		rows, err := d.pool.Query(ctx, `SELECT k, w::text FROM w ORDER BY k`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		got := map[int]string{}
		for rows.Next() {
			var k int
			var s string
			if err := rows.Scan(&k, &s); err != nil {
				t.Fatal(err)
			}
			got[k] = s
		}
		return got
	}
	got := read()
	for i, c := range cases {
		if got[i+1] != c.want { // the cases' keys are 1, 2, ...
			t.Errorf("row %d:\n got %s\nwant %s", i+1, got[i+1], c.want)
		}
	}

	// Updates and deletes key on binary integers; the queued statements
	// around them take text arguments.
	tx, err = d.begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tx.queueOp(&op{kind: opUpdate, table: "w", keys: 1, cols: []string{"k", "tx", "ts"}, types: []string{"integer", "text", "timestamp(6) without time zone"},
		rows: [][]any{{int64(1), "renamed", nil}, {int64(4), nil, time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)}}})
	tx.queueOp(&op{kind: opDelete, table: "w", cols: []string{"k"}, types: []string{"integer"}, rows: [][]any{{int64(2)}, {int64(3)}}})
	tx.queue(`UPDATE w SET v = ?, by = ? WHERE k = ?`, "", []byte{7}, int64(5))
	if err := tx.flush(ctx); err != nil {
		t.Fatalf("update and delete: %v", err)
	}
	if err := tx.commit(ctx); err != nil {
		t.Fatal(err)
	}
	got = read()
	want := map[int]string{
		1: `(1,-2147483648,9223372036854775807,t,,2026-11-30,renamed,ñandú,12.50,0.1,"\\x0001fe")`,
		4: `(4,7,8,t,"2001-02-03 04:05:06",1900-01-01,,"{braces,}",1000,3,"\\x78")`,
		5: `(5,42,9,t,"2000-01-01 00:00:00",2000-01-01,t,"",0,1,"\\x07")`,
	}
	if len(got) != len(want) {
		t.Errorf("rows %v, want keys 1, 4 and 5", got)
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("after update, row %d:\n got %s\nwant %s", k, got[k], w)
		}
	}

	// Out of range for the column: the server refuses, naming the type,
	// and the transaction stores nothing.
	tx, err = d.begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tx.queueOp(&op{kind: opInsert, table: "w", cols: []string{"k", "i"}, types: []string{"integer", "integer"},
		rows: [][]any{{int64(6), int64(1)}, {int64(7), int64(1) << 40}}})
	err = tx.flush(ctx)
	tx.rollback(ctx)
	if err == nil || !strings.Contains(err.Error(), "out of range") {
		t.Fatalf("an integer beyond 32 bits: %v, want out of range", err)
	}
	// A Go value nothing encodes is an error before anything is sent.
	tx, err = d.begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tx.queueOp(&op{kind: opInsert, table: "w", cols: []string{"k", "tx"}, types: []string{"integer", "text"},
		rows: [][]any{{int64(8), struct{}{}}}})
	err = tx.flush(ctx)
	tx.rollback(ctx)
	if err == nil || !strings.Contains(err.Error(), "w row 1 column tx") {
		t.Fatalf("an unencodable value: %v, want an error naming table, row and column", err)
	}
	if after := read(); len(after) != 3 {
		t.Errorf("failed transactions left rows: %v", after)
	}
}
