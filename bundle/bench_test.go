package bundle_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ghsync/ghsync/bundle"
	"github.com/ghsync/ghsync/ledger/ledgertest"
)

// peakHeap samples the Go heap every few milliseconds until stop is
// called, and returns the highest readings of the heap in use
// (runtime.MemStats.HeapInuse: live objects and garbage not yet
// collected, so it depends on GOGC) and of the live heap as measured by
// the last collection (/gc/heap/live:bytes).
func peakHeap() (stop func() (inuse, live uint64)) {
	runtime.GC()
	var inuse, live atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var m runtime.MemStats
		sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			runtime.ReadMemStats(&m)
			metrics.Read(sample)
			inuse.Store(max(inuse.Load(), m.HeapInuse))
			live.Store(max(live.Load(), sample[0].Value.Uint64()))
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() (uint64, uint64) { close(done); wg.Wait(); return inuse.Load(), live.Load() }
}

func totalAlloc() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.TotalAlloc
}

// BenchmarkExportImport exports n events from a ledger to a signed bundle
// file and imports it into a fresh ledger of the same backend, measuring
// throughput, the bundle's size, the bytes allocated per event and the
// peak Go heap in use. That the peak does not grow with n is the bounded
// memory claim.
//
//	go test -run '^$' -bench ExportImport -benchtime 1x ./bundle
func BenchmarkExportImport(b *testing.B) {
	for _, c := range []struct {
		be backend
		n  int
	}{{backends[0], 20_000}, {backends[0], 200_000}, {backends[1], 200_000}} {
		n := c.n
		b.Run(fmt.Sprintf("%s/events=%d", c.be.name, n), func(b *testing.B) {
			ctx := context.Background()
			evs, _, err := ledgertest.BenchEvents(n)
			if err != nil {
				b.Fatal(err)
			}
			src := c.be.open(b)
			if err := ledgertest.AppendAll(ctx, src, evs, 5000); err != nil {
				b.Fatal(err)
			}
			evs = nil
			key := newKey(b)
			dir := b.TempDir()
			var exportSecs, importSecs float64
			var size int64
			var exportAlloc, importAlloc, exportPeak, importPeak, exportLive, importLive uint64
			iters := 0
			for b.Loop() {
				iters++
				path := filepath.Join(dir, "b.bundle")
				f, err := os.Create(path)
				if err != nil {
					b.Fatal(err)
				}
				stop, a0, t0 := peakHeap(), totalAlloc(), time.Now()
				res, err := bundle.Export(ctx, src, f, bundle.ExportOptions{Origin: 0, Key: key})
				if err != nil {
					b.Fatal(err)
				}
				if err := f.Close(); err != nil {
					b.Fatal(err)
				}
				exportSecs += time.Since(t0).Seconds()
				exportAlloc += totalAlloc() - a0
				inuse, live := stop()
				exportPeak, exportLive = max(exportPeak, inuse), max(exportLive, live)
				size = res.Size

				b.StopTimer()
				dst := c.be.open(b)
				f, err = os.Open(path)
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				stop, a0, t0 = peakHeap(), totalAlloc(), time.Now()
				got, err := bundle.Import(ctx, dst, f, bundle.ImportOptions{Trust: trust(key)})
				if err != nil {
					b.Fatal(err)
				}
				importSecs += time.Since(t0).Seconds()
				importAlloc += totalAlloc() - a0
				inuse, live = stop()
				importPeak, importLive = max(importPeak, inuse), max(importLive, live)
				f.Close()
				if got.Appended != uint64(n) {
					b.Fatalf("imported %d of %d", got.Appended, n)
				}
			}
			k := float64(iters)
			b.ReportMetric(float64(n)*k/exportSecs, "export-events/s")
			b.ReportMetric(float64(n)*k/importSecs, "import-events/s")
			b.ReportMetric(float64(size)/float64(n), "bundle-bytes/event")
			b.ReportMetric(float64(exportAlloc)/k/float64(n), "export-alloc-bytes/event")
			b.ReportMetric(float64(importAlloc)/k/float64(n), "import-alloc-bytes/event")
			b.ReportMetric(float64(exportPeak)/(1<<20), "export-peak-heap-MiB")
			b.ReportMetric(float64(importPeak)/(1<<20), "import-peak-heap-MiB")
			b.ReportMetric(float64(exportLive)/(1<<20), "export-peak-live-MiB")
			b.ReportMetric(float64(importLive)/(1<<20), "import-peak-live-MiB")
		})
	}
}
