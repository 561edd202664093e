package capture_test

import (
	"database/sql"
	"os"
	"os/exec"
	"strings"
	"testing"

	sqlitedrv "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/models"
)

// Most SQLite builds in clinics predate 3.48 and refuse a function call
// of more than 127 arguments (SQLITE_MAX_FUNCTION_ARG), so much that
// they will not open a database whose schema holds one. gnuhealth_patient
// (92 columns) is the catalogue's widest table: its triggers' row images
// once called json_object with 176 arguments.

// defaultFunctionArgLimit is SQLITE_MAX_FUNCTION_ARG before SQLite 3.48.
const defaultFunctionArgLimit = 127

// forEachSQLiteLayout runs fn on the layouts whose Tryton database is SQLite.
func forEachSQLiteLayout(t *testing.T, fn func(t *testing.T, lay layout)) {
	for _, lay := range layouts {
		if lay.dialect == models.SQLite {
			t.Run(lay.name, func(t *testing.T) { fn(t, lay) })
		}
	}
}

// wideWrites are the changes made to a gnuhealth_patient row, columns in
// both halves of its image (hb among the first 50, the others after),
// and the events they must be captured as.
func wideWrites(t *testing.T) (create, write map[string]any, wants []want) {
	create = map[string]any{"hb": "aa", "critical_info": `}{"allergic", "to": {x}}`, "sleep_hours": 7,
		"ses_notes": "café }", "works_at_home": true}
	write = map[string]any{"hb": "as", "critical_info": nil, "works_at_home": false}
	wants = []want{
		{model: "party.party", op: ledger.OpCreate, key: "P-1", user: "nurse"},
		{model: "gnuhealth.patient", op: ledger.OpCreate, key: "P-1", user: "nurse", fields: map[string]ledger.Value{
			"name": ref(t, "party.party", "P-1"), "hb": ledger.String("aa"), "critical_info": ledger.String(`}{"allergic", "to": {x}}`),
			"sleep_hours": ledger.Int(7), "ses_notes": ledger.String("café }"), "works_at_home": ledger.Bool(true)}},
		{model: "gnuhealth.patient", op: ledger.OpWrite, key: "P-1", user: "nurse", fields: map[string]ledger.Value{
			"hb": ledger.String("as"), "critical_info": ledger.Null(), "works_at_home": ledger.Bool(false)},
			absent: []string{"ses_notes", "sleep_hours", "name"}},
		{model: "gnuhealth.patient", op: ledger.OpDelete, key: "P-1"}, // a delete names no user
	}
	return create, write, wants
}

