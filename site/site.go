// Package site is one GNU Health instance as ghsync runs it: its Tryton
// database, its ledger, the capturer and projector working on them, and,
// for a satellite, its link to central. Sync is the cycle the 2014
// engine's three Celery tasks performed (push, pull, new), plus capture
// and projection; Run repeats it as a service.
package site

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ghsync/ghsync/capture"
	"github.com/ghsync/ghsync/clocks"
	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/models"
	"github.com/ghsync/ghsync/projections"
	"github.com/ghsync/ghsync/satellite"
)

// Config describes an instance.
type Config struct {
	Origin uint16 // synchronisation_id: 0 central, 1..511 satellites
	// Target is the Tryton database (postgres:// URL or sqlite:PATH); empty
	// for a ledger-only node. Capture runs if it is installed there.
	Target string
	Store  ledger.Store
	// StoreLocation is where Store lives; the pull cursor persists there.
	StoreLocation string
	Registry      *models.Registry
	// Central and Token link a satellite to central; empty at central.
	Central    string
	Token      string
	HTTPClient *http.Client
	// Sequencer, when set, stamps this instance's events (shared with
	// central's server, which writes origin 0 too).
	Sequencer *ledger.Sequencer
	// Wall is this machine's clock (default the system's). It is corrected
	// by the offset measured against central.
	Wall     clocks.WallClock
	Logger   hclog.Logger
	Progress func(satellite.Progress)
	// FromStart, at a satellite, pulls central's ledger again from
	// position 0 and follows whichever central answers at Central
	// (satellite.Config.FromStart).
	FromStart bool
	// ReportStable, at central, records what central's own instance
	// vouches for after a complete cycle and returns the stability
	// frontier (central.Server.ReportStable); satellites report over
	// the network instead.
	ReportStable func(ctx context.Context, hlc clocks.Timestamp, applied uint64) (clocks.Timestamp, error)
}

// Site runs the sync cycle of one instance. Not safe for concurrent use.
type Site struct {
	cfg    Config
	log    hclog.Logger
	wall   *clocks.Corrected
	clock  *clocks.Clock
	cap    *capture.Capturer // nil when capture is not installed
	proj   *projections.Projector
	client *satellite.Client // nil until central answered
	// bundles records, at a satellite, what local cycles vouch for, for
	// the bundles it exports (bundles.go); nil at central or without a
	// target.
	bundles *satellite.BundleState
}

