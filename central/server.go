package central

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ghsync/ghsync/clocks"
	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/merge"
	"github.com/ghsync/ghsync/models"
	"github.com/ghsync/ghsync/wire"
)

// Config sets up a Server. Store and Registry are required; every other
// zero field takes its default.
type Config struct {
	Store    ledger.Store
	Registry Registry
	// Models decides which models are reference data (sent to every
	// satellite) and which are shared records that do not pull their
	// referrers into a held set. Default: models.GNUHealth().
	Models *models.Registry
	// MaxBody bounds a request body as sent (compressed), in bytes.
	// Default 64 MiB.
	MaxBody int64
	// MaxDecoded bounds a push body once decompressed. Default 256 MiB.
	MaxDecoded int64
	// MaxPushEvents bounds the events of one push. Default 10,000.
	MaxPushEvents int
	// MaxAhead is how far ahead of central's clock an event's HLC may be
	// and still merge as stamped; later ones are bounded or held (Skew).
	// Default clocks.DefaultMaxOffset; negative disables the check.
	MaxAhead time.Duration
	// Skew is what becomes of events beyond MaxAhead. Default SkewBound.
	Skew SkewPolicy
	// Sequencer stamps central's own events (clock bounds). Default: one
	// resumed from Store for origin 0, on a clock reading Clock. Share
	// it with central's capturer when both run in one process.
	Sequencer *ledger.Sequencer
	// MaxPageBytes bounds the event bytes of one pull page. Default 8 MiB.
	MaxPageBytes int
	// MaxNewStreams and MaxNewBytes bound the record graph a /v1/new
	// returns. Defaults 20,000 streams and 128 MiB. They are checked
	// before the graph is held (a refusal holds nothing); what is
	// appended to it while new runs is sent on top.
	MaxNewStreams int
	MaxNewBytes   int
	// Projects says central's own instance (origin 0) captures and
	// projects (serve --target): the stability frontier then waits for
	// its reports (ReportStable) as for a satellite's.
	Projects bool
	// FrontierEvery is how often the stability frontier is derived again
	// at most (reports in between get the last value). Default
	// DefaultFrontierEvery; negative: on every report.
	FrontierEvery time.Duration
	// Clock is central's wall clock. Default time.Now.
	Clock  func() time.Time
	Logger hclog.Logger
}

// Defaults of Config.
const (
	DefaultMaxBody       = 64 << 20
	DefaultMaxPageBytes  = 8 << 20
	DefaultMaxNewStreams = 20_000
	DefaultMaxNewBytes   = 128 << 20
)

// Server is central's side of the protocol, an http.Handler:
//
//	GET  /v1/heads   the caller's high-water mark here, and the head
//	POST /v1/push    the caller's events (frames, gzip)
//	GET  /v1/pull    events after a cursor, for the caller's scope (long-poll with wait)
//	POST /v1/new     a record graph's history, joined to the caller's held set
//	GET  /v1/own     the caller's own events after an origin_seq (a restored satellite's)
//
// Every request carries "Authorization: Bearer <token>"; every response
// carries X-Ghsync-Time. Refusals are JSON wire.Error bodies with a 4xx
// status, and store nothing.
type Server struct {
	cfg   Config
	log   hclog.Logger
	mux   *http.ServeMux
	locks [ledger.MaxOrigin + 1]sync.Mutex // one push or pull page at a time per satellite
	watch *headWatch

	identity  string // central's (Registry.Identity)
	indexMu   sync.Mutex
	front     frontier      // the stability frontier (stable.go)
	closing   chan struct{} // closed by Close: long polls answer at once
	closeOnce sync.Once
}

// SkewPolicy is what central does with events stamped too far ahead of
// its clock.
type SkewPolicy int

const (
	// SkewBound appends them behind a clock bound (ledger.ClockBound):
	// every projector merges them at central's reading, so they cannot
	// win merges they should not, and nothing waits for an administrator.
	SkewBound SkewPolicy = iota
	// SkewHold keeps them (and the rest of the origin's chain) out of the
	// ledger, in held_events, until central's clock catches up or an
	// administrator releases them.
	SkewHold
)

