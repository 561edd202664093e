package capture

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// TestSQLiteObjectMatchesOneJSONObject: the chunked row image of a wide
// table is, byte for byte, what the single json_object call the triggers
// made before gave (modernc's SQLite still accepts that call), NULLs,
// blobs, braces and quotes included, and no function call in it takes
// more than sqliteMaxArgs arguments.
func TestSQLiteObjectMatchesOneJSONObject(t *testing.T) {
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "wide.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	types := []string{"INTEGER", "VARCHAR", "NUMERIC", "BOOLEAN", "TIMESTAMP", "BLOB", "TEXT", "REAL"}
	var cols []column
	var defs, marks []string
	for i := range 130 {
		name := fmt.Sprintf("c%d", i)
		switch i {
		case 50:
			name = `{brace` // first of the second chunk
		case 99:
			name = `brace}` // last of the second chunk
		case 100:
			name = `quo"te`
		}
		c := column{name: name, typ: types[i%len(types)]}
		cols = append(cols, c)
		defs = append(defs, quoteIdent(c.name)+" "+c.typ)
		marks = append(marks, "?")
	}
	if _, err := db.Exec(`CREATE TABLE wide (` + strings.Join(defs, ", ") + `)`); err != nil {
		t.Fatal(err)
	}
	// Row 1 holds a value in every column, row 2 NULLs only, row 3 NULLs
	// at the chunks' edges (49, 50, 99, 100) and values elsewhere.
	values := func(nullAt func(i int) bool) []any {
		args := make([]any, len(cols))
		for i, c := range cols {
			if nullAt(i) {
				continue
			}
			switch c.typ {
			case "INTEGER", "BOOLEAN":
				args[i] = i % 2
			case "NUMERIC", "REAL":
				args[i] = -12.5e3 + float64(i)
			case "BLOB":
				args[i] = []byte{0x89, 'P', 'N', 'G', byte(i)}
			default:
				args[i] = fmt.Sprintf(`}{"%d" caf\u00e9 \ "x"}`, i)
			}
		}
		return args
	}
	rows := [][]any{
		values(func(int) bool { return false }),
		values(func(int) bool { return true }),
		values(func(i int) bool { return i == 49 || i == 50 || i == 99 || i == 100 }),
	}
	for _, args := range rows {
		if _, err := db.Exec(`INSERT INTO wide VALUES (`+strings.Join(marks, ", ")+`)`, args...); err != nil {
			t.Fatal(err)
		}
	}
	// The chunked query runs with SQLite's function argument limit
	// lowered to sqliteMaxArgs, so SQLite itself rejects a longer call.
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	images := func(q string) []string {
		t.Helper()
		rs, err := conn.QueryContext(context.Background(), `SELECT `+q+` FROM wide t ORDER BY rowid`)
		if err != nil {
			t.Fatalf("%.60s...: %v", q, err)
		}
		defer rs.Close()
		var out []string
		for rs.Next() {
			var s string
			if err := rs.Scan(&s); err != nil {
				t.Fatal(err)
			}
			out = append(out, s)
		}
		if err := rs.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	for _, n := range []int{0, 1, 49, 50, 51, 99, 100, 101, 130} {
		var parts []string
		for _, c := range cols[:n] {
			parts = append(parts, quoteLit(c.name)+", "+c.expr("t"))
		}
		if _, err := sqlite.Limit(conn, sqlite3.SQLITE_LIMIT_FUNCTION_ARG, 1000); err != nil {
			t.Fatal(err)
		}
		want := images("json_object(" + strings.Join(parts, ", ") + ")")
		if _, err := sqlite.Limit(conn, sqlite3.SQLITE_LIMIT_FUNCTION_ARG, sqliteMaxArgs); err != nil {
			t.Fatal(err)
		}
		got := images(sqliteObject(cols[:n], "t"))
		if len(got) != len(want) {
			t.Fatalf("%d columns: %d images, want %d", n, len(got), len(want))
		}
		for r := range want {
			if got[r] != want[r] {
				t.Fatalf("%d columns, row %d: chunked image\n%s\nwant\n%s", n, r+1, got[r], want[r])
			}
			if _, err := parseRow([]byte(got[r])); err != nil {
				t.Fatalf("%d columns, row %d: %v", n, r+1, err)
			}
		}
	}
}
