package ledgertest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/ghsync/ghsync/ledger"
)

// Benchmark bodies shared by the backends (go test -bench). Events are made
// and sealed before the timer starts, so what is timed is the store; but
// Append itself validates, encodes and hashes every event again (Prepare),
// and that stays inside the measurement because every real append pays it.

// BenchKeys is how many patient records the benchmark events are spread
// over; the PostgreSQL anchor uses the same spread for its key column.
const BenchKeys = 1000

// BenchModel is the model of every benchmark event.
const BenchModel = "gnuhealth.patient"

// BenchEvents makes n sealed, chained events of one origin, writes of
// SampleFields to BenchKeys patient records, from a fixed seed. It also
// returns the mean size of their canonical encoding (the stored payload).
func BenchEvents(n int) (evs []*ledger.Event, meanPayload float64, err error) {
	rng := rand.New(rand.NewPCG(42, 4242))
	o := NewOrigin(1)
	evs = make([]*ledger.Event, 0, n)
	total := 0
	for range n {
		e, err := o.Make(BenchModel, fmt.Sprintf("JM-%d", rng.IntN(BenchKeys)), ledger.OpWrite, SampleFields(rng))
		if err != nil {
			return nil, 0, err
		}
		p, err := ledger.Marshal(e)
		if err != nil {
			return nil, 0, err
		}
		total += len(p)
		evs = append(evs, e)
	}
	if n > 0 {
		meanPayload = float64(total) / float64(n)
	}
	return evs, meanPayload, nil
}

// AppendAll appends evs in calls of batch events and checks that each
// call stored all of them.
func AppendAll(ctx context.Context, s ledger.Store, evs []*ledger.Event, batch int) error {
	for len(evs) > 0 {
		k := min(batch, len(evs))
		res, err := s.Append(ctx, evs[:k])
		if err != nil {
			return err
		}
		if res.Appended != k {
			return fmt.Errorf("appended %d of %d events", res.Appended, k)
		}
		evs = evs[k:]
	}
	return nil
}

func benchEvents(b *testing.B, n int) ([]*ledger.Event, float64) {
	b.Helper()
	evs, mean, err := BenchEvents(n)
	if err != nil {
		b.Fatalf("make events: %v", err)
	}
	return evs, mean
}

// BenchAppend measures Append into a fresh, empty ledger at batch sizes 1,
// 100 and 1000 (one op is one Append call of batch events, one commit).
// It reports events/s and the mean payload bytes per event.
func BenchAppend(b *testing.B, h Harness) {
	for _, batch := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			ctx := context.Background()
			s := h.open(b, h.NewLocation(b), Options{})
			defer s.Close()
			evs, mean := benchEvents(b, b.N*batch)
			b.ResetTimer()
			for i := range b.N {
				res, err := s.Append(ctx, evs[i*batch:(i+1)*batch])
				if err != nil {
					b.Fatalf("append: %v", err)
				}
				if res.Appended != batch {
					b.Fatalf("appended %d of %d", res.Appended, batch)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(mean, "payload_B/event")
		})
	}
}

// BenchReadAllEvents is how many events BenchReadAll stores and reads.
const BenchReadAllEvents = 100_000

// BenchReadAll stores BenchReadAllEvents events (not timed) and measures
// reading all of them back with ReadAll in pages of 1000, which includes
// checking each payload's hash and decoding it. One op is one full scan.
func BenchReadAll(b *testing.B, h Harness) {
	ctx := context.Background()
	const n, page = BenchReadAllEvents, 1000
	s := h.open(b, h.NewLocation(b), Options{})
	defer s.Close()
	evs, _ := benchEvents(b, n)
	if err := AppendAll(ctx, s, evs, 1000); err != nil {
		b.Fatalf("store %d events: %v", n, err)
	}
	evs = nil
	b.Run(fmt.Sprintf("events=%d/page=%d", n, page), func(b *testing.B) {
		b.ResetTimer()
		for range b.N {
			after, got := uint64(0), 0
			for {
				recs, err := s.ReadAll(ctx, after, page, ledger.Filter{})
				if err != nil {
					b.Fatalf("read all after %d: %v", after, err)
				}
				if len(recs) == 0 {
					break
				}
				got += len(recs)
				after = recs[len(recs)-1].Position
			}
			if got != n {
				b.Fatalf("read %d events, want %d", got, n)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "events/s")
	})
}

// BenchSubscribeLatency measures how long a caught-up subscriber takes to
// receive an event after the Append that stored it returned. One op is
// one Append of one event plus the wait for its delivery, so ns/op
// includes the commit; p50_µs and p99_µs are commit-to-delivery only.
// With separate set, the subscriber uses its own Store handle on the same
// location, as another process would, so no in-process signal reaches it:
// it learns of the append by the backend's cross-process path (NOTIFY for
// PostgreSQL, polling for SQLite). A delivery that beats Append's return
// (possible with the in-process signal) counts as 0; early_frac is the
// share of those. With phase > 0, each append waits (timer stopped) a
// random time below phase first, so that appends fall at random points
// of a polling subscriber's cycle rather than just after its last read.
func BenchSubscribeLatency(b *testing.B, h Harness, separate bool, phase time.Duration) {
	const warm = 20
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	loc := h.NewLocation(b)
	w := h.open(b, loc, Options{})
	defer w.Close()
	r := w
	if separate {
		r = h.open(b, loc, Options{})
		defer r.Close()
	}
	evs, _ := benchEvents(b, warm+b.N)

	type delivery struct {
		pos uint64
		at  time.Time
	}
	got := make(chan delivery, warm+b.N) // never blocks the subscriber
	done := make(chan error, 1)
	go func() {
		for rec, err := range r.Subscribe(ctx, 0, ledger.Filter{}) {
			if err != nil {
				done <- err
				return
			}
			got <- delivery{rec.Position, time.Now()}
		}
	}()
	// Give a listener time to start, then catch up on a few events.
	time.Sleep(300 * time.Millisecond)
	lats := make([]time.Duration, 0, b.N)
	early := 0
	rng := rand.New(rand.NewPCG(7, 77))
	step := func(e *ledger.Event, measure bool) {
		if phase > 0 {
			b.StopTimer()
			time.Sleep(time.Duration(rng.Int64N(int64(phase))))
			b.StartTimer()
		}
		res, err := w.Append(ctx, []*ledger.Event{e})
		returned := time.Now()
		if err != nil {
			b.Fatalf("append: %v", err)
		}
		select {
		case d := <-got:
			if d.pos != res.Head {
				b.Fatalf("subscriber got position %d, want %d", d.pos, res.Head)
			}
			if measure {
				lat := d.at.Sub(returned)
				if lat < 0 {
					early++
					lat = 0
				}
				lats = append(lats, lat)
			}
		case err := <-done:
			b.Fatalf("subscription ended: %v", err)
		case <-time.After(30 * time.Second):
			b.Fatalf("position %d not delivered within 30s", res.Head)
		}
	}
	for _, e := range evs[:warm] {
		step(e, false)
	}
	b.ResetTimer()
	for _, e := range evs[warm:] {
		step(e, true)
	}
	b.StopTimer()
	slices.Sort(lats)
	q := func(p float64) float64 {
		return float64(lats[min(len(lats)-1, int(p*float64(len(lats))))].Nanoseconds()) / 1e3
	}
	b.ReportMetric(q(0.50), "p50_µs")
	b.ReportMetric(q(0.99), "p99_µs")
	b.ReportMetric(float64(early)/float64(len(lats)), "early_frac")
}