// wallFunc adapts a func to clocks.WallClock.
type wallFunc func() time.Time

func (f wallFunc) Now() time.Time { return f() }

// New checks cfg and returns a Server. Call Close when done.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil || cfg.Registry == nil {
		return nil, errors.New("central: Config needs a Store and a Registry")
	}
	if cfg.Models == nil {
		cfg.Models = models.GNUHealth()
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.MaxDecoded <= 0 {
		cfg.MaxDecoded = wire.DefaultMaxBody
	}
	if cfg.MaxPushEvents <= 0 {
		cfg.MaxPushEvents = wire.DefaultMaxPushEvents
	}
	if cfg.MaxAhead == 0 {
		cfg.MaxAhead = clocks.DefaultMaxOffset
	}
	if cfg.MaxPageBytes <= 0 {
		cfg.MaxPageBytes = DefaultMaxPageBytes
	}
	if cfg.MaxNewStreams <= 0 {
		cfg.MaxNewStreams = DefaultMaxNewStreams
	}
	if cfg.MaxNewBytes <= 0 {
		cfg.MaxNewBytes = DefaultMaxNewBytes
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.FrontierEvery == 0 {
		cfg.FrontierEvery = DefaultFrontierEvery
	}
	if cfg.Sequencer == nil && cfg.Skew == SkewBound {
		var err error
		clock := clocks.NewClock(wallFunc(cfg.Clock), clocks.DefaultMaxOffset)
		if cfg.Sequencer, err = ledger.Resume(context.Background(), cfg.Store, 0, clock); err != nil {
			return nil, fmt.Errorf("central: %w", err)
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	id, err := cfg.Registry.Identity(context.Background())
	if err != nil {
		return nil, fmt.Errorf("central: %w", err)
	}
	s := &Server{cfg: cfg, log: cfg.Logger.Named("central"), mux: http.NewServeMux(), closing: make(chan struct{}), identity: id}
	s.watch = newHeadWatch(cfg.Store, s.log)
	s.mux.HandleFunc("GET "+wire.PathHeads, s.authed(s.heads))
	s.mux.HandleFunc("POST "+wire.PathPush, s.authed(s.push))
	s.mux.HandleFunc("GET "+wire.PathPull, s.authed(s.pull))
	s.mux.HandleFunc("POST "+wire.PathNew, s.authed(s.newGraph))
	s.mux.HandleFunc("POST "+wire.PathStable, s.authed(s.stable))
	s.mux.HandleFunc("GET "+wire.PathOwn, s.authed(s.own))
	return s, nil
}

// Identity is central's identity (Registry.Identity), which every answer
// to a satellite carries.
func (s *Server) Identity() string { return s.identity }

// Close ends long polls (they answer at once, with no events) and stops
// the server's background watcher. Call it before http.Server.Shutdown so
// a graceful shutdown does not wait for long polls. It does not close the
// Store or the Registry.
func (s *Server) Close() error {
	s.closeOnce.Do(func() { close(s.closing) })
	s.watch.stop()
	return nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tw := &timeWriter{ResponseWriter: w, clock: s.cfg.Clock}
	if _, pattern := s.mux.Handler(r); pattern == "" {
		switch r.URL.Path {
		case wire.PathHeads, wire.PathPull, wire.PathOwn:
			tw.Header().Set("Allow", http.MethodGet)
			s.refuse(tw, r, nil, http.StatusMethodNotAllowed, fmt.Errorf("%s wants GET", r.URL.Path), nil)
		case wire.PathPush, wire.PathNew, wire.PathStable:
			tw.Header().Set("Allow", http.MethodPost)
			s.refuse(tw, r, nil, http.StatusMethodNotAllowed, fmt.Errorf("%s wants POST", r.URL.Path), nil)
		default:
			s.refuse(tw, r, nil, http.StatusNotFound, fmt.Errorf("no such endpoint: %s %s", r.Method, r.URL.Path), nil)
		}
		return
	}
	s.mux.ServeHTTP(tw, r)
}

// timeWriter stamps X-Ghsync-Time as the response goes out, so a
// long-polled answer carries the time it was sent, not received.
type timeWriter struct {
	http.ResponseWriter
	clock func() time.Time
	wrote bool
}

func (t *timeWriter) WriteHeader(code int) {
	if !t.wrote {
		t.wrote = true
		t.Header().Set(wire.HeaderTime, wire.FormatTime(t.clock()))
	}
	t.ResponseWriter.WriteHeader(code)
}

func (t *timeWriter) Write(b []byte) (int, error) {
	if !t.wrote {
		t.WriteHeader(http.StatusOK)
	}
	return t.ResponseWriter.Write(b)
}

func (t *timeWriter) Flush() {
	if f, ok := t.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (t *timeWriter) Unwrap() http.ResponseWriter { return t.ResponseWriter }

// refuse answers a refused request with a JSON error and logs it.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, sat *Satellite, status int, err error, frame *int) {
	args := []any{"method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "status", status, "error", err}
	if sat != nil {
		args = append(args, "satellite", sat.ID, "name", sat.Name)
	}
	if frame != nil {
		args = append(args, "frame", *frame)
	}
	if status >= 500 {
		s.log.Error("request failed", args...)
	} else {
		s.log.Warn("request refused", args...)
	}
	writeJSON(w, status, wire.Error{Error: err.Error(), Frame: frame})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

type handler func(w http.ResponseWriter, r *http.Request, sat Satellite)

// authed resolves the bearer token to a registered, active satellite.
// Only the token's SHA-256 is looked up (by the database's index, which
// leaks nothing useful: the attacker does not choose the hash) and then
// compared in constant time.
func (s *Server) authed(next handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, ok := wire.BearerToken(r.Header)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="ghsync"`)
			s.refuse(w, r, nil, http.StatusUnauthorized, errors.New("missing bearer token (Authorization: Bearer <token>)"), nil)
			return
		}
		hash := HashToken(tok)
		sat, err := s.cfg.Registry.SatelliteByToken(r.Context(), hash)
		if err != nil && !errors.Is(err, ErrNotFound) {
			s.refuse(w, r, nil, http.StatusServiceUnavailable, fmt.Errorf("registry: %w", err), nil)
			return
		}
		if err != nil || subtle.ConstantTimeCompare(hash[:], sat.TokenHash[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="ghsync", error="invalid_token"`)
			s.refuse(w, r, nil, http.StatusUnauthorized, errors.New("unknown token"), nil)
			return
		}
		if !sat.Active() {
			s.refuse(w, r, &sat, http.StatusForbidden, fmt.Errorf("the token of satellite %d was revoked at %s", sat.ID, sat.Revoked.Format(time.RFC3339)), nil)
			return
		}
		// Read with the satellite in one lookup, so they describe the
		// scope this very answer is computed for.
		h := w.Header()
		h.Set(wire.HeaderCentral, s.identity)
		h.Set(wire.HeaderScope, sat.Scope)
		h.Set(wire.HeaderWidened, strconv.FormatUint(sat.Widened, 10))
		next(w, r, sat)
	}
}

func (s *Server) heads(w http.ResponseWriter, r *http.Request, sat Satellite) {
	ctx := r.Context()
	origins, err := s.cfg.Store.Origins(ctx)
	if err != nil {
		s.refuse(w, r, &sat, http.StatusServiceUnavailable, fmt.Errorf("read heads: %w", err), nil)
		return
	}
	head, err := s.cfg.Store.Head(ctx)
	if err != nil {
		s.refuse(w, r, &sat, http.StatusServiceUnavailable, fmt.Errorf("read head: %w", err), nil)
		return
	}
	held, err := s.cfg.Registry.HeldEvents(ctx, int(sat.ID))
	if err != nil {
		s.refuse(w, r, &sat, http.StatusServiceUnavailable, err, nil)
		return
	}
	out := wire.Heads{Origin: sat.ID, Name: sat.Name, Scope: sat.Scope, Head: head, HeldEvents: len(held), CentralTime: s.cfg.Clock().UTC(),
		Central: s.identity, Widened: sat.Widened}
	for _, h := range origins {
		if h.Origin == sat.ID {
			out.HighWater, out.Count, out.Hash = h.Seq, h.Count, h.Hash.String()
		}
	}
	if v := r.URL.Query().Get(wire.QueryAt); v != "" {
		at, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			s.refuse(w, r, &sat, http.StatusBadRequest, fmt.Errorf("%s %q: want an origin_seq", wire.QueryAt, v), nil)
			return
		}
		out.At = at
		if at > 0 && at <= out.HighWater {
			e, err := s.ownEvent(ctx, sat.ID, at)
			if err != nil {
				s.refuse(w, r, &sat, http.StatusServiceUnavailable, err, nil)
				return
			}
			if e != nil {
				out.AtHash = e.Hash.String()
			}
		}
	}
	w.Header().Set(wire.HeaderHead, strconv.FormatUint(head, 10))
	writeJSON(w, http.StatusOK, out)
}

// reference reports whether model is reference data: every satellite
// receives it.
func (s *Server) reference(model string) bool {
	m, ok := s.cfg.Models.Lookup(model)
	return ok && m.Reference
}

// sharedModels are records many patients point at that are not master
// data: a doctor, a domiciliary unit, a hospital's units, wards and beds.
// Like master data (CentralWins) and reference data, they join a held set
// as targets only: the records that reference them do not follow.
var sharedModels = map[string]bool{
	"gnuhealth.healthprofessional":            true,
	"gnuhealth.hp_specialty":                  true,
	"gnuhealth.du":                            true,
	"gnuhealth.hospital.unit":                 true,
	"gnuhealth.hospital.ward":                 true,
	"gnuhealth.hospital.bed":                  true,
	"gnuhealth.institution.operationalsector": true,
	"gnuhealth.institution.specialties":       true,
}

// hub reports whether records referencing a record of model should not
// join a held set because of it.
func (s *Server) hub(model string) bool {
	if sharedModels[model] {
		return true
	}
	m, ok := s.cfg.Models.Lookup(model)
	return ok && (m.Reference || m.Policy.Default == merge.CentralWins)
}

// refs lists the records an event's values point at, in field order.
func refs(e *ledger.Event) []ledger.Stream {
	var out []ledger.Stream
	for _, v := range e.Fields {
		if r, ok := v.AsRef(); ok {
			out = append(out, ledger.Stream{Model: r.Model, Key: r.Key})
		} else if rs, ok := v.AsRefSet(); ok {
			for _, r := range rs {
				out = append(out, ledger.Stream{Model: r.Model, Key: r.Key})
			}
		}
	}
	return out
}

// headWatch wakes long-polling pulls when central's ledger grows, through
// one shared subscription rather than one per waiting satellite.
type headWatch struct {
	store ledger.Store
	log   hclog.Logger

	mu      sync.Mutex
	ch      chan struct{}
	running bool
	closed  bool
	cancel  context.CancelFunc
	done    chan struct{}
}

func newHeadWatch(store ledger.Store, log hclog.Logger) *headWatch {
	return &headWatch{store: store, log: log, ch: make(chan struct{})}
}

// C returns a channel closed at the next append after the call. It starts
// the subscription on first use (and again if it failed).
func (h *headWatch) C(ctx context.Context) <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.running && !h.closed {
		head, err := h.store.Head(ctx)
		if err == nil {
			wctx, cancel := context.WithCancel(context.Background())
			h.running, h.cancel, h.done = true, cancel, make(chan struct{})
			go h.run(wctx, head)
		}
	}
	return h.ch
}

func (h *headWatch) run(ctx context.Context, head uint64) {
	defer close(h.done)
	for _, err := range h.store.Subscribe(ctx, head, ledger.Filter{}) {
		if err != nil {
			if ctx.Err() == nil {
				h.log.Warn("head watch stopped; long polls fall back to polling", "error", err)
			}
			break
		}
		h.broadcast()
	}
	h.mu.Lock()
	h.running = false
	h.mu.Unlock()
	h.broadcast()
}

func (h *headWatch) broadcast() {
	h.mu.Lock()
	defer h.mu.Unlock()
	close(h.ch)
	h.ch = make(chan struct{})
}

func (h *headWatch) stop() {
	h.mu.Lock()
	h.closed = true
	cancel, done := h.cancel, h.done
	h.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}
