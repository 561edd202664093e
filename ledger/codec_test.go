package ledger_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/ghsync/ghsync/clocks"
	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/ledger/ledgertest"
)

const goldenV1 = "testdata/event_v1.golden"

// goldenEvent is the fixed event pinned by testdata/event_v1.golden: fixed
// id, clock and hashes, and every value kind, several in more than one
// msgpack width. Never change it: add a new golden event instead.
func goldenEvent(tb testing.TB) *ledger.Event {
	tb.Helper()
	hlc := clocks.New(time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC).UnixMilli(), 3)
	return &ledger.Event{
		ID:        uuid.MustParse("01937a4b-5c6d-7e8f-9a0b-1c2d3e4f5a6b"),
		Origin:    7,
		OriginSeq: 42,
		HLC:       hlc,
		Model:     "gnuhealth.patient",
		Key:       ledger.JoinKey("HOSP-1", "PAT/0042"),
		Op:        ledger.OpWrite,
		User:      "admin ü",
		Tx:        1234567,
		Fields: map[string]ledger.Value{
			"critical":    ledger.Null(),
			"deceased":    ledger.Bool(false),
			"active":      ledger.Bool(true),
			"visits":      ledger.Int(300),
			"balance":     ledger.Int(-40000),
			"big":         ledger.Int(math.MaxInt64),
			"weight":      mustDecimal(tb, "71.5"),
			"ratio":       mustDecimal(tb, "-0.000125"),
			"name":        ledger.String("Ana Souza"),
			"notes":       ledger.String(strings.Repeat("long note ", 5)),
			"dob":         mustDate(tb, 1980, 2, 29),
			"founded":     mustDate(tb, 1, 1, 1),
			"last_seen":   mustDateTime(tb, time.Date(2026, 11, 30, 7, 59, 58, 123456000, time.UTC)),
			"photo":       ledger.Bytes([]byte{0x89, 'P', 'N', 'G', 0}),
			"party":       mustRef(tb, "party.party", "PARTY-7"),
			"categories":  mustRefSet(tb, ledger.Ref{Model: "party.category", Key: "staff"}, ledger.Ref{Model: "party.category", Key: "donor"}),
			"tags":        mustRefSet(tb),
			"blood_group": ledger.String(""),
		},
		Base: map[string]clocks.Timestamp{
			"weight": clocks.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixMilli(), 0),
			"name":   0,
		},
		PrevHash: sha256.Sum256([]byte("ghsync golden prev")),
	}
}

// normalize makes an event comparable with a decoded one: the codec does
// not tell an empty map from a nil one.
func normalize(e *ledger.Event) *ledger.Event {
	c := *e
	if len(c.Fields) == 0 {
		c.Fields = nil
	}
	if len(c.Base) == 0 {
		c.Base = nil
	}
	return &c
}

func mustMarshal(tb testing.TB, e *ledger.Event) []byte {
	tb.Helper()
	b, err := ledger.Marshal(e)
	if err != nil {
		tb.Fatalf("Marshal: %v", err)
	}
	return b
}

func readGolden(tb testing.TB) (payload []byte, sum ledger.Hash) {
	tb.Helper()
	text, err := os.ReadFile(goldenV1)
	if err != nil {
		tb.Fatalf("%v (create it with GHSYNC_UPDATE_GOLDEN=1 go test -run TestGoldenV1 ./ledger/)", err)
	}
	var hexPayload strings.Builder
	var sumHex string
	for _, line := range strings.Split(string(text), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "sha256 "):
			sumHex = strings.TrimPrefix(line, "sha256 ")
		default:
			hexPayload.WriteString(line)
		}
	}
	if payload, err = hex.DecodeString(hexPayload.String()); err != nil {
		tb.Fatalf("%s: payload: %v", goldenV1, err)
	}
	s, err := hex.DecodeString(sumHex)
	if err != nil || len(s) != len(sum) {
		tb.Fatalf("%s: bad sha256 line %q", goldenV1, sumHex)
	}
	copy(sum[:], s)
	return payload, sum
}

