package satellite_test

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ghsync/ghsync/central"
	"github.com/ghsync/ghsync/internal/pgtest"
	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/ledger/ledgertest"
	"github.com/ghsync/ghsync/ledger/postgres"
	"github.com/ghsync/ghsync/ledger/sqlite"
	"github.com/ghsync/ghsync/satellite"
	"github.com/ghsync/ghsync/wire"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// origin makes events for id stamped at the real time, so central's real
// clock finds them neither ahead nor behind.
func origin(id uint16) *ledgertest.Origin {
	o := ledgertest.NewOrigin(id)
	o.Wall.Set(time.Now())
	return o
}

// open opens a ledger on SQLite (in a temporary folder) or PostgreSQL and
// returns it with its location.
func open(t testing.TB, pg bool) (ledger.Store, string) {
	t.Helper()
	ctx := context.Background()
	var s ledger.Store
	var loc string
	var err error
	if pg {
		loc = pgtest.NewDatabase(t)
		s, err = postgres.Open(ctx, loc, postgres.Options{PollInterval: 100 * time.Millisecond})
	} else {
		path := filepath.Join(t.TempDir(), "ledger.db")
		loc = "sqlite:" + path
		s, err = sqlite.Open(ctx, path, sqlite.Options{})
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, loc
}

// hub is a central behind an httptest server, with a switch that makes it
// answer 503 and a filter that can cut responses.
type hub struct {
	store ledger.Store
	reg   central.Registry
	srv   *central.Server
	ts    *httptest.Server
	down  atomic.Bool
	// cut, when set, decides how many bytes of a response body to let
	// through before breaking the connection (-1: all).
	cut func(r *http.Request) int
	// delay, when set, is how long central takes over a request before
	// answering it (a slow upload, a busy server).
	delay func(r *http.Request) time.Duration
	mu    sync.Mutex
}

func newHub(t testing.TB, pg bool, clock func() time.Time, opts ...func(*central.Config)) *hub {
	t.Helper()
	h := &hub{}
	var loc string
	h.store, loc = open(t, pg)
	var err error
	if h.reg, err = central.OpenRegistry(context.Background(), loc); err != nil {
		t.Fatal(err)
	}
	cfg := central.Config{Store: h.store, Registry: h.reg, Clock: clock, Logger: hclog.NewNullLogger()}
	for _, o := range opts {
		o(&cfg)
	}
	if h.srv, err = central.New(cfg); err != nil {
		t.Fatal(err)
	}
	h.ts = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(func() {
		h.ts.Close()
		h.srv.Close()
		h.reg.Close()
	})
	return h
}

func (h *hub) serve(w http.ResponseWriter, r *http.Request) {
	if h.down.Load() {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"error":"down for maintenance"}`)
		return
	}
	h.mu.Lock()
	cut, delay := h.cut, h.delay
	h.mu.Unlock()
	if delay != nil {
		time.Sleep(delay(r))
	}
	n := -1
	if cut != nil {
		n = cut(r)
	}
	if n < 0 {
		h.srv.ServeHTTP(w, r)
		return
	}
	rec := httptest.NewRecorder()
	h.srv.ServeHTTP(rec, r)
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	w.(http.Flusher).Flush() // the headers go out: the client sees an answer, then a cut
	body := rec.Body.Bytes()
	w.Write(body[:min(n, len(body))])
	panic(http.ErrAbortHandler) // break the connection mid-body
}

func (h *hub) add(t testing.TB, id uint16, scope string) string {
	t.Helper()
	tok, hash, err := central.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	if err := h.reg.AddSatellite(context.Background(), central.Satellite{ID: id, Name: "clinic", Scope: scope, TokenHash: hash, Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	return tok
}

type site struct {
	store ledger.Store
	loc   string
	c     *satellite.Client
	cfg   satellite.Config
}

func (h *hub) dial(t testing.TB, id uint16, scope string, pg bool) *site {
	t.Helper()
	store, loc := open(t, pg)
	s := &site{store: store, loc: loc}
	s.cfg = satellite.Config{URL: h.ts.URL, Token: h.add(t, id, scope), Origin: id, Store: store, StateLocation: loc,
		HTTPClient: h.ts.Client(), PullLimit: 50, PushEvents: 40}
	s.redial(t)
	return s
}

func (s *site) redial(t testing.TB) {
	t.Helper()
	if s.c != nil {
		s.c.Close()
	}
	var err error
	if s.c, err = satellite.Dial(context.Background(), s.cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.c.Close() })
}

func appendAll(t testing.TB, s ledger.Store, evs []*ledger.Event) {
	t.Helper()
	if _, err := s.Append(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
}

func count(t testing.TB, s ledger.Store) map[uint16]uint64 {
	t.Helper()
	heads, err := s.Origins(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[uint16]uint64{}
	for _, h := range heads {
		out[h.Origin] = h.Count
	}
	return out
}

func verify(t testing.TB, s ledger.Store) {
	t.Helper()
	r, err := ledger.Verify(context.Background(), s)
	if err != nil || len(r.Corrupt) > 0 || len(r.Positions) > 0 {
		t.Fatalf("verify: %v %+v", err, r)
	}
	for _, o := range r.Origins {
		if o.Break != nil {
			t.Fatalf("origin %d breaks: %v", o.Origin, o.Break)
		}
	}
}

func TestRoundTripSQLite(t *testing.T)   { testRoundTrip(t, false, false) }
func TestRoundTripPostgres(t *testing.T) { testRoundTrip(t, true, true) }

// Central and two satellites exchange their events both ways; pushing or
// pulling again changes nothing; the cursor and offset survive a restart.
func testRoundTrip(t *testing.T, centralPG, satellitePG bool) {
	ctx := context.Background()
	rng := ledgertest.Rand(t)
	h := newHub(t, centralPG, time.Now)
	s1 := h.dial(t, 1, wire.ScopeAll, satellitePG)
	s2 := h.dial(t, 2, wire.ScopeAll, false)
	var progress []satellite.Progress
	s1.cfg.Progress = func(p satellite.Progress) { progress = append(progress, p) }
	s1.redial(t)

	o0, o1, o2 := origin(0), origin(1), origin(2)
	appendAll(t, h.store, o0.Patients(t, rng, 30))
	appendAll(t, s1.store, o1.Patients(t, rng, 250))
	appendAll(t, s2.store, o2.Patients(t, rng, 120))

	st, err := s1.c.Push(ctx)
	if err != nil || st.Accepted != 250 || st.HighWater != 250 || st.Requests != 7 { // 40 per request
		t.Fatalf("push 1: %+v %v", st, err)
	}
	if st, err := s2.c.Push(ctx); err != nil || st.Accepted != 120 {
		t.Fatalf("push 2: %+v %v", st, err)
	}
	if n := count(t, h.store); n[0] != 30 || n[1] != 250 || n[2] != 120 {
		t.Fatalf("central holds %v", n)
	}
	ps, err := s1.c.Pull(ctx, 0)
	if err != nil || ps.Appended != 150 || ps.Cursor != 400 || ps.Head != 400 {
		t.Fatalf("pull 1: %+v %v", ps, err)
	}
	if ps, err := s2.c.Pull(ctx, 0); err != nil || ps.Appended != 280 {
		t.Fatalf("pull 2: %+v %v", ps, err)
	}
	if n := count(t, s1.store); n[0] != 30 || n[1] != 250 || n[2] != 120 {
		t.Fatalf("satellite 1 holds %v", n)
	}
	if n := count(t, s2.store); n[0] != 30 || n[1] != 250 || n[2] != 120 {
		t.Fatalf("satellite 2 holds %v", n)
	}
	verify(t, s1.store)
	verify(t, s2.store)
	verify(t, h.store)
	if len(progress) == 0 || progress[len(progress)-1].Op != "pull" || progress[len(progress)-1].Position != 400 {
		t.Fatalf("progress: %+v", progress)
	}
	// Again: nothing to send, nothing to receive.
	if st, err := s1.c.Push(ctx); err != nil || st.Requests != 0 {
		t.Fatalf("push again: %+v %v", st, err)
	}
	before, _ := h.store.Head(ctx)
	if ps, err := s1.c.Pull(ctx, 0); err != nil || ps.Received != 0 || ps.Cursor != 400 {
		t.Fatalf("pull again: %+v %v", ps, err)
	}
	if after, _ := h.store.Head(ctx); after != before {
		t.Fatal("central's head moved")
	}
	// More of each, after a restart of satellite 1: it resumes from its
	// persisted cursor.
	appendAll(t, s2.store, o2.Patients(t, rng, 10))
	appendAll(t, s1.store, o1.Patients(t, rng, 5))
	s1.redial(t)
	if s1.c.Cursor() != 400 {
		t.Fatalf("cursor after restart: %d", s1.c.Cursor())
	}
	if _, err := s2.c.Push(ctx); err != nil {
		t.Fatal(err)
	}
	if st, err := s1.c.Push(ctx); err != nil || st.Accepted != 5 || st.Sent != 5 {
		t.Fatalf("push after restart: %+v %v", st, err)
	}
	if ps, err := s1.c.Pull(ctx, 0); err != nil || ps.Received != 10 || ps.Appended != 10 {
		t.Fatalf("pull after restart: %+v %v", ps, err)
	}
	verify(t, s1.store)
}

// A pull answer cut at any byte is an error that leaves the cursor and the
// store as they were; the next pull completes, and nothing is stored twice.
func TestTruncatedPullResumes(t *testing.T) {
	ctx := context.Background()
	rng := ledgertest.Rand(t)
	h := newHub(t, false, time.Now)
	s := h.dial(t, 1, wire.ScopeAll, false)
	appendAll(t, h.store, origin(0).Patients(t, rng, 120)) // 3 pages of 50
	// First page whole, second cut at a random byte, then all whole.
	var pulls atomic.Int32
	h.mu.Lock()
	h.cut = func(r *http.Request) int {
		if r.URL.Path != wire.PathPull {
			return -1
		}
		switch pulls.Add(1) {
		case 2:
			return 1 + rand.IntN(2000)
		case 3:
			return 0 // headers, no body
		}
		return -1
	}
	h.mu.Unlock()
	_, err := s.c.Pull(ctx, 0)
	if !errors.Is(err, satellite.ErrUnavailable) || !strings.Contains(err.Error(), "pull after position 50") {
		t.Fatalf("cut pull: %v", err)
	}
	// Central was reached: the connection was lost, not never made.
	if !errors.Is(err, satellite.ErrConnectionLost) || errors.Is(err, satellite.ErrUnreachable) {
		t.Fatalf("cut pull: %v; want ErrConnectionLost, not ErrUnreachable", err)
	}
	if s.c.Cursor() != 50 || count(t, s.store)[0] != 50 {
		t.Fatalf("after a cut: cursor %d, %d events", s.c.Cursor(), count(t, s.store)[0])
	}
	if _, err := s.c.Pull(ctx, 0); !errors.Is(err, satellite.ErrConnectionLost) {
		t.Fatalf("empty body: %v", err)
	}
	// The persisted cursor is the last whole page's.
	s.redial(t)
	if s.c.Cursor() != 50 {
		t.Fatalf("persisted cursor %d", s.c.Cursor())
	}
	ps, err := s.c.Pull(ctx, 0)
	if err != nil || ps.Appended != 70 || ps.Duplicates != 0 || ps.Cursor != 120 {
		t.Fatalf("resumed pull: %+v %v", ps, err)
	}
	if n := count(t, s.store); n[0] != 120 {
		t.Fatalf("holds %v", n)
	}
	verify(t, s.store)
}

// Every answer carries central's time; the satellite measures its offset
// from the request's midpoint and keeps it with the cursor.
func TestClockOffset(t *testing.T) {
	ctx := context.Background()
	h := newHub(t, false, func() time.Time { return time.Now().Add(90 * time.Second) })
	s := h.dial(t, 3, wire.ScopeAll, false)
	if off := s.c.Offset(); (off - 90*time.Second).Abs() > time.Second {
		t.Fatalf("offset %v, want 90s", off)
	}
	if _, err := s.c.Pull(ctx, 0); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", strings.TrimPrefix(s.loc, "sqlite:"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var ns int64
	if err := db.QueryRow(`SELECT offset_ns FROM ghsync_sync_state`).Scan(&ns); err != nil || (time.Duration(ns)-90*time.Second).Abs() > time.Second {
		t.Fatalf("persisted offset %v: %v", time.Duration(ns), err)
	}
}

// Central stamps its time as it answers. After a long poll, or a request
// central took a while over, the round trip's midpoint is not that
// moment: the offset stays as a quick request measured it, about 0 with
// central on this machine.
func TestClockOffsetHeldRequests(t *testing.T) {
	ctx := context.Background()
	h := newHub(t, false, time.Now)
	s := h.dial(t, 6, wire.ScopeAll, false)
	near0 := func(what string) {
		t.Helper()
		if off := s.c.Offset(); off.Abs() > 300*time.Millisecond {
			t.Fatalf("offset after %s: %v, want about 0", what, off)
		}
	}
	start := time.Now()
	if _, err := s.c.Pull(ctx, 2*time.Second); err != nil || time.Since(start) < 1500*time.Millisecond {
		t.Fatalf("long poll: %v after %v", err, time.Since(start))
	}
	near0("a 2s long poll")
	var ns int64
	db, err := sql.Open("sqlite", strings.TrimPrefix(s.loc, "sqlite:"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.QueryRow(`SELECT offset_ns FROM ghsync_sync_state`).Scan(&ns); err != nil || time.Duration(ns).Abs() > 300*time.Millisecond {
		t.Fatalf("persisted offset %v: %v", time.Duration(ns), err)
	}
	h.mu.Lock()
	h.delay = func(r *http.Request) time.Duration {
		if r.URL.Path == wire.PathPush {
			return 2 * time.Second
		}
		return 0
	}
	h.mu.Unlock()
	appendAll(t, s.store, origin(6).Patients(t, ledgertest.Rand(t), 3))
	if _, err := s.c.Push(ctx); err != nil {
		t.Fatal(err)
	}
	near0("a push central took 2s over")
}

// Retryable failures (central down, 5xx) match ErrUnavailable; refusals
// (a revoked token) match ErrRefused. Central not listening is
// ErrUnreachable; an answer, even 5xx, is not.
func TestErrors(t *testing.T) {
	ctx := context.Background()
	h := newHub(t, false, time.Now)
	s := h.dial(t, 4, wire.ScopeAll, false)
	appendAll(t, s.store, origin(4).Patients(t, ledgertest.Rand(t), 3))
	h.down.Store(true)
	_, err := s.c.Push(ctx)
	var ae *satellite.APIError
	if !errors.Is(err, satellite.ErrUnavailable) || !errors.As(err, &ae) || ae.Status != 503 || !strings.Contains(err.Error(), "down for maintenance") {
		t.Fatalf("503: %v", err)
	}
	if errors.Is(err, satellite.ErrUnreachable) || errors.Is(err, satellite.ErrConnectionLost) {
		t.Fatalf("503: %v; central answered, so neither unreachable nor a lost connection", err)
	}
	h.down.Store(false)
	if err := h.reg.RevokeSatellite(ctx, 4, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.c.Pull(ctx, 0); !errors.Is(err, satellite.ErrRefused) || errors.Is(err, satellite.ErrUnavailable) {
		t.Fatalf("revoked: %v", err)
	}
	h.ts.Close()
	if _, err := s.c.Pull(ctx, 0); !errors.Is(err, satellite.ErrUnavailable) || !errors.Is(err, satellite.ErrUnreachable) || errors.Is(err, satellite.ErrConnectionLost) {
		t.Fatalf("central gone: %v; want ErrUnreachable", err)
	}
	// A token of another satellite: Dial says so.
	cfg := s.cfg
	cfg.Origin = 9
	h2 := newHub(t, false, time.Now)
	cfg.URL, cfg.HTTPClient, cfg.Token = h2.ts.URL, h2.ts.Client(), h2.add(t, 8, wire.ScopeAll)
	if _, err := satellite.Dial(ctx, cfg); err == nil || !strings.Contains(err.Error(), "belongs to satellite 8") {
		t.Fatalf("dial with another's token: %v", err)
	}
}

// With central's hold policy, events stamped by a clock far ahead of
// central's are held there: Push says so (ErrHeld), and they arrive once
// released. (The default policy bounds them: see site's TestClockSkew.)
func TestPushHeld(t *testing.T) {
	ctx := context.Background()
	h := newHub(t, false, time.Now, func(c *central.Config) { c.Skew = central.SkewHold })
	s := h.dial(t, 5, wire.ScopeAll, false)
	o := origin(5)
	appendAll(t, s.store, o.Patients(t, ledgertest.Rand(t), 2))
	o.Wall.Advance(time.Hour)
	appendAll(t, s.store, o.Patients(t, ledgertest.Rand(t), 2))
	st, err := s.c.Push(ctx)
	if !errors.Is(err, satellite.ErrHeld) || st.Accepted != 2 || st.Held != 2 || !strings.Contains(err.Error(), "seq 3") {
		t.Fatalf("push: %+v %v", st, err)
	}
	if n, err := central.Release(ctx, h.store, h.reg, 5); err != nil || n != 2 {
		t.Fatalf("release: %d %v", n, err)
	}
	if st, err := s.c.Push(ctx); err != nil || st.Requests != 0 || st.HighWater != 4 {
		t.Fatalf("push after release: %+v %v", st, err)
	}
}

// New fetches a patient's graph by PUID into the store; later changes to
// it come with pulls (scope local).
func TestNewPatient(t *testing.T) {
	ctx := context.Background()
	h := newHub(t, false, time.Now)
	s := h.dial(t, 6, wire.ScopeLocal, false)
	o0 := origin(0)
	ref := func(m, k string) ledger.Value { v, _ := ledger.RefTo(m, k); return v }
	appendAll(t, h.store, []*ledger.Event{
		o0.Event(t, "party.party", "PX", ledger.OpCreate, map[string]ledger.Value{"name": ledger.String("Ann"), "ref": ledger.String("JM1")}),
		o0.Event(t, "gnuhealth.patient", "PX", ledger.OpCreate, map[string]ledger.Value{"name": ref("party.party", "PX")}),
		o0.Event(t, "party.address", "AD", ledger.OpCreate, map[string]ledger.Value{"party": ref("party.party", "PX")}),
		o0.Event(t, "party.party", "PY", ledger.OpCreate, map[string]ledger.Value{"name": ledger.String("Bob"), "ref": ledger.String("JM2")}),
	})
	st, err := s.c.New(ctx, satellite.NewRequest{Patient: "JM1"})
	if err != nil || st.Appended != 3 || st.Streams != 3 {
		t.Fatalf("new: %+v %v", st, err)
	}
	if _, err := s.c.New(ctx, satellite.NewRequest{Patient: "JM9"}); !errors.Is(err, satellite.ErrRefused) || !strings.Contains(err.Error(), "404") {
		t.Fatalf("unknown PUID: %v", err)
	}
	appendAll(t, h.store, []*ledger.Event{
		o0.Event(t, "gnuhealth.patient", "PX", ledger.OpWrite, map[string]ledger.Value{"notes": ledger.String("x")}),
		o0.Event(t, "party.party", "PY", ledger.OpWrite, map[string]ledger.Value{"name": ledger.String("Robert")}),
	})
	ps, err := s.c.Pull(ctx, 0)
	if err != nil || ps.Appended != 1 {
		t.Fatalf("pull after new: %+v %v", ps, err)
	}
	// The three events new brought are among those the pull did not send again.
	if n := count(t, s.store); n[0] != 4 {
		t.Fatalf("holds %v", n)
	}
}

// A satellite whose scope is widened in place (central satellite set
// --scope all) gets what central left out before at its next pull,
// without a new token or a redial: central's answers say the scope
// widened, and the client pulls again from position 0, durably. What it
// holds is skipped. Narrowed again, it keeps everything; widened again,
// a new dial sees it.
func TestScopeWidenedRescans(t *testing.T) {
	ctx := context.Background()
	h := newHub(t, false, time.Now)
	s := h.dial(t, 6, wire.ScopeLocal, false)
	appendAll(t, h.store, origin(0).Patients(t, ledgertest.Rand(t), 30))
	if st, err := s.c.Pull(ctx, 0); err != nil || st.Appended != 0 || st.Cursor != 30 {
		t.Fatalf("pull with scope local: %+v %v", st, err)
	}
	if _, _, err := h.reg.ChangeSatellite(ctx, 6, central.SatelliteChange{Scope: wire.ScopeAll}); err != nil {
		t.Fatal(err)
	}
	st, err := s.c.Pull(ctx, 0)
	if err != nil || st.Appended != 30 || !st.Rescanned || st.Cursor != 30 || s.c.Scope() != wire.ScopeAll || s.c.Rescanning() {
		t.Fatalf("pull after widening: %+v %v (scope %s, rescanning %v)", st, err, s.c.Scope(), s.c.Rescanning())
	}
	if st, err := s.c.Pull(ctx, 0); err != nil || st.Received != 0 || st.Rescanned {
		t.Fatalf("the next pull: %+v %v", st, err)
	}
	// Narrowed: nothing is pulled again, nothing goes away.
	if _, _, err := h.reg.ChangeSatellite(ctx, 6, central.SatelliteChange{Scope: wire.ScopeLocal}); err != nil {
		t.Fatal(err)
	}
	appendAll(t, h.store, origin(9).Patients(t, ledgertest.Rand(t), 5))
	if st, err := s.c.Pull(ctx, 0); err != nil || st.Received != 0 || st.Rescanned || st.Cursor != 35 {
		t.Fatalf("pull after narrowing: %+v %v", st, err)
	}
	if n := count(t, s.store); n[0] != 30 {
		t.Fatalf("after narrowing the satellite holds %v", n)
	}
	// Widened again while the satellite is stopped: its next dial sees
	// it, and the rewind is saved before anything is pulled.
	if _, _, err := h.reg.ChangeSatellite(ctx, 6, central.SatelliteChange{Scope: wire.ScopeAll}); err != nil {
		t.Fatal(err)
	}
	s.redial(t)
	if s.c.Cursor() != 0 || !s.c.Rescanning() {
		t.Fatalf("dialled after widening: cursor %d, rescanning %v", s.c.Cursor(), s.c.Rescanning())
	}
	s.redial(t)
	if s.c.Cursor() != 0 || !s.c.Rescanning() {
		t.Fatalf("dialled again before pulling: cursor %d, rescanning %v", s.c.Cursor(), s.c.Rescanning())
	}
	if st, err := s.c.Pull(ctx, 0); err != nil || st.Appended != 5 || st.Duplicates != 30 || s.c.Rescanning() {
		t.Fatalf("pull after widening again: %+v %v", st, err)
	}
	s.redial(t)
	if s.c.Cursor() != 35 || s.c.Rescanning() {
		t.Fatalf("dialled once caught up: cursor %d", s.c.Cursor())
	}
}

// FromStart pulls everything again (for a widening at a central older
// than widening counts); what the ledger holds is skipped.
func TestFromStart(t *testing.T) {
	ctx := context.Background()
	h := newHub(t, false, time.Now)
	s := h.dial(t, 6, wire.ScopeAll, false)
	appendAll(t, h.store, origin(0).Patients(t, ledgertest.Rand(t), 30))
	if st, err := s.c.Pull(ctx, 0); err != nil || st.Appended != 30 {
		t.Fatalf("pull: %+v %v", st, err)
	}
	s.cfg.FromStart = true
	s.redial(t)
	if s.c.Cursor() != 0 || !s.c.Rescanning() {
		t.Fatalf("from start: cursor %d", s.c.Cursor())
	}
	if st, err := s.c.Pull(ctx, 0); err != nil || st.Appended != 0 || st.Duplicates != 30 || st.Cursor != 30 {
		t.Fatalf("pull from the start: %+v %v", st, err)
	}
	if err := s.c.Rewind(ctx); err != nil || s.c.Cursor() != 0 {
		t.Fatalf("rewind: %v", err)
	}
}

// stateRows lists a SQLite satellite's sync state rows: key → url, cursor.
func stateRows(t *testing.T, loc string) map[string]string {
	t.Helper()
	db, err := sql.Open("sqlite", strings.TrimPrefix(loc, "sqlite:"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT central, url, cursor FROM ghsync_sync_state`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var k, u string
		var c int64
		if err := rows.Scan(&k, &u, &c); err != nil {
			t.Fatal(err)
		}
		out[k] = u + " " + strconv.FormatInt(c, 10)
	}
	return out
}

