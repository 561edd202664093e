package main

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ghsync/ghsync/fixtures"
	"github.com/ghsync/ghsync/internal/pgtest"
	"github.com/ghsync/ghsync/models"
)

func TestModelsList(t *testing.T) {
	code, out, stderr := ghsync(t, "models", "list")
	if code != 0 {
		t.Fatalf("models list: exit %d: %s", code, stderr)
	}
	for _, want := range []string{
		"MODEL", "KIND", "RULES",
		"party.party", "unique-key", "federation_account: first-wins",
		"gnuhealth.hospital.ward", "composite-key  institution→gnuhealth.institution, name",
		"gnuhealth.pathology", "central-wins",
		"country.country", "reference data (not replicated)",
		"75 models, in dependency order",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("models list lacks %q:\n%s", want, out)
		}
	}
	if strings.Index(out, "\nparty.party ") > strings.Index(out, "\ngnuhealth.patient ") {
		t.Error("gnuhealth.patient is listed before party.party, the target of its required name")
	}

	code, out, _ = ghsync(t, "models", "list", "gnuhealth.patient")
	if code != 0 || !strings.Contains(out, "key name→party.party(code)") || !strings.Contains(out, "smoking") ||
		!strings.Contains(out, "Not synchronised:\n  current_insurance: target gnuhealth.insurance") {
		t.Errorf("models list gnuhealth.patient: exit %d\n%s", code, out)
	}
	if code, _, stderr := ghsync(t, "models", "list", "res.user"); code != 1 || !strings.Contains(stderr, "not in the registry") {
		t.Errorf("models list res.user: exit %d: %s", code, stderr)
	}
}

func TestModelsCheck_SQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tryton.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := fixtures.CreateTrytonSchema(context.Background(), db, models.GNUHealth(), models.SQLite); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := ghsync(t, "models", "check", "--db", "sqlite:"+path)
	if code != 0 || !strings.Contains(out, "75 of 75 models have no findings") || !strings.Contains(out, "READY: this database matches the catalogue") {
		t.Fatalf("models check of a fixture database: exit %d\n%s%s", code, out, stderr)
	}
	if _, err := db.Exec(`ALTER TABLE gnuhealth_patient DROP COLUMN critical_info`); err != nil {
		t.Fatal(err)
	}
	code, out, _ = ghsync(t, "models", "check", "--db", "sqlite:"+path)
	if code != 1 || !strings.Contains(out, "column gnuhealth_patient.critical_info is missing") || !strings.Contains(out, "NOT READY") {
		t.Fatalf("models check after dropping a column: exit %d\n%s", code, out)
	}
}

func TestModelsCheck_Postgres(t *testing.T) {
	url := pgtest.NewDatabase(t)
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := fixtures.CreateTrytonSchema(context.Background(), db, models.GNUHealth(), models.Postgres); err != nil {
		t.Fatal(err)
	}
	if code, out, stderr := ghsync(t, "models", "check", "--db", url); code != 0 || !strings.Contains(out, "READY") {
		t.Fatalf("models check: exit %d\n%s%s", code, out, stderr)
	}
	if _, err := db.Exec(`DELETE FROM ir_model WHERE model = 'gnuhealth.vaccination'`); err != nil {
		t.Fatal(err)
	}
	code, out, _ := ghsync(t, "models", "check", "--db", url)
	if code != 1 || !strings.Contains(out, "model gnuhealth.vaccination is not installed") {
		t.Fatalf("models check without vaccination: exit %d\n%s", code, out)
	}
}

func TestModelsCheck_BadDatabase(t *testing.T) {
	for _, loc := range []string{"mysql://u:secret@h/db", "sqlite:" + filepath.Join(t.TempDir(), "missing.db")} {
		code, _, stderr := ghsync(t, "models", "check", "--db", loc)
		if code != 1 || strings.Contains(stderr, "secret") {
			t.Errorf("models check --db %s: exit %d: %s", loc, code, stderr)
		}
	}
	empty := filepath.Join(t.TempDir(), "empty.db")
	db, err := sql.Open("sqlite", empty)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE t (x)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if code, _, stderr := ghsync(t, "models", "check", "--db", "sqlite:"+empty); code != 1 || !strings.Contains(stderr, "not a Tryton database") {
		t.Errorf("models check of a non-Tryton file: exit %d: %s", code, stderr)
	}
}
