package capture_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/ghsync/ghsync/capture"
	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/models"
	"github.com/ghsync/ghsync/projections"
)

// reinstall uninstalls capture, runs edit while nothing records, installs
// again and reopens the capturer, as an administrator would.
func (s *site) reinstall(edit func()) *capture.InstallReport {
	s.t.Helper()
	s.cap.Close()
	if err := capture.Uninstall(ctx(s.t), s.target, false); err != nil {
		s.t.Fatalf("uninstall: %v", err)
	}
	edit()
	rep, err := capture.Install(ctx(s.t), s.target, s.reg)
	if err != nil {
		s.t.Fatalf("install: %v", err)
	}
	s.open(capture.Options{})
	return rep
}

// reconcile runs Reconcile and returns its stats and this site's events
// it appended.
func (s *site) reconcile() (capture.ReconcileStats, []*ledger.Event) {
	s.t.Helper()
	s.since() // what came before is not the reconcile's
	rs, err := s.cap.Reconcile(ctx(s.t), nil)
	if err != nil {
		s.t.Fatalf("reconcile: %v", err)
	}
	var own []*ledger.Event
	for _, e := range s.since() {
		if e.Origin == s.origin {
			own = append(own, e)
		}
	}
	return rs, own
}

func (s *site) str(q string, args ...any) string {
	s.t.Helper()
	var v string
	if err := s.db.QueryRowContext(ctx(s.t), s.q(q), args...).Scan(&v); err != nil {
		s.t.Fatalf("%s: %v", q, err)
	}
	return v
}

func (s *site) conflicts() []projections.Conflict {
	s.t.Helper()
	cs, err := s.proj.Conflicts(ctx(s.t))
	if err != nil {
		s.t.Fatal(err)
	}
	return cs
}

// TestReconcileEditWhileUninstalled is QA's report: an edit made while
// capture was uninstalled reached no event, and the instance differed
// from the network for good. Install now holds projection until the
// reconcile; the reconcile captures the edit as a write of the changed
// field by the row's write_uid, whose Base is the merged value it
// replaced; a second run finds nothing.
func TestReconcileEditWhileUninstalled(t *testing.T) {
	forEachLayout(t, func(t *testing.T, lay layout) {
		s := newSite(t, lay, 9)
		id := s.insert("party_party", 0, map[string]any{"code": "U-1", "name": "Ann", "ref": "JMU1", "active": true})
		created := s.drain()
		s.project()
		rep := s.reinstall(func() {
			s.update("party_party", id, 1, map[string]any{"name": "Ann (edited while capture off)"})
		})
		if !slices.Equal(rep.Reconcile, []string{"party.party"}) {
			t.Fatalf("install over known rows asks to reconcile %v, want [party.party]", rep.Reconcile)
		}
		if _, err := s.proj.CatchUp(ctx(t)); !errors.Is(err, projections.ErrReconcile) {
			t.Fatalf("projecting before the reconcile: %v, want ErrReconcile", err)
		}
		rs, evs := s.reconcile()
		check(t, evs, []want{{model: "party.party", op: ledger.OpWrite, key: "U-1", user: "admin",
			fields: map[string]ledger.Value{"name": ledger.String("Ann (edited while capture off)")}, absent: []string{"ref", "code", "active"}}})
		if evs[0].Base["name"] != created[0].HLC {
			t.Fatalf("the write's Base is %s, want the HLC of the value it replaced %s", evs[0].Base["name"], created[0].HLC)
		}
		if rs.Changed != 1 || rs.Created != 0 || rs.Events != 1 || rs.Pending != 0 {
			t.Fatalf("reconcile stats %+v, want 1 changed row, 1 event", rs)
		}
		s.project()
		if got := s.str(`SELECT name FROM party_party WHERE id = ?`, id); got != "Ann (edited while capture off)" {
			t.Fatalf("after projection the row shows %q: the edit was lost", got)
		}
		if cs := s.conflicts(); len(cs) != 0 {
			t.Fatalf("conflicts %+v, want none", cs)
		}
		if rs, evs := s.reconcile(); rs.Events != 0 || len(evs) != 0 {
			t.Fatalf("second reconcile: %+v, %v; want nothing", rs, evs)
		}
		// Capture goes on as usual.
		s.update("party_party", id, 1, map[string]any{"name": "Ann B."})
		if evs := s.drain(); len(evs) != 1 || evs[0].Op != ledger.OpWrite {
			t.Fatalf("after the reconcile an edit captured as %v, want one write", evs)
		}
	})
}