func writeGolden(tb testing.TB, payload []byte) {
	tb.Helper()
	var b strings.Builder
	b.WriteString("# ghsync ledger event, format version 1: the canonical encoding of\n")
	b.WriteString("# goldenEvent in codec_test.go, in hex, and its SHA-256 (the event hash).\n")
	b.WriteString("# Events written with these bytes must decode forever: never regenerate\n")
	b.WriteString("# this file to make a test pass; add a new format version instead.\n")
	fmt.Fprintf(&b, "sha256 %x\n", sha256.Sum256(payload))
	h := hex.EncodeToString(payload)
	for len(h) > 64 {
		b.WriteString(h[:64] + "\n")
		h = h[64:]
	}
	b.WriteString(h + "\n")
	if err := os.MkdirAll(filepath.Dir(goldenV1), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(goldenV1, []byte(b.String()), 0o644); err != nil {
		tb.Fatal(err)
	}
}

// TestGoldenV1 pins format version 1: the bytes and hash of a fixed event
// must never change, and the stored bytes must keep decoding to it, so
// events written today still decode, and still verify, in ten years.
func TestGoldenV1(t *testing.T) {
	e := goldenEvent(t)
	payload := mustMarshal(t, e)
	if os.Getenv("GHSYNC_UPDATE_GOLDEN") == "1" {
		writeGolden(t, payload)
		t.Logf("wrote %s", goldenV1)
	}
	want, wantSum := readGolden(t)
	if !bytes.Equal(payload, want) {
		t.Errorf("the encoding of format version 1 changed (%s):\n got %x\nwant %x\n"+
			"Stored events would no longer verify. If the change is deliberate, it is a new format "+
			"version (bump FormatVersion, keep decoding version 1); regenerate with "+
			"GHSYNC_UPDATE_GOLDEN=1 go test -run TestGoldenV1 ./ledger/ only if the golden event itself was wrong.",
			goldenV1, payload, want)
	}
	if err := e.Seal(e.PrevHash); err != nil {
		t.Fatalf("Seal: %v", err)
	}
	if e.Hash != wantSum || ledger.HashOf(want) != wantSum {
		t.Errorf("golden hash: Seal gives %s, file says %s (regenerate only with GHSYNC_UPDATE_GOLDEN=1, see above)", e.Hash, wantSum)
	}
	if want[0] != ledger.FormatVersion || ledger.FormatVersion != 1 {
		t.Errorf("format byte %d, FormatVersion %d; want 1", want[0], ledger.FormatVersion)
	}

	// Decode the stored bytes, not our own encoding.
	got, err := ledger.Unmarshal(want)
	if err != nil {
		t.Fatalf("Unmarshal(golden): %v", err)
	}
	if !reflect.DeepEqual(got, e) {
		t.Errorf("Unmarshal(golden) =\n%#v\nwant\n%#v", got, e)
	}
	stored, err := ledger.DecodeStored(9, wantSum[:], want)
	if err != nil || !reflect.DeepEqual(stored, e) {
		t.Errorf("DecodeStored(golden) = %v, %v", stored, err)
	}

	// The format, as doc.go states it, built independently of Marshal.
	if spec := rawOf(t, e).bytes(); !bytes.Equal(spec, want) {
		t.Errorf("golden bytes differ from the documented layout:\nspec %x\nfile %x", spec, want)
	}
}

// Raw building blocks: a version-1 event written element by element with
// msgpack primitives, following the documented layout rather than Marshal,
// so tests can replace any element by a malformed one.

type rawEvent [12][]byte

func (r rawEvent) bytes() []byte {
	b := []byte{ledger.FormatVersion, 0x9c} // fixarray of 12
	for _, el := range r {
		b = append(b, el...)
	}
	return b
}

func mp(f func(w *msgpack.Encoder) error) []byte {
	var b bytes.Buffer
	if err := f(msgpack.NewEncoder(&b)); err != nil {
		panic(err)
	}
	return b.Bytes()
}

func mpUint(n uint64) []byte { return mp(func(w *msgpack.Encoder) error { return w.EncodeUint(n) }) }
func mpStr(s string) []byte  { return mp(func(w *msgpack.Encoder) error { return w.EncodeString(s) }) }
func mpBin(b []byte) []byte  { return mp(func(w *msgpack.Encoder) error { return w.EncodeBytes(b) }) }

func mpExt(id int8, payload []byte) []byte {
	return append(mp(func(w *msgpack.Encoder) error { return w.EncodeExtHeader(id, len(payload)) }), payload...)
}

type kv struct {
	k string
	v []byte
}

func mpMap(entries ...kv) []byte {
	b := mp(func(w *msgpack.Encoder) error { return w.EncodeMapLen(len(entries)) })
	for _, e := range entries {
		b = append(b, mpStr(e.k)...)
		b = append(b, e.v...)
	}
	return b
}

func rawRef(b []byte, r ledger.Ref) []byte {
	b = binary.AppendUvarint(b, uint64(len(r.Model)))
	b = append(b, r.Model...)
	b = binary.AppendUvarint(b, uint64(len(r.Key)))
	return append(b, r.Key...)
}

func rawValue(tb testing.TB, v ledger.Value) []byte {
	tb.Helper()
	switch v.Kind() {
	case ledger.KindNull:
		return []byte{0xc0}
	case ledger.KindBool:
		b, _ := v.AsBool()
		return mp(func(w *msgpack.Encoder) error { return w.EncodeBool(b) })
	case ledger.KindInt:
		n, _ := v.AsInt()
		return mp(func(w *msgpack.Encoder) error { return w.EncodeInt(n) })
	case ledger.KindString:
		s, _ := v.AsString()
		return mpStr(s)
	case ledger.KindBytes:
		b, _ := v.AsBytes()
		return mpBin(b)
	case ledger.KindDecimal:
		s, _ := v.AsDecimal()
		return mpExt(1, []byte(s))
	case ledger.KindDate:
		d, _ := v.AsDate()
		return mpExt(2, binary.BigEndian.AppendUint32(nil, uint32(int32(d.Unix()/86400))))
	case ledger.KindDateTime:
		d, _ := v.AsDateTime()
		return mpExt(3, binary.BigEndian.AppendUint64(nil, uint64(d.UnixMicro())))
	case ledger.KindRef:
		r, _ := v.AsRef()
		return mpExt(4, rawRef(nil, r))
	case ledger.KindRefSet:
		rs, _ := v.AsRefSet()
		var b []byte
		for _, r := range rs {
			b = rawRef(b, r)
		}
		return mpExt(5, b)
	}
	tb.Fatalf("rawValue: kind %v", v.Kind())
	return nil
}

func rawOf(tb testing.TB, e *ledger.Event) rawEvent {
	tb.Helper()
	var fields, base []kv
	for _, name := range slices.Sorted(maps.Keys(e.Fields)) {
		fields = append(fields, kv{name, rawValue(tb, e.Fields[name])})
	}
	for _, name := range slices.Sorted(maps.Keys(e.Base)) {
		base = append(base, kv{name, mpUint(uint64(e.Base[name]))})
	}
	return rawEvent{
		mpBin(e.ID[:]),
		mpUint(uint64(e.Origin)),
		mpUint(e.OriginSeq),
		mpUint(uint64(e.HLC)),
		mpStr(e.Model),
		mpStr(e.Key),
		mpUint(uint64(e.Op)),
		mpStr(e.User),
		mpUint(e.Tx),
		mpMap(fields...),
		mpMap(base...),
		mpBin(e.PrevHash[:]),
	}
}

// Element indexes in rawEvent.
const (
	elID = iota
	elOrigin
	elSeq
	elHLC
	elModel
	elKey
	elOp
	elUser
	elTx
	elFields
	elBase
	elPrev
)

// smallEvent is a valid event with few fields, for hand-built encodings.
func smallEvent(tb testing.TB) *ledger.Event {
	tb.Helper()
	e := goldenEvent(tb)
	e.Fields = map[string]ledger.Value{"name": ledger.String("Ana"), "weight": mustDecimal(tb, "71.5")}
	e.Base = map[string]clocks.Timestamp{"weight": 5}
	return e
}

type malformed struct {
	name string
	data []byte
	want error  // sentinel for errors.Is
	msg  string // part of the message, so the case fails for its own reason
}

// malformedEvents are encodings Unmarshal must refuse. Each differs from a
// valid encoding (checked to decode) in one place.
func malformedEvents(tb testing.TB) []malformed {
	tb.Helper()
	e := smallEvent(tb)
	base := rawOf(tb, e)
	with := func(i int, el []byte) []byte {
		r := base
		r[i] = el
		return r.bytes()
	}
	field := func(entries ...kv) []byte { return with(elFields, mpMap(entries...)) }
	weight := rawValue(tb, e.Fields["weight"])
	nameV := rawValue(tb, e.Fields["name"])
	valid := base.bytes()
	ext8 := func(id int8, payload []byte) []byte { // Ext8 even where a FixExt fits
		return append([]byte{0xc7, byte(len(payload)), byte(id)}, payload...)
	}
	u32 := func(code byte, n uint32) []byte { return binary.BigEndian.AppendUint32([]byte{code}, n) }

	return []malformed{
		{"empty", nil, ledger.ErrInvalidEvent, "empty"},
		{"format byte 0", append([]byte{0}, valid[1:]...), ledger.ErrUnknownFormat, "format byte 0"},
		{"format byte 2", append([]byte{2}, valid[1:]...), ledger.ErrUnknownFormat, "format byte 2"},
		{"format byte only", []byte{1}, ledger.ErrInvalidEvent, "EOF"},
		{"trailing byte", append(slices.Clone(valid), 0xc0), ledger.ErrInvalidEvent, "1 trailing bytes"},
		{"trailing event", append(slices.Clone(valid), valid[1:]...), ledger.ErrInvalidEvent, "trailing bytes"},
		{"truncated", valid[:len(valid)-1], ledger.ErrInvalidEvent, "prev_hash"},
		{"array of 11", append([]byte{1, 0x9b}, bytes.Join(base[:11], nil)...), ledger.ErrInvalidEvent, "11 elements"},
		{"array16 of 12", append([]byte{1, 0xdc, 0, 12}, valid[2:]...), ledger.ErrInvalidEvent, "not canonical"},
		{"not an array", append([]byte{1}, mpStr("event")...), ledger.ErrInvalidEvent, "array"},
		{"non-shortest origin", with(elOrigin, []byte{0xcd, 0x00, 0x07}), ledger.ErrInvalidEvent, "not canonical"},
		{"non-shortest seq", with(elSeq, []byte{0xcf, 0, 0, 0, 0, 0, 0, 0, 42}), ledger.ErrInvalidEvent, "not canonical"},
		{"negative origin", with(elOrigin, []byte{0xff}), ledger.ErrInvalidEvent, "want an unsigned integer"},
		{"signed seq", with(elSeq, []byte{0xd0, 42}), ledger.ErrInvalidEvent, "want an unsigned integer"},
		{"float hlc", with(elHLC, []byte{0xcb, 0, 0, 0, 0, 0, 0, 0, 0}), ledger.ErrInvalidEvent, "want an unsigned integer"},
		{"nil tx", with(elTx, []byte{0xc0}), ledger.ErrInvalidEvent, "want an unsigned integer"},
		{"origin 512", with(elOrigin, mpUint(512)), ledger.ErrInvalidEvent, "origin 512 outside"},
		{"origin 65535", with(elOrigin, mpUint(65535)), ledger.ErrInvalidEvent, "origin 65535 outside"},
		{"origin 2^32", with(elOrigin, mpUint(1<<32)), ledger.ErrInvalidEvent, "outside"},
		{"op 9", with(elOp, mpUint(9)), ledger.ErrInvalidEvent, "unknown op 9"},
		{"op 0", with(elOp, mpUint(0)), ledger.ErrInvalidEvent, "unknown op 0"},
		{"op 256", with(elOp, mpUint(256)), ledger.ErrInvalidEvent, "op 256 out of range"},
		{"seq 0", with(elSeq, mpUint(0)), ledger.ErrInvalidEvent, "origin_seq is 0"},
		{"hlc 0", with(elHLC, mpUint(0)), ledger.ErrInvalidEvent, "hlc is zero"},
		{"model Party", with(elModel, mpStr("Party")), ledger.ErrInvalidEvent, "lowercase letter"},
		{"model party-party", with(elModel, mpStr("party-party")), ledger.ErrInvalidEvent, "allowed"},
		{"model empty", with(elModel, mpStr("")), ledger.ErrInvalidEvent, "model name"},
		{"model as bin", with(elModel, mpBin([]byte("party.party"))), ledger.ErrInvalidEvent, "want a string"},
		{"key empty", with(elKey, mpStr("")), ledger.ErrInvalidEvent, "key must be"},
		{"key invalid UTF-8", with(elKey, mpStr("P\xff")), ledger.ErrInvalidEvent, "UTF-8"},
		{"user invalid UTF-8", with(elUser, mpStr("adm\xc3")), ledger.ErrInvalidEvent, "UTF-8"},
		{"user too long", with(elUser, mpStr(strings.Repeat("u", 257))), ledger.ErrInvalidEvent, "at most 256"},
		{"id as str", with(elID, mpStr(string(e.ID[:]))), ledger.ErrInvalidEvent, "want bytes"},
		{"id 15 bytes", with(elID, mpBin(e.ID[:15])), ledger.ErrInvalidEvent, "15 bytes, want 16"},
		{"id nil", with(elID, []byte{0xc0}), ledger.ErrInvalidEvent, "want bytes"},
		{"id 0 bytes", with(elID, mpBin([]byte{})), ledger.ErrInvalidEvent, "0 bytes, want 16"},
		{"id v4", with(elID, func() []byte { u := uuid.MustParse("6ba7b810-9dad-41d1-80b4-00c04fd430c8"); return mpBin(u[:]) }()), ledger.ErrInvalidEvent, "not a UUIDv7"},
		{"prev_hash as str", with(elPrev, mpStr(string(e.PrevHash[:]))), ledger.ErrInvalidEvent, "want bytes"},
		{"prev_hash 31 bytes", with(elPrev, mpBin(e.PrevHash[:31])), ledger.ErrInvalidEvent, "31 bytes, want 32"},
		{"prev_hash 33 bytes", with(elPrev, mpBin(append(e.PrevHash[:], 0))), ledger.ErrInvalidEvent, "33 bytes, want 32"},
		{"prev_hash bin16", with(elPrev, append([]byte{0xc5, 0, 32}, e.PrevHash[:]...)), ledger.ErrInvalidEvent, "not canonical"},
		{"seq 1 with prev_hash", with(elSeq, mpUint(1)), ledger.ErrInvalidEvent, "zero prev_hash"},

		{"fields unsorted", field(kv{"weight", weight}, kv{"name", nameV}), ledger.ErrInvalidEvent, "out of order"},
		{"field repeated", field(kv{"name", nameV}, kv{"name", nameV}), ledger.ErrInvalidEvent, "out of order or repeated"},
		{"fields nil", with(elFields, []byte{0xc0}), ledger.ErrInvalidEvent, "want a map"},
		{"fields map16", with(elFields, append([]byte{0xde, 0, 2}, base[elFields][1:]...)), ledger.ErrInvalidEvent, "not canonical"},
		{"field name Name", field(kv{"Name", nameV}, kv{"weight", weight}), ledger.ErrInvalidEvent, "field \"Name\""},
		{"field name 1a", field(kv{"1a", nameV}, kv{"weight", weight}), ledger.ErrInvalidEvent, "field \"1a\""},
		{"field name as int", with(elFields, append([]byte{0x81, 0x01}, nameV...)), ledger.ErrInvalidEvent, "want a string"},
		{"base unsorted", with(elBase, mpMap(kv{"weight", mpUint(1)}, kv{"name", mpUint(1)})), ledger.ErrInvalidEvent, "out of order"},
		{"base repeated", with(elBase, mpMap(kv{"weight", mpUint(1)}, kv{"weight", mpUint(1)})), ledger.ErrInvalidEvent, "out of order or repeated"},
		{"base unchanged field", with(elBase, mpMap(kv{"dob", mpUint(1)})), ledger.ErrInvalidEvent, "does not change"},
		{"base signed", with(elBase, mpMap(kv{"weight", []byte{0xff}})), ledger.ErrInvalidEvent, "want an unsigned integer"},
		{"write without fields", with(elFields, mpMap()), ledger.ErrInvalidEvent, "write changes no field"},

		{"str where bin expected", with(elID, mpStr(strings.Repeat("x", 16))), ledger.ErrInvalidEvent, "want bytes"},
		{"unknown ext 9", field(kv{"name", mpExt(9, []byte{0})}, kv{"weight", weight}), ledger.ErrInvalidEvent, "extension 9"},
		{"unknown ext -1 (msgpack timestamp)", field(kv{"name", mpExt(-1, make([]byte, 4))}, kv{"weight", weight}), ledger.ErrInvalidEvent, "extension -1"},
		{"float value", field(kv{"name", []byte{0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0}}, kv{"weight", weight}), ledger.ErrInvalidEvent, "unknown value code 0xcb"},
		{"array value", field(kv{"name", []byte{0x90}}, kv{"weight", weight}), ledger.ErrInvalidEvent, "unknown value code 0x90"},
		{"map value", field(kv{"name", []byte{0x80}}, kv{"weight", weight}), ledger.ErrInvalidEvent, "unknown value code 0x80"},
		{"reserved code 0xc1", field(kv{"name", []byte{0xc1}}, kv{"weight", weight}), ledger.ErrInvalidEvent, "0xc1"},
		{"int8 for a fixint", field(kv{"name", []byte{0xd0, 0x05}}, kv{"weight", weight}), ledger.ErrInvalidEvent, "not canonical"},
		{"int16 for an int8", field(kv{"name", []byte{0xd1, 0xff, 0x80}}, kv{"weight", weight}), ledger.ErrInvalidEvent, "not canonical"},
		{"uint64 over int64", field(kv{"name", append([]byte{0xcf}, binary.BigEndian.AppendUint64(nil, 1<<63)...)}, kv{"weight", weight}), ledger.ErrInvalidEvent, "overflows int64"},
		{"str8 for a fixstr", field(kv{"name", []byte{0xd9, 3, 'A', 'n', 'a'}}, kv{"weight", weight}), ledger.ErrInvalidEvent, "not canonical"},
		{"date 3 bytes", field(kv{"name", ext8(2, []byte{0, 0, 1})}, kv{"weight", weight}), ledger.ErrInvalidEvent, "date: 3 bytes, want 4"},
		{"date 8 bytes", field(kv{"name", mpExt(2, make([]byte, 8))}, kv{"weight", weight}), ledger.ErrInvalidEvent, "date: 8 bytes, want 4"},
		{"date in ext8", field(kv{"name", ext8(2, []byte{0, 0, 1, 0})}, kv{"weight", weight}), ledger.ErrInvalidEvent, "not canonical"},
		{"date year 10000", field(kv{"name", mpExt(2, binary.BigEndian.AppendUint32(nil, 2932897))}, kv{"weight", weight}), ledger.ErrInvalidEvent, "date outside"},
		{"datetime 4 bytes", field(kv{"name", mpExt(3, make([]byte, 4))}, kv{"weight", weight}), ledger.ErrInvalidEvent, "datetime: 4 bytes, want 8"},
		{"datetime year 0", field(kv{"name", mpExt(3, binary.BigEndian.AppendUint64(nil, 1<<63))}, kv{"weight", weight}), ledger.ErrInvalidEvent, "datetime outside"},
		{"decimal not canonical", field(kv{"name", mpExt(1, []byte("07.50"))}, kv{"weight", weight}), ledger.ErrInvalidEvent, "decimal not canonical"},
		{"decimal -0", field(kv{"name", mpExt(1, []byte("-0"))}, kv{"weight", weight}), ledger.ErrInvalidEvent, "decimal not canonical"},
		{"decimal empty", field(kv{"name", ext8(1, nil)}, kv{"weight", weight}), ledger.ErrInvalidEvent, "decimal not canonical"},
		{"decimal NaN", field(kv{"name", mpExt(1, []byte("NaN"))}, kv{"weight", weight}), ledger.ErrInvalidEvent, "decimal not canonical"},
		{"ref life 0", field(kv{"name", mpExt(4, append(rawRef(nil, ledger.Ref{Model: "a", Key: "b"}), 0))}, kv{"weight", weight}), ledger.ErrInvalidEvent, "ref: bad life"},
		{"ref life overlong", field(kv{"name", mpExt(4, append(rawRef(nil, ledger.Ref{Model: "a", Key: "b"}), 0x81, 0))}, kv{"weight", weight}), ledger.ErrInvalidEvent, "ref: bad life"},
		{"ref trailing bytes", field(kv{"name", mpExt(4, append(rawRef(nil, ledger.Ref{Model: "a", Key: "b"}), 7, 1, 1))}, kv{"weight", weight}), ledger.ErrInvalidEvent, "ref: trailing bytes"},
		{"ref lender life 0", field(kv{"name", mpExt(4, append(rawRef(nil, ledger.Ref{Model: "a", Key: "b"}), 7, 0))}, kv{"weight", weight}), ledger.ErrInvalidEvent, "ref: bad lender life (0)"},
		{"ref lender life overlong", field(kv{"name", mpExt(4, append(rawRef(nil, ledger.Ref{Model: "a", Key: "b"}), 0, 0x81, 0))}, kv{"weight", weight}), ledger.ErrInvalidEvent, "ref: bad life"},
		{"ref length past end", field(kv{"name", mpExt(4, []byte{5, 'a', 1, 'b'})}, kv{"weight", weight}), ledger.ErrInvalidEvent, "ref: bad length"},
		{"ref huge varint", field(kv{"name", mpExt(4, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})}, kv{"weight", weight}), ledger.ErrInvalidEvent, "ref: bad length"},
		{"ref bad model", field(kv{"name", mpExt(4, rawRef(nil, ledger.Ref{Model: "A", Key: "b"}))}, kv{"weight", weight}), ledger.ErrInvalidEvent, "reference"},
		{"ref empty key", field(kv{"name", mpExt(4, rawRef(nil, ledger.Ref{Model: "a", Key: ""}))}, kv{"weight", weight}), ledger.ErrInvalidEvent, "key must be"},
		{"refset unsorted", field(kv{"name", mpExt(5, rawRef(rawRef(nil, ledger.Ref{Model: "b", Key: "1"}), ledger.Ref{Model: "a", Key: "1"}))}, kv{"weight", weight}), ledger.ErrInvalidEvent, "not sorted"},
		{"refset duplicate", field(kv{"name", mpExt(5, rawRef(rawRef(nil, ledger.Ref{Model: "a", Key: "1"}), ledger.Ref{Model: "a", Key: "1"}))}, kv{"weight", weight}), ledger.ErrInvalidEvent, "duplicates"},
		{"refset truncated", field(kv{"name", mpExt(5, rawRef(nil, ledger.Ref{Model: "a", Key: "1"})[:3])}, kv{"weight", weight}), ledger.ErrInvalidEvent, "ref: bad length"},

		{"model str32 past end", with(elModel, u32(0xdb, math.MaxUint32)), ledger.ErrInvalidEvent, "declared length"},
		{"key str16 past end", with(elKey, []byte{0xda, 0xff, 0xff, 'a'}), ledger.ErrInvalidEvent, "declared length"},
		{"user str8 past end", append(append(slices.Clone(valid[:len(valid)-len(bytes.Join(base[elUser:], nil))]), 0xd9, 200), 'a'), ledger.ErrInvalidEvent, "declared length"},
		{"value str32 past end", field(kv{"name", u32(0xdb, 1<<31)}), ledger.ErrInvalidEvent, "declared length"},
		{"value bin32 past end", field(kv{"name", u32(0xc6, math.MaxUint32)}), ledger.ErrInvalidEvent, "declared length"},
		{"value ext32 past end", field(kv{"name", append(u32(0xc9, math.MaxUint32), 1)}), ledger.ErrInvalidEvent, "declares"},
		{"fields map32 past end", with(elFields, u32(0xdf, math.MaxUint32)), ledger.ErrInvalidEvent, "entries in"},
		{"id bin32 past end", with(elID, u32(0xc6, math.MaxUint32)), ledger.ErrInvalidEvent, "id: declared length"},
		{"prev_hash bin32 past end", with(elPrev, u32(0xc6, math.MaxUint32)), ledger.ErrInvalidEvent, "prev_hash: declared length"},
		{"prev_hash bin16 past end", with(elPrev, []byte{0xc5, 0xff, 0xff}), ledger.ErrInvalidEvent, "prev_hash: declared length"},
		{"array32 huge", append([]byte{1}, u32(0xdd, math.MaxUint32)...), ledger.ErrInvalidEvent, "elements"},
	}
}

