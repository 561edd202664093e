package central_test

import (
	"bytes"
	"context"
	"path/filepath"
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

// stick writes a bundle of events, in order, signed by a fresh key, as a
// clinic's export would be.
func stick(t *testing.T, events []*ledger.Event) []byte {
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
	if _, err := bundle.Export(ctx, s, &buf, bundle.ExportOptions{Origin: events[0].Origin}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// importAt imports a bundle at central r as `ghsync import --id 0` does.
func importAt(r *rig, b []byte, batch int) (*bundle.ImportResult, error) {
	ctx := context.Background()
	return bundle.Import(ctx, r.store, bytes.NewReader(b), bundle.ImportOptions{
		Name: "usb", Batch: batch, Trust: bundle.Trust{InsecureSkipSignature: true},
		Admit: func(_ *bundle.Info, origin uint16) error { return r.srv.AdmitBundleOrigin(ctx, origin) },
		Sink:  r.srv.BundleSink(),
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
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "origin 5 seq 1") {
			t.Fatalf("import: %v; want a refusal naming origin 5 seq 1 and %q", err, want)
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
	if n, err := central.Release(ctx, r.store, r.reg, 5); err != nil || n != 5 || r.head(t) != 8 {
		t.Fatalf("release: %d, %v, head %d", n, err, r.head(t))
	}
}
