package central_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"iter"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ghsync/ghsync/central"
	"github.com/ghsync/ghsync/internal/pgtest"
	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/ledger/postgres"
	"github.com/ghsync/ghsync/ledger/sqlite"
	"github.com/ghsync/ghsync/wire"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// epoch is where ledgertest origins' clocks start; central's test clock
// runs from a little after it, so their events are not "in the future".
var epoch = time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)

// testClock is central's wall clock in tests: settable, and moving with
// real time so long polls and offsets behave.
type testClock struct {
	mu    sync.Mutex
	base  time.Time
	start time.Time
}

func newTestClock(at time.Time) *testClock { return &testClock{base: at, start: time.Now()} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.base.Add(time.Since(c.start))
}

func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.base, c.start = t, time.Now()
}

// counting wraps a Store and counts calls by method, so a test can assert
// what central read.
type counting struct {
	ledger.Store
	mu    sync.Mutex
	calls map[string]int
}

func (c *counting) count(m string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.calls == nil {
		c.calls = map[string]int{}
	}
	c.calls[m]++
}

func (c *counting) reset() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.calls
	c.calls = map[string]int{}
	return old
}

func (c *counting) Append(ctx context.Context, evs []*ledger.Event) (ledger.AppendResult, error) {
	c.count("Append")
	return c.Store.Append(ctx, evs)
}
func (c *counting) ReadAll(ctx context.Context, after uint64, limit int, f ledger.Filter) ([]ledger.Record, error) {
	c.count("ReadAll")
	return c.Store.ReadAll(ctx, after, limit, f)
}
func (c *counting) ReadAllRaw(ctx context.Context, after uint64, limit int) ([]ledger.RawRecord, error) {
	c.count("ReadAllRaw")
	return c.Store.ReadAllRaw(ctx, after, limit)
}
func (c *counting) ReadStream(ctx context.Context, s ledger.Stream, after uint64, limit int) ([]ledger.Record, error) {
	c.count("ReadStream")
	return c.Store.ReadStream(ctx, s, after, limit)
}
func (c *counting) ReadOrigin(ctx context.Context, o uint16, after uint64, limit int) ([]ledger.Record, error) {
	c.count("ReadOrigin")
	return c.Store.ReadOrigin(ctx, o, after, limit)
}
func (c *counting) Subscribe(ctx context.Context, after uint64, f ledger.Filter) iter.Seq2[ledger.Record, error] {
	c.count("Subscribe")
	return c.Store.Subscribe(ctx, after, f)
}
func (c *counting) Head(ctx context.Context) (uint64, error) {
	c.count("Head")
	return c.Store.Head(ctx)
}
func (c *counting) Origins(ctx context.Context) ([]ledger.OriginHead, error) {
	c.count("Origins")
	return c.Store.Origins(ctx)
}

// rig is a central: its ledger and registry in one database, the server,
// and an httptest server in front of it.
type rig struct {
	loc   string
	store *counting
	reg   central.Registry
	srv   *central.Server
	ts    *httptest.Server
	clock *testClock
	logs  *bytes.Buffer
}

type rigOption func(*central.Config)

// newRig starts a central on SQLite (pg false) or PostgreSQL.
func newRig(t testing.TB, pg bool, opts ...rigOption) *rig {
	t.Helper()
	ctx := context.Background()
	r := &rig{clock: newTestClock(epoch.Add(time.Hour)), logs: &bytes.Buffer{}}
	var store ledger.Store
	var err error
	if pg {
		r.loc = pgtest.NewDatabase(t)
		store, err = postgres.Open(ctx, r.loc, postgres.Options{PollInterval: 100 * time.Millisecond})
	} else {
		path := filepath.Join(t.TempDir(), "central.db")
		r.loc = "sqlite:" + path
		store, err = sqlite.Open(ctx, path, sqlite.Options{})
	}
	if err != nil {
		t.Fatal(err)
	}
	r.store = &counting{Store: store}
	if r.reg, err = central.OpenRegistry(ctx, r.loc); err != nil {
		t.Fatal(err)
	}
	cfg := central.Config{Store: r.store, Registry: r.reg, Clock: r.clock.Now,
		Logger: hclog.New(&hclog.LoggerOptions{Output: &syncWriter{w: r.logs}, Level: hclog.Debug, JSONFormat: true})}
	for _, o := range opts {
		o(&cfg)
	}
	if r.srv, err = central.New(cfg); err != nil {
		t.Fatal(err)
	}
	r.ts = httptest.NewServer(r.srv)
	t.Cleanup(func() {
		r.ts.Close()
		r.srv.Close()
		r.reg.Close()
		store.Close()
	})
	return r
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}