func TestUnmarshalRejects(t *testing.T) {
	e := smallEvent(t)
	valid := rawOf(t, e).bytes()
	if err := e.Seal(e.PrevHash); err != nil {
		t.Fatal(err)
	}
	got, err := ledger.Unmarshal(valid)
	if err != nil {
		t.Fatalf("control: the unmodified hand-built encoding does not decode: %v", err)
	}
	if !reflect.DeepEqual(got, e) || !bytes.Equal(valid, mustMarshal(t, e)) {
		t.Fatalf("control: hand-built encoding decodes to %v, want %v", got, e)
	}
	for _, tt := range malformedEvents(t) {
		t.Run(tt.name, func(t *testing.T) {
			if bytes.Equal(tt.data, valid) {
				t.Fatal("case is not malformed")
			}
			got, err := ledger.Unmarshal(tt.data)
			if err == nil {
				t.Fatalf("Unmarshal(%x) = %v, want an error", tt.data, got)
			}
			if got != nil {
				t.Errorf("Unmarshal failed but returned an event")
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("error %q does not wrap %q", err, tt.want)
			}
			if tt.want == ledger.ErrUnknownFormat && errors.Is(err, ledger.ErrInvalidEvent) {
				t.Errorf("unknown format %q also reported as invalid", err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not mention %q", err, tt.msg)
			}
		})
	}
}

// roundTrip checks that e (sealed) encodes and decodes back to itself.
func roundTrip(t *testing.T, e *ledger.Event) {
	t.Helper()
	data := mustMarshal(t, e)
	got, err := ledger.Unmarshal(data)
	if err != nil {
		t.Fatalf("Unmarshal(Marshal(%v)): %v", e, err)
	}
	if want := normalize(e); !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip changed the event:\n got %#v\nwant %#v", got, want)
	}
	if got.Hash != ledger.HashOf(data) {
		t.Fatalf("Unmarshal set Hash %s, want %s", got.Hash, ledger.HashOf(data))
	}
	if again := mustMarshal(t, got); !bytes.Equal(again, data) {
		t.Fatalf("re-encoding differs:\n%x\n%x", again, data)
	}
}

