package projections_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

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

// BenchmarkSteadyState projects the last quarter of a four-instance
// clinic history onto a database that holds the first three quarters,
// with and without a stability frontier at the start of that quarter (the
// smallest HLC still to come, so the premise holds). With it, the busy
// records' merge states (wards, institutions) shrink as they are saved;
// state bytes after the run are reported beside events/s.
func BenchmarkSteadyState(b *testing.B) {
	rng := ledgertest.Rand(b)
	reg := clinicRegistry(b)
	w := newWorkload(b, reg, rng, 0, 1, 2, 3)
	w.build(b, 40_000)
	split := len(w.events) * 3 / 4
	frontier := frontierBefore(w.events[split:])
	for _, compact := range []bool{false, true} {
		name := "frontier=none"
		if compact {
			name = "frontier=trailing"
		}
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			var events int
			var elapsed time.Duration
			var bytes, largest int64
			for range b.N {
				store := memLedger(b)
				appendAll(b, store, w.events[:split], rng)
				target := pgTarget(b, reg)
				p := openProjector(b, target, store, reg, 2000)
				if _, err := p.CatchUp(ctx); err != nil {
					b.Fatal(err)
				}
				if compact {
					if err := p.SetFrontier(ctx, frontier); err != nil {
						b.Fatal(err)
					}
				}
				appendAll(b, store, w.events[split:], rng)
				start := time.Now()
				st, err := p.CatchUp(ctx)
				if err != nil {
					b.Fatal(err)
				}
				elapsed += time.Since(start)
				events += st.Events
				db, err := sql.Open("pgx", target)
				if err != nil {
					b.Fatal(err)
				}
				err = db.QueryRow(`SELECT coalesce(sum(length(state)), 0), coalesce(max(length(state)), 0) FROM ghsync.records`).Scan(&bytes, &largest)
				db.Close()
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(events)/elapsed.Seconds(), "events/s")
			b.ReportMetric(float64(bytes)/1024, "state_KiB")
			b.ReportMetric(float64(largest)/1024, "largest_state_KiB")
		})
	}
}
