package main

import (
	"bytes"
	"context"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/ledger/ledgertest"
	"github.com/ghsync/ghsync/ledger/sqlite"
)

// freeAddr returns a local address nobody listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// serving runs `ghsync serve` on ledger until the returned stop is called;
// stop returns serve's error and how long shutting down took.
func serving(t *testing.T, ledgerLoc string) (url string, stop func() (error, time.Duration)) {
	t.Helper()
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	var out bytes.Buffer
	env := &Env{Globals: &Globals{Ledger: ledgerLoc}, Ctx: ctx, Out: &out, Log: hclog.NewNullLogger()}
	done := make(chan error, 1)
	go func() {
		done <- (&ServeCmd{Listen: addr, ClockPolicy: ClockPolicy{MaxAhead: 5 * time.Minute, Skew: "hold"}, Grace: 10 * time.Second, Every: time.Second}).Run(env)
	}()
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if i == 100 {
			cancel()
			t.Fatalf("serve did not start: %v", <-done)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var once sync.Once
	stop = func() (err error, took time.Duration) {
		once.Do(func() {
			start := time.Now()
			cancel()
			err, took = <-done, time.Since(start)
		})
		return
	}
	t.Cleanup(func() { stop() })
	return "http://" + addr, stop
}

func TestServeRefusesHalfTLS(t *testing.T) {
	env := &Env{Globals: &Globals{Ledger: "sqlite:" + filepath.Join(t.TempDir(), "c.db")}, Ctx: context.Background(), Out: &bytes.Buffer{}, Log: hclog.NewNullLogger()}
	if err := (&ServeCmd{Listen: freeAddr(t), TLSCert: "x.pem"}).Run(env); err == nil || !strings.Contains(err.Error(), "--tls-key") {
		t.Fatalf("serve with a certificate and no key: %v", err)
	}
}

// generatedCentral makes central's ledger in dir, with events of its own.
func generatedCentral(t *testing.T, dir string, events int) string {
	t.Helper()
	loc := "sqlite:" + filepath.Join(dir, "central.db")
	if code, _, stderr := ghsync(t, "generate", "--ledger", loc, "--clinics", "0", "--events", strconv.Itoa(events)); code != 0 {
		t.Fatalf("generate: %s", stderr)
	}
	return loc
}

// The whole loop through the commands: central generated and served;
// satellite 1 pushes and pulls; satellite 2 (scope local) fetches a
// patient with new; a pending long poll does not hold up shutdown.
func TestServePushPullNew(t *testing.T) {
	dir := t.TempDir()
	centralDB := generatedCentral(t, dir, 60)
	tok1 := addSatellite(t, centralDB, "1", "all")
	tok2 := addSatellite(t, centralDB, "2", "local")
	url, stop := serving(t, centralDB)

	// Satellite 1's own activity, stamped now.
	sat1 := filepath.Join(dir, "sat1.db")
	store, err := sqlite.Open(context.Background(), sat1, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	o := ledgertest.NewOrigin(1)
	o.Wall.Set(time.Now())
	if _, err := store.Append(context.Background(), o.Patients(t, ledgertest.Rand(t), 40)); err != nil {
		t.Fatal(err)
	}
	store.Close()

	t.Setenv("GHSYNC_CENTRAL", url)
	t.Setenv("GHSYNC_TOKEN", tok1)
	code, out, stderr := ghsync(t, "push", "--ledger", "sqlite:"+sat1, "--id", "1")
	if code != 0 || !strings.Contains(out, "pushed 40 events") || !strings.Contains(out, "through seq 40") {
		t.Fatalf("push: exit %d\n%s%s", code, out, stderr)
	}
	code, out, stderr = ghsync(t, "pull", "--ledger", "sqlite:"+sat1, "--id", "1")
	if code != 0 || !strings.Contains(out, "pulled 60 events (60 new here)") || !strings.Contains(out, "position 100 of 100") {
		t.Fatalf("pull: exit %d\n%s%s", code, out, stderr)
	}
	if code, out, _ := ghsync(t, "verify", "--ledger", "sqlite:"+sat1, "--complete", "0,1"); code != 0 {
		t.Fatalf("verify satellite 1:\n%s", out)
	}
	// Satellite 1's clock jumps an hour ahead: central holds those events
	// back; an administrator lists and releases them.
	store, err = sqlite.Open(context.Background(), sat1, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	o.Wall.Advance(time.Hour)
	if _, err := store.Append(context.Background(), o.Patients(t, ledgertest.Rand(t), 2)); err != nil {
		t.Fatal(err)
	}
	store.Close()
	code, out, stderr = ghsync(t, "push", "--ledger", "sqlite:"+sat1, "--id", "1")
	if code != 1 || !strings.Contains(out, "held: event") || !strings.Contains(out, "central holds 2 events back") || !strings.Contains(stderr, "events held by central") {
		t.Fatalf("push ahead of central's clock: exit %d\n%s%s", code, out, stderr)
	}
	code, out, _ = ghsync(t, "central", "held", "--ledger", centralDB)
	if code != 0 || !strings.Contains(out, "2 held events") || !strings.Contains(out, "gnuhealth.patient-JM-") || !strings.Contains(out, "1h0m") {
		t.Fatalf("central held: exit %d\n%s", code, out)
	}
	if code, out, _ := ghsync(t, "central", "held", "release", "--origin", "1", "--ledger", centralDB); code != 0 || !strings.Contains(out, "released 2 held events of origin 1") {
		t.Fatalf("release: exit %d\n%s", code, out)
	}
	if code, out, stderr := ghsync(t, "push", "--ledger", "sqlite:"+sat1, "--id", "1"); code != 0 || !strings.Contains(out, "through seq 42") {
		t.Fatalf("push after the release: exit %d\n%s%s", code, out, stderr)
	}

	// The wrong origin for the token: refused before anything is sent.
	if code, _, stderr := ghsync(t, "push", "--ledger", "sqlite:"+sat1, "--id", "2"); code == 0 || !strings.Contains(stderr, "belongs to satellite 1") {
		t.Fatalf("push as origin 2 with satellite 1's token: exit %d %s", code, stderr)
	}

	// Satellite 2 fetches one of central's patients by PUID.
	puid := findPUID(t, strings.TrimPrefix(centralDB, "sqlite:"))
	sat2 := "sqlite:" + filepath.Join(dir, "sat2.db")
	t.Setenv("GHSYNC_TOKEN", tok2)
	code, out, stderr = ghsync(t, "new", "--ledger", sat2, "--id", "2", "--patient", puid)
	if code != 0 || !strings.Contains(out, "records about it") {
		t.Fatalf("new --patient %s: exit %d\n%s%s", puid, code, out, stderr)
	}
	if code, _, stderr := ghsync(t, "new", "--ledger", sat2, "--id", "2", "--patient", "nobody"); code == 0 || !strings.Contains(stderr, "no party has or had PUID") {
		t.Fatalf("new for an unknown PUID: exit %d %s", code, stderr)
	}
	if code, _, stderr := ghsync(t, "new", "--ledger", sat2, "--id", "2"); code == 0 || !strings.Contains(stderr, "--patient") {
		t.Fatalf("new without a patient: exit %d %s", code, stderr)
	}

	// A long poll is pending when central shuts down: it ends at once.
	polled := make(chan string)
	go func() {
		code, out, stderr := ghsync(t, "pull", "--ledger", sat2, "--id", "2", "--wait", "60s")
		polled <- strings.Join([]string{string(rune('0' + code)), out, stderr}, "\n")
	}()
	time.Sleep(500 * time.Millisecond)
	err, took := stop()
	if err != nil || took > 5*time.Second {
		t.Fatalf("serve stopped after %v: %v", took, err)
	}
	if res := <-polled; !strings.HasPrefix(res, "0\n") || !strings.Contains(res, "pulled") {
		t.Fatalf("long poll during shutdown:\n%s", res)
	}
}

// findPUID returns the PUID (party.party ref) of a patient in a ledger.
func findPUID(t *testing.T, path string) string {
	t.Helper()
	store, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	recs, err := store.ReadAll(context.Background(), 0, 1000, ledger.Filter{Models: []string{"party.party"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if v, ok := r.Event.Fields["ref"]; ok {
			if s, ok := v.AsString(); ok && s != "" {
				return s
			}
		}
	}
	t.Fatal("no party with a PUID")
	return ""
}
