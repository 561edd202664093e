package projections_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/ledger/ledgertest"
	"github.com/ghsync/ghsync/merge"
)

// TestBadInput: each kind of bad event is set aside with an error naming
// model, key, field and event; the good events of the same batch apply.
func TestBadInput(t *testing.T) {
	reg := clinicRegistry(t)
	o := ledgertest.NewOrigin(4)
	str := ledger.String
	ev := func(model, key string, op ledger.Op, f map[string]ledger.Value) *ledger.Event {
		return o.Event(t, model, key, op, f)
	}
	good := []*ledger.Event{
		ev("party.party", "P1", ledger.OpCreate, map[string]ledger.Value{"code": str("P1"), "name": str("Imani")}),
		ev("gnuhealth.patient", "P1", ledger.OpCreate, map[string]ledger.Value{"name": ref(t, "party.party", "P1")}),
	}
	bad := []struct {
		e     *ledger.Event
		field string
		says  string
	}{
		{ev("gnuhealth.unicorn", "U1", ledger.OpCreate, map[string]ledger.Value{"name": str("x")}), "", "model gnuhealth.unicorn is not synchronised"},
		{ev("party.party", "P2", ledger.OpCreate, map[string]ledger.Value{"code": str("P2"), "shoe_size": ledger.Int(42)}), "shoe_size", "has no synchronised field shoe_size"},
		{ev("party.party", "P3", ledger.OpCreate, map[string]ledger.Value{"code": str("P3"), "internal_user": ledger.Int(1)}), "internal_user", "not synchronised: target res.user is instance-local"},
		{ev("party.party", "P1", ledger.OpWrite, map[string]ledger.Value{"dob": str("1980-01-01")}), "dob", "value is string, field dob (date) wants date"},
		{ev("gnuhealth.appointment", "A1", ledger.OpCreate, map[string]ledger.Value{"patient": ref(t, "res.user", "admin")}), "patient", "references model res.user, which is not synchronised"},
		{ev("gnuhealth.appointment", "A2", ledger.OpCreate, map[string]ledger.Value{"patient": ref(t, "party.party", "P1")}), "patient", "references model party.party, field targets gnuhealth.patient"},
		{ev("party.party", "P1", ledger.OpWrite, map[string]ledger.Value{merge.Revives: ledger.Int(1)}), merge.Revives, "a revival names the delete it saw"},
		{ev("gnuhealth.appointment", "A3", ledger.OpCreate, map[string]ledger.Value{merge.Revives: ledger.Int(1)}), merge.Revives, "on a create of a natural key"},
		{ev("party.party", "P4", ledger.OpCreate, map[string]ledger.Value{"code": str("P4"), merge.Saw: ledger.Int(1)}), merge.Saw, "on a write or delete of a natural key"},
		{ev("party.party", "P1", ledger.OpDelete, map[string]ledger.Value{merge.Saw: str("yesterday")}), merge.Saw, "names the delete its writer saw (an integer clock)"},
		{ev("gnuhealth.appointment", "A4", ledger.OpDelete, map[string]ledger.Value{merge.Saw: ledger.Int(1)}), merge.Saw, "of a natural key"},
		{ev("party.party", "P1", ledger.OpDelete, map[string]ledger.Value{merge.RenamedTo: ref(t, "gnuhealth.patient", "P1")}), merge.RenamedTo, "names the key the record moved to (same model)"},
	}
	var all []*ledger.Event
	all = append(all, good[0], bad[0].e, bad[1].e, good[1])
	for _, b := range bad[2:] {
		all = append(all, b.e)
	}
	store := memLedger(t)
	if _, err := store.Append(context.Background(), all); err != nil {
		t.Fatal(err)
	}
	target := pgTarget(t, reg)
	p := openProjector(t, target, store, reg, 100) // one batch
	st, err := p.CatchUp(context.Background())
	if err != nil {
		t.Fatalf("a batch with bad events must still apply: %v", err)
	}
	if st.Rejected != len(bad) {
		t.Fatalf("rejected %d events, want %d", st.Rejected, len(bad))
	}
	rej, err := p.Rejected(context.Background())
	if err != nil || len(rej) != len(bad) {
		t.Fatalf("Rejected() = %v, %v", rej, err)
	}
	for _, b := range bad {
		var r *ledger.Event = b.e
		found := false
		for _, x := range rej {
			if x.EventID == r.ID.String() {
				found = true
				if x.Model != r.Model || x.Key != r.Key || x.Field != b.field || !strings.Contains(x.Error(), b.says) {
					t.Errorf("rejection of %s %s: %+v, want field %q and %q", r.Model, r.Key, x, b.field, b.says)
				}
				if !strings.Contains(x.Error(), r.ID.String()) || !strings.Contains(x.Error(), r.Model) {
					t.Errorf("rejection message %q does not name the event and model", x.Error())
				}
			}
		}
		if !found {
			t.Errorf("event %s (%s) was not rejected", r.ID, b.says)
		}
	}
	db, _ := sql.Open("pgx", target)
	defer db.Close()
	var n int
	db.QueryRow(`SELECT count(*) FROM gnuhealth_patient p JOIN party_party pp ON pp.id = p.name WHERE pp.code = 'P1'`).Scan(&n)
	if n != 1 {
		t.Fatalf("the good events of the batch were not applied (patient rows for P1: %d)", n)
	}
	// The dob write was rejected, so nothing about P1 changed.
	var dob sql.NullTime
	db.QueryRow(`SELECT dob FROM party_party WHERE code = 'P1'`).Scan(&dob)
	if dob.Valid {
		t.Fatalf("a rejected write changed the row: dob = %v", dob.Time)
	}
}

