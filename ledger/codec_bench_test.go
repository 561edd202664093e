package ledger_test

import (
	"testing"

	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/ledger/ledgertest"
)

// Micro-benchmarks of the per-event CPU work every Append (Prepare:
// validate, encode, hash) and every read (DecodeStored: hash check,
// decode) does, on the same events as the store benchmarks.

func benchEvents(b *testing.B, n int) ([]*ledger.Event, float64) {
	b.Helper()
	evs, mean, err := ledgertest.BenchEvents(n)
	if err != nil {
		b.Fatal(err)
	}
	return evs, mean
}

func BenchmarkMarshal(b *testing.B) {
	evs, mean := benchEvents(b, 1000)
	b.SetBytes(int64(mean))
	b.ResetTimer()
	for i := range b.N {
		if _, err := ledger.Marshal(evs[i%len(evs)]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkHashOf(b *testing.B) {
	evs, mean := benchEvents(b, 1000)
	payloads := make([][]byte, len(evs))
	for i, e := range evs {
		payloads[i], _ = ledger.Marshal(e)
	}
	b.SetBytes(int64(mean))
	b.ResetTimer()
	for i := range b.N {
		_ = ledger.HashOf(payloads[i%len(payloads)])
	}
}

func BenchmarkValidate(b *testing.B) {
	evs, _ := benchEvents(b, 1000)
	b.ResetTimer()
	for i := range b.N {
		if err := evs[i%len(evs)].Validate(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPrepare is the whole client-side cost of an Append of 1000
// events before any SQL; ns/op divided by 1000 is the per-event cost.
func BenchmarkPrepare(b *testing.B) {
	evs, _ := benchEvents(b, 1000)
	b.ResetTimer()
	for range b.N {
		if _, err := ledger.Prepare(evs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(evs))/b.Elapsed().Seconds(), "events/s")
}

func BenchmarkDecodeStored(b *testing.B) {
	evs, mean := benchEvents(b, 1000)
	payloads := make([][]byte, len(evs))
	for i, e := range evs {
		payloads[i], _ = ledger.Marshal(e)
	}
	b.SetBytes(int64(mean))
	b.ResetTimer()
	for i := range b.N {
		k := i % len(evs)
		if _, err := ledger.DecodeStored(uint64(k+1), evs[k].Hash[:], payloads[k]); err != nil {
			b.Fatal(err)
		}
	}
}
