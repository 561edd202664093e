package central_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/ledger/ledgertest"
	"github.com/ghsync/ghsync/wire"
)

func ref(model, key string) ledger.Value {
	v, err := ledger.RefTo(model, key)
	if err != nil {
		panic(err)
	}
	return v
}

type fields = map[string]ledger.Value

func str(s string) ledger.Value { return ledger.String(s) }

// streams lists the distinct streams of recs, as "model-key" names, sorted.
func streams(recs []ledger.Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.Event.Stream().String())
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func positions(recs []ledger.Record) []uint64 {
	var out []uint64
	for _, r := range recs {
		out = append(out, r.Position)
	}
	return out
}

func name(model, key string) string { return ledger.Stream{Model: model, Key: key}.String() }

// Scope local: a satellite receives reference data, its held records,
// records that reference them (which then join), and what those point at;
// not other clinics' patients.
func TestScopeLocal(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) { testScopeLocal(t, pg) })
	}
}

func testScopeLocal(t *testing.T, pg bool) {
	r := newRig(t, pg)
	tok1 := r.add(t, 1, wire.ScopeLocal)
	tok2 := r.add(t, 2, wire.ScopeAll)
	ctx := context.Background()

	c0 := ledgertest.NewOrigin(0)
	c1 := ledgertest.NewOrigin(1)
	c2 := ledgertest.NewOrigin(2)
	// Central publishes reference and master data.
	if _, err := r.store.Store.Append(ctx, []*ledger.Event{
		c0.Event(t, "country.country", "JM", ledger.OpCreate, fields{"name": str("Jamaica"), "code": str("JM")}),
		c0.Event(t, "gnuhealth.pathology", "A00", ledger.OpCreate, fields{"name": str("Cholera"), "code": str("A00")}),
		c0.Event(t, "gnuhealth.pathology", "B00", ledger.OpCreate, fields{"name": str("Herpes"), "code": str("B00")}),
	}); err != nil {
		t.Fatal(err)
	}
	// Clinic 2 registers its institution and an unrelated patient.
	r.push(t, tok2, []*ledger.Event{
		c2.Event(t, "party.party", "HC2", ledger.OpCreate, fields{"name": str("Health Centre 2")}),
		c2.Event(t, "gnuhealth.institution", "HC2", ledger.OpCreate, fields{"name": ref("party.party", "HC2"), "code": str("HC2")}),
		c2.Event(t, "party.party", "P2", ledger.OpCreate, fields{"name": str("Other"), "ref": str("JM2")}),
		c2.Event(t, "gnuhealth.patient", "P2", ledger.OpCreate, fields{"name": ref("party.party", "P2")}),
	})
	// Clinic 1 registers its patient: held by clinic 1 from now on.
	r.push(t, tok1, []*ledger.Event{
		c1.Event(t, "party.party", "P1", ledger.OpCreate, fields{"name": str("Ann"), "ref": str("JM1")}),
		c1.Event(t, "gnuhealth.patient", "P1", ledger.OpCreate, fields{"name": ref("party.party", "P1")}),
	})
	// Clinic 2 sees clinic 1's patient (a referral), and its own.
	r.push(t, tok2, []*ledger.Event{
		c2.Event(t, "party.party", "P1", ledger.OpWrite, fields{"lastname": str("Brown")}),
		c2.Event(t, "gnuhealth.appointment", "A1", ledger.OpCreate, fields{"patient": ref("gnuhealth.patient", "P1"), "institution": ref("gnuhealth.institution", "HC2")}),
		c2.Event(t, "gnuhealth.appointment", "A2", ledger.OpCreate, fields{"patient": ref("gnuhealth.patient", "P2"), "institution": ref("gnuhealth.institution", "HC2")}),
		c2.Event(t, "gnuhealth.patient.evaluation", "E1", ledger.OpCreate, fields{"patient": ref("gnuhealth.patient", "P1"), "diagnosis": ref("gnuhealth.pathology", "A00")}),
		c2.Event(t, "gnuhealth.patient.evaluation", "E2", ledger.OpCreate, fields{"patient": ref("gnuhealth.patient", "P2"), "diagnosis": ref("gnuhealth.pathology", "B00")}),
		c2.Event(t, "gnuhealth.appointment", "A1", ledger.OpWrite, fields{"state": str("done")}),
	})
	want := []string{
		name("country.country", "JM"),              // reference data
		name("gnuhealth.appointment", "A1"),        // references held patient P1: joins
		name("gnuhealth.institution", "HC2"),       // what A1 points at, with its history
		name("gnuhealth.pathology", "A00"),         // what E1 points at
		name("gnuhealth.patient.evaluation", "E1"), // references P1
		name("party.party", "HC2"),                 // what the institution points at
		name("party.party", "P1"),                  // held: clinic 2's edit of it
	}
	// Small pages, so joins and backfills cross page boundaries.
	var got []ledger.Record
	var after uint64
	for {
		resp, recs := r.pull(t, tok1, after, "&limit=3")
		got = append(got, recs...)
		next, _ := strconv.ParseUint(resp.Header.Get(wire.HeaderNext), 10, 64)
		if next >= r.head(t) {
			break
		}
		after = next
	}
	if s := streams(got); !slices.Equal(s, want) {
		t.Fatalf("clinic 1 (local) received\n%s\nwant\n%s", strings.Join(s, "\n"), strings.Join(want, "\n"))
	}
	for _, rec := range got {
		if rec.Event.Origin == 1 {
			t.Fatalf("clinic 1 received its own event at %d", rec.Position)
		}
	}
	if n := len(got); n != 8 { // JM, A00, HC2 ×2, P1 edit, A1 ×2, E1
		t.Fatalf("received %d events (%v), want 8", n, positions(got))
	}
	// A page answer that was lost is sent again, backfill included.
	h := r.head(t)
	var again []ledger.Record
	for after = 0; after < h; {
		resp, recs := r.pull(t, tok1, after, "&limit=3")
		again = append(again, recs...)
		after, _ = strconv.ParseUint(resp.Header.Get(wire.HeaderNext), 10, 64)
	}
	// (Records held by now come in order, and once more with the page
	// that covers their join: appending is idempotent.)
	if a, g := slices.Compact(slices.Sorted(slices.Values(positions(again)))), slices.Sorted(slices.Values(positions(got))); !slices.Equal(a, g) {
		t.Fatalf("second pull from 0: %v, first: %v", positions(again), positions(got))
	}
	// Later changes to held records follow; the unrelated patient's don't,
	// nor those of records merely pointing at a shared one (HC2).
	r.push(t, tok2, []*ledger.Event{
		c2.Event(t, "gnuhealth.patient.evaluation", "E1", ledger.OpWrite, fields{"notes": str("better")}),
		c2.Event(t, "gnuhealth.patient", "P2", ledger.OpWrite, fields{"notes": str("x")}),
		c2.Event(t, "gnuhealth.appointment", "A3", ledger.OpCreate, fields{"patient": ref("gnuhealth.patient", "P2"), "institution": ref("gnuhealth.institution", "HC2")}),
	})
	_, recs := r.pull(t, tok1, h, "")
	if s := streams(recs); !slices.Equal(s, []string{name("gnuhealth.patient.evaluation", "E1")}) {
		t.Fatalf("after more changes clinic 1 received %v", s)
	}
	// Clinic 2 (scope all) receives everything but its own events.
	all := r.pullAll(t, tok2)
	if len(all) != 5 { // central's 3, clinic 1's 2
		t.Fatalf("clinic 2 (all) received %d events: %v", len(all), streams(all))
	}
}

