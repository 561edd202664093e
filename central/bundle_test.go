package central_test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ghsync/ghsync/bundle"
	"github.com/ghsync/ghsync/central"
	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/ledger/ledgertest"
	"github.com/ghsync/ghsync/ledger/sqlite"
	"github.com/ghsync/ghsync/wire"
)

// stick writes a bundle of events, in order, as a clinic's export would
// be; sel, when given, narrows the export.
func stick(t *testing.T, events []*ledger.Event, sel ...bundle.Selection) []byte {
	t.Helper()
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "clinic.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Append(ctx, events); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := bundle.Export(ctx, s, &buf, bundle.ExportOptions{Origin: events[0].Origin, Selection: append(sel, bundle.Selection{})[0]}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// importAt imports a bundle at central r as `ghsync import --id 0` does.
func importAt(r *rig, b []byte, batch int) (*bundle.ImportResult, error) {
	p, err := checkAt(r, b, batch)
	if err != nil {
		return nil, err
	}
	return p.Apply(context.Background())
}

func checkAt(r *rig, b []byte, batch int) (*bundle.Plan, error) {
	return checkAfter(r, b, batch, nil)
}

// checkAfter checks a bundle at central after the plan of the bundle
// before it in the same import, as `ghsync import --id 0 A B` does.
func checkAfter(r *rig, b []byte, batch int, after *bundle.Plan) (*bundle.Plan, error) {
	ctx := context.Background()
	return bundle.Check(ctx, r.store, bytes.NewReader(b), bundle.ImportOptions{
		Name: "usb", Batch: batch, Trust: bundle.Trust{InsecureSkipSignature: true},
		Admit: func(_ *bundle.Info, origin uint16, from uint64) error {
			return r.srv.AdmitBundleOrigin(ctx, origin, from)
		},
		Sink:  r.srv.BundleSink(),
		After: after,
	})
}

// A bundle is not a way around the push's rules: central takes only a
// registered, active satellite's new events, never extends its own chain
// from outside, bounds a clinic's clock that ran ahead, and adds the
// clinic's records to its held set, as a push does.
func TestBundleAdmittedAsPush(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, false)
	r.clock.Set(epoch.Add(time.Minute))
	o := ledgertest.NewOrigin(5)
	events := o.Patients(t, rng(t), 3)
	o.Wall.Advance(365 * 24 * time.Hour) // a year ahead
	events = append(events, o.Patients(t, rng(t), 3)...)
	b := stick(t, events)

	refused := func(want string) {
		t.Helper()
		_, err := importAt(r, b, 2)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "origin 5 from seq 1") {
			t.Fatalf("import: %v; want a refusal naming origin 5 from seq 1 and %q", err, want)
		}
		if h := r.head(t); h != 0 {
			t.Fatalf("a refused import left the ledger at head %d", h)
		}
	}
	refused("no satellite 5 is registered")
	r.add(t, 5, wire.ScopeLocal)
	if err := r.reg.RevokeSatellite(ctx, 5, time.Now()); err != nil {
		t.Fatal(err)
	}
	refused("satellite 5 was revoked")

	r.add(t, 5, wire.ScopeLocal) // registered again
	res, err := importAt(r, b, 0)
	if err != nil || res.Appended != 6 || res.Held != 0 || r.head(t) != 7 {
		t.Fatalf("import: %+v, %v, head %d; want 6 appended behind one clock bound", res, err, r.head(t))
	}
	recs, err := r.store.ReadAll(ctx, 0, 0, ledger.Filter{Origins: []uint16{0}})
	if err != nil || len(recs) != 1 {
		t.Fatalf("central's own events: %d, %v; want the one clock bound", len(recs), err)
	}
	if cb, err := ledger.ParseClockBound(recs[0].Event); err != nil || cb.Origin != 5 || cb.FromSeq != 4 || cb.ToSeq != 6 {
		t.Fatalf("clock bound: %+v, %v; want origin 5 seq 4..6", cb, err)
	}
	streams := make([]ledger.Stream, len(events))
	for i, e := range events {
		streams[i] = e.Stream()
	}
	if held, err := r.reg.HeldAmong(ctx, 5, streams); err != nil || len(held) == 0 {
		t.Fatalf("satellite 5's held set after its bundle: %v, %v", held, err)
	}

	// Importing it again changes nothing, and asks nothing of the origin.
	if err := r.reg.RevokeSatellite(ctx, 5, time.Now()); err != nil {
		t.Fatal(err)
	}
	if res, err := importAt(r, b, 2); err != nil || res.Duplicates != 6 || r.head(t) != 7 {
		t.Fatalf("second import: %+v, %v, head %d", res, err, r.head(t))
	}

	// Central's own chain is never extended from outside.
	own := ledgertest.NewOrigin(0)
	if _, err := importAt(newRig(t, false), stick(t, own.Patients(t, rng(t), 2)), 2); err == nil || !strings.Contains(err.Error(), "central's own") {
		t.Fatalf("a bundle of origin 0's events: %v", err)
	}
}