func TestRoundTrip(t *testing.T) {
	rng := ledgertest.Rand(t)
	o := ledgertest.NewOrigin(uint16(rng.IntN(ledger.MaxOrigin + 1)))
	events := o.Patients(t, rng, 50)
	events = append(events,
		o.Event(t, "gnuhealth.patient", "JM-1", ledger.OpCreate, nil),
		o.Event(t, "gnuhealth.patient", "JM-1", ledger.OpDelete, nil),
		o.Event(t, "party.party", "ü/%-", ledger.OpCreate, map[string]ledger.Value{"a": ledger.Null()}),
	)
	for _, e := range events {
		roundTrip(t, e)
	}
	g := goldenEvent(t)
	if err := g.Seal(g.PrevHash); err != nil {
		t.Fatal(err)
	}
	roundTrip(t, g)
}

// TestRoundTripWidths covers every msgpack width each element can take.
func TestRoundTripWidths(t *testing.T) {
	var fields = map[string]ledger.Value{}
	ints := []int64{0, 1, 127, 128, 255, 256, 65535, 65536, math.MaxUint32, math.MaxUint32 + 1, math.MaxInt64,
		-1, -32, -33, -128, -129, -32768, -32769, math.MinInt32, math.MinInt32 - 1, math.MinInt64}
	for i, n := range ints {
		fields[fmt.Sprintf("i%d", i)] = ledger.Int(n)
	}
	for i, n := range []int{0, 1, 31, 32, 255, 256, 65535, 65536} {
		fields[fmt.Sprintf("s%d", i)] = ledger.String(strings.Repeat("é", n/2) + strings.Repeat("x", n%2))
		fields[fmt.Sprintf("b%d", i)] = ledger.Bytes(bytes.Repeat([]byte{0xa5}, n))
	}
	// Decimal texts of 1, 2, 3, 4, 8, 16, 17 and 300 bytes: every fixext, ext8, ext16.
	for i, d := range []string{"1", "-1", "1.5", "12.5", "-1234.25", "1234567890.12345", "12345678901234567", strings.Repeat("7", 300)} {
		fields[fmt.Sprintf("d%d", i)] = mustDecimal(t, d)
	}
	refs := make([]ledger.Ref, 3000) // a refset over 64 KiB (27 bytes a ref): ext32
	for i := range refs {
		refs[i] = ledger.Ref{Model: "party.party", Key: fmt.Sprintf("PARTY-%08d", i)}
	}
	fields["many"] = mustRefSet(t, refs...)
	fields["first_day"] = mustDate(t, 1, 1, 1)
	fields["last_day"] = mustDate(t, 9999, 12, 31)
	fields["epoch"] = mustDate(t, 1970, 1, 1)
	fields["first_instant"] = mustDateTime(t, time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC))
	fields["last_instant"] = mustDateTime(t, time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC))
	fields["long_ref"] = mustRef(t, strings.Repeat("m", 128), strings.Repeat("k", 1024))
	for i, saw := range []clocks.Timestamp{1, 1 << 7, math.MaxUint64} { // a ref naming a life
		v, err := ledger.RefValue(ledger.Ref{Model: "party.party", Key: "P-1", Saw: saw})
		if err != nil {
			t.Fatal(err)
		}
		fields[fmt.Sprintf("life%d", i)] = v
	}
	for i, r := range []ledger.Ref{{Lender: 1}, {Saw: 3, Lender: math.MaxUint64}} { // a ref naming its target's lender life
		r.Model, r.Key = "gnuhealth.patient", "P-1"
		v, err := ledger.RefValue(r)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := v.AsRef(); got != r {
			t.Fatalf("RefValue(%v).AsRef() = %v", r, got)
		}
		fields[fmt.Sprintf("lender%d", i)] = v
	}

	for _, tt := range []struct {
		origin   uint16
		seq, tx  uint64
		hlc      clocks.Timestamp
		user     string
		longName bool
	}{
		{0, 1, 0, 1, "", false},
		{ledger.MaxOrigin, math.MaxUint64, math.MaxUint64, math.MaxUint64, strings.Repeat("ü", 128), true},
		{200, 1 << 32, 1 << 16, 1 << 40, strings.Repeat("u", 40), false},
	} {
		e := goldenEvent(t)
		e.Origin, e.OriginSeq, e.Tx, e.HLC, e.User = tt.origin, tt.seq, tt.tx, tt.hlc, tt.user
		e.Fields = maps.Clone(fields)
		e.Base = map[string]clocks.Timestamp{"i0": math.MaxUint64, "i1": 1, "i2": 1 << 20}
		if tt.longName {
			e.Fields[strings.Repeat("f", 128)] = ledger.Int(1)
			e.Model = strings.Repeat("m", 128)
			e.Key = strings.Repeat("k", 1024)
		}
		prev := e.PrevHash
		if tt.seq == 1 {
			prev = ledger.Hash{}
		}
		if err := e.Seal(prev); err != nil {
			t.Fatal(err)
		}
		roundTrip(t, e)
	}
}