// POST /v1/new with a PUID: the whole graph of that patient arrives, and
// joins the caller's held set.
func TestNewPatient(t *testing.T) {
	r := newRig(t, false)
	tok1 := r.add(t, 1, wire.ScopeLocal)
	tok2 := r.add(t, 2, wire.ScopeAll)
	ctx := context.Background()
	c0 := ledgertest.NewOrigin(0)
	c2 := ledgertest.NewOrigin(2)
	if _, err := r.store.Store.Append(ctx, []*ledger.Event{
		c0.Event(t, "country.country", "JM", ledger.OpCreate, fields{"name": str("Jamaica")}),
		c0.Event(t, "gnuhealth.pathology", "A00", ledger.OpCreate, fields{"name": str("Cholera")}),
	}); err != nil {
		t.Fatal(err)
	}
	r.push(t, tok2, []*ledger.Event{
		c2.Event(t, "party.party", "HC2", ledger.OpCreate, fields{"name": str("Health Centre 2")}),
		c2.Event(t, "gnuhealth.institution", "HC2", ledger.OpCreate, fields{"name": ref("party.party", "HC2")}),
		c2.Event(t, "party.party", "DR", ledger.OpCreate, fields{"name": str("Dr Who")}),
		c2.Event(t, "gnuhealth.healthprofessional", "DR", ledger.OpCreate, fields{"name": ref("party.party", "DR"), "institution": ref("gnuhealth.institution", "HC2")}),
		// The patient: party (PUID in ref), patient, address, phone.
		c2.Event(t, "party.party", "PX", ledger.OpCreate, fields{"name": str("Ann"), "ref": str("JM-OLD"), "citizenship": ref("country.country", "JM")}),
		c2.Event(t, "party.party", "PX", ledger.OpWrite, fields{"ref": str("JM0020001")}),
		c2.Event(t, "gnuhealth.patient", "PX", ledger.OpCreate, fields{"name": ref("party.party", "PX")}),
		c2.Event(t, "party.address", "AD1", ledger.OpCreate, fields{"party": ref("party.party", "PX"), "city": str("Kingston")}),
		c2.Event(t, "party.contact_mechanism", "CM1", ledger.OpCreate, fields{"party": ref("party.party", "PX"), "type": str("mobile")}),
		c2.Event(t, "gnuhealth.appointment", "AP1", ledger.OpCreate, fields{"patient": ref("gnuhealth.patient", "PX"),
			"institution": ref("gnuhealth.institution", "HC2"), "healthprof": ref("gnuhealth.healthprofessional", "DR")}),
		c2.Event(t, "gnuhealth.patient.evaluation", "EV1", ledger.OpCreate, fields{"patient": ref("gnuhealth.patient", "PX"),
			"appointment": ref("gnuhealth.appointment", "AP1"), "diagnosis": ref("gnuhealth.pathology", "A00"), "healthprof": ref("gnuhealth.healthprofessional", "DR")}),
		c2.Event(t, "gnuhealth.diagnostic_hypothesis", "DH1", ledger.OpCreate, fields{"evaluation": ref("gnuhealth.patient.evaluation", "EV1"),
			"pathology": ref("gnuhealth.pathology", "A00")}),
		// Someone else, seen by the same doctor at the same centre.
		c2.Event(t, "party.party", "PY", ledger.OpCreate, fields{"name": str("Bob"), "ref": str("JM0020002")}),
		c2.Event(t, "gnuhealth.patient", "PY", ledger.OpCreate, fields{"name": ref("party.party", "PY")}),
		c2.Event(t, "gnuhealth.appointment", "AP2", ledger.OpCreate, fields{"patient": ref("gnuhealth.patient", "PY"),
			"institution": ref("gnuhealth.institution", "HC2"), "healthprof": ref("gnuhealth.healthprofessional", "DR")}),
	})
	post := func(body string) (*http.Response, []ledger.Record, []byte) {
		req, _ := http.NewRequest(http.MethodPost, r.ts.URL+wire.PathNew, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok1)
		req.Header.Set("Accept-Encoding", "gzip")
		resp, err := r.ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return resp, nil, raw
		}
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		recs, err := wire.DecodePull(zr, wire.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		return resp, recs, raw
	}
	resp, recs, raw := post(`{"patient":"JM0020001"}`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("new: %d %s", resp.StatusCode, raw)
	}
	want := []string{
		name("gnuhealth.appointment", "AP1"),
		name("gnuhealth.diagnostic_hypothesis", "DH1"),
		name("gnuhealth.healthprofessional", "DR"),
		name("gnuhealth.institution", "HC2"),
		name("gnuhealth.pathology", "A00"),
		name("gnuhealth.patient", "PX"),
		name("gnuhealth.patient.evaluation", "EV1"),
		name("party.address", "AD1"),
		name("party.contact_mechanism", "CM1"),
		name("party.party", "DR"),
		name("party.party", "HC2"),
		name("party.party", "PX"),
	}
	if s := streams(recs); !slices.Equal(s, want) {
		t.Fatalf("new --patient received\n%s\nwant\n%s", strings.Join(s, "\n"), strings.Join(want, "\n"))
	}
	if len(recs) != 13 || !slices.IsSorted(positions(recs)) || resp.Header.Get(wire.HeaderStreams) != "12" ||
		resp.Header.Get(wire.HeaderRoot) != "party.party-PX" || resp.Header.Get(wire.HeaderNote) != "" {
		t.Fatalf("%d events at %v, %s streams, root %q, note %q", len(recs), positions(recs), resp.Header.Get(wire.HeaderStreams),
			resp.Header.Get(wire.HeaderRoot), resp.Header.Get(wire.HeaderNote))
	}
	// The graph joined clinic 1's held set: later changes follow by pull.
	h := r.head(t)
	r.push(t, tok2, []*ledger.Event{
		c2.Event(t, "gnuhealth.patient", "PX", ledger.OpWrite, fields{"notes": str("allergic")}),
		c2.Event(t, "gnuhealth.patient", "PY", ledger.OpWrite, fields{"notes": str("x")}),
	})
	if _, recs := r.pull(t, tok1, h, ""); len(recs) != 1 || recs[0].Event.Key != "PX" {
		t.Fatalf("after new, a pull brought %v", streams(recs))
	}
	// The old PUID (a card printed before it was corrected) still finds
	// the party, and the answer says it is no longer the current one.
	resp, recs, raw = post(`{"patient":"JM-OLD"}`)
	if resp.StatusCode != http.StatusOK || resp.Header.Get(wire.HeaderRoot) != "party.party-PX" || len(recs) != 14 || // 13, and the write above

		!strings.Contains(resp.Header.Get(wire.HeaderNote), `PUID "JM-OLD" is no longer this patient's current one`) {
		t.Fatalf("new by an old PUID: %d %s, root %q, note %q, %d events", resp.StatusCode, raw, resp.Header.Get(wire.HeaderRoot), resp.Header.Get(wire.HeaderNote), len(recs))
	}
	// Unknown ones find nothing.
	for body, status := range map[string]int{
		`{"patient":"nobody"}`:                         http.StatusNotFound,
		`{"model":"party.party","key":"nobody"}`:       http.StatusNotFound,
		`{"patient":"x","model":"party.party"}`:        http.StatusBadRequest,
		`{"patient":1}`:                                http.StatusBadRequest,
		`{"model":"Party","key":"x"}`:                  http.StatusBadRequest,
		`{"model":"party.party","key":"PY","depth":1}`: http.StatusOK,
	} {
		if resp, _, raw := post(body); resp.StatusCode != status {
			t.Errorf("new %s: %d %s, want %d", body, resp.StatusCode, raw, status)
		}
	}
	// Two parties with one PUID: ambiguous, say which.
	r.push(t, tok2, []*ledger.Event{c2.Event(t, "party.party", "PZ", ledger.OpCreate, fields{"ref": str("JM0020002")})})
	resp, _, raw = post(`{"patient":"JM0020002"}`)
	var e wire.Error
	json.Unmarshal(raw, &e)
	if resp.StatusCode != http.StatusConflict || !strings.Contains(e.Error, "PY, PZ") {
		t.Fatalf("ambiguous PUID: %d %s", resp.StatusCode, raw)
	}
}

