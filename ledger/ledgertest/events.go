package ledgertest

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ghsync/ghsync/clocks"
	"github.com/ghsync/ghsync/ledger"
)

// Origin makes sealed, chained events for one origin, as a capturing
// instance would, with a manual clock so tests are deterministic in time.
type Origin struct {
	ID    uint16
	Wall  *clocks.Manual
	Clock *clocks.Clock
	seq   uint64
	prev  ledger.Hash
	tx    uint64
}

// NewOrigin starts an origin with no events.
func NewOrigin(id uint16) *Origin {
	wall := clocks.NewManual(time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC))
	return &Origin{ID: id, Wall: wall, Clock: clocks.NewClock(wall, 0)}
}

// ResumeAt continues an origin from what a store holds of it.
func (o *Origin) ResumeAt(h ledger.OriginHead) {
	o.seq, o.prev = h.Seq, h.Hash
	o.Clock.Restore(h.MaxHLC)
}

// Event makes the origin's next event: a write of a few typed fields to
// a patient record keyed by key (a create when it is the record's first).
func (o *Origin) Event(tb testing.TB, model, key string, op ledger.Op, fields map[string]ledger.Value) *ledger.Event {
	tb.Helper()
	e, err := o.Make(model, key, op, fields)
	if err != nil {
		tb.Fatalf("make event: %v", err)
	}
	return e
}

// Make is Event without a test, for child processes and benchmarks.
func (o *Origin) Make(model, key string, op ledger.Op, fields map[string]ledger.Value) (*ledger.Event, error) {
	o.Wall.Advance(time.Millisecond)
	o.tx++
	e := &ledger.Event{
		ID: uuid.Must(uuid.NewV7()), Origin: o.ID, OriginSeq: o.seq + 1, HLC: o.Clock.Now(),
		Model: model, Key: key, Op: op, Fields: fields, User: "admin", Tx: o.tx,
	}
	if op != ledger.OpDelete {
		e.Base = map[string]clocks.Timestamp{}
		for name := range fields {
			e.Base[name] = 0
		}
	}
	if err := e.Seal(o.prev); err != nil {
		return nil, err
	}
	o.seq, o.prev = e.OriginSeq, e.Hash
	return e, nil
}

// Patients makes n events spread over a few patient records, with every
// value kind represented, seeded so a failure can be replayed.
func (o *Origin) Patients(tb testing.TB, rng *rand.Rand, n int) []*ledger.Event {
	tb.Helper()
	out := make([]*ledger.Event, 0, n)
	for i := 0; i < n; i++ {
		out = append(out, o.Event(tb, "gnuhealth.patient", fmt.Sprintf("JM-%d", rng.IntN(20)), ledger.OpWrite, SampleFields(rng)))
	}
	return out
}

// SampleFields returns fields of every kind with random values.
func SampleFields(rng *rand.Rand) map[string]ledger.Value {
	dec, _ := ledger.Decimal(fmt.Sprintf("%d.%02d", rng.IntN(200), rng.IntN(100)))
	dob, _ := ledger.Date(time.Date(1940+rng.IntN(80), time.Month(1+rng.IntN(12)), 1+rng.IntN(28), 0, 0, 0, 0, time.UTC))
	seen, _ := ledger.DateTime(time.Date(2026, 11, 1+rng.IntN(29), rng.IntN(24), rng.IntN(60), 0, rng.IntN(1e6)*1000, time.UTC))
	party, _ := ledger.RefTo("party.party", fmt.Sprintf("PARTY-%d", rng.IntN(1000)))
	cats, _ := ledger.RefSet(ledger.Ref{Model: "party.category", Key: "staff"}, ledger.Ref{Model: "party.category", Key: fmt.Sprintf("c%d", rng.IntN(5))})
	return map[string]ledger.Value{
		"name":        party,
		"weight":      dec,
		"dob":         dob,
		"last_seen":   seen,
		"deceased":    ledger.Bool(rng.IntN(2) == 0),
		"visits":      ledger.Int(int64(rng.IntN(1000)) - 10),
		"notes":       ledger.String(fmt.Sprintf("note %d ü", rng.Int())),
		"photo":       ledger.Bytes([]byte{byte(rng.IntN(256)), 0, 1}),
		"critical":    ledger.Null(),
		"categories":  cats,
		"blood_group": ledger.String([]string{"A", "B", "AB", "O"}[rng.IntN(4)]),
	}
}