// TestReconcileOverUnprojectedWrite is QA's revert variant: a captured
// write the projector had not applied yet, then an edit while capture was
// uninstalled. The projector used to bring the row back to the captured
// value; the reconcile's write names that write as its Base, so it wins
// with no conflict.
func TestReconcileOverUnprojectedWrite(t *testing.T) {
	forEachLayout(t, func(t *testing.T, lay layout) {
		s := newSite(t, lay, 9)
		id := s.insert("party_party", 1, map[string]any{"code": "U-1", "name": "Ann", "active": true})
		s.drain()
		s.project()
		s.update("party_party", id, 1, map[string]any{"lastname": "PushOnly"})
		pushed := s.drain()
		rep := s.reinstall(func() {
			s.update("party_party", id, 1, map[string]any{"lastname": "WhileUninstalled"})
		})
		if len(rep.Reconcile) == 0 {
			t.Fatal("install over known rows does not ask to reconcile")
		}
		_, evs := s.reconcile()
		check(t, evs, []want{{model: "party.party", op: ledger.OpWrite, key: "U-1", user: "admin",
			fields: map[string]ledger.Value{"lastname": ledger.String("WhileUninstalled")}, absent: []string{"name"}}})
		if evs[0].Base["lastname"] != pushed[0].HLC {
			t.Fatalf("Base %s, want the captured write's HLC %s", evs[0].Base["lastname"], pushed[0].HLC)
		}
		s.project()
		if got := s.str(`SELECT lastname FROM party_party WHERE id = ?`, id); got != "WhileUninstalled" {
			t.Fatalf("the row went back to %q", got)
		}
		if cs := s.conflicts(); len(cs) != 0 {
			t.Fatalf("conflicts %+v, want none", cs)
		}
	})
}

// TestReconcileConflictsAsUsual: another instance changed the field the
// nurse edited while capture was off; the reconcile's write had not seen
// it, so the merge records a conflict, at both instances.
func TestReconcileConflictsAsUsual(t *testing.T) {
	forEachLayout(t, func(t *testing.T, lay layout) {
		a, b := newSite(t, lay, 1), newSite(t, lay, 2)
		idA := a.insert("party_party", 1, map[string]any{"code": "A-1", "name": "Ana", "active": true})
		a.drain()
		a.project()
		b.receive(a)
		b.project()
		a.reinstall(func() {
			a.update("party_party", idA, 1, map[string]any{"name": "Ana (a, uncaptured)"})
		})
		b.update("party_party", b.int(`SELECT id FROM party_party WHERE code = 'A-1'`), 1, map[string]any{"name": "Ana (b)"})
		b.drain()
		a.receive(b) // not projected: a's projection is held
		_, evs := a.reconcile()
		check(t, evs, []want{{model: "party.party", op: ledger.OpWrite, key: "A-1", user: "admin",
			fields: map[string]ledger.Value{"name": ledger.String("Ana (a, uncaptured)")}}})
		a.project()
		b.receive(a)
		b.project()
		for _, s := range []*site{a, b} {
			if got := s.str(`SELECT name FROM party_party WHERE code = 'A-1'`); got != "Ana (a, uncaptured)" {
				t.Fatalf("origin %d shows %q, want the later write", s.origin, got)
			}
			cs := s.conflicts()
			if len(cs) != 1 || cs[0].Field != "name" || cs[0].Reason != "concurrent write" || cs[0].LoserOrigin != 2 || cs[0].WinnerOrigin != 1 {
				t.Fatalf("origin %d: conflicts %+v, want b's write losing to the reconciled edit", s.origin, cs)
			}
		}
	})
}