// The cursor belongs to central, not to the URL it was reached at: the
// same central by another name (localhost, a trailing slash) continues
// where the cursor is, with one state row.
func TestCursorKeyedByCentral(t *testing.T) {
	ctx := context.Background()
	h := newHub(t, false, time.Now)
	s := h.dial(t, 1, wire.ScopeAll, false)
	appendAll(t, h.store, origin(0).Patients(t, ledgertest.Rand(t), 20))
	if st, err := s.c.Pull(ctx, 0); err != nil || st.Appended != 20 {
		t.Fatalf("pull: %+v %v", st, err)
	}
	id, _ := h.reg.Identity(ctx)
	other := strings.Replace(h.ts.URL, "127.0.0.1", "localhost", 1) + "/"
	s.cfg.URL = other
	s.redial(t)
	if s.c.Cursor() != 20 || s.c.Central() != id {
		t.Fatalf("through %s: cursor %d, central %q", other, s.c.Cursor(), s.c.Central())
	}
	if st, err := s.c.Pull(ctx, 0); err != nil || st.Received != 0 {
		t.Fatalf("pull through %s: %+v %v", other, st, err)
	}
	if rows := stateRows(t, s.loc); len(rows) != 1 || rows[id] != strings.TrimSuffix(other, "/")+" 20" {
		t.Fatalf("state rows: %v", rows)
	}
}