// TestMarshalCanonical: the bytes depend on the event only, never on map
// insertion order or on which pooled encoder ran.
func TestMarshalCanonical(t *testing.T) {
	rng := ledgertest.Rand(t)
	g := goldenEvent(t)
	want := mustMarshal(t, g)
	names := slices.Collect(maps.Keys(g.Fields))
	for range 50 {
		rng.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
		e := *g
		e.Fields = make(map[string]ledger.Value)
		e.Base = make(map[string]clocks.Timestamp)
		for _, n := range names {
			e.Fields[n] = g.Fields[n]
			if ts, ok := g.Base[n]; ok {
				e.Base[n] = ts
			}
		}
		if got := mustMarshal(t, &e); !bytes.Equal(got, want) {
			t.Fatalf("insertion order %v changes the encoding", names)
		}
	}
	// RefSet order and duplicates, and Decimal spelling, do not reach the bytes.
	a, b := *g, *g
	a.Fields, b.Fields = maps.Clone(g.Fields), maps.Clone(g.Fields)
	x, y := ledger.Ref{Model: "a", Key: "1"}, ledger.Ref{Model: "b", Key: "2"}
	a.Fields["categories"], b.Fields["categories"] = mustRefSet(t, x, y), mustRefSet(t, y, x, y)
	a.Fields["weight"], b.Fields["weight"] = mustDecimal(t, "71.5"), mustDecimal(t, "+071.500")
	if !bytes.Equal(mustMarshal(t, &a), mustMarshal(t, &b)) {
		t.Error("equal values encode differently")
	}
	// Marshal returns a fresh slice each time.
	p := mustMarshal(t, g)
	p[1] ^= 0xff
	if !bytes.Equal(mustMarshal(t, g), want) {
		t.Error("changing a returned encoding changed a later one")
	}
}

