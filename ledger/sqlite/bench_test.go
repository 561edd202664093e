package sqlite_test

import (
	"testing"

	"github.com/ghsync/ghsync/ledger/ledgertest"
	"github.com/ghsync/ghsync/ledger/sqlite"
)

// Run: go test -run '^$' -bench . ./ledger/sqlite (see docs/benchmarks.md).

func BenchmarkAppend(b *testing.B) { ledgertest.BenchAppend(b, harness) }

func BenchmarkReadAll(b *testing.B) { ledgertest.BenchReadAll(b, harness) }

// BenchmarkSubscribeLatency: handle=same wakes the subscriber by the
// in-process signal; handle=separate is another process's view, which
// learns of appends only by polling (DefaultPollInterval, 200ms), so its
// appends are spread at random over the polling cycle.
func BenchmarkSubscribeLatency(b *testing.B) {
	b.Run("handle=same", func(b *testing.B) { ledgertest.BenchSubscribeLatency(b, harness, false, 0) })
	b.Run("handle=separate", func(b *testing.B) {
		ledgertest.BenchSubscribeLatency(b, harness, true, sqlite.DefaultPollInterval)
	})
}