// A cursor saved before centrals had identities (keyed by URL, without
// the later columns) is moved to central's identity at the first contact
// through that URL.
func TestLegacyCursorMoved(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) { testLegacyCursorMoved(t, pg) })
	}
}

func testLegacyCursorMoved(t *testing.T, pg bool) {
	ctx := context.Background()
	h := newHub(t, false, time.Now)
	appendAll(t, h.store, origin(0).Patients(t, ledgertest.Rand(t), 25))
	store, loc := open(t, pg)
	driver, dsn, table, create := "sqlite", strings.TrimPrefix(loc, "sqlite:"), "ghsync_sync_state",
		`CREATE TABLE ghsync_sync_state (central TEXT PRIMARY KEY, cursor INTEGER NOT NULL, offset_ns INTEGER NOT NULL, updated_us INTEGER NOT NULL) STRICT`
	if pg {
		driver, dsn, table, create = "pgx", loc, "ghsync.sync_state",
			`CREATE TABLE ghsync.sync_state (central text PRIMARY KEY, cursor bigint NOT NULL, offset_ns bigint NOT NULL, updated_us bigint NOT NULL)`
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(create); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO ` + table + ` VALUES ('` + h.ts.URL + `', 20, 0, 1)`); err != nil {
		t.Fatal(err)
	}
	s := &site{store: store, loc: loc, cfg: satellite.Config{URL: h.ts.URL, Token: h.add(t, 1, wire.ScopeAll), Origin: 1, Store: store, StateLocation: loc, HTTPClient: h.ts.Client()}}
	s.redial(t)
	if s.c.Cursor() != 20 {
		t.Fatalf("cursor %d, want the legacy row's 20", s.c.Cursor())
	}
	if st, err := s.c.Pull(ctx, 0); err != nil || st.Received != 5 {
		t.Fatalf("pull: %+v %v", st, err)
	}
	id, _ := h.reg.Identity(ctx)
	var key, url string
	var cursor int64
	if err := db.QueryRow(`SELECT central, url, cursor FROM `+table).Scan(&key, &url, &cursor); err != nil || key != id || url != h.ts.URL || cursor != 25 {
		t.Fatalf("state row: %s %s %d %v; want %s %s 25", key, url, cursor, err, id, h.ts.URL)
	}
}

// Another central than the one the cursor belongs to is refused, naming
// both, before anything is pulled: its positions mean nothing here.
// FromStart follows it (a central rebuilt from scratch) and forgets the
// other cursor.
func TestOtherCentralRefused(t *testing.T) {
	ctx := context.Background()
	h1, h2 := newHub(t, false, time.Now), newHub(t, false, time.Now)
	s := h1.dial(t, 1, wire.ScopeAll, false)
	// Central 2 is central 1 rebuilt from scratch, from what it had
	// sent: the same events at other positions, and more.
	o0 := origin(0)
	evs := o0.Patients(t, ledgertest.Rand(t), 20)
	appendAll(t, h1.store, evs)
	appendAll(t, h2.store, origin(5).Patients(t, ledgertest.Rand(t), 10))
	appendAll(t, h2.store, evs)
	if _, err := s.c.Pull(ctx, 0); err != nil {
		t.Fatal(err)
	}
	id1, _ := h1.reg.Identity(ctx)
	id2, _ := h2.reg.Identity(ctx)
	s.cfg.URL, s.cfg.Token, s.cfg.HTTPClient = h2.ts.URL, h2.add(t, 1, wire.ScopeAll), h2.ts.Client()
	_, err := satellite.Dial(ctx, s.cfg)
	if !errors.Is(err, satellite.ErrOtherCentral) || !strings.Contains(err.Error(), id1) || !strings.Contains(err.Error(), id2) || !strings.Contains(err.Error(), "--from-start") {
		t.Fatalf("dial another central: %v", err)
	}
	s.cfg.FromStart = true
	s.redial(t)
	if st, err := s.c.Pull(ctx, 0); err != nil || st.Received != 30 || st.Appended != 10 || st.Cursor != 30 {
		t.Fatalf("pull from the new central: %+v %v", st, err)
	}
	if rows := stateRows(t, s.loc); len(rows) != 1 || rows[id2] != h2.ts.URL+" 30" {
		t.Fatalf("state rows: %v", rows)
	}
	// A cursor from before identities, kept for another URL, is no proof
	// either way: refused too, saying how to tie it.
	store, loc := open(t, false)
	db, err := sql.Open("sqlite", strings.TrimPrefix(loc, "sqlite:"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE ghsync_sync_state (central TEXT PRIMARY KEY, cursor INTEGER NOT NULL, offset_ns INTEGER NOT NULL, updated_us INTEGER NOT NULL) STRICT;
		INSERT INTO ghsync_sync_state VALUES ('https://old.example.org:7432', 20, 0, 1)`); err != nil {
		t.Fatal(err)
	}
	cfg := satellite.Config{URL: h2.ts.URL, Token: s.cfg.Token, Origin: 1, Store: store, StateLocation: loc, HTTPClient: h2.ts.Client()}
	if _, err := satellite.Dial(ctx, cfg); !errors.Is(err, satellite.ErrOtherCentral) || !strings.Contains(err.Error(), "https://old.example.org:7432") {
		t.Fatalf("dial with a legacy cursor of another URL: %v", err)
	}
}

