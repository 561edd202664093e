package main

import (
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
)

// capture install refuses a database whose party codes come from a local
// counter ("1", "2"...): two different people would share a network key.
// Once the administrator identifies parties by UUID it installs; status,
// drain and uninstall then work from the command line.
func TestCaptureInstallRefusesLocalCounters(t *testing.T) {
	target := "sqlite:" + filepath.Join(t.TempDir(), "tryton.db")
	ledgerLoc := "sqlite:" + filepath.Join(t.TempDir(), "ledger.db")
	if code, out, stderr := ghsync(t, "schema", "--target", target); code != 0 {
		t.Fatalf("schema: %s%s", out, stderr)
	}
	db, err := sql.Open("sqlite", strings.TrimPrefix(target, "sqlite:"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO party_party (code, name, active) VALUES ('1', 'Ann', 1), ('2', 'Bob', 1)`); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := ghsync(t, "capture", "install", "--db", target)
	if code == 0 || !strings.Contains(stderr, "not network-unique") || !strings.Contains(out, "party.party") {
		t.Fatalf("capture install over local counters: exit %d\n%s%s", code, out, stderr)
	}
	if code, out, _ := ghsync(t, "capture", "status", "--db", target); code == 0 {
		t.Fatalf("a refused install left capture installed:\n%s", out)
	}
	ids := "--uuid-identity=party.party,company.company,gnuhealth.patient,gnuhealth.healthprofessional,gnuhealth.hp_specialty"
	if code, out, stderr := ghsync(t, "capture", "install", "--db", target, ids); code != 0 || !strings.Contains(out, "capture installed") {
		t.Fatalf("capture install with UUID identity: exit %d\n%s%s", code, out, stderr)
	}
	if _, err := db.Exec(`UPDATE party_party SET name = 'Ann B.' WHERE code = '1'`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if code, out, _ := ghsync(t, "capture", "status", "--db", target); code != 0 || !strings.Contains(out, "1 changes waiting") {
		t.Fatalf("status: exit %d\n%s", code, out)
	}
	if code, out, stderr := ghsync(t, "capture", "drain", "--db", target, "--id", "4", "--ledger", ledgerLoc, ids); code != 0 || !strings.Contains(out, "captured 1 changes") {
		t.Fatalf("drain: exit %d\n%s%s", code, out, stderr)
	}
	if code, out, stderr := ghsync(t, "capture", "uninstall", "--db", target); code != 0 || !strings.Contains(out, "capture removed") {
		t.Fatalf("uninstall: exit %d\n%s%s", code, out, stderr)
	}
}

// QA's case from the command line: a party coded "1" after install is
// held back by drain, not captured, and capture status lists it with
// the reason; once its code is network-unique the next drain captures it.
func TestCaptureHoldsLocalCounter(t *testing.T) {
	target := "sqlite:" + filepath.Join(t.TempDir(), "tryton.db")
	ledgerLoc := "sqlite:" + filepath.Join(t.TempDir(), "ledger.db")
	if code, out, stderr := ghsync(t, "schema", "--target", target); code != 0 {
		t.Fatalf("schema: %s%s", out, stderr)
	}
	if code, out, stderr := ghsync(t, "capture", "install", "--db", target); code != 0 {
		t.Fatalf("capture install: exit %d\n%s%s", code, out, stderr)
	}
	db, err := sql.Open("sqlite", strings.TrimPrefix(target, "sqlite:"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`INSERT INTO party_party (code, name, ref, is_person, is_patient, active, create_uid) VALUES ('1', 'Alice Sat1', 'JM1111', 1, 1, 1, 1), ('A-2', 'Ana', NULL, 1, 0, 1, 1)`); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := ghsync(t, "capture", "drain", "--db", target, "--id", "1", "--ledger", ledgerLoc)
	if code != 0 || !strings.Contains(out, "captured 2 changes as 1 events") || !strings.Contains(out, "1 records held back") ||
		!strings.Contains(stderr, "record held back") {
		t.Fatalf("drain: exit %d\n%s%s", code, out, stderr)
	}
	code, out, _ = ghsync(t, "capture", "status", "--db", target)
	if code != 0 || !strings.Contains(out, "held:     1 records not captured") || !strings.Contains(out, `party.party id 1 key "1" (whole record`) ||
		!strings.Contains(out, `code "1" is a plain number`) {
		t.Fatalf("status: exit %d\n%s", code, out)
	}
	if _, err := db.Exec(`UPDATE party_party SET code = 'A-1' WHERE code = '1'`); err != nil {
		t.Fatal(err)
	}
	code, out, stderr = ghsync(t, "capture", "drain", "--db", target, "--id", "1", "--ledger", ledgerLoc)
	if code != 0 || !strings.Contains(out, "captured 1 changes as 1 events") || strings.Contains(out, "held") {
		t.Fatalf("drain after the fix: exit %d\n%s%s", code, out, stderr)
	}
	if code, out, _ := ghsync(t, "capture", "status", "--db", target); code != 0 || strings.Contains(out, "held:") {
		t.Fatalf("status after the fix: exit %d\n%s", code, out)
	}
	if code, out, _ := ghsync(t, "log", "--ledger", ledgerLoc, "--stream", "party.party-A-1"); code != 0 || !strings.Contains(out, "create") || !strings.Contains(out, "Alice Sat1") {
		t.Fatalf("log of A-1: exit %d\n%s", code, out)
	}
}
