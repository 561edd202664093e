package ledgertest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ghsync/ghsync/ledger"
)

const (
	childEnv    = "GHSYNC_LEDGERTEST_CHILD"
	crashOrigin = 77
	crashKills  = 20
)

// RunChild turns the test binary into the crash test's appender when the
// suite started it as one; call it first thing in the backend's TestMain.
// It appends batches forever, printing "ack SEQ" after each Append returns.
func RunChild(h Harness) {
	loc := os.Getenv(childEnv)
	if loc == "" {
		return
	}
	if err := child(h, loc); err != nil {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		os.Exit(3)
	}
	os.Exit(0)
}

func child(h Harness, loc string) error {
	ctx := context.Background()
	s, err := h.Open(ctx, loc, Options{})
	if err != nil {
		return err
	}
	heads, err := s.Origins(ctx)
	if err != nil {
		return err
	}
	o := NewOrigin(crashOrigin)
	for _, hd := range heads {
		if hd.Origin == crashOrigin {
			o.ResumeAt(hd)
		}
	}
	rng := rand.New(rand.NewPCG(uint64(os.Getpid()), uint64(time.Now().UnixNano())))
	for {
		n := 1 + rng.IntN(20)
		first := o.seq + 1
		evs := make([]*ledger.Event, n)
		for i := range evs {
			f := SampleFields(rng)
			f["batch_first"] = ledger.Int(int64(first))
			f["batch_size"] = ledger.Int(int64(n))
			if evs[i], err = o.Make("gnuhealth.patient", fmt.Sprint(rng.IntN(100)), ledger.OpWrite, f); err != nil {
				return err
			}
		}
		if _, err := s.Append(ctx, evs); err != nil {
			return err
		}
		fmt.Printf("ack %d\n", o.seq)
	}
}

// testCrash kills an appending child with SIGKILL at random moments; after
// each kill every acknowledged event must be there and intact, and every
// batch whole (no half-written one).
func testCrash(t *testing.T, h Harness) {
	rng := Rand(t)
	loc := h.NewLocation(t)
	var acked uint64
	for kill := 1; kill <= crashKills; kill++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"="+loc)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		first := make(chan struct{})
		var once sync.Once
		readDone := make(chan struct{})
		go func() {
			defer close(readDone)
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				seq, err := strconv.ParseUint(strings.TrimPrefix(sc.Text(), "ack "), 10, 64)
				if err != nil {
					continue
				}
				mu.Lock()
				acked = max(acked, seq)
				mu.Unlock()
				once.Do(func() { close(first) })
			}
		}()
		select {
		case <-first:
		case <-readDone:
		case <-time.After(30 * time.Second):
		}
		time.Sleep(time.Duration(rng.IntN(60_000)) * time.Microsecond)
		_ = cmd.Process.Kill() // SIGKILL: no chance to clean up
		<-readDone
		_ = cmd.Wait()
		mu.Lock()
		want := acked
		mu.Unlock()
		if want == 0 {
			t.Fatalf("kill %d: the child acknowledged nothing; its stderr: %s", kill, stderr.String())
		}
		checkAfterCrash(t, h, loc, kill, want)
	}
	t.Logf("%d kills, %d events acknowledged and intact", crashKills, acked)
}

func checkAfterCrash(t *testing.T, h Harness, loc string, kill int, acked uint64) {
	t.Helper()
	s := h.open(t, loc, Options{})
	defer s.Close()
	all := readAll(t, s, ledger.Filter{}) // every stored event decodes against its hash
	for i, r := range all {
		if r.Position != uint64(i+1) {
			t.Fatalf("kill %d: position %d at index %d: hole in the ledger", kill, r.Position, i)
		}
	}
	var held uint64
	batches := map[int64][2]int64{} // first seq → (size, events seen)
	for _, r := range all {
		e := r.Event
		if e.Origin != crashOrigin {
			continue
		}
		if e.OriginSeq != held+1 {
			t.Fatalf("kill %d: origin_seq %d follows %d", kill, e.OriginSeq, held)
		}
		held = e.OriginSeq
		f, _ := e.Fields["batch_first"].AsInt()
		n, _ := e.Fields["batch_size"].AsInt()
		b := batches[f]
		batches[f] = [2]int64{n, b[1] + 1}
	}
	if held < acked {
		t.Fatalf("kill %d: child acknowledged seq %d, ledger holds up to %d: acknowledged events lost", kill, acked, held)
	}
	for first, b := range batches {
		if b[0] != b[1] {
			t.Fatalf("kill %d: batch starting at seq %d has %d of its %d events: half-written", kill, first, b[1], b[0])
		}
	}
}
