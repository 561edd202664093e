package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ghsync/ghsync/clocks"
	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/ledger/ledgertest"
	"github.com/ghsync/ghsync/ledger/sqlite"
)

// twoPUIDLedger is clinics 1 and 3 registering one person (one national
// code, so one party) under different PUIDs: clinic 3's write is later and
// wins the merge. Clinic 1 also registers her as a patient.
func twoPUIDLedger(t *testing.T) string {
	t.Helper()
	db := filepath.Join(t.TempDir(), "ledger.db")
	store, err := sqlite.Open(context.Background(), db, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	clock := clocks.NewClock(clocks.NewManual(time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)), 0)
	const key = "JM-NID-1970-0042 Grace Campbell"
	party, err := ledger.RefTo("party.party", key)
	if err != nil {
		t.Fatal(err)
	}
	prev := map[uint16]ledger.Hash{}
	seq := map[uint16]uint64{}
	event := func(origin uint16, model string, fields map[string]ledger.Value) *ledger.Event {
		seq[origin]++
		e := &ledger.Event{ID: uuid.Must(uuid.NewV7()), Origin: origin, OriginSeq: seq[origin], HLC: clock.Now(),
			Model: model, Key: key, Op: ledger.OpCreate, User: "admin", Tx: seq[origin], Fields: fields}
		if err := e.Seal(prev[origin]); err != nil {
			t.Fatal(err)
		}
		prev[origin] = e.Hash
		return e
	}
	evs := []*ledger.Event{
		event(1, "party.party", map[string]ledger.Value{"name": ledger.String("Grace"), "ref": ledger.String("JM001777777")}),
		event(1, "gnuhealth.patient", map[string]ledger.Value{"name": party}),
		event(3, "party.party", map[string]ledger.Value{"name": ledger.String("Grace"), "ref": ledger.String("JM003777777")}),
	}
	if _, err := store.Append(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	return db
}

// The PUID that lost the merge still finds the party, and history says
// what the party's PUID is now.
func TestHistoryByFormerPUID(t *testing.T) {
	db := twoPUIDLedger(t)
	code, out, stderr := ghsync(t, "history", "--ledger", db, "--patient", "JM001777777")
	for _, want := range []string{
		`note: party.party-JM-NID-1970-0042%20Grace%20Campbell: ref was "JM001777777" in event #1 (origin 1 seq 1), now "JM003777777", set by event #3 (origin 3 seq 1)` + "\n",
		"== party.party-JM-NID-1970-0042%20Grace%20Campbell (2 events)\n",
		"== gnuhealth.patient-JM-NID-1970-0042%20Grace%20Campbell (1 event)\n",
	} {
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("history --patient JM001777777: exit %d, want %q in\n%s%s", code, want, out, stderr)
		}
	}
	// By the PUID that won, nothing to note.
	code, out, stderr = ghsync(t, "history", "--ledger", db, "--patient", "JM003777777")
	if code != 0 || strings.Contains(out, "note:") || !strings.HasPrefix(out, "== party.party-JM-NID-1970-0042%20Grace%20Campbell (2 events)\n") {
		t.Fatalf("history --patient JM003777777: exit %d\n%s%s", code, out, stderr)
	}
	// The losing PUID given to someone else since: the current holder is
	// the patient; the former one is named, not shown with her.
	store, err := sqlite.Open(context.Background(), db, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	heads, _ := store.Origins(context.Background())
	o := ledgertest.NewOrigin(2)
	for _, h := range heads {
		if h.Origin == 2 {
			o.ResumeAt(h)
		}
	}
	o.Wall.Set(time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC))
	if _, err := store.Append(context.Background(), []*ledger.Event{o.Event(t, "party.party", "JM-NID-1988-0007 Ann Lee", ledger.OpCreate,
		map[string]ledger.Value{"name": ledger.String("Ann"), "ref": ledger.String("JM001777777")})}); err != nil {
		t.Fatal(err)
	}
	store.Close()
	code, out, stderr = ghsync(t, "history", "--ledger", db, "--patient", "JM001777777")
	if code != 0 || !strings.HasPrefix(out, `note: party.party-JM-NID-1970-0042%20Grace%20Campbell: ref was "JM001777777"`) ||
		!strings.Contains(out, "(not shown: ghsync history party.party JM-NID-1970-0042 Grace Campbell)\n") ||
		!strings.Contains(out, "== party.party-JM-NID-1988-0007%20Ann%20Lee (1 event)\n") || strings.Contains(out, "== gnuhealth.patient-JM-NID-1970") {
		t.Fatalf("history of a reused PUID: exit %d\n%s%s", code, out, stderr)
	}
	code, out, stderr = ghsync(t, "history", "--ledger", db, "--patient", "JM009999999")
	if code == 0 || !strings.Contains(stderr, `no party has or had PUID \"JM009999999\"`) {
		t.Fatalf("history of an unknown PUID: exit %d\n%s%s", code, out, stderr)
	}
}
