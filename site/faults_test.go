package site_test

import (
	"context"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ghsync/ghsync/ledger"
)

// faultyProxy forwards TCP connections to target and spoils a share of
// them: a reset at once, a stall, a response cut after a few bytes, a
// delay. It returns the URL to use instead of target's.
func faultyProxy(t *testing.T, target string, seed uint64, share float64) (url string, faults *int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	addr := strings.TrimPrefix(target, "http://")
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(seed, 2))
	n := 0
	pick := func() (int, int) {
		mu.Lock()
		defer mu.Unlock()
		if rng.Float64() >= share {
			return 0, 0
		}
		n++
		return 1 + rng.IntN(4), rng.IntN(3000)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				fault, arg := pick()
				switch fault {
				case 1: // reset
					if tc, ok := c.(*net.TCPConn); ok {
						tc.SetLinger(0)
					}
					return
				case 2: // stall: read, never answer
					c.SetDeadline(time.Now().Add(3 * time.Second))
					io.Copy(io.Discard, c)
					return
				case 4: // delay
					time.Sleep(time.Duration(arg%200) * time.Millisecond)
				}
				up, err := net.Dial("tcp", addr)
				if err != nil {
					return
				}
				defer up.Close()
				go io.Copy(up, c)
				if fault == 3 { // cut the response
					io.CopyN(c, up, int64(arg))
					return
				}
				io.Copy(c, up)
			}()
		}
	}()
	return "http://" + ln.Addr().String(), &n
}

// TestFaultyNetworkConverges: the same workload through a proxy that
// spoils a third of the connections; the end state is the same as on a
// clean network: everything once everywhere, identical tables.
func TestFaultyNetworkConverges(t *testing.T) {
	seed := seedOf(t)
	rng := rand.New(rand.NewPCG(seed, 1))
	var faults *int
	via := func(target string) string {
		var url string
		url, faults = faultyProxy(t, target, seed, 0.33)
		return url
	}
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	nw := newNetwork(t, 3, nil, via, hc)
	for round := 0; round < 10; round++ {
		for _, n := range nw.all() {
			n.work(rng, 1+rng.IntN(5))
		}
		for _, i := range rng.Perm(len(nw.all())) {
			nw.all()[i].sync() // a spoiled connection: the next round resumes
		}
	}
	nw.quiesce()
	nw.check()
	if *faults == 0 {
		t.Fatal("the proxy spoiled nothing")
	}
	t.Logf("%d connections spoiled", *faults)
}

// TestClockSkew: satellite 1's machine (and database) clock is a year
// ahead, satellite 2's a year behind; both work offline before they ever
// reach central. The network converges, nothing either wrote is lost, and
// satellite 1's future stamps do not beat a later honest edit: central
// bounds them to its own time of receipt.
func TestClockSkew(t *testing.T) {
	year := 365 * 24 * time.Hour
	nw := newNetwork(t, 3, []time.Duration{year, -year}, nil, nil)
	s1, s2, s3 := nw.sats[0], nw.sats[1], nw.sats[2]
	for _, sk := range []struct {
		n    *node
		skew string
	}{{s1, "1 year"}, {s2, "-1 year"}} {
		// The database server runs on the same wrong clock.
		sk.n.exec(`ALTER TABLE ghsync.outbox ALTER COLUMN at SET DEFAULT clock_timestamp() + interval '` + sk.skew + `'`)
	}
	// Offline: both register people and capture them (a cron drain), with
	// no contact with central yet.
	s1.exec(`INSERT INTO party_party (code, name, active, create_uid) VALUES ('A', 'Ann', true, 1)`)
	s2.exec(`INSERT INTO party_party (code, name, active, create_uid) VALUES ('C', 'Carl', true, 1)`)
	for _, n := range []*node{s1, s2} {
		if _, err := n.site.Capturer().Drain(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []*node{s1, s2} {
		recs, _ := n.store.ReadAll(context.Background(), 0, 1, ledger.Filter{})
		if ahead := time.Duration(recs[0].Event.HLC.WallMillis()-time.Now().UnixMilli()) * time.Millisecond; ahead.Abs() < 300*24*time.Hour {
			t.Fatalf("satellite %d's offline event is only %v off: the skew was not simulated", n.id, ahead)
		}
	}
	s3.exec(`INSERT INTO party_party (code, name, active, create_uid) VALUES ('B', 'Bea', true, 1)`)
	nw.quiesce()
	// Satellite 1 renames Ann (its clock still issues stamps a year ahead:
	// a hybrid clock never goes back), then satellite 3 renames her later.
	s1.exec(`UPDATE party_party SET name = 'Ann (s1)' WHERE code = 'A'`)
	if err := s1.sync(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	nw.central.sync()
	s3.sync()
	s3.exec(`UPDATE party_party SET name = 'Ann (s3, later)' WHERE code = 'A'`)
	nw.quiesce()
	nw.check()
	for _, n := range nw.all() {
		var name string
		if err := n.db.QueryRow(`SELECT name FROM party_party WHERE code = 'A'`).Scan(&name); err != nil || name != "Ann (s3, later)" {
			t.Fatalf("node %d shows %q (%v): satellite 1's clock, a year ahead, won a merge it should not", n.id, name, err)
		}
	}
	// Nor did it drag the honest instances' clocks into the future.
	heads, err := nw.central.store.Origins(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range heads {
		if h.Origin != 1 && time.Duration(h.MaxHLC.WallMillis()-time.Now().UnixMilli())*time.Millisecond > time.Minute {
			t.Fatalf("origin %d stamped up to %v: satellite 1's clock dragged it into the future", h.Origin, h.MaxHLC)
		}
	}
	bounds := 0
	recs, err := nw.central.store.ReadAll(context.Background(), 0, 100000, ledger.Filter{Models: []string{ledger.ClockBoundModel}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if cb, err := ledger.ParseClockBound(r.Event); err == nil && cb.Origin == 1 {
			bounds++
		}
	}
	if bounds == 0 {
		t.Fatal("central issued no clock bound for satellite 1")
	}
	t.Logf("central bounded satellite 1's clock %d times", bounds)
}
