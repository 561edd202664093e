package central_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ghsync/ghsync/central"
	"github.com/ghsync/ghsync/clocks"
	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/ledger/ledgertest"
	"github.com/ghsync/ghsync/wire"
)

// report posts a stability report as token's satellite.
func (r *rig) report(t *testing.T, token, body string) (int, wire.StableResponse, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, r.ts.URL+wire.PathStable, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var sr wire.StableResponse
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(raw, &sr); err != nil {
			t.Fatalf("answer %s: %v", raw, err)
		}
	}
	return resp.StatusCode, sr, string(raw)
}

func stableBody(hlc clocks.Timestamp, applied uint64) string {
	b, _ := json.Marshal(wire.StableReport{HLC: uint64(hlc), Applied: applied})
	return string(b)
}

// TestStabilityFrontier: the frontier waits for every active satellite's
// report, is bounded by the smallest clock reported and stays below every
// event some instance has not applied yet; a revoked satellite stops
// counting; bad reports are refused and change nothing.
func TestStabilityFrontier(t *testing.T) {
	r := newRig(t, false, func(c *central.Config) { c.FrontierEvery = -1 })
	tok1, tok2 := r.add(t, 1, wire.ScopeAll), r.add(t, 2, wire.ScopeAll)
	one, two := ledgertest.NewOrigin(1), ledgertest.NewOrigin(2)
	a := one.Patients(t, rng(t), 2)
	r.push(t, tok1, a) // positions 1..4
	b := two.Patients(t, rng(t), 1)
	r.push(t, tok2, b) // positions 5..6
	head := r.head(t)
	if head != uint64(len(a)+len(b)) {
		t.Fatalf("head %d, want %d", head, len(a)+len(b))
	}
	last := func(evs []*ledger.Event) clocks.Timestamp { return evs[len(evs)-1].HLC }
	minHLC := func(evs []*ledger.Event) clocks.Timestamp {
		m := evs[0].HLC
		for _, e := range evs {
			m = min(m, e.HLC)
		}
		return m
	}

	// Satellite 2 has not reported: nothing is stable.
	status, sr, raw := r.report(t, tok1, stableBody(last(a)+10, head))
	if status != http.StatusOK || sr.Frontier != 0 {
		t.Fatalf("first report: %d %s", status, raw)
	}
	// Satellite 2 reports, having applied only satellite 1's events: the
	// frontier stays below its own, which satellite 1 may not have seen.
	status, sr, raw = r.report(t, tok2, stableBody(last(b)+5, uint64(len(a))))
	want := min(last(a)+10, last(b)+5, minHLC(b)-1)
	if status != http.StatusOK || clocks.Timestamp(sr.Frontier) != want {
		t.Fatalf("second report: %d %s; want frontier %s", status, raw, want)
	}
	// Once satellite 2 applied everything, its clock reading bounds it.
	_, sr, _ = r.report(t, tok2, stableBody(last(b)+5, head))
	if want := min(last(a)+10, last(b)+5); clocks.Timestamp(sr.Frontier) != want {
		t.Fatalf("all applied: frontier %s, want %s", clocks.Timestamp(sr.Frontier), want)
	}

	// Bad reports are refused and leave the stored ones as they were.
	before, err := r.reg.Stabilities(context.Background())
	if err != nil || len(before) != 2 {
		t.Fatalf("stored reports %+v %v", before, err)
	}
	for _, tc := range []struct{ name, token, body, want string }{
		{"beyond the head", tok1, stableBody(last(a)+20, head+1), "beyond central's head"},
		{"no clock", tok1, stableBody(0, head), "no clock reading"},
		{"unknown field", tok1, `{"hlc": 5, "applied": 1, "origin": 2}`, "unknown field"},
		{"not JSON", tok1, `hlc=5`, "stability report"},
		{"no token", "", stableBody(last(a)+20, head), "missing bearer token"},
	} {
		status, _, raw := r.report(t, tc.token, tc.body)
		if status/100 != 4 || !strings.Contains(raw, tc.want) {
			t.Errorf("%s: %d %s", tc.name, status, raw)
		}
	}
	after, _ := r.reg.Stabilities(context.Background())
	if len(after) != len(before) || after[0] != before[0] || after[1] != before[1] {
		t.Fatalf("refused reports changed the stored ones: %+v, were %+v", after, before)
	}

	// A revoked satellite no longer holds the frontier back; one never
	// heard of does.
	if err := r.reg.RevokeSatellite(context.Background(), 2, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, sr, _ = r.report(t, tok1, stableBody(last(a)+30, head)); clocks.Timestamp(sr.Frontier) != last(a)+30 {
		t.Fatalf("satellite 2 revoked: frontier %s, want satellite 1's %s", clocks.Timestamp(sr.Frontier), last(a)+30)
	}
	r.add(t, 3, wire.ScopeAll)
	if _, sr, _ = r.report(t, tok1, stableBody(last(a)+40, head)); sr.Frontier != 0 {
		t.Fatalf("satellite 3 never reported: frontier %s, want none", clocks.Timestamp(sr.Frontier))
	}
}

// TestStabilityFrontierWaitsForCentral: when central projects into its own
// GNU Health database, the frontier waits for its reports too, and is
// derived at most every FrontierEvery.
func TestStabilityFrontierWaitsForCentral(t *testing.T) {
	r := newRig(t, false, func(c *central.Config) { c.Projects = true })
	tok := r.add(t, 1, wire.ScopeAll)
	a := ledgertest.NewOrigin(1).Patients(t, rng(t), 1)
	r.push(t, tok, a)
	head := r.head(t)
	ctx := context.Background()
	if _, sr, _ := r.report(t, tok, stableBody(a[len(a)-1].HLC+1, head)); sr.Frontier != 0 {
		t.Fatalf("central has not reported: frontier %d", sr.Frontier)
	}
	f, err := r.srv.ReportOwn(ctx, a[len(a)-1].HLC+2, head)
	if err != nil || f != 0 {
		t.Fatalf("within FrontierEvery the last derivation stands: %s %v", f, err)
	}
	r.clock.Set(r.clock.Now().Add(central.DefaultFrontierEvery))
	if f, err = r.srv.Frontier(ctx); err != nil || f != a[len(a)-1].HLC+1 {
		t.Fatalf("frontier %s %v, want satellite 1's reading %s", f, err, a[len(a)-1].HLC+1)
	}
}

// TestStabilityFrontierNothingApplied: reports from instances that have
// applied none of central's ledger (a satellite before its first pull, or
// one exchanging bundles before the first one reached it) keep the
// frontier below every event, on the first derivation as on later ones;
// the value central derives is the one it records for its bundles.
func TestStabilityFrontierNothingApplied(t *testing.T) {
	r := newRig(t, false, func(c *central.Config) { c.FrontierEvery = -1 })
	tok := r.add(t, 1, wire.ScopeAll)
	a := ledgertest.NewOrigin(1).Patients(t, rng(t), 2)
	r.push(t, tok, a)
	first := a[0].HLC
	for _, e := range a {
		first = min(first, e.HLC)
	}
	ctx := context.Background()
	for i := range 2 {
		status, sr, raw := r.report(t, tok, stableBody(a[len(a)-1].HLC+10, 0))
		if status != http.StatusOK || clocks.Timestamp(sr.Frontier) != first-1 {
			t.Fatalf("report %d, nothing applied: %d %s; want frontier %s, below every event", i+1, status, raw, first-1)
		}
	}
	if f, err := r.reg.LastFrontier(ctx); err != nil || f != first-1 {
		t.Fatalf("recorded frontier %s %v, want %s", f, err, first-1)
	}
	// A lower derivation (a satellite added) leaves the record as it was.
	r.add(t, 2, wire.ScopeAll)
	if _, sr, _ := r.report(t, tok, stableBody(a[len(a)-1].HLC+20, r.head(t))); sr.Frontier != 0 {
		t.Fatalf("satellite 2 never reported: frontier %s", clocks.Timestamp(sr.Frontier))
	}
	if f, err := r.reg.LastFrontier(ctx); err != nil || f != first-1 {
		t.Fatalf("recorded frontier %s %v after a lower derivation, want %s kept", f, err, first-1)
	}
}

// A report carried in a bundle is recorded once central holds what it
// vouches for; each recorded field only grows; a satellite revoked and
// registered again starts without one.
func TestAcceptBundleReport(t *testing.T) {
	r := newRig(t, false)
	tok := r.add(t, 1, wire.ScopeAll)
	a := ledgertest.NewOrigin(1).Patients(t, rng(t), 6)
	r.push(t, tok, a)
	ctx := context.Background()
	h := a[len(a)-1].HLC
	accept := func(hlc clocks.Timestamp, applied, seq uint64) (bool, error) {
		return central.AcceptBundleReport(ctx, r.reg, r.store, central.Stability{Origin: 1, HLC: hlc, Applied: applied}, seq)
	}
	stored := func() central.Stability {
		t.Helper()
		reps, err := r.reg.Stabilities(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, rep := range reps {
			if rep.Origin == 1 {
				return rep
			}
		}
		return central.Stability{}
	}
	if _, err := accept(h+5, 1, uint64(len(a))+1); !errors.Is(err, central.ErrReportRefused) || !strings.Contains(err.Error(), "this ledger holds them through seq") {
		t.Fatalf("a report vouching for an event central lacks: %v", err)
	}
	if _, err := accept(h+5, r.head(t)+1, 1); !errors.Is(err, central.ErrReportRefused) {
		t.Fatalf("a report applied past central's head: %v", err)
	}
	if rep := stored(); rep.HLC != 0 {
		t.Fatalf("refused reports were recorded: %+v", rep)
	}
	for _, step := range []struct {
		hlc      clocks.Timestamp
		applied  uint64
		recorded bool
		wantH    clocks.Timestamp
		wantA    uint64
	}{
		{h + 10, 2, true, h + 10, 2},
		{h + 5, 4, true, h + 10, 4},  // a later position, an older reading
		{h + 8, 3, false, h + 10, 4}, // older in both: a stick carried late
		{h + 20, 1, true, h + 20, 4}, // a newer reading, an older position
	} {
		ok, err := accept(step.hlc, step.applied, 1)
		if rep := stored(); err != nil || ok != step.recorded || rep.HLC != step.wantH || rep.Applied != step.wantA {
			t.Fatalf("report (%s, %d): recorded %v (%v), stored %+v; want %v, (%s, %d)", step.hlc, step.applied, ok, err, rep, step.recorded, step.wantH, step.wantA)
		}
	}
	if err := r.reg.RevokeSatellite(ctx, 1, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := accept(h+30, 4, 1); !errors.Is(err, central.ErrReportRefused) || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("a revoked satellite's report: %v", err)
	}
	r.add(t, 1, wire.ScopeAll)
	if rep := stored(); rep.HLC != 0 {
		t.Fatalf("the satellite registered again inherits %+v", rep)
	}
}