// TestReconcileDeferredRow: the projector left a row as the user saved it
// (a local change waited in the outbox), so the row shows an older value
// of a field another instance changed. That is no edit: the reconcile
// captures only the field edited while capture was off, and the projector
// then brings in the other instance's value.
func TestReconcileDeferredRow(t *testing.T) {
	forEachLayout(t, func(t *testing.T, lay layout) {
		a, b := newSite(t, lay, 1), newSite(t, lay, 2)
		a.insert("party_party", 1, map[string]any{"code": "A-1", "name": "Ana", "lastname": "L0", "active": true})
		a.drain()
		b.receive(a)
		b.project()
		idB := b.int(`SELECT id FROM party_party WHERE code = 'A-1'`)
		b.update("party_party", idB, 1, map[string]any{"name": "Ana (b)"}) // waits in b's outbox
		a.update("party_party", a.int(`SELECT id FROM party_party WHERE code = 'A-1'`), 1, map[string]any{"lastname": "L-a"})
		a.drain()
		b.receive(a)
		b.project()
		if got := b.str(`SELECT lastname FROM party_party WHERE id = ?`, idB); got != "L0" || b.int(deferredCount(lay)) != 1 {
			t.Fatalf("setup: the row was not deferred (lastname %q)", got)
		}
		b.drain()
		b.reinstall(func() {
			b.update("party_party", idB, 1, map[string]any{"ref": "R-b"})
		})
		_, evs := b.reconcile()
		check(t, evs, []want{{model: "party.party", op: ledger.OpWrite, key: "A-1", user: "admin",
			fields: map[string]ledger.Value{"ref": ledger.String("R-b")}, absent: []string{"lastname", "name"}}})
		b.project()
		for col, want := range map[string]string{"name": "Ana (b)", "lastname": "L-a", "ref": "R-b"} {
			if got := b.str(`SELECT `+col+` FROM party_party WHERE id = ?`, idB); got != want {
				t.Fatalf("%s = %q, want %q", col, got, want)
			}
		}
		if cs := b.conflicts(); len(cs) != 0 {
			t.Fatalf("conflicts %+v, want none", cs)
		}
		if n := b.int(deferredCount(lay)); n != 0 {
			t.Fatalf("%d records still deferred", n)
		}
	})
}

// TestReconcileGoneRowsRestored: rows the network knows, deleted while
// capture was off, are not deleted network-wide (a restored partial dump
// or an emptied table would delete them everywhere, for good): the
// projector writes them again, references included.
func TestReconcileGoneRowsRestored(t *testing.T) {
	forEachLayout(t, func(t *testing.T, lay layout) {
		s := newSite(t, lay, 9)
		p := s.insert("party_party", 1, map[string]any{"code": "G-1", "name": "Gone", "active": true})
		s.insert("party_address", 1, map[string]any{"party": p, "city": "Mandeville", "active": true})
		jm := s.insert("country_country", 1, map[string]any{"code": "JM", "name": "Jamaica", "active": true})
		keep := s.insert("party_party", 1, map[string]any{"code": "K-1", "name": "Kept", "residence": jm, "active": true})
		s.drain()
		s.project()
		s.reinstall(func() {
			s.exec(`DELETE FROM party_party WHERE id = ?`, p)      // the address goes with it (ON DELETE CASCADE)
			s.exec(`DELETE FROM country_country WHERE id = ?`, jm) // K-1's residence becomes NULL (SET NULL)
		})
		rs, evs := s.reconcile()
		if len(evs) != 0 || rs.Restored != 3 {
			t.Fatalf("reconcile of rows gone: %+v, events %v; want 3 restored, no event", rs, evs)
		}
		s.project()
		p2 := s.int(`SELECT id FROM party_party WHERE code = 'G-1'`)
		if p2 == p {
			t.Fatalf("restored under the same id %d", p)
		}
		if n := s.int(`SELECT count(*) FROM party_address WHERE party = ? AND city = 'Mandeville'`, p2); n != 1 {
			t.Fatalf("%d addresses on the restored party, want 1", n)
		}
		jm2 := s.int(`SELECT id FROM country_country WHERE code = 'JM'`)
		if n := s.int(`SELECT count(*) FROM party_party WHERE id = ? AND residence = ?`, keep, jm2); n != 1 {
			t.Fatal("the party whose residence was restored does not point at it")
		}
		if rs, evs := s.reconcile(); rs.Events != 0 || rs.Restored != 0 || len(evs) != 0 {
			t.Fatalf("second reconcile: %+v %v, want nothing", rs, evs)
		}
	})
}

