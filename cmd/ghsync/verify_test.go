package main

import (
	"database/sql"
	"fmt"
	"strings"
	"testing"
)

// tamper runs SQL against a generated ledger's file, as an intruder or a
// failing disk would change it, and returns the position of origin 1's seq.
func tamper(t *testing.T, db string, seq int, stmts ...string) int {
	t.Helper()
	raw, err := sql.Open("sqlite", db)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var pos int
	if err := raw.QueryRow(`SELECT position FROM ghsync_events WHERE origin = 1 AND origin_seq = ?`, seq).Scan(&pos); err != nil {
		t.Fatalf("find origin 1 seq %d: %v", seq, err)
	}
	for _, s := range stmts {
		if _, err := raw.Exec(s, pos); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	return pos
}

// flipByte is a statement for tamper damaging the payload at position ?.
const flipByte = `UPDATE ghsync_events SET payload = CAST(substr(payload, 1, 39) || X'00' || substr(payload, 41) AS BLOB) WHERE position = ?`

// A deleted event is named by its own seq, in the hole and in its
// origin's break, and the count verified is what precedes it.
func TestVerifyNamesDeletedEvent(t *testing.T) {
	db := generated(t)
	pos := tamper(t, db, 70, `DELETE FROM ghsync_events WHERE position = ?`)
	code, out, _ := ghsync(t, "verify", "--ledger", db)
	for _, want := range []string{
		fmt.Sprintf("HOLE    positions %d..%d missing, between origin 1 seq 69 at position %d and origin 1 seq 71 at position %d; they held origin 1 seq 70\n", pos, pos, pos-1, pos+1),
		"origin   1: BREAK at origin 1 seq 70: missing: the high-water mark counts 120 events up to seq 120, 119 are held (69 events verified before it, 119 held in all)\n",
		"origin   2: 120 events, seq 1..120, chain intact",
		"verify: FAILED",
	} {
		if code != 1 || !strings.Contains(out, want) {
			t.Fatalf("verify after deleting origin 1 seq 70: exit %d, want a line %q in\n%s", code, want, out)
		}
	}
}

// Several runs deleted: each hole names its own run.
func TestVerifyNamesDeletedRuns(t *testing.T) {
	db := generated(t)
	tamper(t, db, 30, `DELETE FROM ghsync_events WHERE position BETWEEN ?1 AND ?1 + 2`)
	tamper(t, db, 90, `DELETE FROM ghsync_events WHERE position = ?`)
	code, out, _ := ghsync(t, "verify", "--ledger", db)
	for _, want := range []string{
		"; they held origin 1 seq 30..32\n",
		"; they held origin 1 seq 90\n",
		"origin   1: BREAK at origin 1 seq 30: seq 30..32, seq 90 missing: the high-water mark counts 120 events up to seq 120, 116 are held (29 events verified before it, 116 held in all)\n",
	} {
		if code != 1 || !strings.Contains(out, want) {
			t.Fatalf("verify after deleting origin 1 seq 30..32 and 90: exit %d, want %q in\n%s", code, want, out)
		}
	}
}

// A corrupt event: everything of its origin before it was verified.
func TestVerifyCountsEventsBeforeCorruption(t *testing.T) {
	db := generated(t)
	pos := tamper(t, db, 50, flipByte)
	code, out, _ := ghsync(t, "verify", "--ledger", db)
	want := fmt.Sprintf("origin   1: BREAK at origin 1 seq 50 (position %d): ledger: corrupt event: payload does not match its hash", pos)
	if code != 1 || !strings.Contains(out, want) || !strings.Contains(out, "(49 events verified before it)\n") {
		t.Fatalf("verify after corrupting origin 1 seq 50: exit %d, want %q and 49 events verified in\n%s", code, want, out)
	}
}

// A hole below a corrupt event in the same page: both are found, and the
// count verified skips the missing event.
func TestVerifyCorruptionAfterHole(t *testing.T) {
	db := generated(t)
	before := tamper(t, db, 20, `DELETE FROM ghsync_events WHERE position = ?`)
	pos := tamper(t, db, 50, flipByte)
	code, out, stderr := ghsync(t, "verify", "--ledger", db)
	for _, want := range []string{
		fmt.Sprintf("CORRUPT origin 1 seq 50 (position %d)", pos),
		fmt.Sprintf("HOLE    positions %d..%d missing", before, before),
		"(48 events verified before it)\n",
	} {
		if code != 1 || !strings.Contains(out, want) {
			t.Fatalf("verify after deleting seq 20 and corrupting seq 50: exit %d, want %q in\n%s%s", code, want, out, stderr)
		}
	}
}
