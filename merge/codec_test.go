package merge

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/ghsync/ghsync/clocks"
	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/ledger/ledgertest"
)

func mustV(v ledger.Value, err error) ledger.Value {
	if err != nil {
		panic(err)
	}
	return v
}

// everyKind is a value of every kind, bounds included.
func everyKind() []ledger.Value {
	return []ledger.Value{
		ledger.Null(), ledger.Bool(false), ledger.Bool(true),
		ledger.Int(0), ledger.Int(-1), ledger.Int(math.MaxInt64), ledger.Int(math.MinInt64),
		mustV(ledger.Decimal("-12.5")), mustV(ledger.Decimal("0")),
		ledger.String(""), ledger.String("Ñandú"), ledger.Bytes(nil), ledger.Bytes([]byte{0, 255}),
		mustV(ledger.Date(time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC))),
		mustV(ledger.Date(time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC))),
		mustV(ledger.Date(time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC))),
		mustV(ledger.DateTime(time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC))),
		mustV(ledger.DateTime(time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC))),
		mustV(ledger.RefTo("party.party", "P-1")),
		mustV(ledger.RefValue(ledger.Ref{Model: "party.party", Key: "P-1", Saw: 1})),
		mustV(ledger.RefValue(ledger.Ref{Model: "party.party", Key: "P-1", Saw: math.MaxUint64})),
		refs(), refs("a", "b"),
	}
}

