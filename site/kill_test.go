package site_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ghsync/ghsync/central"
	"github.com/ghsync/ghsync/clocks"
	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/ledger/postgres"
	"github.com/ghsync/ghsync/models"
	"github.com/ghsync/ghsync/site"
	"github.com/ghsync/ghsync/wire"
)

const childEnv = "GHSYNC_SITE_CHILD" // central|ADDR|URL or satellite|ID|URL|TOKEN|CENTRAL

// runChild makes the test binary central's server or a satellite syncing
// in a loop, when a kill test starts it as one. It never returns.
func runChild() {
	spec := os.Getenv(childEnv)
	if spec == "" {
		return
	}
	p := strings.Split(spec, "|")
	ctx := context.Background()
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(3)
	}
	store, err := postgres.Open(ctx, p[2], postgres.Options{PollInterval: 100 * time.Millisecond})
	if err != nil {
		fail(err)
	}
	if p[0] == "central" {
		reg, err := central.OpenRegistry(ctx, p[2])
		if err != nil {
			fail(err)
		}
		srv, err := central.New(central.Config{Store: store, Registry: reg})
		if err != nil {
			fail(err)
		}
		ln, err := net.Listen("tcp", p[1])
		if err != nil {
			fail(err)
		}
		fail(http.Serve(ln, srv))
	}
	id, _ := strconv.Atoi(p[1])
	s, err := site.Open(ctx, site.Config{Origin: uint16(id), Target: p[2], Store: store, StoreLocation: p[2], Central: p[4], Token: p[3],
		HTTPClient: &http.Client{Timeout: 3 * time.Second}, Logger: hclog.NewNullLogger()})
	if err != nil {
		fail(err)
	}
	for {
		s.Sync(ctx) // central may be down: the next cycle retries
	}
}

// TestKilledMidTransfer SIGKILLs central's server and the satellites'
// sync processes at random moments, 20 times each, while the clinics keep
// working; afterwards the network converges to the same end state as if
// nothing had happened: every change once in every ledger, equal tables.
func TestKilledMidTransfer(t *testing.T) {
	rng := rand.New(rand.NewPCG(seedOf(t), 1))
	ctx := context.Background()
	cn := newNode(t, 0, 0)
	reg, err := central.OpenRegistry(ctx, cn.url)
	if err != nil {
		t.Fatal(err)
	}
	sats := []*node{newNode(t, 1, 0), newNode(t, 2, 0)}
	tokens := map[uint16]string{}
	for _, s := range sats {
		tok, hash, err := central.NewToken()
		if err != nil {
			t.Fatal(err)
		}
		if err := reg.AddSatellite(ctx, central.Satellite{ID: s.id, Name: "clinic", Scope: wire.ScopeAll, TokenHash: hash, Created: time.Now()}); err != nil {
			t.Fatal(err)
		}
		tokens[s.id] = tok
	}
	reg.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	start := func(spec string) *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"="+spec)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	kills := map[string]int{}
	for kills["central"] < 20 || kills["satellite"] < 20 {
		for _, s := range sats {
			s.work(rng, 2+rng.IntN(8))
		}
		procs := map[string][]*exec.Cmd{"central": {start("central|" + addr + "|" + cn.url)}}
		for _, s := range sats {
			procs["satellite"] = append(procs["satellite"], start(fmt.Sprintf("satellite|%d|%s|%s|http://%s", s.id, s.url, tokens[s.id], addr)))
		}
		// Every other round, the window starts once central has taken a
		// push: on a loaded machine, starting the children alone can take
		// longer than the window, and no round would get that far.
		if rng.IntN(2) == 0 {
			before, _ := cn.store.Head(ctx)
			for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				if h, err := cn.store.Head(ctx); err == nil && h > before {
					break
				}
			}
		}
		time.Sleep(time.Duration(200+rng.IntN(800)) * time.Millisecond)
		// Kill one kind first (mid-transfer for the other), then the rest.
		first := []string{"central", "satellite"}[rng.IntN(2)]
		for _, kind := range []string{first, map[string]string{"central": "satellite", "satellite": "central"}[first]} {
			for _, p := range procs[kind] {
				p.Process.Signal(syscall.SIGKILL)
				p.Wait()
			}
			kills[kind]++
			time.Sleep(time.Duration(rng.IntN(100)) * time.Millisecond)
		}
	}
	if h, err := cn.store.Head(ctx); err != nil || h == 0 {
		t.Fatalf("central received nothing between kills (head %d, %v): the children did not work", h, err)
	} else {
		t.Logf("central held %d events when the killing stopped", h)
	}
	// Everyone back, in-process, until quiet.
	nw := &network{t: t, central: cn, sats: sats}
	regC, err := central.OpenRegistry(ctx, cn.url)
	if err != nil {
		t.Fatal(err)
	}
	defer regC.Close()
	seq, err := ledger.Resume(ctx, cn.store, 0, clocks.NewClock(nil, clocks.DefaultMaxOffset))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := central.New(central.Config{Store: cn.store, Registry: regC, Sequencer: seq, Models: models.GNUHealth(), Projects: true, FrontierEvery: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	go http.Serve(ln, srv)
	defer ln.Close()
	cn.open("", "", seq, nil, srv.ReportOwn)
	for _, s := range sats {
		s.open("http://"+addr, tokens[s.id], nil, nil, nil)
	}
	nw.quiesce()
	nw.check()
	t.Logf("central killed %d times, satellites %d times", kills["central"], kills["satellite"])
}
