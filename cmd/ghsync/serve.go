package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ghsync/ghsync/central"
	"github.com/ghsync/ghsync/clocks"
	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/models"
	"github.com/ghsync/ghsync/site"
)

// ServeCmd runs central's side of the protocol over HTTP(S).
type ServeCmd struct {
	Listen      string `help:"Address to listen on (host:port)." default:"127.0.0.1:7420" env:"GHSYNC_LISTEN"`
	TLSCert     string `name:"tls-cert" help:"PEM certificate (chain) to serve HTTPS with; give --tls-key too." placeholder:"FILE" env:"GHSYNC_TLS_CERT"`
	TLSKey      string `name:"tls-key" help:"PEM private key of --tls-cert." placeholder:"FILE" env:"GHSYNC_TLS_KEY"`
	ClockPolicy `embed:""`
	Grace       time.Duration `help:"On SIGTERM or interrupt, how long requests in flight may take to finish." default:"30s"`
	// Central is a GNU Health instance too: with a target, its own changes
	// are captured and the ledger projected into it while serving.
	Target string        `help:"Central's own GNU Health database (postgres:// URL or sqlite:PATH): its changes are captured and the network's projected into it while serving, and the stability frontier waits for them. Synchronise central's instance here, not in another process." aliases:"db" env:"GHSYNC_TARGET"`
	Every  time.Duration `help:"With --target, how often central captures and projects." default:"30s"`
}

// ClockPolicy is central's rule for satellites' clocks, the same for
// what arrives by push (serve) and by bundle (import --id 0).
type ClockPolicy struct {
	MaxAhead time.Duration `help:"How far ahead of this machine's clock a satellite's events may be stamped and still merge as stamped." default:"5m"`
	Skew     string        `help:"What becomes of events stamped further ahead: bound (stored, merged at central's time of receipt) or hold (kept out of the ledger until released: ghsync central held)." enum:"bound,hold" default:"bound"`
}

// centralNode is central's server on its ledger, with what it opened.
type centralNode struct {
	srv *central.Server
	reg central.Registry
	seq *ledger.Sequencer // stamps origin 0: clock bounds, and central's own capture
	mod *models.Registry
}

// centralUse says what a command wants of central's server.
type centralUse struct {
	// Policy is the clock policy; serve records it in the registry, and
	// for other commands (import --id 0) its unset fields (zero MaxAhead,
	// empty Skew) take what serve recorded, or serve's defaults.
	Policy   ClockPolicy
	Serve    bool
	Projects bool // central's own instance captures and projects (serve --target)
}

// openCentral sets up central's server on store (at env.Ledger). Close
// it when done; store stays open.
func openCentral(env *Env, store ledger.Store, use centralUse) (*centralNode, error) {
	reg, err := central.OpenRegistry(env.Ctx, env.Ledger)
	if err != nil {
		return nil, err
	}
	pol, err := clockPolicy(env.Ctx, reg, use)
	if err != nil {
		reg.Close()
		return nil, err
	}
	n := &centralNode{reg: reg}
	// Central's server (clock bounds) and its capturer both write origin 0.
	clock := clocks.NewClock(nil, clocks.DefaultMaxOffset)
	err = site.ResumeClock(env.Ctx, clock, 0, env.Ledger)
	if err == nil {
		n.seq, err = ledger.Resume(env.Ctx, store, 0, clock)
	}
	if err == nil {
		n.mod, err = env.registry()
	}
	if err == nil {
		n.srv, err = central.New(central.Config{Store: store, Registry: reg, Models: n.mod, MaxAhead: pol.MaxAhead,
			Skew: pol.Skew, Sequencer: n.seq, Projects: use.Projects, Logger: env.Log})
	}
	if err != nil {
		reg.Close()
		return nil, err
	}
	return n, nil
}

