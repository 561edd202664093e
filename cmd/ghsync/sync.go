package main

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/models"
	"github.com/ghsync/ghsync/satellite"
	"github.com/ghsync/ghsync/site"
)

// Instance is a satellite with its GNU Health database: what sync and
// run work on. Without central, a cycle captures and projects only, and
// records what the satellite's next bundle vouches for.
type Instance struct {
	Remote
	Target string `help:"This instance's GNU Health database (postgres:// URL or sqlite:PATH); default: [database] uri of --trytond-conf. Without it only the ledger is synchronised." aliases:"db" env:"GHSYNC_TARGET"`
}

// siteOptions are what a command asks of its site beyond the settings.
type siteOptions struct {
	linked    bool // central is required (push, pull, new), not only allowed (sync, run)
	fromStart bool // pull --from-start
}

func (in *Instance) open(env *Env, op string, o siteOptions) (*site.Site, func(), error) {
	if _, err := in.instanceTarget(op, !o.linked); err != nil {
		return nil, nil, err
	}
	hc, err := in.httpClient()
	if err != nil {
		return nil, nil, err
	}
	return openOnLedger(env, func(store ledger.Store, reg *models.Registry) (*site.Site, func(), error) {
		s, err := site.Open(env.Ctx, site.Config{Origin: in.ID, Target: in.Target, Store: store, StoreLocation: env.Ledger, Registry: reg,
			Central: in.Central, Token: in.Token, HTTPClient: hc, Logger: env.Log, Progress: progressLog(env, op), FromStart: o.fromStart})
		if err != nil {
			return nil, nil, err
		}
		return s, s.Close, nil
	})
}

// instanceTarget resolves the settings (resolve) and returns the GNU
// Health database: --target, or else [database] uri of --trytond-conf.
func (in *Instance) instanceTarget(op string, offline bool) (string, error) {
	db, err := in.resolve(op, offline)
	if err != nil {
		return "", err
	}
	if in.Target == "" {
		in.Target = db
	}
	return in.Target, nil
}

// ledgerTarget is the database whose ledger this instance uses when no
// --ledger is given (defaultLedger).
func (in *Instance) ledgerTarget() (string, error) {
	if in.Target != "" {
		return in.Target, nil
	}
	if in.TrytondConf == "" {
		return "", nil
	}
	tc, err := readTrytondConf(in.TrytondConf)
	if err != nil {
		return "", err
	}
	return tc.Database, nil
}

// SyncCmd runs one cycle: capture, push, pull, project.
type SyncCmd struct{ Instance }

func (c *SyncCmd) Run(env *Env) error {
	s, done, err := c.open(env, "sync", siteOptions{})
	if err != nil {
		return err
	}
	defer done()
	r, err := s.Sync(env.Ctx)
	if errors.Is(err, satellite.ErrBehindCentral) || errors.Is(err, satellite.ErrDiverged) {
		return err // refused before anything was captured: the error says why
	}
	if r.Recovered > 0 {
		fmt.Fprintf(env.Out, "recovered %s of this satellite's own from central first: this ledger was restored from an older copy\n", count(r.Recovered, "event", "events"))
	}
	fmt.Fprintf(env.Out, "captured %s, pushed %s, pulled %d, projected %d", count(r.Captured, "local change", "local changes"), count(r.Pushed, "event", "events"), r.Pulled, r.Projected)
	if r.Offset != 0 {
		fmt.Fprintf(env.Out, "; clock offset to central %v", r.Offset.Round(time.Millisecond))
	}
	fmt.Fprintf(env.Out, "%s\n", frontierNote(r))
	if note := unavailableNote(err); note != "" {
		fmt.Fprintln(env.Out, note)
	}
	return err
}

// frontierNote says how far merge states are compacted after a cycle: the
// projector's frontier, which never goes back, and central's answer when
// it is lower (an instance registered since, or pulling history again,
// holds central's derivation back; it does not undo compaction here).
func frontierNote(r site.Report) string {
	var b strings.Builder
	if r.Frontier != 0 {
		fmt.Fprintf(&b, "; merge states compacted up to %s", r.Frontier)
	}
	switch {
	case !r.Answered || r.Derived >= r.Frontier:
	case r.Derived == 0:
		b.WriteString(" (central has no frontier now: an instance has not reported since it registered or was revoked; it stays here)")
	default:
		fmt.Fprintf(&b, " (central's is back at %s: an instance behind holds it; it stays here)", r.Derived)
	}
	return b.String()
}

// unavailableNote says, for people, why a cycle could not complete with
// central and what becomes of the work, or "" when err is not central's
// unavailability. Central never reached, central answering that it is
// unavailable, and a connection lost during a transfer call for
// different checks (the address, central's logs, the network).
func unavailableNote(err error) string {
	const kept = "local changes are captured and kept; they go at the next sync"
	var ae *satellite.APIError
	switch {
	case errors.Is(err, satellite.ErrUnreachable):
		return "central could not be reached: " + kept
	case errors.Is(err, satellite.ErrConnectionLost):
		return "the connection to central was lost during the transfer: what was transferred is kept, and the next sync resumes where this one stopped; " + kept
	case errors.Is(err, satellite.ErrUnavailable) && errors.As(err, &ae):
		return fmt.Sprintf("central answered %d %s, unavailable for now: %s", ae.Status, http.StatusText(ae.Status), kept)
	case errors.Is(err, satellite.ErrUnavailable):
		return "central is unavailable: " + kept
	}
	return ""
}

// RunCmd keeps synchronising, as a service (replaces the 2014 engine's
// cron + Celery tasks).
type RunCmd struct {
	Instance
	Every      time.Duration `help:"How often to synchronise." default:"5m"`
	BackoffMin time.Duration `help:"Longest first wait after central could not be reached (each wait is drawn between half and all of a bound that doubles up to --every)." default:"5s"`
}

func (c *RunCmd) Run(env *Env) error {
	s, done, err := c.open(env, "run", siteOptions{})
	if err != nil {
		return err
	}
	defer done()
	env.Log.Info("running", "id", c.ID, "central", c.Central, "every", c.Every.String())
	err = s.Run(env.Ctx, c.Every, site.Backoff{Min: c.BackoffMin, Max: c.Every})
	env.Log.Info("stopped")
	return err
}
