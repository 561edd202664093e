package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/satellite"
	"github.com/ghsync/ghsync/wire"
)

// Remote is how a satellite reaches central. What the flags leave unset
// comes from the instance's trytond.conf when --trytond-conf names it.
type Remote struct {
	Central     string `help:"Central's URL (http(s)://host:port); default: [synchronisation] url of --trytond-conf. sync and run work without one: they capture and project, for a clinic that exchanges bundles only." env:"GHSYNC_CENTRAL" placeholder:"URL"`
	Token       string `help:"This satellite's token, from ghsync central satellite add (better set in the environment or the configuration file than on the command line)." env:"GHSYNC_TOKEN"`
	ID          uint16 `name:"id" help:"This instance's synchronisation id (1..511); default: [synchronisation] id of --trytond-conf." env:"GHSYNC_ID"`
	CACert      string `name:"ca-cert" help:"PEM file of the authority that signed central's certificate (default: the system's)." placeholder:"FILE" env:"GHSYNC_CA_CERT"`
	TrytondConf string `name:"trytond-conf" help:"The instance's trytond.conf: [synchronisation] id, url, token and database, [database] uri." placeholder:"FILE" env:"GHSYNC_TRYTOND_CONF"`
}

// resolve fills what the flags left unset from trytond.conf, and checks
// that a satellite's identity is complete: with central's URL and token
// when linked, or without either when offline (sync and run with no
// central: a clinic that exchanges bundles only). It returns the
// instance's database from [database] uri, if any. op names the command
// in errors.
func (r *Remote) resolve(op string, offline bool) (database string, err error) {
	if r.TrytondConf != "" {
		tc, err := readTrytondConf(r.TrytondConf)
		if err != nil {
			return "", err
		}
		if r.ID == 0 && tc.ID > 0 {
			r.ID = uint16(tc.ID)
		}
		if r.Central == "" {
			r.Central = tc.Central
		}
		if r.Token == "" {
			r.Token = tc.Token
		}
		database = tc.Database
	}
	switch {
	case r.ID > ledger.MaxOrigin:
		return "", fmt.Errorf("%s: --id %d outside 1..%d", op, r.ID, ledger.MaxOrigin)
	case r.ID == 0:
		return "", fmt.Errorf("%s is for satellites, and the synchronisation id is unset or 0, which is central's own: give this satellite's --id (1..%d) or a trytond.conf with its [synchronisation] id", op, ledger.MaxOrigin)
	case r.Central == "" && offline:
		if r.Token != "" {
			return "", errors.New("a token but no central URL: give --central or a trytond.conf with [synchronisation] url")
		}
	case r.Central == "":
		return "", errors.New("no central URL: give --central or a trytond.conf with [synchronisation] url")
	case r.Token == "":
		return "", errors.New("no token: set GHSYNC_TOKEN (from ghsync central satellite add) or [synchronisation] token in trytond.conf")
	}
	return database, nil
}

// httpClient trusts --ca-cert when given.
func (r *Remote) httpClient() (*http.Client, error) {
	if r.CACert == "" {
		return http.DefaultClient, nil
	}
	pem, err := os.ReadFile(r.CACert)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", r.CACert)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: tr}, nil
}

// progress logs a long transfer's advance every two seconds.
func progressLog(env *Env, op string) func(satellite.Progress) {
	var mu sync.Mutex
	var last time.Time
	return func(p satellite.Progress) {
		mu.Lock()
		defer mu.Unlock()
		if time.Since(last) < 2*time.Second {
			return
		}
		last = time.Now()
		env.Log.Info(op+" progress", "events", p.Events, "bytes", p.Bytes, "position", p.Position, "head", p.Head,
			"rate", fmt.Sprintf("%.0f/s", p.Rate), "eta", p.ETA.Round(time.Second).String())
	}
}

// PushCmd sends this satellite's events to central, after turning the
// changes waiting in the GNU Health database's capture outbox into events
// when that database is known.
type PushCmd struct {
	Instance
}

func (c *PushCmd) Run(env *Env) error {
	s, done, err := c.open(env, "push", siteOptions{linked: true})
	if err != nil {
		return err
	}
	defer done()
	captured, st, err := s.Push(env.Ctx)
	cl := s.Client()
	if cl == nil || errors.Is(err, satellite.ErrBehindCentral) || errors.Is(err, satellite.ErrDiverged) {
		return err // refused before anything was captured or sent: the error says why
	}
	if s.Capturer() != nil {
		fmt.Fprintf(env.Out, "captured %s; ", count(captured, "local change", "local changes"))
	}
	fmt.Fprintf(env.Out, "pushed %s in %s (%d new at central, %d already there); central holds origin %d through seq %d\n",
		count(st.Sent, "event", "events"), count(st.Requests, "request", "requests"), st.Accepted, st.Duplicates, c.ID, st.HighWater)
	if c.Target == "" {
		fmt.Fprintln(env.Out, "changes made in GNU Health are pushed once captured: give --target (or [database] uri), or run ghsync sync")
	}
	bounded := 0
	for _, r := range st.Results {
		switch r.Status {
		case wire.StatusRejected, wire.StatusHeld:
			fmt.Fprintf(env.Out, "  %s: event %s (seq %d): %s\n", r.Status, r.ID, r.Seq, r.Error)
		case wire.StatusBounded:
			bounded++
		}
	}
	if bounded > 0 {
		fmt.Fprintf(env.Out, "%s stamped ahead of central's clock: central stored %s behind a clock bound (%s at its time of receipt); fix this machine's clock (NTP)\n",
			count(bounded, "event was", "events were"), pick(bounded, "it", "them"), pick(bounded, "it merges", "they merge"))
	}
	if errors.Is(err, satellite.ErrHeld) {
		fmt.Fprintf(env.Out, "central holds %s back: this machine's clock is ahead of central's by about %v; fix the clock (NTP), then push again, or ask central's administrator to release %s\n",
			count(st.Held, "event", "events"), cl.Offset().Abs().Round(time.Second), pick(st.Held, "it", "them"))
	}
	return err
}
