package projections_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ghsync/ghsync/ledger/ledgertest"
	"github.com/ghsync/ghsync/ledger/sqlite"
	"github.com/ghsync/ghsync/projections"
)

const crashEnv = "GHSYNC_PROJECTIONS_CRASH_CHILD" // "ledger path|target url"

// runCrashChild makes the test binary the crash test's projector when the
// parent started it as one: it catches up and exits.
func runCrashChild() {
	spec := os.Getenv(crashEnv)
	if spec == "" {
		return
	}
	path, target, _ := strings.Cut(spec, "|")
	ctx := context.Background()
	store, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err == nil {
		var p *projections.Projector
		if p, err = projections.Open(ctx, target, store, clinicRegistry(&testing.T{}), projections.Options{BatchSize: 500}); err == nil {
			_, err = p.CatchUp(ctx)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "projection child:", err)
		os.Exit(3)
	}
	os.Exit(0)
}

// TestCrashDuringCatchUp kills the projector with SIGKILL at random points
// of a large catch-up, 20 times; the tables it ends with equal those of an
// uninterrupted run.
func TestCrashDuringCatchUp(t *testing.T) {
	if testing.Short() {
		t.Skip("soak test: skipped with -short")
	}
	rng := ledgertest.Rand(t)
	reg := clinicRegistry(t)
	w := newWorkload(t, reg, rng, 0, 1, 2, 3)
	w.build(t, 92_000) // about 100k events
	path := filepath.Join(t.TempDir(), "ledger.db")
	store, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	appendAll(t, store, w.events, rng)
	t.Logf("%d events in the ledger", len(w.events))

	// The uninterrupted run.
	want := project(t, openProjector(t, pgTarget(t, reg), store, reg, 500))

	target := pgTarget(t, reg)
	p := openProjector(t, target, store, reg, 500)
	kills := 0
	for kills < 20 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashEnv+"="+path+"|"+target)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("projection child failed: %v\n%s", err, stderr.String())
			}
			t.Logf("the child finished the catch-up after %d kills; projecting the rest here", kills)
			kills = 20
		case <-time.After(time.Duration(150+rng.IntN(900)) * time.Millisecond):
			cmd.Process.Kill()
			<-done
			kills++
		}
	}
	cp, _ := p.Checkpoint(context.Background())
	t.Logf("checkpoint after the kills: %d of %d", cp, len(w.events))
	sameOutcome(t, "after 20 kills", project(t, p), want)
}