// With the hold policy, a bundle's events whose clock is too far ahead
// are kept out of the ledger, and so is the rest of their chain in later
// batches, as a push's would be; released, they go in.
func TestBundleHeldAcrossBatches(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, false, func(c *central.Config) { c.Skew = central.SkewHold })
	r.clock.Set(epoch.Add(time.Minute))
	r.add(t, 5, wire.ScopeAll)
	o := ledgertest.NewOrigin(5)
	events := o.Patients(t, rng(t), 3)
	o.Wall.Advance(2 * time.Hour)
	events = append(events, o.Patients(t, rng(t), 5)...)
	res, err := importAt(r, stick(t, events), 2) // batches of 2: the held chain spans three
	if err != nil || res.Appended != 3 || res.Held != 5 || r.head(t) != 3 {
		t.Fatalf("import: %+v, %v, head %d; want 3 appended, 5 held", res, err, r.head(t))
	}
	held, err := r.reg.HeldEvents(ctx, 5)
	if err != nil || len(held) != 5 || held[0].Seq != 4 || held[4].Seq != 8 || !strings.Contains(held[4].Reason, "follows held event seq 4") {
		t.Fatalf("held events: %+v, %v", held, err)
	}
	// Every record of the stick joined clinic 5's held set, those of
	// held events too.
	inHeldSet := func(evs []*ledger.Event) {
		t.Helper()
		want := map[ledger.Stream]bool{}
		var streams []ledger.Stream
		for _, e := range evs {
			want[e.Stream()] = true
			streams = append(streams, e.Stream())
		}
		if in, err := r.reg.HeldAmong(ctx, 5, streams); err != nil || len(in) != len(want) {
			t.Fatalf("%d of %d records in the held set, %v", len(in), len(want), err)
		}
	}
	inHeldSet(events)
	// The same stick again, and a longer one whose batches start inside
	// the held chain: what is held stays held once, what follows joins it.
	if res, err := importAt(r, stick(t, events), 2); err != nil || res.Duplicates != 3 || res.Held != 5 || r.head(t) != 3 {
		t.Fatalf("the stick again: %+v, %v, head %d", res, err, r.head(t))
	}
	more := append(slices.Clone(events), o.Patients(t, rng(t), 4)...)
	if res, err := importAt(r, stick(t, more), 3); err != nil || res.Duplicates != 3 || res.Held != 9 || r.head(t) != 3 {
		t.Fatalf("a longer stick: %+v, %v, head %d", res, err, r.head(t))
	}
	held, err = r.reg.HeldEvents(ctx, 5)
	if err != nil || len(held) != 9 || held[8].Seq != 12 {
		t.Fatalf("held events after the longer stick: %d, %v", len(held), err)
	}
	inHeldSet(more[8:])
	// A stick that starts past the held chain leaves a gap: refused.
	evenMore := append(slices.Clone(more), o.Patients(t, rng(t), 2)...)
	_, err = importAt(r, stick(t, evenMore, bundle.Selection{SincePosition: 13}), 0)
	if err == nil || !strings.Contains(err.Error(), "origin 5 from seq 14") || !strings.Contains(err.Error(), "holds seq 4..12 out of it for their clock: import first the bundle holding seq 4") {
		t.Fatalf("a stick past the held chain: %v", err)
	}
	if n, err := central.Release(ctx, r.store, r.reg, 5); err != nil || n != 9 || r.head(t) != 12 {
		t.Fatalf("release: %d, %v, head %d", n, err, r.head(t))
	}
}