// TestReconcileDeletedRecordStillHere: another instance deleted a record
// while a local change to it waited, so the projector kept the row; then
// a field was edited while capture was off. The delete stands (deletes
// are final), the row goes, and the edit is recorded as a conflict rather
// than lost without trace.
func TestReconcileDeletedRecordStillHere(t *testing.T) {
	forEachLayout(t, func(t *testing.T, lay layout) {
		a, b := newSite(t, lay, 1), newSite(t, lay, 2)
		idA := a.insert("party_party", 1, map[string]any{"code": "D-1", "name": "Dee", "active": true})
		a.drain()
		b.receive(a)
		b.project()
		idB := b.int(`SELECT id FROM party_party WHERE code = 'D-1'`)
		b.update("party_party", idB, 1, map[string]any{"name": "Dee (b)"}) // waits in b's outbox
		a.exec(`DELETE FROM party_party WHERE id = ?`, idA)
		a.drain()
		b.receive(a)
		b.project()
		if n := b.int(`SELECT count(*) FROM party_party WHERE id = ?`, idB); n != 1 {
			t.Fatal("setup: the projector removed a row with a pending change")
		}
		b.drain()
		b.reinstall(func() {
			b.update("party_party", idB, 1, map[string]any{"lastname": "edited while off"})
		})
		rs, evs := b.reconcile()
		check(t, evs, []want{{model: "party.party", op: ledger.OpWrite, key: "D-1", user: "admin",
			fields: map[string]ledger.Value{"lastname": ledger.String("edited while off")}, absent: []string{"name"}}})
		if rs.Deleted != 1 {
			t.Fatalf("stats %+v, want 1 deleted record still here", rs)
		}
		b.project()
		if n := b.int(`SELECT count(*) FROM party_party WHERE id = ?`, idB); n != 0 {
			t.Fatal("the row of a deleted record stayed")
		}
		found := false
		for _, c := range b.conflicts() {
			if c.Field == "lastname" && c.Reason == "record deleted" && c.LoserOrigin == 2 {
				found = true
			}
		}
		if !found {
			t.Fatalf("conflicts %+v: the edit made while capture was off is not recorded", b.conflicts())
		}
	})
}

