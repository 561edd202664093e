package central_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ghsync/ghsync/ledger/ledgertest"
	"github.com/ghsync/ghsync/wire"
)

// BenchmarkIdleCursors: 512 satellites whose cursors are at central's head
// ask for news, as `ghsync run` does every cycle. The cost per satellite
// must not grow with the ledger: compare the sub-benchmarks (1k and 50k
// events in the ledger, on PostgreSQL). Reported: ns per satellite per
// cycle and the ledger reads beyond Head per cycle (0). The +report
// variants add what a complete cycle ends with: the stability report
// (POST /v1/stable, a registry upsert; the frontier is derived at most
// every 10 s).
//
//	go test -run '^$' -bench IdleCursors -benchtime 3x ./central
func BenchmarkIdleCursors(b *testing.B) {
	for _, v := range []struct {
		size   int
		report bool
	}{{1_000, false}, {50_000, false}, {1_000, true}, {50_000, true}} {
		size := v.size
		name := fmt.Sprintf("ledger=%d", size)
		if v.report {
			name += "+report"
		}
		b.Run(name, func(b *testing.B) {
			r := newRig(b, true)
			writer := r.add(b, 511, wire.ScopeAll)
			o := ledgertest.NewOrigin(511)
			rnd := rng(b)
			for done := 0; done < size; done += 2000 {
				r.push(b, writer, o.Patients(b, rnd, min(2000, size-done)))
			}
			head := strconv.FormatUint(r.head(b), 10)
			tokens := make([]string, 510)
			for i := range tokens {
				tokens[i] = r.add(b, uint16(i+1), []string{wire.ScopeAll, wire.ScopeLocal}[i%2])
			}
			tokens = append(tokens, writer, writer) // 512 cursors
			client := r.ts.Client()
			pull := func(tok string) {
				resp := benchDo(b, client, http.MethodGet, r.ts.URL+wire.PathPull+"?after="+head, tok, "")
				if resp.StatusCode != http.StatusNoContent {
					b.Fatalf("idle pull: %d", resp.StatusCode)
				}
			}
			body := stableBody(o.Clock.Now(), r.head(b))
			report := func(tok string) {
				resp := benchDo(b, client, http.MethodPost, r.ts.URL+wire.PathStable, tok, body)
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("stability report: %d", resp.StatusCode)
				}
			}
			for _, tok := range tokens { // warm connections
				pull(tok)
				if v.report {
					report(tok)
				}
			}
			r.store.reset()
			b.ResetTimer()
			for range b.N {
				for _, tok := range tokens {
					pull(tok)
					if v.report {
						report(tok)
					}
				}
			}
			b.StopTimer()
			calls := r.store.reset()
			reads := 0
			for m, n := range calls {
				if m != "Head" {
					reads += n
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(tokens)), "ns/satellite-cycle")
			b.ReportMetric(float64(reads)/float64(b.N), "ledger-reads/cycle")
			b.ReportMetric(float64(calls["Head"])/float64(b.N*len(tokens)), "head-calls/satellite")
		})
	}
}

// BenchmarkServePull: central serving its whole ledger (20k events of two
// origins, on PostgreSQL) to a satellite of scope all, page by page, as a
// catch-up asks for it; the satellite's decoding is not counted (the
// response is read and dropped). Reported: events served a second, and
// this process's CPU time an event (central's Go side; the server's share
// is reading the rows).
//
//	go test -run '^$' -bench ServePull -benchtime 5x ./central
func BenchmarkServePull(b *testing.B) {
	r := newRig(b, true)
	writer1, writer2 := r.add(b, 1, wire.ScopeAll), r.add(b, 2, wire.ScopeAll)
	o1, o2 := ledgertest.NewOrigin(1), ledgertest.NewOrigin(2)
	rnd := rng(b)
	for range 5 {
		r.push(b, writer1, o1.Patients(b, rnd, 2000))
		r.push(b, writer2, o2.Patients(b, rnd, 2000))
	}
	reader := r.add(b, 3, wire.ScopeAll)
	head := r.head(b)
	client := r.ts.Client()
	b.ResetTimer()
	start, cpu0 := time.Now(), processCPU(b)
	for range b.N {
		for after := uint64(0); after < head; {
			resp := benchDo(b, client, http.MethodGet, r.ts.URL+wire.PathPull+"?after="+strconv.FormatUint(after, 10), reader, "")
			next, err := strconv.ParseUint(resp.Header.Get(wire.HeaderNext), 10, 64)
			if resp.StatusCode != http.StatusOK || err != nil || next <= after {
				b.Fatalf("pull after %d: %d, next %q", after, resp.StatusCode, resp.Header.Get(wire.HeaderNext))
			}
			after = next
		}
	}
	served := float64(head) * float64(b.N)
	b.ReportMetric(served/time.Since(start).Seconds(), "events/s")
	b.ReportMetric((processCPU(b)-cpu0).Seconds()*1e6/served, "cpu_µs/event")
}

// processCPU is this process's user and system CPU time so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchDo sends a request as token's satellite and reads the answer to
// its end (dropped): the response's status and headers remain.
func benchDo(b *testing.B, client *http.Client, method, url, token, body string) *http.Response {
	req, _ := http.NewRequestWithContext(context.Background(), method, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}
