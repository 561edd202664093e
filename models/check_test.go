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
				// GNU Health itself leaves some deleted-through references
				// unindexed; the fixture is faithful to it.
				findings := slices.DeleteFunc(slices.Clone(m.Findings), func(f models.Finding) bool { return f.Problem == models.UnindexedReference })
				if len(findings) > 0 {
					t.Errorf("%s: %+v", m.Model, findings)
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
		{"party.party", models.SequenceKeys, "", E},
		{"gnuhealth.procedure", models.DuplicateKeys, "", E},
		{"gnuhealth.operational_sector", models.NullKeys, "", W},
		// company.company is reference data: its unsynchronised required
		// currency is no problem, ghsync never inserts companies.
	})
	if r.OK() || r.Count(models.Error) != 10 {
		t.Errorf("OK %v with %d errors, want 10 errors", r.OK(), r.Count(models.Error))
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
		{"party.party", models.SequenceKeys, "", models.Error},
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

// addSequences adds to a fixture database the tables through which Tryton
// configures the sequence of party codes, filled as trytond-admin leaves
// them in a fresh database (tryton_schema.txt): ir_sequence 1 "Party"
// (incremental, no prefix, no suffix), its XML id party.sequence_party in
// ir_model_data, party.configuration's party_sequence row pointing at it,
// and ir_module with the modules given activated.
func addSequences(t *testing.T, db *sql.DB, modules ...string) {
	t.Helper()
	run(t, db,
		`CREATE TABLE ir_module (id INTEGER PRIMARY KEY, name VARCHAR NOT NULL, state VARCHAR)`,
		`CREATE TABLE ir_model_data (id INTEGER PRIMARY KEY, module VARCHAR NOT NULL, fs_id VARCHAR NOT NULL, model VARCHAR NOT NULL, db_id INTEGER)`,
		`CREATE TABLE ir_sequence (id INTEGER PRIMARY KEY, name VARCHAR NOT NULL, prefix VARCHAR, suffix VARCHAR, type VARCHAR,
			padding INTEGER, number_increment INTEGER, number_next_internal INTEGER, sequence_type INTEGER NOT NULL, active BOOLEAN)`,
		`CREATE TABLE party_configuration_party_sequence (id INTEGER PRIMARY KEY, party_sequence INTEGER REFERENCES ir_sequence (id) ON DELETE SET NULL)`,
		`INSERT INTO ir_sequence (id, name, type, padding, number_increment, number_next_internal, sequence_type, active)
			VALUES (1, 'Party', 'incremental', 0, 1, 1, 1, true)`,
		`INSERT INTO ir_model_data (id, module, fs_id, model, db_id) VALUES (1, 'party', 'sequence_party', 'ir.sequence', 1)`,
		`INSERT INTO party_configuration_party_sequence (id, party_sequence) VALUES (1, 1)`,
	)
	for i, m := range modules {
		run(t, db, fmt.Sprintf(`INSERT INTO ir_module (id, name, state) VALUES (%d, '%s', 'activated')`, i+1, m))
	}
}

// plainTryton are the modules a plain Tryton (no GNU Health) activates.
var plainTryton = []string{"ir", "res", "country", "currency", "party", "company", "product"}

func checkWith(t *testing.T, db *sql.DB, dialect string, reg *models.Registry) *models.CheckReport {
	t.Helper()
	r, err := models.Check(context.Background(), db, dialect, reg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestCheck_KeyNotNetworkUnique: party codes numbered by a sequence
// without an instance prefix are refused before the first synchronisation,
// on an empty database, from Tryton's configuration alone; a prefix (or a
// suffix), GNU Health's own party codes, or UUID identity clear it.
func TestCheck_KeyNotNetworkUnique(t *testing.T) {
	for _, dialect := range []string{models.Postgres, models.SQLite} {
		t.Run(dialect, func(t *testing.T) {
			db := trytonDB(t, dialect)
			addSequences(t, db, plainTryton...)
			refused := []finding{{"party.party", models.KeyNotNetworkUnique, "code", models.Error}}

			r := check(t, db, dialect)
			expect(t, r, refused)
			f := r.Find("party.party", models.KeyNotNetworkUnique)
			for _, want := range []string{`sequence "Party" (ir_sequence id 1)`, "no prefix", "Administration > Sequences > Party",
				"identify party.party by UUID", "WithUUIDIdentity"} {
				if len(f) != 1 || !strings.Contains(f[0].Message, want) {
					t.Fatalf("finding lacks %q: %+v", want, f)
				}
			}
			if r.OK() || !strings.Contains(r.Text(), "NOT READY") {
				t.Fatalf("an unprefixed party sequence does not stop the first sync:\n%s", r.Text())
			}

			steps := []struct {
				what  string
				stmts []string
				want  []finding
			}{
				{"an empty prefix is no prefix", []string{`UPDATE ir_sequence SET prefix = '', suffix = ' '`}, refused},
				{"an instance prefix", []string{`UPDATE ir_sequence SET prefix = 'A-'`}, nil},
				{"an instance suffix", []string{`UPDATE ir_sequence SET prefix = NULL, suffix = '-A'`}, nil},
				{"no configuration row: Tryton's default sequence (party.sequence_party)",
					[]string{`UPDATE ir_sequence SET suffix = NULL`, `DELETE FROM party_configuration_party_sequence`}, refused},
				{"codes typed by hand (no sequence configured)",
					[]string{`INSERT INTO party_configuration_party_sequence (id, party_sequence) VALUES (1, NULL)`}, nil},
				{"one company's sequence prefixed, another's not", []string{
					`INSERT INTO ir_sequence (id, name, prefix, type, sequence_type, active) VALUES (2, 'Party (clinic)', 'C7-', 'incremental', 1, true)`,
					`UPDATE party_configuration_party_sequence SET party_sequence = 2`,
					`INSERT INTO party_configuration_party_sequence (id, party_sequence) VALUES (2, 1)`,
					`INSERT INTO party_configuration_party_sequence (id, party_sequence) VALUES (3, 1)`}, refused},
				{"GNU Health fills party codes itself (uuid4-name): the sequence is unused",
					[]string{`INSERT INTO ir_module (id, name, state) VALUES (100, 'health', 'activated')`}, nil},
				{"GNU Health not activated (yet)", []string{`UPDATE ir_module SET state = 'not activated' WHERE name = 'health'`}, refused},
			}
			for _, st := range steps {
				run(t, db, st.stmts...)
				r := check(t, db, dialect)
				expect(t, r, st.want)
				if len(st.want) > 0 {
					if f := r.Find("party.party", models.KeyNotNetworkUnique); len(f) != 1 || !strings.Contains(f[0].Message, `"Party" (ir_sequence id 1)`) {
						t.Fatalf("%s: %+v, want one finding naming the unprefixed sequence", st.what, f)
					}
				}
				if t.Failed() {
					t.Fatalf("step: %s", st.what)
				}
			}

			// Without ir_module, the health module's fields of party.party
			// tell that GNU Health fills the codes (the fixture has them).
			run(t, db, `DROP TABLE ir_module`)
			expect(t, check(t, db, dialect), nil)

			// The administrator's other way out: party.party (and the models
			// whose keys borrow its code) identified by UUID.
			run(t, db, `DELETE FROM ir_model_field WHERE module = 'health' AND model = (SELECT id FROM ir_model WHERE model = 'party.party')`)
			r = check(t, db, dialect)
			if len(r.Find("party.party", models.KeyNotNetworkUnique)) != 1 {
				t.Fatalf("plain Tryton's party.party without ir_module:\n%s", r.Text())
			}
			reg, err := models.GNUHealth().WithUUIDIdentity(uuidParty...)
			if err != nil {
				t.Fatal(err)
			}
			r = checkWith(t, db, dialect, reg)
			if f := r.Find("party.party", models.KeyNotNetworkUnique); len(f) != 0 {
				t.Fatalf("party.party identified by UUID is still refused: %+v", f)
			}
		})
	}
}

// uuidParty is party.party and every model whose key borrows its code.
var uuidParty = []string{"party.party", "company.company", "gnuhealth.healthprofessional", "gnuhealth.hp_specialty", "gnuhealth.patient"}

// TestCheck_KeyNotNetworkUniqueHealthSequences: GNU Health numbers
// appointments from a per-instance sequence ("APP ${year}/"). The
// catalogue identifies appointments by UUID, so the sequence does not
// matter; a registry keying them by that number is refused when the
// sequence has no prefix.
func TestCheck_KeyNotNetworkUniqueHealthSequences(t *testing.T) {
	for _, dialect := range []string{models.Postgres, models.SQLite} {
		t.Run(dialect, func(t *testing.T) {
			db := trytonDB(t, dialect)
			addSequences(t, db, append(slices.Clone(plainTryton), "health")...)
			run(t, db,
				`CREATE TABLE gnuhealth_sequences_appointment_sequence (id INTEGER PRIMARY KEY, appointment_sequence INTEGER NOT NULL REFERENCES ir_sequence (id))`,
				`INSERT INTO ir_sequence (id, name, prefix, type, padding, sequence_type, active) VALUES (5, 'Appointment', NULL, 'incremental', 0, 5, true)`,
				`INSERT INTO gnuhealth_sequences_appointment_sequence (id, appointment_sequence) VALUES (1, 5)`,
			)
			expect(t, check(t, db, dialect), nil) // the catalogue: appointments by UUID

			var ms []*models.Model
			for _, m := range models.GNUHealth().Models() {
				if m.Name == "gnuhealth.appointment" {
					byNumber := *m
					byNumber.Kind, byNumber.Key = models.UniqueKey, []string{"name"}
					m = &byNumber
				}
				ms = append(ms, m)
			}
			byNumber, err := models.NewRegistry(ms...)
			if err != nil {
				t.Fatal(err)
			}
			r := checkWith(t, db, dialect, byNumber)
			expect(t, r, []finding{{"gnuhealth.appointment", models.KeyNotNetworkUnique, "name", models.Error}})
			if f := r.Find("gnuhealth.appointment", models.KeyNotNetworkUnique); len(f) != 1 || !strings.Contains(f[0].Message, `"Appointment" (ir_sequence id 5)`) {
				t.Fatalf("%+v", f)
			}
			run(t, db, `UPDATE ir_sequence SET prefix = 'APP ${year}/' WHERE id = 5`)
			expect(t, checkWith(t, db, dialect, byNumber), nil) // a prefix: whether it is shared cannot be known
		})
	}
}

func TestWithUUIDIdentity(t *testing.T) {
	gh := models.GNUHealth()
	if _, err := gh.WithUUIDIdentity("party.party", "no.such.model"); err == nil || !strings.Contains(err.Error(), "no.such.model") {
		t.Fatalf("unknown model: %v", err)
	}
	// party.party alone: the models whose keys are its code cannot keep them.
	_, err := gh.WithUUIDIdentity("party.party")
	if !errors.Is(err, models.ErrInvalidRegistry) {
		t.Fatalf("party.party alone: %v, want an invalid registry", err)
	}
	for _, m := range uuidParty[1:] {
		if !strings.Contains(err.Error(), m+" (key part") {
			t.Errorf("the error does not name %s: %v", m, err)
		}
	}
	if !strings.Contains(err.Error(), "WithUUIDIdentity("+strings.Join(slices.Sorted(slices.Values(uuidParty)), ", ")+")") {
		t.Errorf("the error does not give the whole list: %v", err)
	}

	reg, err := gh.WithUUIDIdentity(uuidParty...)
	if err != nil {
		t.Fatal(err)
	}
	if reg == gh || reg.Len() != gh.Len() {
		t.Fatalf("got %p with %d models, want a copy of %p's %d", reg, reg.Len(), gh, gh.Len())
	}
	for _, name := range uuidParty {
		m, _ := reg.Lookup(name)
		orig, _ := gh.Lookup(name)
		if m.Kind != models.UUIDKey || m.Key != nil || len(m.Fields) != len(orig.Fields) {
			t.Errorf("%s: kind %s key %v, want uuid, no key, its fields", name, m.Kind, m.Key)
		}
		if orig.Kind == models.UUIDKey {
			t.Errorf("%s: the shipped catalogue changed", name)
		}
		if f, ok := m.Field(orig.Fields[0].Name); !ok || f.Name != orig.Fields[0].Name {
			t.Errorf("%s: field lookup broken in the copy", name)
		}
	}
	if a, _ := reg.Lookup("gnuhealth.procedure"); a != mustLookup(t, gh, "gnuhealth.procedure") {
		t.Error("an untouched model was copied")
	}
	// A model already identified by UUID, twice: nothing changes.
	same, err := gh.WithUUIDIdentity("party.address", "party.address")
	if err != nil {
		t.Fatal(err)
	}
	if a, _ := same.Lookup("party.address"); a != mustLookup(t, gh, "party.address") {
		t.Error("party.address was copied although already identified by UUID")
	}
	// The copy orders models by its own dependencies and is valid again.
	if _, err := reg.WithUUIDIdentity("gnuhealth.procedure"); err != nil {
		t.Fatal(err)
	}
	if _, err := gh.WithUUIDIdentity(); err != nil {
		t.Fatal(err)
	}
}

func mustLookup(t *testing.T, r *models.Registry, name string) *models.Model {
	t.Helper()
	m, ok := r.Lookup(name)
	if !ok {
		t.Fatalf("%s not registered", name)
	}
	return m
}

// A deleted-through reference without an index is noted with the
// statement that fixes it (GNU Health's evaluations point at appointments
// so); with the index, the note goes.
func TestCheck_UnindexedReference(t *testing.T) {
	db := trytonDB(t, models.Postgres)
	notes := func() []string {
		var out []string
		for _, f := range check(t, db, models.Postgres).Find("gnuhealth.patient.evaluation", models.UnindexedReference) {
			out = append(out, f.Field)
		}
		return out
	}
	got := notes()
	if !slices.Contains(got, "appointment") || !slices.Contains(got, "next_evaluation") {
		t.Fatalf("notes on gnuhealth.patient.evaluation: %v, want appointment and next_evaluation", got)
	}
	if f := check(t, db, models.Postgres).Find("gnuhealth.patient.evaluation", models.UnindexedReference)[0]; f.Severity != models.Info || !strings.Contains(f.Message, "CREATE INDEX ON") {
		t.Fatalf("note: %+v", f)
	}
	run(t, db, `CREATE INDEX ON gnuhealth_patient_evaluation (appointment)`)
	if got := notes(); slices.Contains(got, "appointment") {
		t.Fatalf("still noted after the index was made: %v", got)
	}
	// CreateIndexes runs the fixes of the others.
	r := check(t, db, models.Postgres)
	want := 0
	for _, mc := range r.Models {
		for _, f := range mc.Findings {
			if f.Problem == models.UnindexedReference {
				want++
				if !strings.HasPrefix(f.Fix, "CREATE INDEX ON ") || !strings.Contains(f.Message, f.Fix) {
					t.Fatalf("%s.%s: fix %q, message %q", mc.Model, f.Field, f.Fix, f.Message)
				}
			}
		}
	}
	if n, err := models.CreateIndexes(context.Background(), db, r); err != nil || n != want || want == 0 {
		t.Fatalf("CreateIndexes made %d indexes (%v), want %d", n, err, want)
	}
	if got := notes(); len(got) != 0 {
		t.Fatalf("still noted after CreateIndexes: %v", got)
	}
}

// TestCheck_ReplicaRole: a role that may not set session_replication_role
// is noted, with the grant that lifts it, before any model; a superuser,
// or a role granted it, is not.
func TestCheck_ReplicaRole(t *testing.T) {
	if r := check(t, trytonDB(t, models.Postgres), models.Postgres); len(r.Database) != 0 {
		t.Fatalf("as a superuser: database findings %+v, want none", r.Database)
	}
	target := pgtest.NewOwnedDatabase(t)
	db, err := sql.Open("pgx", target)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := fixtures.CreateTrytonSchema(context.Background(), db, models.GNUHealth(), models.Postgres); err != nil {
		t.Fatal(err)
	}
	var role string
	var version int
	if err := db.QueryRow(`SELECT current_user, current_setting('server_version_num')::int`).Scan(&role, &version); err != nil {
		t.Fatal(err)
	}
	r := check(t, db, models.Postgres)
	if len(r.Database) != 1 || r.Database[0].Problem != models.RowByRowForeignKeys || r.Database[0].Severity != models.Info ||
		!strings.Contains(r.Database[0].Message, role) {
		t.Fatalf("as role %s: database findings %+v, want one %s note naming the role", role, r.Database, models.RowByRowForeignKeys)
	}
	if text := r.Text(); !strings.Contains(text, "the database\n") || !strings.Contains(text, string(r.Database[0].Message)) || !r.OK() {
		t.Fatalf("the report does not show the note before the models, or counts it as an error:\n%s", text)
	}
	if version < 150000 {
		return // no GRANT SET ON PARAMETER before PostgreSQL 15
	}
	if !strings.Contains(r.Database[0].Message, `GRANT SET ON PARAMETER session_replication_role TO "`+role+`"`) {
		t.Fatalf("the note does not give the grant: %s", r.Database[0].Message)
	}
	admin, err := sql.Open("pgx", pgtest.ServerURL(t))
	if err != nil {
		t.Fatal(err)
	}
	run(t, admin, `GRANT SET ON PARAMETER session_replication_role TO `+role)
	t.Cleanup(func() { // before the role is dropped
		admin.Exec(`REVOKE SET ON PARAMETER session_replication_role FROM ` + role)
		admin.Close()
	})
	if r := check(t, db, models.Postgres); len(r.Database) != 0 {
		t.Fatalf("after the grant: database findings %+v, want none", r.Database)
	}
}