// TestReconcileManyToMany: a link added while capture was off is captured
// as a write of the owner's whole set, whose Base is the set it replaced;
// a link to a row the projector could not write is no difference.
func TestReconcileManyToMany(t *testing.T) {
	reg, err := models.NewRegistry(
		models.Define("party.category", "party", models.Key("name"),
			models.F("name", models.Char).Required(),
			models.F("active", models.Boolean),
		),
		models.Define("party.party", "party", models.Key("code"),
			models.F("code", models.Char).Required(),
			models.F("name", models.Char),
			models.F("active", models.Boolean),
			models.M2M("categories", "party.category", "party_category_rel", "party", "category"),
		),
	)
	if err != nil {
		t.Fatal(err)
	}
	forEachLayout(t, func(t *testing.T, lay layout) {
		s := newSiteOf(t, lay, 9, reg)
		s.insert("party_category", 1, map[string]any{"name": "VIP", "active": true})
		staff := s.insert("party_category", 1, map[string]any{"name": "Staff", "active": true})
		p := s.insert("party_party", 1, map[string]any{"code": "M-1", "name": "Mo", "active": true})
		s.drain()
		// Another instance's set names a category that has not reached
		// this one: the projector writes the links it can (and parks the
		// party).
		set, err := ledger.RefSet(ledger.Ref{Model: "party.category", Key: "VIP"}, ledger.Ref{Model: "party.category", Key: "Remote"})
		if err != nil {
			t.Fatal(err)
		}
		links := ledgerEvent(t, 4, "party.party", "M-1", ledger.OpWrite, map[string]ledger.Value{"categories": set})
		if _, err := s.store.Append(ctx(t), []*ledger.Event{links}); err != nil {
			t.Fatal(err)
		}
		s.project()
		if n := s.int(`SELECT count(*) FROM party_category_rel WHERE party = ?`, p); n != 1 {
			t.Fatalf("setup: %d links, want 1", n)
		}
		rs, evs := s.reconcile()
		if len(evs) != 0 {
			t.Fatalf("reconcile of an unchanged set captured %v (%+v)", evs, rs)
		}
		s.reinstall(func() { // as Tryton saves it: the link, and the party's audit columns
			s.insert("party_category_rel", 1, map[string]any{"party": p, "category": staff})
			s.update("party_party", p, 1, map[string]any{"name": "Mo"})
		})
		_, evs = s.reconcile()
		both, err := ledger.RefSet(ledger.Ref{Model: "party.category", Key: "VIP"}, ledger.Ref{Model: "party.category", Key: "Staff"})
		if err != nil {
			t.Fatal(err)
		}
		check(t, evs, []want{{model: "party.party", op: ledger.OpWrite, key: "M-1", user: "admin",
			fields: map[string]ledger.Value{"categories": both}, absent: []string{"name"}}})
		if evs[0].Base["categories"] != links.HLC {
			t.Fatalf("Base %s, want the HLC of the set it replaced %s", evs[0].Base["categories"], links.HLC)
		}
		s.project()
		if n := s.int(`SELECT count(*) FROM party_category_rel WHERE party = ?`, p); n != 2 {
			t.Fatalf("%d links after projection, want 2", n)
		}
	})
}

// TestReconcileAfterLostTrigger: capture stays installed but a trigger is
// gone (SQLite: dropped) or disabled (PostgreSQL), as after a careless
// restore; status says so, install again holds projection, and the
// reconcile captures the edit made meanwhile.
func TestReconcileAfterLostTrigger(t *testing.T) {
	forEachLayout(t, func(t *testing.T, lay layout) {
		s := newSite(t, lay, 9)
		id := s.insert("party_party", 1, map[string]any{"code": "T-1", "name": "Tia", "active": true})
		s.drain()
		s.project()
		if lay.dialect == models.Postgres {
			s.exec(`ALTER TABLE party_party DISABLE TRIGGER ghsync_capture_update`)
		} else {
			s.exec(`DROP TRIGGER ghsync_capture_update_party_party`)
		}
		s.update("party_party", id, 1, map[string]any{"name": "Tia (edited, trigger lost)"})
		if n := s.outbox(); n != 0 {
			t.Fatalf("setup: the edit was recorded (%d outbox rows)", n)
		}
		st, err := capture.Inspect(ctx(t), s.target)
		if err != nil || st.Triggers >= st.WantTriggers {
			t.Fatalf("status %+v %v: want fewer triggers than the tables need", st, err)
		}
		s.cap.Close()
		rep, err := capture.Install(ctx(t), s.target, s.reg)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(rep.Reconcile, []string{"party.party"}) {
			t.Fatalf("install asks to reconcile %v, want [party.party]", rep.Reconcile)
		}
		if st, err := capture.Inspect(ctx(t), s.target); err != nil || !st.ReconcileDue || st.Triggers != st.WantTriggers {
			t.Fatalf("status after install %+v %v: want every trigger, a reconcile due", st, err)
		}
		s.open(capture.Options{})
		_, evs := s.reconcile()
		check(t, evs, []want{{model: "party.party", op: ledger.OpWrite, key: "T-1", user: "admin",
			fields: map[string]ledger.Value{"name": ledger.String("Tia (edited, trigger lost)")}}})
		s.project()
		if got := s.str(`SELECT name FROM party_party WHERE id = ?`, id); got != "Tia (edited, trigger lost)" {
			t.Fatalf("after projection %q", got)
		}
		if st, err := capture.Inspect(ctx(t), s.target); err != nil || st.ReconcileDue {
			t.Fatalf("status after the reconcile %+v %v: none due", st, err)
		}
	})
}
