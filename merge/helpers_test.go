package merge

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ghsync/ghsync/clocks"
	"github.com/ghsync/ghsync/ledger"
)

// uuidFrom makes a UUIDv7-shaped id from 16 bytes of b.
func uuidFrom(b [16]byte) uuid.UUID {
	b[6] = 0x70 | b[6]&0x0f
	b[8] = 0x80 | b[8]&0x3f
	return uuid.UUID(b)
}

// seqID is a deterministic id: n in the leading bytes, so ids order like n.
func seqID(n uint64) uuid.UUID {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:], n<<16)
	return uuidFrom(b)
}

func randID(rng *rand.Rand) uuid.UUID {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:], rng.Uint64())
	binary.BigEndian.PutUint64(b[8:], rng.Uint64())
	return uuidFrom(b)
}

// hand builds events for table tests, with ids in creation order.
type hand struct{ n uint64 }

// ev makes an event; fields alternate name, value; base names a Base per
// field (fields not listed get 0).
func (h *hand) ev(op ledger.Op, origin uint16, hlc clocks.Timestamp, base map[string]clocks.Timestamp, kv ...any) *ledger.Event {
	h.n++
	e := &ledger.Event{
		ID: seqID(h.n), Origin: origin, OriginSeq: h.n, HLC: hlc,
		Model: "gnuhealth.patient", Key: "P-1", Op: op, User: "admin", Tx: h.n,
	}
	if op != ledger.OpDelete || len(kv) > 0 { // a delete carries at most Saw
		e.Fields = map[string]ledger.Value{}
		if op != ledger.OpDelete {
			e.Base = map[string]clocks.Timestamp{}
		}
		for i := 0; i < len(kv); i += 2 {
			name := kv[i].(string)
			e.Fields[name] = toValue(kv[i+1])
			if e.Base != nil {
				e.Base[name] = base[name]
			}
		}
	}
	return e
}

func toValue(x any) ledger.Value {
	switch x := x.(type) {
	case ledger.Value:
		return x
	case int:
		return ledger.Int(int64(x))
	case string:
		return ledger.String(x)
	case nil:
		return ledger.Null()
	}
	panic(fmt.Sprintf("toValue %T", x))
}

func refs(keys ...string) ledger.Value {
	rs := make([]ledger.Ref, len(keys))
	for i, k := range keys {
		rs[i] = ledger.Ref{Model: "party.category", Key: k}
	}
	v, err := ledger.RefSet(rs...)
	if err != nil {
		panic(err)
	}
	return v
}

func wr(e *ledger.Event, field string) Write {
	return Write{Stamp: StampOf(e), Base: e.Base[field], Value: e.Fields[field]}
}

func tomb(e *ledger.Event) Write { return Write{Stamp: StampOf(e)} }

func stateOf(events ...*ledger.Event) *State {
	s := &State{}
	for _, e := range events {
		s.Apply(e)
	}
	return s
}

func mustMarshal(tb testing.TB, s *State) []byte {
	tb.Helper()
	b, err := s.MarshalBinary()
	if err != nil {
		tb.Fatalf("marshal: %v", err)
	}
	return b
}

func writeEqual(a, b Write) bool {
	return a.Stamp == b.Stamp && a.Base == b.Base && a.Value.Equal(b.Value)
}

func conflictsEqual(a, b []Conflict) bool {
	return slices.EqualFunc(a, b, func(x, y Conflict) bool {
		return x.Field == y.Field && x.Reason == y.Reason && writeEqual(x.Loser, y.Loser) && writeEqual(x.Winner, y.Winner)
	})
}

func valuesEqual(a, b map[string]ledger.Value) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || !v.Equal(w) {
			return false
		}
	}
	return true
}

func fmtWrite(w Write) string {
	if w.Stamp.IsZero() {
		return "-"
	}
	return fmt.Sprintf("[h%d o%d base %d = %s]", uint64(w.Stamp.HLC), w.Stamp.Origin, uint64(w.Base), w.Value)
}

func fmtConflicts(cs []Conflict) string {
	s := ""
	for _, c := range cs {
		s += fmt.Sprintf("\n  %s: %s loses to %s (%s)", c.Field, fmtWrite(c.Loser), fmtWrite(c.Winner), c.Reason)
	}
	if s == "" {
		return " none"
	}
	return s
}

func time_(y, m, d int) time.Time { return time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC) }
