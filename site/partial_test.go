package site_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/ghsync/ghsync/central"
	"github.com/ghsync/ghsync/satellite"
	"github.com/ghsync/ghsync/site"
	"github.com/ghsync/ghsync/wire"
)

// addSatellite registers satellite id with scope at central and starts
// its node (not among nw.sats: the caller decides).
func (nw *network) addSatellite(id uint16, scope string) *node {
	nw.t.Helper()
	tok, hash, err := central.NewToken()
	if err != nil {
		nw.t.Fatal(err)
	}
	if err := nw.reg.AddSatellite(context.Background(), central.Satellite{ID: id, Name: "clinic " + strconv.Itoa(int(id)), Scope: scope, TokenHash: hash, Created: time.Now()}); err != nil {
		nw.t.Fatal(err)
	}
	n := newNode(nw.t, id, 0)
	n.open(nw.ts.URL, tok, nil, nil, nil)
	return n
}

// count is a count(*) at the node.
func (n *node) count(q string, args ...any) int {
	n.t.Helper()
	var c int
	if err := n.db.QueryRow(q, args...).Scan(&c); err != nil {
		n.t.Fatalf("node %d: %s: %v", n.id, q, err)
	}
	return c
}

// TestPushPullNewProject: push turns what users changed into events
// first (the capture outbox), pull and new project what they fetched:
// the nurse sees a patient fetched with new at once, not after the next
// sync.
func TestPushPullNewProject(t *testing.T) {
	ctx := context.Background()
	nw := newNetwork(t, 1, nil, nil, nil)
	sat := nw.sats[0]
	sat.exec(`INSERT INTO party_party (code, name, active, create_uid, create_date) VALUES ('SA-1', 'Pushed', true, 1, now())`)
	captured, ps, err := sat.site.Push(ctx)
	if err != nil || captured != 1 || ps.Accepted != 1 {
		t.Fatalf("push: captured %d, %+v, %v", captured, ps, err)
	}
	if h, err := nw.central.store.Origins(ctx); err != nil || len(h) != 1 || h[0].Origin != 1 {
		t.Fatalf("central's heads after the push: %+v %v", h, err)
	}

	nw.central.exec(`INSERT INTO party_party (code, name, ref, active, create_uid, create_date) VALUES ('SA-0001', 'Ann', 'JM-77', true, 1, now())`)
	nw.central.exec(`INSERT INTO gnuhealth_patient (name, active, create_uid, create_date) SELECT id, true, 1, now() FROM party_party WHERE code = 'SA-0001'`)
	if err := nw.central.sync(); err != nil {
		t.Fatal(err)
	}
	pl, projected, err := sat.site.Pull(ctx, 0)
	if err != nil || pl.Appended != 2 || projected < pl.Appended {
		t.Fatalf("pull: %+v, projected %d, %v", pl, projected, err)
	}
	if n := sat.count(`SELECT count(*) FROM party_party WHERE code IN ('SA-0001', 'SA-1')`); n != 2 {
		t.Fatalf("after pull the satellite's party_party holds %d of the 2 parties", n)
	}

	local := nw.addSatellite(2, wire.ScopeLocal)
	st, projected, err := local.site.New(ctx, satellite.NewRequest{Patient: "JM-77"})
	if err != nil || st.Root != "party.party-SA-0001" || projected < 2 {
		t.Fatalf("new: %+v, projected %d, %v", st, projected, err)
	}
	if n := local.count(`SELECT count(*) FROM party_party p JOIN gnuhealth_patient g ON g.name = p.id WHERE p.code = 'SA-0001'`); n != 1 {
		t.Fatal("new fetched the patient but GNU Health does not show it")
	}
}

// TestScopeChangedAtSite: a satellite of scope local whose scope is
// widened in place gets, at its next cycle, everything central left out
// before, and its tables then equal everyone's; narrowed again, it keeps
// every row it has.
func TestScopeChangedAtSite(t *testing.T) {
	ctx := context.Background()
	nw := newNetwork(t, 1, nil, nil, nil)
	for i := range 12 {
		nw.central.exec(`INSERT INTO party_party (code, name, active, create_uid, create_date) VALUES ($1, 'Person', true, 1, now())`, "C-"+strconv.Itoa(i))
	}
	nw.quiesce()
	local := nw.addSatellite(2, wire.ScopeLocal)
	if err := local.sync(); err != nil {
		t.Fatal(err)
	}
	if n := local.count(`SELECT count(*) FROM party_party WHERE code LIKE 'C-%'`); n != 0 {
		t.Fatalf("scope local received %d of central's parties", n)
	}
	if _, _, err := nw.reg.ChangeSatellite(ctx, 2, central.SatelliteChange{Scope: wire.ScopeAll}); err != nil {
		t.Fatal(err)
	}
	nw.sats = append(nw.sats, local)
	nw.quiesce()
	nw.check()
	if n := local.count(`SELECT count(*) FROM party_party WHERE code LIKE 'C-%'`); n != 12 {
		t.Fatalf("widened: the satellite shows %d of central's 12 parties", n)
	}
	if _, _, err := nw.reg.ChangeSatellite(ctx, 2, central.SatelliteChange{Scope: wire.ScopeLocal}); err != nil {
		t.Fatal(err)
	}
	nw.central.exec(`INSERT INTO party_party (code, name, active, create_uid, create_date) VALUES ('C-new', 'Later', true, 1, now())`)
	if err := nw.central.sync(); err != nil {
		t.Fatal(err)
	}
	if err := local.sync(); err != nil {
		t.Fatal(err)
	}
	if n := local.count(`SELECT count(*) FROM party_party WHERE code LIKE 'C-%'`); n != 12 {
		t.Fatalf("narrowed: the satellite shows %d parties of central's, want the 12 it had", n)
	}
}

// TestFrontierReportNeverGoesBack: once a new satellite registers,
// central derives no frontier until it reports; the cycle reports the
// frontier the projector keeps (it never goes back) and, apart, central's
// answer.
func TestFrontierReportNeverGoesBack(t *testing.T) {
	ctx := context.Background()
	nw := newNetwork(t, 1, nil, nil, nil)
	nw.central.exec(`INSERT INTO party_party (code, name, active, create_uid, create_date) VALUES ('F-1', 'Someone', true, 1, now())`)
	nw.quiesce()
	sat := nw.sats[0]
	var r site.Report
	var err error
	for range 5 { // every instance reports, then the frontier passes the writes
		if r, err = sat.site.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if err := nw.central.sync(); err != nil {
			t.Fatal(err)
		}
	}
	kept := sat.site.Projector().Frontier()
	if kept == 0 || r.Frontier != kept || !r.Answered || r.Derived != kept {
		t.Fatalf("before: %+v; the projector keeps %s", r, kept)
	}
	nw.addSatellite(2, wire.ScopeAll) // it has not reported yet
	r, err = sat.site.Sync(ctx)
	if err != nil || r.Frontier != kept || !r.Answered || r.Derived != 0 || sat.site.Projector().Frontier() != kept {
		t.Fatalf("after a satellite registered: %+v %v; the projector keeps %s, want %s", r, err, sat.site.Projector().Frontier(), kept)
	}
}
