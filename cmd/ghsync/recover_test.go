package main

import (
	"database/sql"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// copyFiles copies dir's files whose names start with prefix into to (a
// backup, or a restore over what is there).
func copyFiles(t *testing.T, dir, prefix, to string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() || !strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		src, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		dst, err := os.Create(filepath.Join(to, e.Name()))
		if err == nil {
			_, err = io.Copy(dst, src)
			dst.Close()
		}
		src.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
}

// restoreFiles replaces dir's files starting with prefix by backup's.
func restoreFiles(t *testing.T, dir, prefix, backup string) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if !e.IsDir() && strings.HasPrefix(e.Name(), prefix) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				t.Fatal(err)
			}
		}
	}
	copyFiles(t, backup, prefix, dir)
}

// A clinic restored from a backup older than what it pushed: push
// refuses and says to run recover; recover fetches the clinic's own
// events back and projects them into the restored database, after which
// a new change pushes as the next seq; restored again, sync recovers by
// itself before capturing.
func TestRecoverCLI(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	centralDB := generatedCentral(t, dir, 20)
	t.Setenv("GHSYNC_TOKEN", addSatellite(t, centralDB, "2", "all"))
	url, _ := serving(t, centralDB)
	t.Setenv("GHSYNC_CENTRAL", url)
	clinic := filepath.Join(dir, "clinic")
	backup := filepath.Join(dir, "backup")
	for _, d := range []string{clinic, backup} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	health := filepath.Join(clinic, "health.sqlite")
	target := "sqlite:" + health
	if code, out, stderr := ghsync(t, "schema", "--target", target); code != 0 {
		t.Fatalf("schema: %s%s", out, stderr)
	}
	if code, out, stderr := ghsync(t, "capture", "install", "--db", target); code != 0 {
		t.Fatalf("capture install: %s%s", out, stderr)
	}
	insert := func(code, name string) {
		t.Helper()
		db, err := sql.Open("sqlite", health)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.Exec(`INSERT INTO party_party (code, name, active) VALUES (?, ?, 1)`, code, name); err != nil {
			t.Fatal(err)
		}
	}
	parties := func(like string) int {
		t.Helper()
		db, err := sql.Open("sqlite", health)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM party_party WHERE code LIKE ?`, like).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	push := func(want string) {
		t.Helper()
		if code, out, stderr := ghsync(t, "push", "--id", "2", "--target", target); code != 0 || !strings.Contains(out, want) {
			t.Fatalf("push: exit %d\n%s%s", code, out, stderr)
		}
	}
	for _, c := range []string{"B-1", "B-2", "B-3"} {
		insert(c, "Before the backup")
	}
	if code, out, stderr := ghsync(t, "sync", "--id", "2", "--target", target); code != 0 || !strings.Contains(out, "captured 3 local changes, pushed 3 events") {
		t.Fatalf("sync: exit %d\n%s%s", code, out, stderr)
	}
	copyFiles(t, clinic, "health.", backup)
	insert("A-1", "After the backup")
	insert("A-2", "After the backup")
	push("central holds origin 2 through seq 5")

	restoreFiles(t, clinic, "health.", backup)
	insert("N-1", "Made after the restore")
	code, out, stderr := ghsync(t, "push", "--id", "2", "--target", target)
	if code == 0 || !strings.Contains(out+stderr, "this ledger ends at seq 3 of origin 2, but central holds this origin's events up to seq 5") ||
		!strings.Contains(out+stderr, "Run ghsync recover") || strings.Contains(out, "pushed") {
		t.Fatalf("push from the restored copy: exit %d\n%s%s", code, out, stderr)
	}
	code, out, stderr = ghsync(t, "recover", "--id", "2", "--target", target)
	if code != 0 || !strings.Contains(out, "recovered 2 events of origin 2 from central (seqs 4..5)") || !strings.Contains(out, "; projected 2") {
		t.Fatalf("recover: exit %d\n%s%s", code, out, stderr)
	}
	if n := parties("A-%"); n != 2 {
		t.Fatalf("after recover the restored database shows %d of the 2 parties made after the backup", n)
	}
	if code, out, stderr := ghsync(t, "recover", "--id", "2", "--target", target); code != 0 || !strings.Contains(out, "nothing to recover") {
		t.Fatalf("recover again: exit %d\n%s%s", code, out, stderr)
	}
	push("captured 1 local change; pushed 1 event in 1 request (1 new at central, 0 already there); central holds origin 2 through seq 6")

	// Restored again: sync recovers by itself, before it captures.
	restoreFiles(t, clinic, "health.", backup)
	insert("N-2", "Made after the second restore")
	code, out, stderr = ghsync(t, "sync", "--id", "2", "--target", target)
	if code != 0 || !strings.Contains(out, "recovered 3 events of this satellite's own from central first") || !strings.Contains(out, "captured 1 local change, pushed 1 event") {
		t.Fatalf("sync of the restored copy: exit %d\n%s%s", code, out, stderr)
	}
	if n := parties("A-%") + parties("N-%"); n != 4 {
		t.Fatalf("after sync the restored database shows %d of the 4 parties made after the backup", n)
	}
	if code, out, _ := ghsync(t, "verify", "--ledger", "sqlite:"+filepath.Join(clinic, "health.ghsync.db")); code != 0 || !strings.Contains(out, "origin   2: 7 events, seq 1..7, chain intact") {
		t.Fatalf("verify the clinic's ledger: exit %d\n%s", code, out)
	}
}