// TestSQLiteCaptureWithinFunctionArgLimit opens a captured database with
// SQLite's function argument limit at 127 before its schema is read, as
// the sqlite3 CLI and Python's sqlite3 of Debian 12 do, reads it and
// writes a row of the widest table through it, whose triggers must
// capture the same events as ever.
func TestSQLiteCaptureWithinFunctionArgLimit(t *testing.T) {
	forEachSQLiteLayout(t, func(t *testing.T, lay layout) {
		s := newSite(t, lay, 7)
		nurse := s.insert("res_user", 1, map[string]any{"login": "nurse", "name": "Nurse Joy", "active": true})
		party := s.insert("party_party", nurse, map[string]any{"code": "P-1", "name": "Ana Brown", "active": true})

		// No pragma in the DSN: the schema must not be read before the
		// limit is set.
		db, err := sql.Open("sqlite", strings.TrimPrefix(s.target, "sqlite:"))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		conn, err := db.Conn(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := sqlitedrv.Limit(conn, sqlite3.SQLITE_LIMIT_FUNCTION_ARG, defaultFunctionArgLimit); err != nil {
			t.Fatal(err)
		}
		exec := func(q string, args ...any) {
			t.Helper()
			if _, err := conn.ExecContext(ctx(t), q, args...); err != nil {
				t.Fatalf("%s, with at most %d function arguments: %v", q, defaultFunctionArgLimit, err)
			}
		}
		exec(`PRAGMA busy_timeout = 10000`)
		var parties int
		if err := conn.QueryRowContext(ctx(t), `SELECT count(*) FROM party_party`).Scan(&parties); err != nil {
			t.Fatalf("read the captured database with at most %d function arguments: %v", defaultFunctionArgLimit, err)
		}
		if parties != 1 {
			t.Fatalf("party_party holds %d rows, want 1", parties)
		}

		create, write, wants := wideWrites(t)
		cols, marks := []string{"name", "create_uid", "create_date"}, []string{"?", "?", "?"}
		args := []any{party, nurse, "2026-01-05 10:00:00"}
		for k, v := range create {
			cols, marks, args = append(cols, k), append(marks, "?"), append(args, v)
		}
		exec(`INSERT INTO gnuhealth_patient (`+strings.Join(cols, ", ")+`) VALUES (`+strings.Join(marks, ", ")+`)`, args...)
		sets, args := []string{"write_uid = ?", "write_date = ?"}, []any{nurse, "2026-01-05 10:05:00"}
		for k, v := range write {
			sets, args = append(sets, k+" = ?"), append(args, v)
		}
		exec(`UPDATE gnuhealth_patient SET `+strings.Join(sets, ", ")+` WHERE name = ?`, append(args, party)...)
		exec(`DELETE FROM gnuhealth_patient WHERE name = ?`, party)
		check(t, s.drain(), wants)
	})
}

// TestSQLiteCaptureOpensWithSystemPython has the system's Python, whose
// sqlite3 module links the system's libsqlite3 (Tryton's SQLite backend),
// open a captured database and write a row of the widest table: its
// triggers run in that SQLite and the drain reads what they wrote.
func TestSQLiteCaptureOpensWithSystemPython(t *testing.T) {
	const python = "/usr/bin/python3"
	if _, err := os.Stat(python); err != nil {
		t.Skipf("no system Python to open the database with the system's libsqlite3: %v", err)
	}
	const script = `
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=10)
print(sqlite3.sqlite_version, file=sys.stderr)
nurse = db.execute("SELECT id FROM res_user WHERE login = 'nurse'").fetchone()[0]
db.execute("INSERT INTO party_party (code, name, active, create_uid, create_date) VALUES ('P-1', 'Ana Brown', 1, ?, '2026-01-05 10:00:00')", (nurse,))
party = db.execute("SELECT id FROM party_party WHERE code = 'P-1'").fetchone()[0]
db.execute("INSERT INTO gnuhealth_patient (name, create_uid, create_date, hb, critical_info, sleep_hours, ses_notes, works_at_home) VALUES (?, ?, '2026-01-05 10:00:00', 'aa', ?, 7, ?, 1)",
	(party, nurse, '}{"allergic", "to": {x}}', 'café }'))
db.commit()
db.execute("UPDATE gnuhealth_patient SET write_uid = ?, write_date = '2026-01-05 10:05:00', hb = 'as', critical_info = NULL, works_at_home = 0 WHERE name = ?", (nurse, party))
db.commit()
db.execute("DELETE FROM gnuhealth_patient WHERE name = ?", (party,))
db.commit()
print(db.execute("SELECT count(*) FROM party_party").fetchone()[0])
`
	forEachSQLiteLayout(t, func(t *testing.T, lay layout) {
		s := newSite(t, lay, 7)
		s.insert("res_user", 1, map[string]any{"login": "nurse", "name": "Nurse Joy", "active": true})
		cmd := exec.CommandContext(ctx(t), python, "-c", script, strings.TrimPrefix(s.target, "sqlite:"))
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s on the captured database: %v\n%s", python, err, stderr.String())
		}
		t.Logf("system SQLite %s", strings.TrimSpace(stderr.String()))
		if got := strings.TrimSpace(string(out)); got != "1" {
			t.Fatalf("%s counted %q parties, want 1", python, got)
		}
		_, _, wants := wideWrites(t)
		check(t, s.drain(), wants)
	})
}