func TestCodecRoundTrip(t *testing.T) {
	var h hand
	s := &State{}
	for i, v := range everyKind() {
		s.Apply(h.ev(W, uint16(i), clocks.Timestamp(100+i), base{"f": clocks.Timestamp(i)}, "f", v, "g", v))
	}
	s.Apply(h.ev(C, ledger.MaxOrigin, 5, nil))
	s.Apply(h.ev(D, 0, clocks.Timestamp(math.MaxUint64), nil))
	b := mustMarshal(t, s)
	d, err := UnmarshalState(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(mustMarshal(t, d), b) {
		t.Fatal("round trip changed the encoding")
	}
	for i, w := range s.Fields["f"] {
		if !writeEqual(w, d.Fields["f"][i]) {
			t.Errorf("write %d: %s, want %s", i, fmtWrite(d.Fields["f"][i]), fmtWrite(w))
		}
	}
	if *d.Created != *s.Created || *d.Deleted != *s.Deleted {
		t.Error("stamps")
	}
	// The empty state, and a field without writes, which encodes as absent.
	for _, s := range []*State{{}, {Fields: map[string][]Write{"x": nil}}} {
		b := mustMarshal(t, s)
		if !bytes.Equal(b, []byte{StateFormat, 0, 0}) {
			t.Errorf("empty state encodes as %x", b)
		}
		if _, err := UnmarshalState(b); err != nil {
			t.Error(err)
		}
	}
}

// TestCodecGolden pins the layout: a change to it must bump StateFormat.
func TestCodecGolden(t *testing.T) {
	var h hand
	s := stateOf(
		h.ev(C, 1, 0x0102, nil, "n", 3, "tags", refs("x")),
		h.ev(W, 2, 0x0103, base{"n": 0x0102}, "n", -1),
		h.ev(D, 0, 0x0200, nil),
	)
	id := func(n int) string { return "0000000000" + fmt.Sprintf("%02x", n) + "7000" + "8000000000000000" }
	want := "01" + "03" + // format, created and deleted
		"0000000000000102" + "0001" + id(1) + // created
		"0000000000000200" + "0000" + id(3) + // deleted
		"02" + // fields
		"01" + "6e" + "02" + // "n", two writes
		"0000000000000102" + "0001" + id(1) + "00" + "02" + "06" + // base 0, int 3
		"0000000000000103" + "0002" + id(2) + "8202" + "02" + "01" + // base 0x102, int -1
		"04" + "74616773" + "01" + // "tags", one write
		"0000000000000102" + "0001" + id(1) + "00" + "09" + "01" + "0e" + hex.EncodeToString([]byte("party.category")) + "01" + "78"
	if got := hex.EncodeToString(mustMarshal(t, s)); got != want {
		t.Errorf("encoding\n got %s\nwant %s", got, want)
	}
}

func TestUnmarshalStrict(t *testing.T) {
	var h hand
	good := mustMarshal(t, stateOf(h.ev(C, 1, 10, nil, "a", 1, "b", refs("x", "y"))))
	stamp := func(hlc uint64, origin uint16) []byte {
		return appendStamp(nil, Stamp{HLC: clocks.Timestamp(hlc), Origin: origin, ID: seqID(1)})
	}
	field := func(name string, writes ...[]byte) []byte {
		b := appendString(nil, name)
		b = append(b, byte(len(writes)))
		for _, w := range writes {
			b = append(b, w...)
		}
		return b
	}
	write := func(hlc uint64, origin uint16, value ...byte) []byte {
		return append(append(stamp(hlc, origin), 0), value...)
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	cases := map[string][]byte{
		"empty":            nil,
		"format":           {2, 0, 0},
		"flags":            {1, 4, 0},
		"trailing":         append(bytes.Clone(good), 0),
		"truncated":        good[:len(good)-1],
		"short stamp":      {1, 1, 0, 0},
		"zero hlc":         cat([]byte{1, 1}, stamp(0, 1), []byte{0}),
		"origin":           cat([]byte{1, 1}, stamp(1, 512), []byte{0}),
		"long uvarint":     {1, 0, 0x80, 0},
		"huge count":       {1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"fields order":     cat([]byte{1, 0, 2}, field("b", write(1, 1, 0)), field("a", write(1, 1, 0))),
		"field repeated":   cat([]byte{1, 0, 2}, field("a", write(1, 1, 0)), field("a", write(2, 1, 0))),
		"no writes":        cat([]byte{1, 0, 1}, field("a")),
		"writes order":     cat([]byte{1, 0, 1}, field("a", write(2, 1, 0), write(1, 1, 0))),
		"write repeated":   cat([]byte{1, 0, 1}, field("a", write(1, 1, 0), write(1, 1, 0))),
		"kind":             cat([]byte{1, 0, 1}, field("a", write(1, 1, 10))),
		"bool":             cat([]byte{1, 0, 1}, field("a", write(1, 1, 1, 2))),
		"int long":         cat([]byte{1, 0, 1}, field("a", write(1, 1, 2, 0x80, 0))),
		"decimal":          cat([]byte{1, 0, 1}, field("a", write(1, 1, 3, 2, '0', '1'))),
		"decimal syntax":   cat([]byte{1, 0, 1}, field("a", write(1, 1, 3, 1, 'x'))),
		"date":             cat([]byte{1, 0, 1}, field("a", write(1, 1, append([]byte{5}, appendVarint(maxDay+1)...)...))),
		"date overflow":    cat([]byte{1, 0, 1}, field("a", write(1, 1, append([]byte{5}, appendVarint(math.MinInt64)...)...))),
		"datetime":         cat([]byte{1, 0, 1}, field("a", write(1, 1, append([]byte{6}, appendVarint(math.MaxInt64)...)...))),
		"ref model":        cat([]byte{1, 0, 1}, field("a", write(1, 1, 8, 1, 'X', 1, 'k'))),
		"ref key":          cat([]byte{1, 0, 1}, field("a", write(1, 1, 8, 1, 'm', 0))),
		"refset order":     cat([]byte{1, 0, 1}, field("a", write(1, 1, 9, 2, 1, 'm', 1, 'k', 1, 'm', 1, 'a'))),
		"refset repeated":  cat([]byte{1, 0, 1}, field("a", write(1, 1, 9, 2, 1, 'm', 1, 'k', 1, 'm', 1, 'k'))),
		"string too long":  cat([]byte{1, 0, 1}, field("a", write(1, 1, 4, 5, 'a'))),
		"refset too large": cat([]byte{1, 0, 1}, field("a", write(1, 1, 9, 100, 1, 'm', 1, 'k'))),
	}
	if _, err := UnmarshalState(good); err != nil {
		t.Fatalf("good: %v", err)
	}
	// The helpers build valid encodings when given valid parts.
	if _, err := UnmarshalState(cat([]byte{1, 0, 1}, field("a", write(1, 1, 4, 1, 'a')))); err != nil {
		t.Fatalf("helpers: %v", err)
	}
	for name, b := range cases {
		s, err := UnmarshalState(b)
		if err == nil {
			t.Errorf("%s: accepted %x as %+v", name, b, s)
		} else if !errors.Is(err, ErrInvalidState) {
			t.Errorf("%s: error %v does not wrap ErrInvalidState", name, err)
		}
	}
}

func appendVarint(x int64) []byte {
	var b []byte
	return appendValue(b, ledger.Int(x))[1:]
}

func TestMarshalRefusesBrokenState(t *testing.T) {
	w := Write{Stamp: Stamp{HLC: 2, ID: seqID(1)}}
	s := &State{Fields: map[string][]Write{"a": {w, w}}}
	if _, err := s.MarshalBinary(); err == nil {
		t.Error("marshalled repeated writes")
	}
}

func TestMergeEdges(t *testing.T) {
	var h hand
	s := stateOf(h.ev(C, 1, 10, nil, "a", 1))
	enc := mustMarshal(t, s)
	s.Merge(nil)
	s.Merge(s)
	s.Merge(&State{})
	if !bytes.Equal(enc, mustMarshal(t, s)) {
		t.Error("merging nothing changed the state")
	}
	c := s.Clone()
	c.Apply(h.ev(W, 2, 20, nil, "a", 2))
	if !bytes.Equal(enc, mustMarshal(t, s)) {
		t.Error("a clone shares writes with its original")
	}
}

// TestLastDeleteOf: the header read agrees with the decoded state, over
// random histories (deletes, redeletes, revivals).
func TestLastDeleteOf(t *testing.T) {
	rng := ledgertest.Rand(t)
	deleted := 0
	for i := range 200 {
		h := newHistory(rng, randomPolicy(rng, i))
		h.run(30)
		for _, s := range byKey(h.events) {
			got, err := LastDeleteOf(mustMarshal(t, s))
			if err != nil || got != s.LastDelete().HLC {
				t.Fatalf("LastDeleteOf = %v, %v; LastDelete %v", got, err, s.LastDelete())
			}
			if got != 0 {
				deleted++
			}
		}
	}
	if deleted == 0 {
		t.Fatal("no history deleted anything")
	}
	for _, bad := range [][]byte{nil, {2, 0}, {StateFormat}, {StateFormat, flagDeleted, 1}} {
		if _, err := LastDeleteOf(bad); !errors.Is(err, ErrInvalidState) {
			t.Errorf("LastDeleteOf(%x) = %v, want ErrInvalidState", bad, err)
		}
	}
}

func FuzzUnmarshalState(f *testing.F) {
	rng := ledgertest.Rand(f)
	for i := range 30 {
		h := newHistory(rng, randomPolicy(rng, i))
		h.run(30)
		for _, s := range byKey(h.events) {
			f.Add(mustMarshal(f, s))
		}
	}
	var h hand
	s := &State{}
	for i, v := range everyKind() {
		s.Apply(h.ev(W, uint16(i), clocks.Timestamp(100+i), nil, "f", v))
	}
	f.Add(mustMarshal(f, s))
	f.Add([]byte{})
	f.Add([]byte{1, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := UnmarshalState(data)
		if err != nil {
			return
		}
		b, err := s.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded state does not marshal: %v", err)
		}
		if !bytes.Equal(b, data) {
			t.Fatalf("round trip: %x -> %x", data, b)
		}
		if d, err := LastDeleteOf(data); err != nil || d != s.LastDelete().HLC {
			t.Fatalf("LastDeleteOf = %v, %v; LastDelete %v", d, err, s.LastDelete())
		}
		// Whatever decodes can be resolved and merged without panicking.
		for _, p := range allPolicies() {
			s.Conflicts(p)
			s.Values(p)
		}
		c := s.Clone()
		c.Merge(s)
		if !bytes.Equal(mustMarshal(t, c), data) {
			t.Fatal("merge with itself changed the state")
		}
	})
}

func TestDecodeStateMatchesUnmarshal(t *testing.T) {
	var h hand
	s := &State{}
	for i, v := range everyKind() {
		s.Apply(h.ev(W, uint16(i), clocks.Timestamp(100+i), base{"f": clocks.Timestamp(i)}, "f", v))
	}
	s.Apply(h.ev(C, 3, 5, nil))
	raw := mustMarshal(t, s)
	a, err1 := UnmarshalState(raw)
	b, err2 := DecodeState(raw)
	if err1 != nil || err2 != nil || !bytes.Equal(mustMarshal(t, a), mustMarshal(t, b)) {
		t.Fatalf("DecodeState differs from UnmarshalState: %v %v", err1, err2)
	}
	if _, err := DecodeState([]byte{0xff}); !errors.Is(err, ErrInvalidState) {
		t.Fatalf("DecodeState of garbage: %v", err)
	}
}