// Open prepares an instance. Central need not be reachable.
func Open(ctx context.Context, cfg Config) (*Site, error) {
	if cfg.Registry == nil {
		cfg.Registry = models.GNUHealth()
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	s := &Site{cfg: cfg, log: cfg.Logger.Named("site"), wall: clocks.NewCorrected(cfg.Wall, 0)}
	s.clock = clocks.NewClock(s.wall, clocks.DefaultMaxOffset)
	if cfg.Target == "" {
		return s, nil
	}
	var err error
	if _, err = capture.Inspect(ctx, cfg.Target); err == nil {
		s.cap, err = capture.Open(ctx, cfg.Target, cfg.Store, cfg.Registry, capture.Options{Origin: cfg.Origin, Clock: s.clock,
			Sequencer: cfg.Sequencer, Logger: cfg.Logger,
			Correct: func(t time.Time) time.Time { return t.Add(s.wall.Offset()) }})
		if err != nil {
			return nil, err
		}
	} else if !errors.Is(err, capture.ErrNotInstalled) {
		return nil, err
	} else {
		s.log.Warn("capture is not installed: local changes are not recorded (ghsync capture install)", "target", cfg.Target)
	}
	if s.proj, err = projections.Open(ctx, cfg.Target, cfg.Store, cfg.Registry, projections.Options{Logger: cfg.Logger}); err != nil {
		s.Close()
		return nil, err
	}
	s.proj.HoldCompaction(s.rescanning)
	if cfg.Origin != 0 && cfg.StoreLocation != "" {
		if s.bundles, err = satellite.OpenBundleState(ctx, cfg.StoreLocation); err != nil {
			s.Close()
			return nil, err
		}
		if err := resumeClock(ctx, s.clock, s.bundles); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// Close releases what Open opened (not the Store).
func (s *Site) Close() {
	if s.cap != nil {
		s.cap.Close()
	}
	if s.proj != nil {
		s.proj.Close()
	}
	if s.client != nil {
		s.client.Close()
	}
	if s.bundles != nil {
		s.bundles.Close()
	}
}

// Projector is the instance's projector (nil without a target).
func (s *Site) Projector() *projections.Projector { return s.proj }

// Capturer is the instance's capturer (nil when capture is not installed).
func (s *Site) Capturer() *capture.Capturer { return s.cap }

// Client is the link to central, once it answered (nil at central).
func (s *Site) Client() *satellite.Client { return s.client }

// rescanning reports whether the link to central is pulling central's
// ledger again from the start (satellite.Client.Rescanning): the
// projector holds compaction meanwhile.
func (s *Site) rescanning() bool { return s.client != nil && s.client.Rescanning() }

// Report says what one Sync did.
type Report struct {
	Captured int // events made from local changes
	// Recovered counts this instance's own events fetched back from
	// central before capturing: its ledger was restored from an older
	// copy (satellite.Client.Recover).
	Recovered int
	Pushed    int // events central newly accepted
	Pulled    int // events newly appended from central
	Projected int // events applied to the Tryton tables
	Offset    time.Duration
	// Frontier is the stability frontier the projector compacts merge
	// states to after the cycle (zero: none yet, or no projector). It
	// never goes back.
	Frontier clocks.Timestamp
	// Derived is the frontier central answered this cycle's report with,
	// or its bundles announced (Answered says whether there was one). It
	// can be below Frontier, even zero: an instance registered since, or
	// one pulling history again, holds central's derivation back until it
	// has reported; what was compacted here stays compacted.
	Derived  clocks.Timestamp
	Answered bool
}

// dial links to central, once.
func (s *Site) dial(ctx context.Context) error {
	if s.client != nil || s.cfg.Central == "" {
		return nil
	}
	c, err := satellite.Dial(ctx, satellite.Config{URL: s.cfg.Central, Token: s.cfg.Token, Origin: s.cfg.Origin,
		Store: s.cfg.Store, StateLocation: s.cfg.StoreLocation, HTTPClient: s.cfg.HTTPClient, Logger: s.cfg.Logger, Progress: s.cfg.Progress,
		FromStart: s.cfg.FromStart})
	if err != nil {
		return err
	}
	s.client = c
	return nil
}

// Sync runs one cycle: link to central (measuring the clock offset),
// fetch back this instance's own events if its ledger is behind
// central's history of its origin (restored from an older copy; a
// diverged history is refused before anything is captured), capture
// local changes, push them, pull what central has, and project.
// Local work (capture, projection) is done even when central cannot be
// reached; the error then matches satellite.ErrUnavailable. A cycle that
// completes reports to central what it vouches for and records the
// stability frontier central answers (see stabilize).
func (s *Site) Sync(ctx context.Context) (Report, error) {
	var r Report
	netErr := s.dial(ctx)
	if s.client != nil {
		s.correct()
		r.Offset = s.client.Offset()
	}
	if netErr == nil && s.client != nil {
		// Before anything is captured: events stamped on a ledger behind
		// central's history of this origin could never be pushed.
		rs, err := s.recover(ctx)
		r.Recovered = rs.Events
		switch {
		case errors.Is(err, satellite.ErrBehindCentral), errors.Is(err, satellite.ErrDiverged):
			return r, err // a recovery cut short, too: nothing is captured on it
		case errors.Is(err, satellite.ErrUnavailable):
			netErr = err // not known: local work goes on, as when central is unreachable
		case err != nil:
			return r, err
		}
	}
	if s.cap != nil {
		st, err := s.cap.Drain(ctx)
		if err != nil {
			return r, fmt.Errorf("capture: %w", err)
		}
		r.Captured = st.Events
	}
	// Every event stamped from here on is later than mark; every event
	// stamped before it is in the ledger now, so a push that completes
	// below has delivered it. Read after the drain, not before: a change
	// is stamped at the time it was made unless the clock has moved past
	// it, and reading the clock moves it; so it is read only when a
	// report may follow (at a satellite, one may always follow, in a
	// bundle).
	var mark clocks.Timestamp
	if (netErr == nil && s.client != nil) || (s.cfg.Central == "" && s.cfg.ReportStable != nil) || s.bundles != nil {
		mark = s.stampClock().Now()
	}
	if netErr == nil && s.client != nil {
		ps, err := s.client.Push(ctx)
		r.Pushed = ps.Accepted
		pushedAll := err == nil
		if err != nil && !errors.Is(err, satellite.ErrHeld) {
			netErr = fmt.Errorf("push: %w", err)
		}
		if netErr == nil {
			pl, projected, err := s.pullProjecting(ctx, 0)
			r.Pulled, r.Projected = pl.Appended, projected
			if errors.Is(err, errProject) {
				return r, err
			}
			netErr = err
			if pushedAll && netErr == nil && s.vouched(ctx, &r, mark) {
				s.stabilize(ctx, &r, mark, s.client.Cursor(), s.client.ReportStable)
			}
			s.reportFrontier(&r)
			return r, netErr
		}
	}
	if s.proj != nil {
		st, err := s.proj.CatchUp(ctx)
		if err != nil {
			return r, fmt.Errorf("project: %w", err)
		}
		r.Projected = st.Events
		if s.cfg.Central == "" && s.cfg.ReportStable != nil {
			// Central's projector reads central's ledger: its checkpoint
			// is a central position.
			s.stabilize(ctx, &r, mark, st.Checkpoint, s.cfg.ReportStable)
		}
		s.vouched(ctx, &r, mark)
	}
	s.reportFrontier(&r)
	return r, netErr
}

// reportFrontier sets r.Frontier to what the projector compacts to now.
func (s *Site) reportFrontier(r *Report) {
	if s.proj != nil {
		r.Frontier = s.proj.Frontier()
	}
}

// errProject marks a projection failure among pullProjecting's errors.
var errProject = errors.New("project")

// pullProjecting pulls from central while the projector, if any, applies
// the pages as they land, and returns once both are done. A projection
// failure matches errProject; a pull failure is wrapped as "pull: ...".
func (s *Site) pullProjecting(ctx context.Context, wait time.Duration) (satellite.PullStats, int, error) {
	var pulled chan struct{}
	var projected chan followed
	if s.proj != nil {
		pulled, projected = make(chan struct{}), make(chan followed, 1)
		go func() { projected <- s.follow(ctx, pulled) }()
	}
	pl, err := s.client.Pull(ctx, wait)
	if err != nil {
		err = fmt.Errorf("pull: %w", err)
	}
	s.correct()
	n := 0
	if s.proj != nil {
		close(pulled)
		f := <-projected
		n = f.events
		if f.err != nil {
			return pl, n, fmt.Errorf("%w: %w", errProject, f.err)
		}
	}
	return pl, n, err
}

// recover fetches back from central this instance's own events its
// ledger lacks (satellite.Client.Recover) and has the capturer continue
// after them.
func (s *Site) recover(ctx context.Context) (satellite.RecoverStats, error) {
	st, err := s.client.Recover(ctx)
	if st.Events > 0 && s.cap != nil {
		s.cap.Resync()
	}
	return st, err
}

// Recover is `ghsync recover`: it fetches back from central this
// satellite's own events its ledger lacks after a restore from an older
// copy, as a cycle does before capturing, and projects them with a
// target. Nothing is captured, pushed or reported.
func (s *Site) Recover(ctx context.Context) (satellite.RecoverStats, int, error) {
	if err := s.dial(ctx); err != nil {
		return satellite.RecoverStats{}, 0, err
	}
	st, err := s.recover(ctx)
	if err != nil {
		return st, 0, err
	}
	n, err := s.project(ctx)
	return st, n, err
}

// project catches the target up, if there is one, on what a command
// fetched: the events it applied, and a failure that matches errProject.
func (s *Site) project(ctx context.Context) (int, error) {
	if s.proj == nil {
		return 0, nil
	}
	ps, err := s.proj.CatchUp(ctx)
	if err != nil {
		return ps.Events, fmt.Errorf("%w: %w", errProject, err)
	}
	return ps.Events, nil
}

// Push drains the capture outbox into events, as a cycle does first, and
// pushes this instance's events to central: `ghsync push`, which would
// otherwise send nothing of what users changed since the last cycle.
// Nothing is pulled, projected or reported. A ledger behind central's
// history of this origin, or diverged from it, is refused before the
// outbox is drained (satellite.Client.CheckOwn): `ghsync recover` first.
func (s *Site) Push(ctx context.Context) (captured int, st satellite.PushStats, err error) {
	if err := s.dial(ctx); err != nil {
		return 0, st, err
	}
	s.correct()
	if err := s.client.CheckOwn(ctx); err != nil {
		return 0, st, fmt.Errorf("push: %w", err)
	}
	if s.cap != nil {
		ds, err := s.cap.Drain(ctx)
		if err != nil {
			return 0, st, fmt.Errorf("capture: %w", err)
		}
		captured = ds.Events
	}
	st, err = s.client.Push(ctx)
	return captured, st, err
}

// Pull fetches central's events for this satellite and, with a target,
// projects them as they land, as a cycle does: `ghsync pull`. With wait >
// 0 the first request long-polls. Nothing is captured, pushed or
// reported.
func (s *Site) Pull(ctx context.Context, wait time.Duration) (satellite.PullStats, int, error) {
	if err := s.dial(ctx); err != nil {
		return satellite.PullStats{}, 0, err
	}
	return s.pullProjecting(ctx, wait)
}

// New fetches a record graph from central (a patient by PUID) and, with a
// target, projects it at once, so the patient is in GNU Health when the
// command returns, as the 2014 engine's "remote party" wizard left it.
// The projection applies the whole history new brought in one catch-up,
// which the frontier's premise needs.
func (s *Site) New(ctx context.Context, req satellite.NewRequest) (satellite.PullStats, int, error) {
	if err := s.dial(ctx); err != nil {
		return satellite.PullStats{}, 0, err
	}
	st, err := s.client.New(ctx, req)
	if err != nil {
		return st, 0, err
	}
	n, err := s.project(ctx)
	return st, n, err
}

// stampClock is the clock this instance's events are stamped with.
func (s *Site) stampClock() *clocks.Clock {
	if s.cfg.Sequencer != nil {
		return s.cfg.Sequencer.Clock()
	}
	return s.clock
}

// stabilize reports, after a complete cycle, that every event stamped up
// to mark is acknowledged and that the Tryton tables reflect central's
// ledger through applied; central answers with the stability frontier,
// which the projector records to compact merge states. A failed report
// costs only compaction's progress: it is logged, not returned.
func (s *Site) stabilize(ctx context.Context, r *Report, mark clocks.Timestamp, applied uint64,
	report func(context.Context, clocks.Timestamp, uint64) (clocks.Timestamp, error)) {
	f, err := report(ctx, mark, applied)
	if err != nil {
		s.log.Warn("could not report stability to central; merge states are not compacted further until a report succeeds", "error", err)
		return
	}
	r.Derived, r.Answered = f, true
	if err := s.recordFrontier(ctx, f); err != nil {
		s.log.Warn("could not record the stability frontier", "frontier", f.String(), "error", err)
	}
}

// vouched records, at a satellite, what the completed cycle vouches for
// (vouch), and says whether a report may follow: not if the clock reading
// could not be recorded.
func (s *Site) vouched(ctx context.Context, r *Report, mark clocks.Timestamp) bool {
	if s.bundles == nil {
		return true
	}
	if err := s.vouch(ctx, r, mark); err != nil {
		s.log.Warn("could not record what this cycle vouches for; it is not reported, and merge states are not compacted further until a cycle is", "error", err)
		return false
	}
	return true
}

// recordFrontier gives the projector a frontier (0: none yet), once it
// is plausible; the clock moves past it, so that nothing this instance
// stamps from now on is at or before it.
func (s *Site) recordFrontier(ctx context.Context, f clocks.Timestamp) error {
	if f == 0 || s.proj == nil {
		return nil
	}
	if err := plausibleFrontier(f, s.wall.Now()); err != nil {
		return fmt.Errorf("refused: %w", err)
	}
	s.stampClock().Restore(f)
	return s.proj.SetFrontier(ctx, f)
}

// followed is what follow did.
type followed struct {
	events int
	err    error
}

// followPoll is how long follow waits for the pull's next page when it has
// applied everything there is.
const followPoll = 20 * time.Millisecond

// follow projects the events a pull appends while it runs, until pulled is
// closed, then catches up once more: a long catch-up's transfer and
// projection overlap instead of taking turns (the pull is network and
// decoding, the projection mostly the target database's work).
func (s *Site) follow(ctx context.Context, pulled <-chan struct{}) followed {
	var f followed
	for {
		st, err := s.proj.CatchUp(ctx)
		f.events += st.Events
		if err != nil {
			f.err = err
			return f
		}
		select {
		case <-pulled:
			st, err := s.proj.CatchUp(ctx)
			f.events += st.Events
			f.err = err
			return f
		case <-ctx.Done():
			f.err = ctx.Err()
			return f
		default:
		}
		if st.Events == 0 {
			select {
			case <-pulled:
			case <-ctx.Done():
			case <-time.After(followPoll):
			}
		}
	}
}

// correctAbove is the smallest measured offset the clock is corrected
// for: below it, network delay dominates the measurement.
const correctAbove = time.Second

// correct applies the offset last measured against central to the wall
// clock the capturer stamps with.
func (s *Site) correct() {
	off := s.client.Offset()
	if off < correctAbove && off > -correctAbove {
		off = 0
	}
	if off != s.wall.Offset() {
		s.log.Info("clock corrected by the offset measured against central", "offset", off.String())
		s.wall.SetOffset(off)
	}
}

// Backoff bounds Run's waits after central could not be reached.
type Backoff struct {
	Min, Max time.Duration
}

// Run syncs every interval until ctx ends. When central cannot be reached
// it retries after a wait that doubles from b.Min up to b.Max, with
// jitter, so hundreds of satellites do not all knock at once when central
// comes back. Other errors are logged and retried at the next interval.
func (s *Site) Run(ctx context.Context, every time.Duration, b Backoff) error {
	if b.Min <= 0 {
		b.Min = 5 * time.Second
	}
	if b.Max < b.Min {
		b.Max = max(b.Min, every)
	}
	failures := 0
	for {
		r, err := s.Sync(ctx)
		wait := every
		switch {
		case ctx.Err() != nil:
			return nil
		case err == nil:
			failures = 0
			s.log.Info("synchronised", "captured", r.Captured, "pushed", r.Pushed, "pulled", r.Pulled, "projected", r.Projected, "frontier", r.Frontier.String())
		case errors.Is(err, satellite.ErrUnavailable):
			failures++
			wait = backoff(b, failures)
			s.log.Warn("central unavailable; local work done, retrying", "error", err, "in", wait.Round(time.Millisecond).String())
		default:
			s.log.Error("sync failed", "error", err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// backoff is the wait after n consecutive failures: Min·2^(n-1), capped at
// Max, then spread over [d/2, d) ("equal jitter").
func backoff(b Backoff, n int) time.Duration {
	d := b.Min
	for i := 1; i < n && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}
