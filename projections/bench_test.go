package projections_test

import (
	"context"
	"testing"

	"github.com/ghsync/ghsync/ledger/ledgertest"
)

// BenchmarkCatchUp projects a four-instance clinic history (creates,
// writes, deletes, references, composite keys, Many2Many, conflicts) into
// a fresh Tryton-shaped PostgreSQL database; events/s is the figure.
func BenchmarkCatchUp(b *testing.B) {
	rng := ledgertest.Rand(b)
	reg := clinicRegistry(b)
	w := newWorkload(b, reg, rng, 0, 1, 2, 3)
	w.build(b, 17_000)
	store := memLedger(b)
	appendAll(b, store, w.events, rng)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		p := openProjector(b, pgTarget(b, reg), store, reg, 2000)
		b.StartTimer()
		if _, err := p.CatchUp(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(w.events)*b.N)/b.Elapsed().Seconds(), "events/s")
}