func TestMarshalConcurrent(t *testing.T) {
	g := goldenEvent(t)
	want := mustMarshal(t, g)
	done := make(chan error)
	for range 8 {
		go func() {
			for range 200 {
				b, err := ledger.Marshal(g)
				if err != nil || !bytes.Equal(b, want) {
					done <- fmt.Errorf("Marshal = %x, %v", b, err)
					return
				}
				if _, err := ledger.Unmarshal(b); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

func TestDecodeStored(t *testing.T) {
	e := goldenEvent(t)
	if err := e.Seal(e.PrevHash); err != nil {
		t.Fatal(err)
	}
	payload := mustMarshal(t, e)

	got, err := ledger.DecodeStored(17, e.Hash[:], payload)
	if err != nil {
		t.Fatalf("DecodeStored: %v", err)
	}
	if !reflect.DeepEqual(got, e) {
		t.Errorf("DecodeStored = %v, want %v", got, e)
	}

	// A flipped byte inside the user name still decodes, so the error can
	// name the event as well as its position.
	at := bytes.Index(payload, []byte("admin"))
	for _, tt := range []struct {
		name     string
		pos      uint64
		hash     []byte
		payload  []byte
		wantID   bool
		wantAlso error
	}{
		{"flipped user byte", 17, e.Hash[:], flip(payload, at), true, nil},
		{"flipped first byte", 18, e.Hash[:], flip(payload, 0), false, nil},
		{"flipped last byte", 19, e.Hash[:], flip(payload, len(payload)-1), true, nil},
		{"truncated", 20, e.Hash[:], payload[:len(payload)-1], false, nil},
		{"hash of other bytes", 21, make([]byte, 32), payload, true, nil},
		{"short hash", 22, e.Hash[:31], payload, false, nil},
		{"long hash", 23, append(e.Hash[:], 0), payload, false, nil},
		{"nil hash", 24, nil, payload, false, nil},
		{"hash matches, bytes do not decode", 25, hashOf([]byte{1, 0xc0}), []byte{1, 0xc0}, false, ledger.ErrInvalidEvent},
		{"hash matches, unknown format", 26, hashOf([]byte{2}), []byte{2}, false, ledger.ErrUnknownFormat},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ledger.DecodeStored(tt.pos, tt.hash, tt.payload)
			if err == nil {
				t.Fatalf("DecodeStored = %v, want ErrCorrupt", got)
			}
			if !errors.Is(err, ledger.ErrCorrupt) {
				t.Errorf("error %q does not wrap ErrCorrupt", err)
			}
			if tt.wantAlso != nil && !errors.Is(err, tt.wantAlso) {
				t.Errorf("error %q does not wrap %q", err, tt.wantAlso)
			}
			var ee *ledger.EventError
			if !errors.As(err, &ee) {
				t.Fatalf("error %q is not an *EventError", err)
			}
			if ee.Position != tt.pos || !strings.Contains(err.Error(), fmt.Sprintf("at position %d", tt.pos)) {
				t.Errorf("EventError position %d (%q), want %d", ee.Position, err, tt.pos)
			}
			if tt.wantID && (ee.ID != e.ID || ee.Origin != e.Origin || ee.OriginSeq != e.OriginSeq) {
				t.Errorf("EventError names %s o%d#%d, want %s o%d#%d", ee.ID, ee.Origin, ee.OriginSeq, e.ID, e.Origin, e.OriginSeq)
			}
		})
	}
}

func flip(b []byte, i int) []byte {
	c := slices.Clone(b)
	c[i] ^= 0x01
	return c
}

func hashOf(b []byte) []byte {
	h := ledger.HashOf(b)
	return h[:]
}

// TestUnmarshalBoundedAllocation: a declared length is never trusted for an
// allocation. A few bytes claiming a 4 GiB id or prev_hash once made
// Unmarshal allocate 4 GiB, letting any peer exhaust a server's memory.
func TestUnmarshalBoundedAllocation(t *testing.T) {
	const limit = 1 << 20
	for _, tt := range malformedEvents(t) {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, _ = ledger.Unmarshal(tt.data)
		runtime.ReadMemStats(&after)
		if n := after.TotalAlloc - before.TotalAlloc; n > limit {
			t.Errorf("%s: Unmarshal of %d bytes allocated %d bytes", tt.name, len(tt.data), n)
		}
	}
}

// PeekOrigin reads every origin's encoding (fixint, uint8, uint16) as a
// full decode does, and refuses what is not an event's prefix.
func TestPeekOrigin(t *testing.T) {
	for _, id := range []uint16{0, 1, 127, 128, 255, 256, 511} {
		e := ledgertest.NewOrigin(id).Event(t, "party.party", "P-1", ledger.OpCreate, map[string]ledger.Value{"name": ledger.String("Ana")})
		data, err := ledger.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		if o, err := ledger.PeekOrigin(data); err != nil || o != id {
			t.Fatalf("origin %d: peeked %d, %v", id, o, err)
		}
		for _, bad := range [][]byte{nil, data[:20], append([]byte{2}, data[1:]...)} {
			if o, err := ledger.PeekOrigin(bad); err == nil {
				t.Fatalf("origin %d: peeked %d from %x", id, o, bad)
			}
		}
	}
}