// A URL that starts answering as another central mid-session (DNS moved)
// is refused at the next request.
func TestCentralChangesUnderTheURL(t *testing.T) {
	ctx := context.Background()
	h1, h2 := newHub(t, false, time.Now), newHub(t, false, time.Now)
	tok, hash, _ := central.NewToken()
	for _, h := range []*hub{h1, h2} {
		if err := h.reg.AddSatellite(ctx, central.Satellite{ID: 1, Name: "clinic", Scope: wire.ScopeAll, TokenHash: hash, Created: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	var second atomic.Bool
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if second.Load() {
			h2.srv.ServeHTTP(w, r)
		} else {
			h1.srv.ServeHTTP(w, r)
		}
	}))
	defer ts.Close()
	store, loc := open(t, false)
	c, err := satellite.Dial(ctx, satellite.Config{URL: ts.URL, Token: tok, Origin: 1, Store: store, StateLocation: loc})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	second.Store(true)
	if _, err := c.Pull(ctx, 0); !errors.Is(err, satellite.ErrOtherCentral) {
		t.Fatalf("pull from another central under the same URL: %v", err)
	}
}

// A long poll returns as soon as central has something.
func TestPullWaits(t *testing.T) {
	ctx := context.Background()
	h := newHub(t, false, time.Now)
	s := h.dial(t, 7, wire.ScopeAll, false)
	go func() {
		time.Sleep(200 * time.Millisecond)
		h.store.Append(ctx, origin(0).Patients(t, ledgertest.Rand(t), 1))
	}()
	start := time.Now()
	ps, err := s.c.Pull(ctx, 10*time.Second)
	if err != nil || ps.Appended != 1 || time.Since(start) > 5*time.Second {
		t.Fatalf("long poll: %+v %v after %v", ps, err, time.Since(start))
	}
}
