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

// Remote is how a satellite reaches central.
type Remote struct {
	Central string `help:"Central's URL (http(s)://host:port)." required:"" env:"GHSYNC_CENTRAL" placeholder:"URL"`
	Token   string `help:"This satellite's token, from ghsync central satellite add (better set in the environment or the configuration file than on the command line)." required:"" env:"GHSYNC_TOKEN"`
	Origin  uint16 `help:"This instance's synchronisation id (1..511)." required:"" env:"GHSYNC_ORIGIN"`
	CACert  string `name:"ca-cert" help:"PEM file of the authority that signed central's certificate (default: the system's)." placeholder:"FILE" env:"GHSYNC_CA_CERT"`
}

// dial opens the satellite's ledger and connects to central; the cursor
// persists beside the ledger.
func (r *Remote) dial(env *Env, op string) (*satellite.Client, ledger.Store, error) {
	store, err := openLedger(env.Ctx, env.Ledger)
	if err != nil {
		return nil, nil, err
	}
	hc := http.DefaultClient
	if r.CACert != "" {
		pem, err := os.ReadFile(r.CACert)
		if err != nil {
			store.Close()
			return nil, nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			store.Close()
			return nil, nil, fmt.Errorf("%s holds no PEM certificate", r.CACert)
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		hc = &http.Client{Transport: tr}
	}
	var mu sync.Mutex
	var last time.Time
	c, err := satellite.Dial(env.Ctx, satellite.Config{URL: r.Central, Token: r.Token, Origin: r.Origin, Store: store,
		StateLocation: env.Ledger, HTTPClient: hc, Logger: env.Log,
		Progress: func(p satellite.Progress) {
			mu.Lock()
			defer mu.Unlock()
			if time.Since(last) < 2*time.Second {
				return
			}
			last = time.Now()
			env.Log.Info(op+" progress", "events", p.Events, "bytes", p.Bytes, "position", p.Position, "head", p.Head,
				"rate", fmt.Sprintf("%.0f/s", p.Rate), "eta", p.ETA.Round(time.Second).String())
		}})
	if err != nil {
		store.Close()
		return nil, nil, err
	}
	return c, store, nil
}

// PushCmd sends this satellite's events to central.
type PushCmd struct {
	Remote
}

func (c *PushCmd) Run(env *Env) error {
	cl, store, err := c.dial(env, "push")
	if err != nil {
		return err
	}
	defer store.Close()
	defer cl.Close()
	st, err := cl.Push(env.Ctx)
	fmt.Fprintf(env.Out, "pushed %d events in %d requests (%d new at central, %d already there); central holds origin %d through seq %d\n",
		st.Sent, st.Requests, st.Accepted, st.Duplicates, c.Origin, st.HighWater)
	for _, r := range st.Results {
		if r.Status == wire.StatusRejected || r.Status == wire.StatusHeld {
			fmt.Fprintf(env.Out, "  %s: event %s (seq %d): %s\n", r.Status, r.ID, r.Seq, r.Error)
		}
	}
	if errors.Is(err, satellite.ErrHeld) {
		fmt.Fprintf(env.Out, "central holds %d events back: this machine's clock is ahead of central's by about %v; fix the clock (NTP), then push again, or ask central's administrator to release them\n",
			st.Held, cl.Offset().Abs().Round(time.Second))
	}
	return err
}
