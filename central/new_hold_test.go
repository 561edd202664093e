package central_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"

	"github.com/ghsync/ghsync/central"
	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/ledger/ledgertest"
	"github.com/ghsync/ghsync/wire"
)

// gate stops the first call that passes it while armed, until released:
// it holds /v1/new at one point of its work while the test does something
// concurrently.
type gate struct {
	armed   atomic.Bool
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func newGate() *gate { return &gate{entered: make(chan struct{}), release: make(chan struct{})} }

// open lets the paused call (and any later one) go on.
func (g *gate) open() { g.once.Do(func() { close(g.release) }) }

func (g *gate) pass() {
	if g.armed.CompareAndSwap(true, false) {
		close(g.entered)
		<-g.release
	}
}

// gatedStore passes the gate when a stream's history is read (only
// /v1/new and a pull's backfill read them).
type gatedStore struct {
	ledger.Store
	g *gate
}

func (s gatedStore) ReadStream(ctx context.Context, st ledger.Stream, after uint64, limit int) ([]ledger.Record, error) {
	s.g.pass()
	return s.Store.ReadStream(ctx, st, after, limit)
}

// gatedRegistry passes the gate when the reference index is asked for a
// record's referrers (only /v1/new computing a graph asks).
type gatedRegistry struct {
	central.Registry
	g *gate
}

func (r gatedRegistry) Referrers(ctx context.Context, targets []ledger.Stream) ([]central.Edge, error) {
	r.g.pass()
	return r.Registry.Referrers(ctx, targets)
}

// postNew sends POST /v1/new and decodes its answer.
func (r *rig) postNew(token, body string) (*http.Response, []ledger.Record, error) {
	req, _ := http.NewRequest(http.MethodPost, r.ts.URL+wire.PathNew, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := r.ts.Client().Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return resp, nil, err
	}
	var in io.Reader = bytes.NewReader(raw)
	if resp.Header.Get("Content-Encoding") == "gzip" {
		if in, err = gzip.NewReader(in); err != nil {
			return resp, nil, err
		}
	}
	recs, err := wire.DecodePull(in, wire.Limits{})
	return resp, recs, err
}

// A satellite of local scope runs `new --patient` while its `run` keeps
// pulling, and another clinic changes the patient's graph meanwhile: the
// change reaches the satellite, by new's answer or by a pull, whenever in
// new's work it lands. (A pull that passes an event before new holds the
// graph leaves it behind the satellite's cursor, so new must answer for
// everything appended before the hold took effect, including records that
// came to refer to the patient after the reference index was read.)
func TestNewRacingPullDeliversConcurrentChanges(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) { testNewRacingPull(t, pg) })
	}
}