// TestTrytonRows: rows are what Tryton itself writes: ids from the
// table's sequence, active set, audit columns filled, relation rows.
func TestTrytonRows(t *testing.T) {
	reg := clinicRegistry(t)
	o := ledgertest.NewOrigin(2)
	store := memLedger(t)
	cats, _ := ledger.RefSet(ledger.Ref{Model: "party.category", Key: "vip"})
	evs := []*ledger.Event{
		o.Event(t, "party.category", "vip", ledger.OpCreate, map[string]ledger.Value{"name": ledger.String("vip")}),
		o.Event(t, "party.party", "P9", ledger.OpCreate, map[string]ledger.Value{"code": ledger.String("P9"), "name": ledger.String("Zion"), "categories": cats}),
	}
	if _, err := store.Append(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	target := pgTarget(t, reg)
	db, _ := sql.Open("pgx", target)
	defer db.Close()
	// A row Tryton made before ghsync: the sequence must move past it.
	if _, err := db.Exec(`INSERT INTO party_party (id, code, name, active) VALUES (nextval('party_party_id_seq'), 'LOCAL', 'Local', true)`); err != nil {
		t.Fatal(err)
	}
	p := openProjector(t, target, store, reg, 10)
	if _, err := p.CatchUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	var id, seq, createUID int64
	var active bool
	var created time.Time
	var written sql.NullTime
	if err := db.QueryRow(`SELECT id, active, create_uid, create_date, write_date, (SELECT last_value FROM party_party_id_seq) FROM party_party WHERE code = 'P9'`).
		Scan(&id, &active, &createUID, &created, &written, &seq); err != nil {
		t.Fatal(err)
	}
	if id <= 1 || id > seq || !active || createUID != 1 || written.Valid {
		t.Fatalf("projected row: id %d (sequence at %d), active %v, create_uid %d (admin is 1), write_date %v", id, seq, active, createUID, written)
	}
	if want := evs[1].HLC.Time(); !created.Equal(want) {
		t.Fatalf("create_date %v, want the creating event's time %v", created, want)
	}
	var rel int
	db.QueryRow(`SELECT count(*) FROM party_category_rel r JOIN party_category c ON c.id = r.category WHERE r.party = $1 AND c.name = 'vip' AND r.id > 0`, id).Scan(&rel)
	if rel != 1 {
		t.Fatalf("Many2Many relation rows for P9: %d, want 1", rel)
	}
	// A later write stamps write_date and write_uid.
	if _, err := store.Append(context.Background(), []*ledger.Event{o.Event(t, "party.party", "P9", ledger.OpWrite, map[string]ledger.Value{"lastname": ledger.String("Morgan")})}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.CatchUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	var lastname string
	db.QueryRow(`SELECT lastname, write_date FROM party_party WHERE id = $1`, id).Scan(&lastname, &written)
	if lastname != "Morgan" || !written.Valid {
		t.Fatalf("after a write: lastname %q, write_date %v", lastname, written)
	}
}
