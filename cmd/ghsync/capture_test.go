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

// QA's reproduction, from the command line: an edit made while capture
// was uninstalled. Install says what to run, sync refuses to project
// until it ran, and capture snapshot (reconcile's old name) captures the
// edit, which sync then keeps.
func TestCaptureReconcileAfterReinstall(t *testing.T) {
	dir := t.TempDir()
	target := "sqlite:" + filepath.Join(dir, "h.db")
	inst := []string{"--ledger", "sqlite:" + filepath.Join(dir, "l.db"), "--db", target, "--id", "9"}
	mustRun(t, "schema", "--target", target)
	mustRun(t, "capture", "install", "--db", target)
	db, err := sql.Open("sqlite", strings.TrimPrefix(target, "sqlite:"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	exec := func(q string) {
		t.Helper()
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	exec(`INSERT INTO party_party (active, code, name, ref, is_person) VALUES (1, 'U-1', 'Ann', 'JMU1', 1)`)
	mustRun(t, append([]string{"sync"}, inst...)...)
	mustRun(t, "capture", "uninstall", "--db", target)
	exec(`UPDATE party_party SET name = 'Ann (edited while capture off)' WHERE code = 'U-1'`)
	if out := mustRun(t, "capture", "install", "--db", target); !strings.Contains(out, "run ghsync capture reconcile") {
		t.Fatalf("install over known rows does not say what to run:\n%s", out)
	}
	if code, out, stderr := ghsync(t, append([]string{"sync"}, inst...)...); code == 0 || !strings.Contains(stderr, "run ghsync capture reconcile first") {
		t.Fatalf("sync before the reconcile: exit %d\n%s%s", code, out, stderr)
	}
	if out := mustRun(t, "capture", "status", "--db", target); !strings.Contains(out, "reconcile: due") {
		t.Fatalf("status does not say a reconcile is due:\n%s", out)
	}
	out := mustRun(t, append([]string{"capture", "snapshot"}, inst...)...)
	if !strings.Contains(out, "1 rows that differ from it (written): 1 events") || strings.Contains(out, "capture drain") {
		t.Fatalf("reconcile:\n%s", out)
	}
	if out := mustRun(t, "capture", "status", "--db", target); strings.Contains(out, "reconcile") {
		t.Fatalf("status after the reconcile:\n%s", out)
	}
	mustRun(t, append([]string{"sync"}, inst...)...)
	var name string
	if err := db.QueryRow(`SELECT name FROM party_party WHERE code = 'U-1'`).Scan(&name); err != nil || name != "Ann (edited while capture off)" {
		t.Fatalf("after sync the row shows %q (%v): the edit was lost", name, err)
	}
	if out := mustRun(t, "log", "--ledger", inst[1]); !strings.Contains(out, `name = "Ann (edited while capture off)"   (replaces value of`) {
		t.Fatalf("the ledger has no write of the edit naming what it replaced:\n%s", out)
	}
}
