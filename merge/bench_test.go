package merge

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/ghsync/ghsync/clocks"
	"github.com/ghsync/ghsync/ledger"
)

// benchRecord is one record with 20 fields and 50 events: a create of
// every field, then 49 writes of 1-3 fields from 3 origins, some
// concurrent, about 130 field writes in all.
func benchRecord() ([]*ledger.Event, Policy) {
	rng := rand.New(rand.NewPCG(1, 2))
	fields := make([]string, 20)
	for i := range fields {
		fields[i] = fmt.Sprintf("f%02d", i)
	}
	p := Policy{Fields: map[string]Rule{"f00": Union, "f01": Max, "f02": FirstWins, "f03": CentralWins}}
	val := func(f string) ledger.Value {
		if f == "f00" {
			return refs(simRefs[:rng.IntN(len(simRefs)+1)]...)
		}
		return ledger.Int(int64(rng.IntN(5)))
	}
	var h hand
	var events []*ledger.Event
	last := map[string]clocks.Timestamp{}
	kv := []any{}
	for _, f := range fields {
		kv = append(kv, f, val(f))
	}
	events = append(events, h.ev(C, 1, 100, nil, kv...))
	for _, f := range fields {
		last[f] = 100
	}
	for i := 1; i < 50; i++ {
		hlc := clocks.Timestamp(100 + 10*i)
		kv, b := []any{}, base{}
		for range 1 + rng.IntN(3) {
			f := fields[rng.IntN(len(fields))]
			kv = append(kv, f, val(f))
			b[f] = last[f]
			if rng.IntN(4) == 0 { // concurrent: had not seen the last write
				b[f] = last[f] - 10
			}
		}
		e := h.ev(W, uint16(rng.IntN(3)), hlc, b, kv...)
		for f := range e.Fields {
			last[f] = hlc
		}
		events = append(events, e)
	}
	return events, p
}

func BenchmarkApplyValues(b *testing.B) {
	events, p := benchRecord()
	b.ReportAllocs()
	for b.Loop() {
		s := &State{}
		for _, e := range events {
			s.Apply(e)
		}
		if len(s.Values(p)) != 20 {
			b.Fatal("values")
		}
	}
}

func BenchmarkConflicts(b *testing.B) {
	events, p := benchRecord()
	s := stateOf(events...)
	b.ReportAllocs()
	for b.Loop() {
		s.Conflicts(p)
	}
}

func BenchmarkMarshalUnmarshal(b *testing.B) {
	events, _ := benchRecord()
	s := stateOf(events...)
	b.ReportAllocs()
	for b.Loop() {
		data, err := s.MarshalBinary()
		if err != nil {
			b.Fatal(err)
		}
		if _, err := UnmarshalState(data); err != nil {
			b.Fatal(err)
		}
	}
}
