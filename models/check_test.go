package models_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"

	"github.com/ghsync/ghsync/fixtures"
	"github.com/ghsync/ghsync/internal/pgtest"
	"github.com/ghsync/ghsync/models"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func openDB(t *testing.T, dialect string) *sql.DB {
	t.Helper()
	var db *sql.DB
	var err error
	if dialect == models.Postgres {
		db, err = sql.Open("pgx", pgtest.NewDatabase(t))
	} else {
		db, err = sql.Open("sqlite", filepath.Join(t.TempDir(), "tryton.db"))
		db.SetMaxOpenConns(1)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func trytonDB(t *testing.T, dialect string) *sql.DB {
	t.Helper()
	db := openDB(t, dialect)
	if err := fixtures.CreateTrytonSchema(context.Background(), db, models.GNUHealth(), dialect); err != nil {
		t.Fatal(err)
	}
	return db
}

func check(t *testing.T, db *sql.DB, dialect string) *models.CheckReport {
	t.Helper()
	r, err := models.Check(context.Background(), db, dialect, models.GNUHealth())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func run(t *testing.T, db *sql.DB, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// finding is what a test expects: a model, a problem, a field, a severity.
type finding struct {
	model   string
	problem models.Problem
	field   string
	sev     models.Severity
}

func (f finding) String() string {
	return fmt.Sprintf("%s %s %s %s", f.sev, f.model, f.problem, f.field)
}

// serious returns the warnings and errors of r.
func serious(r *models.CheckReport) []finding {
	var out []finding
	for _, m := range r.Models {
		for _, f := range m.Findings {
			if f.Severity >= models.Warning {
				out = append(out, finding{m.Model, f.Problem, f.Field, f.Severity})
			}
		}
	}
	return out
}

func expect(t *testing.T, r *models.CheckReport, want []finding) {
	t.Helper()
	got := serious(r)
	key := func(f finding) string { return f.String() }
	gs, ws := make([]string, len(got)), make([]string, len(want))
	for i := range got {
		gs[i] = key(got[i])
	}
	for i := range want {
		ws[i] = key(want[i])
	}
	slices.Sort(gs)
	slices.Sort(ws)
	if !slices.Equal(gs, ws) {
		t.Errorf("findings:\n  %s\nwant:\n  %s\nreport:\n%s", strings.Join(gs, "\n  "), strings.Join(ws, "\n  "), r.Text())
	}
}

func TestCheck_FixtureIsClean(t *testing.T) {
	for _, dialect := range []string{models.Postgres, models.SQLite} {
		t.Run(dialect, func(t *testing.T) {
			r := check(t, trytonDB(t, dialect), dialect)
			for _, m := range r.Models {
				if len(m.Findings) > 0 {
					t.Errorf("%s: %+v", m.Model, m.Findings)
				}
			}
			if len(r.Models) != models.GNUHealth().Len() || !r.OK() || !strings.Contains(r.Text(), "READY: this database matches the catalogue") {
				t.Errorf("report of a fixture database:\n%s", r.Text())
			}
		})
	}
}

func TestCheck_Postgres(t *testing.T) {
	db := trytonDB(t, models.Postgres)
	run(t, db,
		// Schema drift.
		`ALTER TABLE gnuhealth_patient DROP COLUMN critical_info`,
		`ALTER TABLE gnuhealth_appointment ALTER COLUMN state TYPE integer USING NULL`,
		`ALTER TABLE gnuhealth_patient_evaluation ALTER COLUMN weight TYPE numeric`,
		`ALTER TABLE gnuhealth_vaccination ADD COLUMN lot_tracker integer NOT NULL`,
		`ALTER TABLE gnuhealth_inpatient_medication ADD COLUMN dose_unit integer NOT NULL`,
		`ALTER TABLE company_company ADD COLUMN currency integer NOT NULL`,
		`ALTER TABLE gnuhealth_newborn ADD COLUMN local_note text`,
		`ALTER TABLE gnuhealth_pathology ALTER COLUMN uri SET NOT NULL`,
		// Metadata drift: a module not activated, a field missing or
		// different.
		`DELETE FROM ir_model WHERE model = 'gnuhealth.iss'`,
		`DELETE FROM ir_model_field WHERE name = 'dob' AND model = (SELECT id FROM ir_model WHERE model = 'party.party')`,
		`UPDATE ir_model_field SET ttype = 'char' WHERE name = 'blood_type' AND model = (SELECT id FROM ir_model WHERE model = 'gnuhealth.patient')`,
		`UPDATE ir_model_field SET relation = 'party.party' WHERE name = 'patient' AND model = (SELECT id FROM ir_model WHERE model = 'gnuhealth.appointment')`,
		`DELETE FROM ir_model_field WHERE module = 'health_socioeconomics' AND model = (SELECT id FROM ir_model WHERE model = 'gnuhealth.patient')`,
		// Key data: numbered party codes, duplicate procedure codes (Tryton
		// has no unique constraint there), a sector without an area.
		`INSERT INTO party_party (code, active) VALUES ('1', true), ('2', true), ('a1b2-Ana', true)`,
		`ALTER TABLE gnuhealth_procedure DROP CONSTRAINT gnuhealth_procedure_name_uniq`,
		`INSERT INTO gnuhealth_procedure (name) VALUES ('0W9G30Z'), ('0W9G30Z')`,
		`INSERT INTO gnuhealth_operational_sector (name) VALUES ('North')`,
	)
	r := check(t, db, models.Postgres)
	E, W := models.Error, models.Warning
	expect(t, r, []finding{
		{"gnuhealth.patient", models.ColumnMissing, "critical_info", E},
		{"gnuhealth.appointment", models.ColumnTypeMismatch, "state", E},
		{"gnuhealth.patient.evaluation", models.ColumnTypeMismatch, "weight", W},
		{"gnuhealth.vaccination", models.UnknownRequiredColumn, "lot_tracker", E},
		{"gnuhealth.inpatient.medication", models.RequiredNotSynced, "dose_unit", W},
		{"gnuhealth.pathology", models.NotNullOptional, "uri", W},
		{"gnuhealth.iss", models.ModelNotInstalled, "", E},
		{"party.party", models.FieldMissing, "dob", E},
		{"gnuhealth.patient", models.FieldTypeMismatch, "blood_type", E},
		{"gnuhealth.appointment", models.TargetMismatch, "patient", E},
		{"gnuhealth.patient", models.ModuleNotInstalled, "", E},
		{"party.party", models.SequenceKeys, "", W},
		{"gnuhealth.procedure", models.DuplicateKeys, "", E},
		{"gnuhealth.operational_sector", models.NullKeys, "", W},
		// company.company is reference data: its unsynchronised required
		// currency is no problem, ghsync never inserts companies.
	})
	if r.OK() || r.Count(models.Error) != 9 {
		t.Errorf("OK %v with %d errors, want 9 errors", r.OK(), r.Count(models.Error))
	}
	if f := r.Find("gnuhealth.newborn", models.ExtraFields); len(f) != 1 || !strings.Contains(f[0].Message, "local_note") {
		t.Errorf("extra column local_note: %+v", f)
	}
	if f := r.Find("gnuhealth.patient", models.ModuleNotInstalled); len(f) != 1 || !strings.Contains(f[0].Message, "health_socioeconomics") {
		t.Errorf("module finding: %+v", f)
	}
	if f := r.Find("party.party", models.SequenceKeys); len(f) != 1 || !strings.HasPrefix(f[0].Message, "2 records") {
		t.Errorf("sequence-like party codes: %+v", f)
	}
	text := r.Text()
	for _, want := range []string{
		"gnuhealth.iss (table gnuhealth_iss, module health_iss)\n  ERROR    model gnuhealth.iss is not installed",
		"column gnuhealth_patient.critical_info is missing",
		"column gnuhealth_appointment.state is integer, but field state is a selection",
		"column gnuhealth_vaccination.lot_tracker is NOT NULL without a default and unknown to the catalogue",
		"NOT READY",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q:\n%s", want, text)
		}
	}
}

func TestCheck_SQLite(t *testing.T) {
	db := trytonDB(t, models.SQLite)
	run(t, db,
		`ALTER TABLE gnuhealth_patient DROP COLUMN critical_info`,
		`DELETE FROM ir_model WHERE model = 'gnuhealth.iss'`,
		`UPDATE ir_model_field SET ttype = 'integer' WHERE name = 'ref' AND model = (SELECT id FROM ir_model WHERE model = 'party.party')`,
		`INSERT INTO party_party (code, active) VALUES ('17', 1), ('P-17', 1)`,
	)
	r := check(t, db, models.SQLite)
	expect(t, r, []finding{
		{"gnuhealth.patient", models.ColumnMissing, "critical_info", models.Error},
		{"gnuhealth.iss", models.ModelNotInstalled, "", models.Error},
		{"party.party", models.FieldTypeMismatch, "ref", models.Error},
		{"party.party", models.SequenceKeys, "", models.Warning},
	})
}

func TestCheck_NotTryton(t *testing.T) {
	for _, dialect := range []string{models.Postgres, models.SQLite} {
		t.Run(dialect, func(t *testing.T) {
			_, err := models.Check(context.Background(), openDB(t, dialect), dialect, models.GNUHealth())
			if !errors.Is(err, models.ErrNotTryton) {
				t.Fatalf("Check of an empty database: %v, want ErrNotTryton", err)
			}
		})
	}
	if _, err := models.Check(context.Background(), nil, "oracle", models.GNUHealth()); err == nil {
		t.Error("dialect oracle accepted")
	}
}
