package capture_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/ghsync/ghsync/capture"
	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/ledger/postgres"
	"github.com/ghsync/ghsync/ledger/sqlite"
	"github.com/ghsync/ghsync/models"
)

const crashChildEnv = "GHSYNC_CAPTURE_CRASH_CHILD" // target|ledger|origin|kill after n appends

// runCrashChild makes the test binary a capturer that SIGKILLs itself
// between reading a batch and appending it, when started as one.
func runCrashChild() {
	spec := os.Getenv(crashChildEnv)
	if spec == "" {
		return
	}
	parts := strings.Split(spec, "|")
	origin, _ := strconv.Atoi(parts[2])
	killAfter, _ := strconv.Atoi(parts[3])
	ctx := context.Background()
	var store ledger.Store
	var err error
	if path, ok := strings.CutPrefix(parts[1], "sqlite:"); ok {
		store, err = sqlite.Open(ctx, path, sqlite.Options{})
	} else {
		store, err = postgres.Open(ctx, parts[1], postgres.Options{})
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		os.Exit(3)
	}
	n := 0
	c, err := capture.Open(ctx, parts[0], store, models.GNUHealth(), capture.Options{
		Origin: uint16(origin), BatchSize: 40,
		BeforeAppend: func() {
			if n++; n == killAfter {
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
			}
		}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		os.Exit(3)
	}
	if _, err := c.Drain(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		os.Exit(3)
	}
	os.Exit(0)
}

// TestCrashBetweenReadAndAppend SIGKILLs the capturer between reading an
// outbox batch and appending it, 20 times, while the clinic keeps
// writing: in the end every change is in the ledger exactly once.
func TestCrashBetweenReadAndAppend(t *testing.T) {
	seed := rand.Uint64()
	if s := os.Getenv("GHSYNC_TEST_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed=%d (rerun: GHSYNC_TEST_SEED=%d go test -run TestCrashBetweenReadAndAppend ./capture/)", seed, seed)
	forEachLayout(t, func(t *testing.T, lay layout) {
		rng := rand.New(rand.NewPCG(seed, 1))
		s := newSite(t, lay, 5)
		s.cap.Close()
		parties, writes, kills := 0, 0, 0
		var ids []int64
		for kills < 20 {
			for range 30 + rng.IntN(60) {
				parties++
				ids = append(ids, s.insert("party_party", 1, map[string]any{"code": fmt.Sprintf("C-%d", parties), "name": "P", "active": true}))
			}
			for range rng.IntN(40) {
				writes++
				s.update("party_party", ids[rng.IntN(len(ids))], 1, map[string]any{"name": fmt.Sprintf("P%d", writes)})
			}
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s|%s|%d|%d", crashChildEnv, s.target, s.ledger, s.origin, 1+rng.IntN(3)))
			out, err := cmd.CombinedOutput()
			if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
				kills++
				continue
			}
			if err != nil {
				t.Fatalf("capturer child: %v\n%s", err, out)
			}
		}
		s.open(capture.Options{})
		s.drain()
		if s.outbox() != 0 {
			t.Fatalf("outbox holds %d rows after the final drain", s.outbox())
		}
		creates, ws := map[string]int{}, 0
		for _, e := range s.allEvents() {
			switch e.Op {
			case ledger.OpCreate:
				creates[e.Key]++
			case ledger.OpWrite:
				ws++
			}
		}
		for k, n := range creates {
			if n != 1 {
				t.Fatalf("party %s captured %d times", k, n)
			}
		}
		if len(creates) != parties || ws != writes {
			t.Fatalf("ledger holds %d creates and %d writes, the clinic made %d and %d (after %d kills)", len(creates), ws, parties, writes, kills)
		}
		rep, err := ledger.Verify(ctx(t), s.store)
		if err != nil || !rep.OK() {
			t.Fatalf("ledger does not verify after the crashes: %v %+v", err, rep)
		}
		t.Logf("%d parties, %d writes, %d kills: every change captured once", parties, writes, kills)
	})
}
