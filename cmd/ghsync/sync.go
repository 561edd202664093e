package main

import (
	"errors"
	"fmt"
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

func (in *Instance) open(env *Env, op string) (*site.Site, func(), error) {
	db, err := in.resolve(op, true)
	if err != nil {
		return nil, nil, err
	}
	if in.Target == "" {
		in.Target = db
	}
	hc, err := in.httpClient()
	if err != nil {
		return nil, nil, err
	}
	return openOnLedger(env, func(store ledger.Store, reg *models.Registry) (*site.Site, func(), error) {
		s, err := site.Open(env.Ctx, site.Config{Origin: in.ID, Target: in.Target, Store: store, StoreLocation: env.Ledger, Registry: reg,
			Central: in.Central, Token: in.Token, HTTPClient: hc, Logger: env.Log, Progress: progressLog(env, "sync")})
		if err != nil {
			return nil, nil, err
		}
		return s, s.Close, nil
	})
}

// SyncCmd runs one cycle: capture, push, pull, project.
type SyncCmd struct{ Instance }

func (c *SyncCmd) Run(env *Env) error {
	s, done, err := c.open(env, "sync")
	if err != nil {
		return err
	}
	defer done()
	r, err := s.Sync(env.Ctx)
	fmt.Fprintf(env.Out, "captured %s, pushed %s, pulled %d, projected %d", count(r.Captured, "local change", "local changes"), count(r.Pushed, "event", "events"), r.Pulled, r.Projected)
	if r.Offset != 0 {
		fmt.Fprintf(env.Out, "; clock offset to central %v", r.Offset.Round(time.Millisecond))
	}
	if r.Frontier != 0 {
		fmt.Fprintf(env.Out, "; merge states compacted up to %s", r.Frontier)
	}
	fmt.Fprintln(env.Out)
	if errors.Is(err, satellite.ErrUnavailable) {
		fmt.Fprintln(env.Out, "central could not be reached: local changes are captured and kept; they go at the next sync")
	}
	return err
}

// RunCmd keeps synchronising, as a service (replaces the 2014 engine's
// cron + Celery tasks).
type RunCmd struct {
	Instance
	Every      time.Duration `help:"How often to synchronise." default:"5m"`
	BackoffMin time.Duration `help:"Longest first wait after central could not be reached (each wait is drawn between half and all of a bound that doubles up to --every)." default:"5s"`
}

func (c *RunCmd) Run(env *Env) error {
	s, done, err := c.open(env, "run")
	if err != nil {
		return err
	}
	defer done()
	env.Log.Info("running", "id", c.ID, "central", c.Central, "every", c.Every.String())
	err = s.Run(env.Ctx, c.Every, site.Backoff{Min: c.BackoffMin, Max: c.Every})
	env.Log.Info("stopped")
	return err
}
