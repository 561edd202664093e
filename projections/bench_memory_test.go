package projections_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/ledger/sqlite"
	"github.com/ghsync/ghsync/projections"
)

const (
	// memBenchEnv must be 1 for BenchmarkCatchUpMemory1M to run.
	memBenchEnv = "GHSYNC_BENCH_1M"
	// memChildEnv makes the test binary BenchmarkCatchUpMemory1M's
	// projector: "ledger path|target url".
	memChildEnv = "GHSYNC_BENCH_1M_CHILD"
	// memParties: the 1M-event ledger creates memParties parties, then
	// writes each once.
	memParties = 500_000
	// memLimitMiB is the bound on the catch-up's peak RSS.
	memLimitMiB = 256
)

func init() { runMemoryChild() }

// runMemoryChild is the child of BenchmarkCatchUpMemory1M: a fresh
// process that opens the ledger and the target, catches up with the
// production options and prints its peak RSS (VmHWM), then exits.
func runMemoryChild() {
	spec := os.Getenv(memChildEnv)
	if spec == "" {
		return
	}
	path, target, _ := strings.Cut(spec, "|")
	err := func() error {
		ctx := context.Background()
		before := procStatusKiB("VmHWM")
		store, err := sqlite.Open(ctx, path, sqlite.Options{})
		if err != nil {
			return err
		}
		defer store.Close()
		p, err := projections.Open(ctx, target, store, clinicRegistry(&testing.T{}), projections.Options{})
		if err != nil {
			return err
		}
		defer p.Close()
		start := time.Now()
		st, err := p.CatchUp(ctx)
		d := time.Since(start)
		if err != nil {
			return err
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		fmt.Printf("memchild: events=%d rejected=%d batches=%d seconds=%.3f hwm_kib=%d start_hwm_kib=%d rss_kib=%d go_sys_kib=%d gc=%d\n",
			st.Events, st.Rejected, st.Batches, d.Seconds(), procStatusKiB("VmHWM"), before, procStatusKiB("VmRSS"), ms.Sys>>10, ms.NumGC)
		return nil
	}()
	if err != nil {
		fmt.Fprintln(os.Stderr, "memory child:", err)
		os.Exit(3)
	}
	os.Exit(0)
}

// procStatusKiB reads a kB field of /proc/self/status (Linux), or -1.
func procStatusKiB(field string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err == nil {
				return n
			}
		}
	}
	return -1
}

// BenchmarkCatchUpMemory1M checks the memory bound: a catch-up of
// a 1M-event ledger (memParties party creates, then one write of lastname
// to each) into a fresh Tryton database on the test server, with the
// production options (Options{}), in a child process of its own, so the
// ledger's making does not count. It reports the child's peak RSS
// (VmHWM: Go runtime, SQLite ledger, pgx, projector) and events/s. It
// runs only with GHSYNC_BENCH_1M=1: making the ledger takes ~40s and the
// catch-up over a minute on two cores, and the figure goes into
// docs/projection-benchmarks.md rather than CI.
func BenchmarkCatchUpMemory1M(b *testing.B) {
	if os.Getenv(memBenchEnv) != "1" {
		b.Skipf("set %s=1 to run: makes a 1M-event ledger and measures the peak RSS of catching up on it (several minutes)", memBenchEnv)
	}
	if _, err := os.Stat("/proc/self/status"); err != nil {
		b.Skipf("needs /proc/self/status (Linux) to read the peak RSS: %v", err)
	}
	ctx := context.Background()
	reg := clinicRegistry(b)
	b.StopTimer()

	path := filepath.Join(b.TempDir(), "ledger.db")
	store, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		b.Fatal(err)
	}
	begin := time.Now()
	events := 0
	err = partyEvents(memParties, 5000, func(c []*ledger.Event) error {
		res, err := store.Append(ctx, c)
		if err == nil && res.Appended != len(c) {
			err = fmt.Errorf("appended %d of %d events", res.Appended, len(c))
		}
		events += len(c)
		return err
	})
	store.Close()
	if err != nil {
		b.Fatalf("make the ledger: %v", err)
	}
	b.Logf("made a %d-event ledger in %v", events, time.Since(begin).Round(time.Millisecond))

	var hwm, startHWM, seconds float64
	for range b.N {
		target := pgTarget(b, reg)
		cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
		cmd.Env = append(os.Environ(), memChildEnv+"="+path+"|"+target)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		b.StartTimer()
		err := cmd.Run()
		b.StopTimer()
		if err != nil {
			b.Fatalf("the catch-up child failed: %v\n%s%s", err, stdout.String(), stderr.String())
		}
		line := ""
		for l := range strings.Lines(stdout.String()) {
			if strings.HasPrefix(l, "memchild: ") {
				line = strings.TrimSpace(l)
			}
		}
		f := map[string]float64{}
		for _, kv := range strings.Fields(strings.TrimPrefix(line, "memchild: ")) {
			k, v, _ := strings.Cut(kv, "=")
			f[k], _ = strconv.ParseFloat(v, 64)
		}
		if int(f["events"]) != events || f["rejected"] != 0 || f["hwm_kib"] <= 0 {
			b.Fatalf("the child reports %q; want events=%d rejected=0 and a peak RSS", line, events)
		}
		b.Logf("%s (GOGC=%q GOMEMLIMIT=%q)", line, os.Getenv("GOGC"), os.Getenv("GOMEMLIMIT"))
		hwm = max(hwm, f["hwm_kib"]/1024)
		startHWM = max(startHWM, f["start_hwm_kib"]/1024)
		seconds += f["seconds"]
	}
	b.ReportMetric(hwm, "peak_RSS_MiB")
	b.ReportMetric(startHWM, "start_RSS_MiB")
	b.ReportMetric(float64(events*b.N)/seconds, "events/s")
	if hwm > memLimitMiB {
		b.Logf("peak RSS %.0f MiB is over the %d MiB bound", hwm, memLimitMiB)
	}
}
