package capture_test

import (
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/ghsync/ghsync/capture"
	"github.com/ghsync/ghsync/internal/trytontest"
	"github.com/ghsync/ghsync/models"
)

func TestTrytonScratch(t *testing.T) {
	db := trytontest.NewDatabase(t)
	s := &site{t: t, origin: 1, lay: layout{"tryton", models.Postgres, false}, target: db.URL, reg: models.GNUHealth()}
	s.ledger = "sqlite:" + filepath.Join(t.TempDir(), "ledger.db")
	var err error
	if s.db, err = sql.Open("pgx", db.URL); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.db.Close() })
	rep, err := capture.Install(ctx(t), s.target, s.reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("tables %v", rep.Tables)
	s.store = openLedger(t, s.ledger)
	s.open(capture.Options{})
	db.CreateUser(t, "clerk", "Clerk")
	ids := db.CreateParties(t, trytontest.Party{Name: "Ann Lee",
		Addresses:         []trytontest.Address{{Street: "1 Hope Road", City: "Kingston", PostalCode: "KGN6"}},
		ContactMechanisms: []trytontest.ContactMechanism{{Type: "mobile", Value: "+18765550100"}, {Type: "email", Value: "ann@example.org"}}})
	cids := db.As("clerk").CreateParties(t, trytontest.Party{Name: "By clerk", Addresses: []trytontest.Address{{City: "X"}}})
	show := func(tag string) {
		for _, e := range s.drain() {
			t.Logf("%s: %s user=%q tx=%d", tag, e, e.User, e.Tx)
			for k, v := range e.Fields {
				t.Logf("     %s = %v", k, v)
			}
			for k, v := range e.Base {
				t.Logf("     base %s = %v", k, v)
			}
		}
	}
	show("create")
	s.project()
	cs, err := s.proj.Conflicts(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		t.Logf("conflict %+v", c)
	}
	p := db.ReadParty(t, ids[0])
	db.As("clerk").WriteParty(t, ids[0], trytontest.Values{"name": "Ann B. Lee",
		"addresses": []any{trytontest.ActionWrite([]int{p.Addresses[0].ID}, trytontest.Values{"city": "Spanish Town"})},
		"contact_mechanisms": []any{trytontest.ActionWrite([]int{p.ContactMechanisms[0].ID}, trytontest.Values{"value": "+18765550199"})}})
	show("write")
	db.WriteParty(t, cids[0], trytontest.Values{"name": "By clerk"})
	show("noop write")
	db.As("clerk").DeleteParties(t, ids[0])
	show("delete")
}