// FuzzPushRequest: whatever the body, a push central refuses stores
// nothing. (Decoding is all or nothing: the store is touched only once
// the whole body decoded.)
func FuzzPushRequest(f *testing.F) {
	r := newRig(f, false)
	tok := r.add(f, 1, wire.ScopeAll)
	o := ledgertest.NewOrigin(1)
	rng := ledgertest.Rand(f)
	var plain bytes.Buffer
	wire.EncodePush(&plain, o.Patients(f, rng, 3))
	f.Add(plain.Bytes())
	var other bytes.Buffer
	wire.EncodePush(&other, ledgertest.NewOrigin(2).Patients(f, rng, 2))
	f.Add(other.Bytes())
	f.Add(wire.Magic[:])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		before := r.head(t)
		// Straight to the handler: no network, so coverage is the server's.
		req := httptest.NewRequest(http.MethodPost, wire.PathPush, bytes.NewReader(data))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", wire.ContentType)
		rec := httptest.NewRecorder()
		r.srv.ServeHTTP(rec, req)
		resp := rec.Result()
		raw := rec.Body.Bytes()
		if resp.StatusCode == http.StatusOK {
			return
		}
		if resp.StatusCode/100 != 4 {
			t.Fatalf("status %d: %s", resp.StatusCode, raw)
		}
		if after := r.head(t); after != before {
			t.Fatalf("a refused push (%d %s) moved the head from %d to %d", resp.StatusCode, raw, before, after)
		}
	})
}