// clockPolicy resolves and, for serve, records the clock policy.
func clockPolicy(ctx context.Context, reg central.Registry, use centralUse) (central.ClockPolicy, error) {
	pol := central.ClockPolicy{MaxAhead: use.Policy.MaxAhead, Skew: central.SkewBound}
	if use.Policy.Skew == "hold" {
		pol.Skew = central.SkewHold
	}
	if use.Serve {
		return pol, reg.SetClockPolicy(ctx, pol)
	}
	recorded, ok, err := reg.ClockPolicy(ctx)
	if err != nil {
		return pol, err
	}
	if !ok {
		recorded = central.ClockPolicy{MaxAhead: clocks.DefaultMaxOffset, Skew: central.SkewBound}
	}
	if use.Policy.MaxAhead == 0 {
		pol.MaxAhead = recorded.MaxAhead
	}
	if use.Policy.Skew == "" {
		pol.Skew = recorded.Skew
	}
	return pol, nil
}

func (n *centralNode) Close() {
	n.srv.Close()
	n.reg.Close()
}

func (c *ServeCmd) Run(env *Env) error {
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("serve: give both --tls-cert and --tls-key, or neither")
	}
	// What can be refused is refused before the ledger is opened (or
	// created) and anything is announced.
	var tlsConf *tls.Config
	if c.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
		if err != nil {
			return fmt.Errorf("serve: --tls-cert %s, --tls-key %s: %w", c.TLSCert, c.TLSKey, err)
		}
		tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return fmt.Errorf("serve: --listen %s: %w", c.Listen, err)
	}
	defer ln.Close()
	store, err := openLedger(env.Ctx, env.Ledger)
	if err != nil {
		return err
	}
	defer store.Close()
	cn, err := openCentral(env, store, centralUse{Policy: c.ClockPolicy, Serve: true, Projects: c.Target != ""})
	if err != nil {
		return err
	}
	defer cn.Close()
	srv, mreg, seq := cn.srv, cn.mod, cn.seq
	var st *site.Site
	if c.Target != "" {
		st, err = site.Open(env.Ctx, site.Config{Origin: 0, Target: c.Target, Store: store, StoreLocation: env.Ledger, Registry: mreg,
			Sequencer: seq, Logger: env.Log, ReportStable: srv.ReportOwn})
		if err != nil {
			return err
		}
		defer st.Close()
	}
	// The background work stops, and is waited for, before what it uses
	// (the site, the registry, the store) is closed by the defers above.
	bg, stopBg := context.WithCancel(env.Ctx)
	var wg sync.WaitGroup
	defer func() {
		stopBg()
		wg.Wait()
	}()
	// Reports imported from bundles move the frontier too.
	wg.Go(func() { srv.KeepFrontier(bg) })
	if st != nil {
		wg.Go(func() {
			if err := st.Run(bg, c.Every, site.Backoff{}); err != nil && bg.Err() == nil {
				env.Log.Error("central's own capture and projection stopped", "error", err)
			}
		})
	}
	// The reference index catches up in the background, so the first
	// /v1/new after a start does not wait for it.
	wg.Go(func() {
		if err := srv.CatchUpIndex(bg); err != nil && bg.Err() == nil {
			env.Log.Warn("reference index catch-up failed; /v1/new will retry it", "error", err)
		}
	})
	hs := &http.Server{
		Handler:           srv,
		TLSConfig:         tlsConf,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          env.Log.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}
	scheme := "http"
	if tlsConf != nil {
		scheme = "https"
	}
	env.Log.Info("serving", "url", scheme+"://"+ln.Addr().String(), "ledger", redact(env.Ledger), "max_ahead", c.MaxAhead.String())
	errc := make(chan error, 1)
	go func() {
		if tlsConf != nil {
			errc <- hs.ServeTLS(ln, "", "")
		} else {
			errc <- hs.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-env.Ctx.Done():
	}
	env.Log.Info("shutting down", "grace", c.Grace.String())
	srv.Close() // long polls answer now instead of holding the shutdown
	ctx, cancel := context.WithTimeout(context.Background(), c.Grace)
	defer cancel()
	if err := hs.Shutdown(ctx); err != nil {
		return fmt.Errorf("serve: shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	env.Log.Info("stopped")
	return nil
}