func testNewRacingPull(t *testing.T, pg bool) {
	writePatient := func(t *testing.T, c2 *ledgertest.Origin) *ledger.Event {
		return c2.Event(t, "gnuhealth.patient", "PX", ledger.OpWrite, fields{"critical_info": str("allergic to penicillin")})
	}
	newEvaluation := func(t *testing.T, c2 *ledgertest.Origin) *ledger.Event {
		return c2.Event(t, "gnuhealth.patient.evaluation", "EV9", ledger.OpCreate, fields{"patient": ref("gnuhealth.patient", "PX")})
	}
	for _, tc := range []struct {
		name   string
		at     string // where new is paused: "graph" (computing it) or "histories" (reading them)
		body   string
		change func(*testing.T, *ledgertest.Origin) *ledger.Event
	}{
		{"patient written while histories are read", "histories", `{"patient":"JM0020001"}`, writePatient},
		{"patient written while the graph is computed", "graph", `{"patient":"JM0020001"}`, writePatient},
		{"evaluation created while histories are read", "histories", `{"patient":"JM0020001"}`, newEvaluation},
		{"evaluation created while the graph is computed", "graph", `{"patient":"JM0020001"}`, newEvaluation},
		{"evaluation created, found by a superseded PUID", "graph", `{"patient":"JM-OLD"}`, newEvaluation},
		{"evaluation created, asked by model and key", "histories", `{"model":"party.party","key":"PX"}`, newEvaluation},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGate()
			r := newRig(t, pg, func(c *central.Config) {
				switch tc.at {
				case "histories":
					c.Store = gatedStore{Store: c.Store, g: g}
				case "graph":
					c.Registry = gatedRegistry{Registry: c.Registry, g: g}
				}
			})
			t.Cleanup(g.open) // before the server closes: it waits for new
			tok1 := r.add(t, 1, wire.ScopeLocal)
			tok2 := r.add(t, 2, wire.ScopeAll)
			c2 := ledgertest.NewOrigin(2)
			r.push(t, tok2, []*ledger.Event{
				c2.Event(t, "party.party", "PX", ledger.OpCreate, fields{"name": str("Ann"), "ref": str("JM-OLD")}),
				c2.Event(t, "party.party", "PX", ledger.OpWrite, fields{"ref": str("JM0020001")}),
				c2.Event(t, "gnuhealth.patient", "PX", ledger.OpCreate, fields{"name": ref("party.party", "PX")}),
			})
			// Satellite 1 is caught up (it received nothing of PX: not in its scope).
			received := map[uuid.UUID]bool{}
			cursor := uint64(0)
			pull := func() {
				t.Helper()
				resp, recs := r.pull(t, tok1, cursor, "")
				for _, rec := range recs {
					received[rec.Event.ID] = true
				}
				cursor, _ = strconv.ParseUint(resp.Header.Get(wire.HeaderNext), 10, 64)
			}
			for pull(); cursor < r.head(t); {
				pull()
			}
			if len(received) != 0 {
				t.Fatalf("satellite 1 received %d events of a patient not in its scope", len(received))
			}

			// `ghsync new` at satellite 1, paused at the gate.
			type answer struct {
				resp *http.Response
				recs []ledger.Record
				err  error
			}
			done := make(chan answer, 1)
			g.armed.Store(true)
			go func() {
				resp, recs, err := r.postNew(tok1, tc.body)
				done <- answer{resp, recs, err}
			}()
			select {
			case <-g.entered:
			case a := <-done:
				t.Fatalf("new answered before it reached the gate: %v %v", a.resp, a.err)
			}
			// Meanwhile clinic 2 changes the patient's graph, and satellite
			// 1's `run` pulls past it.
			change := tc.change(t, c2)
			r.push(t, tok2, []*ledger.Event{change})
			pull()
			if h := r.head(t); cursor != h {
				t.Fatalf("the concurrent pull stopped at %d, not at the change (%d)", cursor, h)
			}
			g.open()
			a := <-done
			if a.err != nil || a.resp.StatusCode != http.StatusOK {
				t.Fatalf("new: %v %v", a.resp, a.err)
			}
			for _, rec := range a.recs {
				received[rec.Event.ID] = true
			}
			for cursor < r.head(t) {
				pull()
			}
			if !received[change.ID] {
				t.Fatalf("%s %s (appended while new ran, pulled past by satellite 1) never reached satellite 1",
					change.Stream(), change.Op)
			}
			// The changed record is held: its next change follows by pull.
			next := c2.Event(t, change.Model, change.Key, ledger.OpWrite, fields{"notes": str("seen again")})
			r.push(t, tok2, []*ledger.Event{next})
			for cursor < r.head(t) {
				pull()
			}
			if !received[next.ID] {
				t.Fatalf("a later write to %s did not follow by pull", change.Stream())
			}
		})
	}
}

// A /v1/new that is refused holds nothing: no record whose history it
// did not send follows by pull from then on.
func TestNewRefusedHoldsNothing(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, false, func(c *central.Config) { c.MaxNewBytes = 200 })
	tok1 := r.add(t, 1, wire.ScopeLocal)
	tok2 := r.add(t, 2, wire.ScopeAll)
	c2 := ledgertest.NewOrigin(2)
	r.push(t, tok2, []*ledger.Event{
		c2.Event(t, "party.party", "PX", ledger.OpCreate, fields{"name": str("Ann"), "ref": str("JM0020001")}),
		c2.Event(t, "gnuhealth.patient", "PX", ledger.OpCreate, fields{"name": ref("party.party", "PX")}),
		c2.Event(t, "gnuhealth.patient", "PX", ledger.OpWrite, fields{"critical_info": str(strings.Repeat("allergic to penicillin; ", 10))}),
		// An address of a party central never received.
		c2.Event(t, "party.address", "AD", ledger.OpCreate, fields{"party": ref("party.party", "GHOST"), "city": str("Kingston")}),
	})
	for _, tc := range []struct {
		body   string
		status int
	}{
		{`{"patient":"JM0020001"}`, http.StatusRequestEntityTooLarge},  // over MaxNewBytes
		{`{"model":"party.party","key":"GHOST"}`, http.StatusNotFound}, // only referred to
	} {
		resp, _, err := r.postNew(tok1, tc.body)
		if err != nil || resp.StatusCode != tc.status {
			t.Fatalf("new %s: %v %v, want %d", tc.body, resp, err, tc.status)
		}
		if n, err := r.reg.HeldCount(ctx, 1); err != nil || n != 0 {
			t.Errorf("after new %s was refused (%d), satellite 1 holds %d records (%v)", tc.body, tc.status, n, err)
		}
	}
}