// add registers satellite id and returns its token.
func (r *rig) add(t testing.TB, id uint16, scope string) string {
	t.Helper()
	tok, hash, err := central.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.reg.AddSatellite(context.Background(), central.Satellite{ID: id, Name: "clinic " + strconv.Itoa(int(id)), Scope: scope, TokenHash: hash, Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	return tok
}

func (r *rig) head(t testing.TB) uint64 {
	t.Helper()
	h, err := r.store.Store.Head(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// gz compresses b.
func gz(b []byte) []byte {
	var z bytes.Buffer
	w := gzip.NewWriter(&z)
	w.Write(b)
	w.Close()
	return z.Bytes()
}

func pushBody(t testing.TB, events []*ledger.Event) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := wire.EncodePush(&b, events); err != nil {
		t.Fatal(err)
	}
	return gz(b.Bytes())
}

// post sends a push body with token and returns the status and raw answer.
func (r *rig) post(t testing.TB, token string, body io.Reader) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, r.ts.URL+wire.PathPush, body)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", wire.ContentType)
	req.Header.Set("Content-Encoding", "gzip")
	resp, err := r.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.Header.Get(wire.HeaderTime) == "" {
		t.Errorf("answer %d has no %s header", resp.StatusCode, wire.HeaderTime)
	}
	return resp.StatusCode, raw
}

func (r *rig) push(t testing.TB, token string, events []*ledger.Event) wire.PushResponse {
	t.Helper()
	status, raw := r.post(t, token, bytes.NewReader(pushBody(t, events)))
	if status != http.StatusOK {
		t.Fatalf("push: %d %s", status, raw)
	}
	var pr wire.PushResponse
	if err := json.Unmarshal(raw, &pr); err != nil {
		t.Fatal(err)
	}
	return pr
}

// get sends a GET and returns the response (body read into raw).
func (r *rig) get(t testing.TB, token, pathQuery string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, r.ts.URL+pathQuery, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := r.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp, raw
}

// pull GETs a pull page and decodes it.
func (r *rig) pull(t testing.TB, token string, after uint64, extra string) (*http.Response, []ledger.Record) {
	t.Helper()
	resp, raw := r.get(t, token, wire.PathPull+"?after="+strconv.FormatUint(after, 10)+extra)
	switch resp.StatusCode {
	case http.StatusNoContent:
		return resp, nil
	case http.StatusOK:
	default:
		t.Fatalf("pull after %d: %d %s", after, resp.StatusCode, raw)
	}
	var in io.Reader = bytes.NewReader(raw)
	if resp.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(in)
		if err != nil {
			t.Fatal(err)
		}
		in = zr
	}
	recs, err := wire.DecodePull(in, wire.Limits{})
	if err != nil {
		t.Fatalf("pull after %d: %v", after, err)
	}
	return resp, recs
}

// pullAll pulls until caught up and returns every record received.
func (r *rig) pullAll(t testing.TB, token string) []ledger.Record {
	t.Helper()
	var all []ledger.Record
	var after uint64
	for i := 0; i < 1000; i++ {
		resp, recs := r.pull(t, token, after, "")
		all = append(all, recs...)
		next, _ := strconv.ParseUint(resp.Header.Get(wire.HeaderNext), 10, 64)
		head, _ := strconv.ParseUint(resp.Header.Get(wire.HeaderHead), 10, 64)
		after = next
		if next >= head {
			return all
		}
	}
	t.Fatal("pull never caught up")
	return nil
}

func errorBody(t testing.TB, raw []byte) wire.Error {
	t.Helper()
	var e wire.Error
	if err := json.Unmarshal(raw, &e); err != nil || e.Error == "" {
		t.Fatalf("not a JSON error: %s (%v)", raw, err)
	}
	return e
}
