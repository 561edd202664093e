package site_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ghsync/ghsync/bundle"
	"github.com/ghsync/ghsync/central"
	"github.com/ghsync/ghsync/clocks"
	"github.com/ghsync/ghsync/internal/pgtest"
	"github.com/ghsync/ghsync/satellite"
	"github.com/ghsync/ghsync/site"
	"github.com/ghsync/ghsync/wire"
)

// usbLink is a satellite that exchanges only bundles with central: what
// `ghsync export` and `ghsync import --id` do at each end.
type usbLink struct {
	t                *testing.T
	nw               *network
	sat              *node
	satKey, cenKey   ed25519.PrivateKey
	cenPos, satPos   uint64 // where the next export of each side starts
	toCentral, toSat int    // bundles carried
}

func newUSBLink(t *testing.T, nw *network, id uint16) *usbLink {
	t.Helper()
	l := &usbLink{t: t, nw: nw, sat: newNode(t, id, 0)}
	if err := nw.reg.AddSatellite(context.Background(), central.Satellite{ID: id, Name: "clinic without a link", Scope: wire.ScopeAll,
		TokenHash: central.HashToken(fmt.Sprint("unused token of ", id)), Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	l.sat.open("", "", nil, nil, nil)
	var err error
	if l.satKey, err = bundle.GenerateKey(); err != nil {
		t.Fatal(err)
	}
	if l.cenKey, err = bundle.GenerateKey(); err != nil {
		t.Fatal(err)
	}
	return l
}

// carry exports from one instance and imports into the other, returning
// what the import recorded about stability.
func (l *usbLink) carry(from, to *node, since *uint64, sel bundle.Selection, key ed25519.PrivateKey) (string, error) {
	l.t.Helper()
	ctx := context.Background()
	sel.SincePosition = *since
	opts := bundle.ExportOptions{Origin: from.id, Selection: sel, Key: key}
	if err := site.ExportStability(ctx, from.url, &opts); err != nil {
		l.t.Fatal(err)
	}
	var buf bytes.Buffer
	exp, err := bundle.Export(ctx, from.store, &buf, opts)
	if err != nil {
		l.t.Fatal(err)
	}
	*since = exp.Through
	pub := key.Public().(ed25519.PublicKey)
	res, err := bundle.Import(ctx, to.store, bytes.NewReader(buf.Bytes()), bundle.ImportOptions{Name: "usb", Trust: bundle.Trust{Keys: []ed25519.PublicKey{pub}}})
	if err != nil {
		l.t.Fatal(err)
	}
	return site.RecordBundle(ctx, to.store, to.url, to.id, res.Info, res, site.Signers{from.id: {pub}})
}

// round takes the stick to central and back: the satellite's own events
// with its report, then everything central has since the last trip.
func (l *usbLink) round() {
	l.t.Helper()
	if err := l.sat.sync(); err != nil {
		l.t.Fatal(err)
	}
	if _, err := l.carry(l.sat, l.nw.central, &l.satPos, bundle.Selection{Origins: []uint16{l.sat.id}}, l.satKey); err != nil {
		l.t.Fatalf("to central: %v", err)
	}
	if err := l.nw.central.sync(); err != nil {
		l.t.Fatal(err)
	}
	if _, err := l.carry(l.nw.central, l.sat, &l.cenPos, bundle.Selection{}, l.cenKey); err != nil {
		l.t.Fatalf("to the satellite: %v", err)
	}
	if err := l.sat.sync(); err != nil {
		l.t.Fatal(err)
	}
}

// TestBundleOnlySatelliteCompacts: a registered satellite that sees
// central only through bundles no longer holds the network's stability
// frontier at zero. Its bundles carry its reports, central's carry the
// frontier; a party renamed at every instance is compacted everywhere,
// the bundle-only satellite included, and all three end with the same
// tables and conflicts.
func TestBundleOnlySatelliteCompacts(t *testing.T) {
	ctx := context.Background()
	nw := newNetwork(t, 1, nil, nil, nil)
	usb := newUSBLink(t, nw, 2)
	nw.central.exec(`INSERT INTO party_party (code, name, active, create_uid, create_date) VALUES ('BUSY', 'Ward clerk', true, 1, now())`)
	nw.quiesce()
	usb.round()
	renames := 1
	nodes := append(nw.all(), usb.sat)
	for round := range 8 {
		for _, n := range nodes {
			n.exec(`UPDATE party_party SET name = $1, write_uid = 1, write_date = now() WHERE code = 'BUSY'`, fmt.Sprintf("Clerk %d at %d", round, n.id))
			renames++
		}
		nw.quiesce()
		usb.round()
	}
	// The last renames reach everyone, then one more round lets the
	// reports of those trips reach central and its frontier come back.
	nw.quiesce()
	usb.round()
	nw.quiesce()
	usb.round()
	nw.central.exec(`UPDATE party_party SET name = 'Clerk, last', write_uid = 1, write_date = now() WHERE code = 'BUSY'`)
	renames++
	nw.quiesce()
	usb.round()

	reps, err := nw.reg.Stabilities(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(fmt.Sprint(reps), "{2 ") {
		t.Fatalf("central recorded no report of the bundle-only satellite: %+v", reps)
	}
	f, err := nw.reg.LastFrontier(ctx)
	if err != nil || f == 0 {
		t.Fatalf("central's recorded frontier: %s, %v", f, err)
	}
	nw.sats = append(nw.sats, usb.sat) // for check: tables, conflicts
	nw.check()
	for _, n := range nw.all() {
		n.compacted("BUSY", renames)
	}
}

// What a bundle says about stability is believed only when it can be
// true and comes from a trusted signer; the events are imported either
// way, and nothing recorded changes.
func TestBundleStabilityRefused(t *testing.T) {
	ctx := context.Background()
	nw := newNetwork(t, 0, nil, nil, nil)
	usb := newUSBLink(t, nw, 3)
	usb.sat.exec(`INSERT INTO party_party (code, name, active, create_uid, create_date) VALUES ('S3-1', 'Ana', true, 1, now())`)
	if err := usb.sat.sync(); err != nil {
		t.Fatal(err)
	}
	export := func(n *node, sel bundle.Selection, key ed25519.PrivateKey) *bundle.Info {
		opts := bundle.ExportOptions{Origin: n.id, Selection: sel, Key: key}
		if err := site.ExportStability(ctx, n.url, &opts); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if _, err := bundle.Export(ctx, n.store, &buf, opts); err != nil {
			t.Fatal(err)
		}
		info, err := bundle.Verify("b", bytes.NewReader(buf.Bytes()), bundle.Trust{Keys: []ed25519.PublicKey{usb.satKey.Public().(ed25519.PublicKey)}})
		if err != nil {
			t.Fatal(err)
		}
		return info
	}
	info := export(usb.sat, bundle.Selection{}, usb.satKey)
	if info.Header.Report == nil {
		t.Fatal("the satellite's export carries no report after a completed cycle")
	}
	noReports := func() {
		t.Helper()
		if reps, err := nw.reg.Stabilities(ctx); err != nil || strings.Contains(fmt.Sprint(reps), "{3 ") {
			t.Fatalf("a refused report was recorded: %+v %v", reps, err)
		}
	}
	satPub, cenPub := usb.satKey.Public().(ed25519.PublicKey), usb.cenKey.Public().(ed25519.PublicKey)
	bound := site.Signers{3: {satPub}}
	for _, c := range []struct {
		name, saying string
		edit         func(i bundle.Info) *bundle.Info
		signers      site.Signers
	}{
		{"events not at central", "holds them through seq 0", func(i bundle.Info) *bundle.Info { return &i }, bound},
		{"untrusted signer", "signed by an untrusted key", func(i bundle.Info) *bundle.Info { i.Signature = bundle.SignedUntrusted; return &i }, bound},
		{"signer not bound to the satellite", "not bound to it", func(i bundle.Info) *bundle.Info { return &i }, site.Signers{0: {satPub}, 4: {satPub}}},
		{"unregistered satellite", "no such satellite", func(i bundle.Info) *bundle.Info { i.Header.Origin = 9; return &i }, site.Signers{9: {satPub}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := site.RecordBundle(ctx, nw.central.store, nw.central.url, 0, c.edit(*info), &bundle.ImportResult{}, c.signers)
			if !errors.Is(err, site.ErrStabilityRefused) || !strings.Contains(err.Error(), c.saying) {
				t.Fatalf("got %v, want a refusal saying %q", err, c.saying)
			}
			noReports()
		})
	}
	// A model-filtered export does not vouch for the satellite's events.
	if i := export(usb.sat, bundle.Selection{Models: []string{"party.address"}}, usb.satKey); i.Header.Report != nil {
		t.Fatalf("a filtered export carries a report: %+v", i.Header.Report)
	}

	// What central's bundles say is refused, and nothing of it stored,
	// from a clinic's key passing for central, from a filtered export,
	// and for a frontier far past every clock (damage, or a central that
	// miscounted).
	st, err := satellite.OpenBundleState(ctx, usb.sat.url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	centrals := func(sel bundle.Selection, frontier clocks.Timestamp, key ed25519.PrivateKey) (*bundle.Info, *bundle.ImportResult) {
		t.Helper()
		var buf bytes.Buffer
		if _, err := bundle.Export(ctx, nw.central.store, &buf, bundle.ExportOptions{Origin: 0, Selection: sel, Key: key, Frontier: frontier}); err != nil {
			t.Fatal(err)
		}
		res, err := bundle.Import(ctx, usb.sat.store, bytes.NewReader(buf.Bytes()), bundle.ImportOptions{Trust: bundle.Trust{Keys: []ed25519.PublicKey{satPub, cenPub}}})
		if err != nil {
			t.Fatal(err)
		}
		return res.Info, res
	}
	now := clocks.New(time.Now().UnixMilli(), 0)
	for _, c := range []struct {
		name, saying string
		sel          bundle.Selection
		frontier     clocks.Timestamp
		key          ed25519.PrivateKey
	}{
		{"a clinic's key", "not bound to it", bundle.Selection{}, now, usb.satKey},
		{"filtered", "not a complete export", bundle.Selection{Origins: []uint16{0}}, now, usb.cenKey},
		{"frontier ten years ahead", "more than 24h0m0s ahead", bundle.Selection{}, clocks.New(time.Now().AddDate(10, 0, 0).UnixMilli(), 0), usb.cenKey},
	} {
		t.Run("central's bundle: "+c.name, func(t *testing.T) {
			info, res := centrals(c.sel, c.frontier, c.key)
			_, err := site.RecordBundle(ctx, usb.sat.store, usb.sat.url, 3, info, res, site.Signers{0: {cenPub}})
			if !errors.Is(err, site.ErrStabilityRefused) || !strings.Contains(err.Error(), c.saying) {
				t.Fatalf("got %v, want a refusal saying %q", err, c.saying)
			}
			if o, err := st.Load(ctx); err != nil || o.Covered != 0 || o.Frontier != 0 {
				t.Fatalf("a refused bundle changed the state: %+v %v", o, err)
			}
		})
	}
}

// TestLateSatelliteWaitsForFrontier: a satellite registered after central
// derived a frontier gets it in central's bundles, but gives it to its
// projector only once its tables reflect central through the bundle that
// carried it; a tail bundle imported first (a gap) records nothing.
func TestLateSatelliteWaitsForFrontier(t *testing.T) {
	ctx := context.Background()
	nw := newNetwork(t, 1, nil, nil, nil)
	for i := range 3 {
		nw.central.exec(`INSERT INTO party_party (code, name, active, create_uid, create_date) VALUES ($1, 'Ward clerk', true, 1, now())`, fmt.Sprint("C-", i))
		nw.quiesce()
	}
	nw.quiesce()
	f, err := nw.reg.LastFrontier(ctx)
	if err != nil || f == 0 {
		t.Fatalf("no frontier to hand on: %s %v", f, err)
	}
	usb := newUSBLink(t, nw, 5)
	head, err := nw.central.store.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	usb.cenPos = head - 1
	if _, err := usb.carry(nw.central, usb.sat, &usb.cenPos, bundle.Selection{}, usb.cenKey); !errors.Is(err, site.ErrStabilityRefused) || !errors.Is(err, satellite.ErrCoverageGap) {
		t.Fatalf("central's tail bundle first: %v, want a coverage gap", err)
	}
	st, err := satellite.OpenBundleState(ctx, usb.sat.url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if o, err := st.Load(ctx); err != nil || o.Frontier != 0 || o.Covered != 0 {
		t.Fatalf("the tail bundle recorded %+v (%v)", o, err)
	}
	if err := usb.sat.sync(); err != nil {
		t.Fatal(err)
	}
	if got := usb.sat.site.Projector().Frontier(); got != 0 {
		t.Fatalf("after the tail bundle, the projector took frontier %s", got)
	}
	usb.cenPos = 0
	if note, err := usb.carry(nw.central, usb.sat, &usb.cenPos, bundle.Selection{}, usb.cenKey); err != nil || !strings.Contains(note, "stability frontier") {
		t.Fatalf("central's whole ledger: %q %v", note, err)
	}
	if o, err := st.Load(ctx); err != nil || o.Frontier < f || o.UsableFrontier() != 0 {
		t.Fatalf("imported, not yet projected: %+v (usable %s), %v", o, o.UsableFrontier(), err)
	}
	if err := usb.sat.sync(); err != nil {
		t.Fatal(err)
	}
	if got := usb.sat.site.Projector().Frontier(); got < f {
		t.Fatalf("projected: the projector's frontier %s, want central's %s", got, f)
	}
}

// A satellite stamps every change after the clock reading its last
// completed cycle vouched for, even a change made before it (one that
// missed that cycle's drain) and even with the machine's clock behind it,
// and after the last frontier it learnt: in its next process (the site's
// clock resumes past both), and in the running one once a cycle has seen
// a frontier another process recorded.
func TestClockResumesPastVouchedReading(t *testing.T) {
	ctx := context.Background()
	ahead := func() clocks.Timestamp { return clocks.New(time.Now().Add(time.Minute).UnixMilli(), 0) }
	for _, c := range []struct {
		name    string
		record  func(st *satellite.BundleState) (clocks.Timestamp, error)
		restart bool
	}{
		{"vouched reading, next process", func(st *satellite.BundleState) (clocks.Timestamp, error) {
			f := ahead()
			_, err := st.CycleDone(ctx, f, 1, 0)
			return f, err
		}, true},
		{"frontier, next process", func(st *satellite.BundleState) (clocks.Timestamp, error) {
			f := ahead()
			_, err := st.CentralImported(ctx, 0, 0, 0, f)
			return f, err
		}, true},
		{"frontier not usable yet, same process", func(st *satellite.BundleState) (clocks.Timestamp, error) {
			// Covering central's positions up to 5, appended past where
			// the projector is: the tables do not reflect it yet.
			f := ahead()
			o, err := st.CentralImported(ctx, 0, 5, 1000, f)
			if o.UsableFrontier() != 0 {
				t.Fatalf("the frontier is usable already: %+v", o)
			}
			return f, err
		}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := newNode(t, 4, 0)
			n.open("", "", nil, nil, nil)
			n.exec(`INSERT INTO party_party (code, name, active, create_uid, create_date) VALUES ('S4-1', 'Ana', true, 1, now())`)
			if err := n.sync(); err != nil {
				t.Fatal(err)
			}
			st, err := satellite.OpenBundleState(ctx, n.url)
			if err != nil {
				t.Fatal(err)
			}
			floor, err := c.record(st)
			st.Close()
			if err != nil {
				t.Fatal(err)
			}
			if c.restart {
				n.site.Close()
				n.open("", "", nil, nil, nil)
			} else if err := n.sync(); err != nil { // the cycle that learns it
				t.Fatal(err)
			}
			n.exec(`UPDATE party_party SET name = 'Ana B.', write_uid = 1, write_date = now() WHERE code = 'S4-1'`)
			if err := n.sync(); err != nil {
				t.Fatal(err)
			}
			recs, err := n.store.ReadOrigin(ctx, 4, 1, 10)
			if err != nil || len(recs) != 1 {
				t.Fatalf("the rename: %d events, %v", len(recs), err)
			}
			if h := recs[0].Event.HLC; h <= floor {
				t.Fatalf("the rename is stamped %s, not after %s", h, floor)
			}
		})
	}
}

// Central's processes that stamp its events (serve, capture) resume past
// its own last report and the last frontier it derived.
func TestResumeClockAtCentral(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	reg, err := central.OpenRegistry(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	now := time.Now()
	frontier, own := clocks.New(now.Add(time.Minute).UnixMilli(), 0), clocks.New(now.Add(2*time.Minute).UnixMilli(), 0)
	for _, step := range []struct {
		record func() error
		floor  clocks.Timestamp
	}{
		{func() error { return reg.RaiseFrontier(ctx, frontier) }, frontier},
		{func() error { return reg.ReportStable(ctx, central.Stability{Origin: 0, HLC: own, Reported: now}) }, own},
	} {
		if err := step.record(); err != nil {
			t.Fatal(err)
		}
		clock := clocks.NewClock(nil, clocks.DefaultMaxOffset)
		if err := site.ResumeClock(ctx, clock, 0, url); err != nil {
			t.Fatal(err)
		}
		if got := clock.Now(); got <= step.floor {
			t.Fatalf("central's clock resumed at %s, not after %s", got, step.floor)
		}
	}
}

// A cycle whose clock reading cannot be recorded beside the ledger does
// not report it to central: the next process could not resume past it.
func TestUnrecordedCycleIsNotReported(t *testing.T) {
	ctx := context.Background()
	nw := newNetwork(t, 1, nil, nil, nil)
	sat := nw.sats[0]
	sat.exec(`DROP TABLE ghsync.bundle_state`)
	if err := sat.sync(); err != nil {
		t.Fatal(err)
	}
	reps, err := nw.reg.Stabilities(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range reps {
		if r.Origin == sat.id {
			t.Fatalf("satellite %d reported %+v though it could not record it", sat.id, r)
		}
	}
}
