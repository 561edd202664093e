package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ghsync/ghsync/central"
	"github.com/ghsync/ghsync/models"
)

// ServeCmd runs central's side of the protocol over HTTP(S).
type ServeCmd struct {
	Listen   string        `help:"Address to listen on (host:port)." default:"127.0.0.1:7420" env:"GHSYNC_LISTEN"`
	TLSCert  string        `name:"tls-cert" help:"PEM certificate (chain) to serve HTTPS with; give --tls-key too." placeholder:"FILE" env:"GHSYNC_TLS_CERT"`
	TLSKey   string        `name:"tls-key" help:"PEM private key of --tls-cert." placeholder:"FILE" env:"GHSYNC_TLS_KEY"`
	MaxAhead time.Duration `help:"Events whose clock is further ahead of this machine's are held, not appended (see ghsync central held)." default:"5m"`
	Grace    time.Duration `help:"On SIGTERM or interrupt, how long requests in flight may take to finish." default:"30s"`
}

func (c *ServeCmd) Run(env *Env) error {
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("serve: give both --tls-cert and --tls-key, or neither")
	}
	store, err := openLedger(env.Ctx, env.Ledger)
	if err != nil {
		return err
	}
	defer store.Close()
	reg, err := central.OpenRegistry(env.Ctx, env.Ledger)
	if err != nil {
		return err
	}
	defer reg.Close()
	srv, err := central.New(central.Config{Store: store, Registry: reg, Models: models.GNUHealth(), MaxAhead: c.MaxAhead, Logger: env.Log})
	if err != nil {
		return err
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	hs := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          env.Log.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}
	// The reference index catches up in the background, so the first
	// /v1/new after a start does not wait for it.
	go func() {
		if err := srv.CatchUpIndex(env.Ctx); err != nil && env.Ctx.Err() == nil {
			env.Log.Warn("reference index catch-up failed; /v1/new will retry it", "error", err)
		}
	}()
	scheme := "http"
	if c.TLSCert != "" {
		scheme = "https"
	}
	env.Log.Info("serving", "url", scheme+"://"+ln.Addr().String(), "ledger", redact(env.Ledger), "max_ahead", c.MaxAhead.String())
	errc := make(chan error, 1)
	go func() {
		if c.TLSCert != "" {
			errc <- hs.ServeTLS(ln, c.TLSCert, c.TLSKey)
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