// Central takes an origin's events in order and without gaps, as a push:
// a bundle narrowed by model (its seqs skip) is refused before anything
// is appended. When a refusal comes only while appending (here a
// satellite revoked between the check and the append), the error counts
// what the batch stored before it.
func TestBundleGapsAndPartialRefusals(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, false)
	r.add(t, 5, wire.ScopeAll)
	r.add(t, 6, wire.ScopeAll)
	o := ledgertest.NewOrigin(5)
	var events []*ledger.Event
	for i := range 4 {
		model := "gnuhealth.patient"
		if i == 2 {
			model = "party.party"
		}
		events = append(events, o.Event(t, model, fmt.Sprintf("K%d", i), ledger.OpCreate, map[string]ledger.Value{"name": ledger.String("x")}))
	}
	_, err := importAt(r, stick(t, events, bundle.Selection{Models: []string{"gnuhealth.patient"}}), 0)
	if err == nil || !strings.Contains(err.Error(), "skip from seq 2 to seq 4") || r.head(t) != 0 {
		t.Fatalf("a bundle with a gap: %v, head %d", err, r.head(t))
	}

	// Two clinics' events in one bundle (central's export, say), checked,
	// then clinic 6 revoked before the append.
	both := ledgertest.NewOrigin(5).Patients(t, rng(t), 3)
	both = append(both, ledgertest.NewOrigin(6).Patients(t, rng(t), 2)...)
	p, err := checkAt(r, stick(t, both), 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.reg.RevokeSatellite(ctx, 6, time.Now()); err != nil {
		t.Fatal(err)
	}
	res, err := p.Apply(ctx)
	if err == nil || !strings.Contains(err.Error(), "satellite 6 was revoked") || !strings.Contains(err.Error(), "3 events were appended and 0 held before this") ||
		res.Appended != 3 || r.head(t) != 3 {
		t.Fatalf("a refusal while appending: %+v, %v, head %d", res, err, r.head(t))
	}

	// A push's own refusal (here a fork: another event took seq 1 between
	// the check and the append) stops the import too, naming the event.
	r.add(t, 7, wire.ScopeAll)
	fork := ledgertest.NewOrigin(7).Patients(t, rng(t), 2)
	if p, err = checkAt(r, stick(t, fork), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := r.store.Append(ctx, ledgertest.NewOrigin(7).Patients(t, rng(t), 1)); err != nil {
		t.Fatal(err)
	}
	if res, err := p.Apply(ctx); err == nil || !strings.Contains(err.Error(), "origin 7 seq 1") || res.Appended != 0 {
		t.Fatalf("a forked event: %+v, %v", res, err)
	}
}

// A clinic's consecutive bundles, imported in one command in order, are
// admitted as one push would be: the later continues the earlier, whose
// events central holds only once the earlier is applied, also when they
// are held out of the ledger for their clock.
func TestBundleSequenceAtCentral(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, false, func(c *central.Config) { c.Skew = central.SkewHold })
	r.clock.Set(epoch.Add(time.Minute))
	r.add(t, 5, wire.ScopeAll)
	o := ledgertest.NewOrigin(5)
	events := o.Patients(t, rng(t), 4)
	o.Wall.Advance(2 * time.Hour) // seq 5 on: held for their clock
	events = append(events, o.Patients(t, rng(t), 6)...)
	since := func(pos uint64, n int) []byte { return stick(t, events[:n], bundle.Selection{SincePosition: pos}) }
	if _, err := importAt(r, since(0, 4), 0); err != nil || r.head(t) != 4 {
		t.Fatalf("the first bundle: %v, head %d", err, r.head(t))
	}
	b56, b78 := since(4, 6), since(6, 8)

	// The second alone: it does not follow what central holds.
	if _, err := checkAt(r, b78, 0); err == nil || !strings.Contains(err.Error(), "origin 5 from seq 7 is new to this ledger: central's ledger has origin 5 through seq 4: import first the bundle holding seq 5") {
		t.Fatalf("the later bundle alone: %v", err)
	}
	p56, err := checkAt(r, b56, 0)
	if err != nil {
		t.Fatal(err)
	}
	p78, err := checkAfter(r, b78, 0, p56)
	if err != nil {
		t.Fatalf("the later bundle after the earlier: %v", err)
	}
	// Skipping a bundle is refused, naming the one to import first.
	if _, err := checkAfter(r, since(8, 10), 0, p56); err == nil || !strings.Contains(err.Error(), "origin 5 from seq 9 is new to this ledger: the bundles before it in this import bring it through seq 6: import first the bundle holding seq 7") {
		t.Fatalf("a bundle after a gap: %v", err)
	}
	for _, p := range []*bundle.Plan{p56, p78} {
		if res, err := p.Apply(ctx); err != nil || res.Held != 2 {
			t.Fatalf("apply: %+v, %v; want 2 held", res, err)
		}
	}
	held, err := r.reg.HeldEvents(ctx, 5)
	if err != nil || len(held) != 4 || held[0].Seq != 5 || held[3].Seq != 8 || r.head(t) != 4 {
		t.Fatalf("held events: %+v, %v, head %d; want seq 5..8 held", held, err, r.head(t))
	}
}
