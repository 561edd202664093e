package ledger_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/ghsync/ghsync/clocks"
	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/ledger/ledgertest"
)

// validEvent is an unsealed event that passes Validate.
func validEvent(tb testing.TB) *ledger.Event {
	tb.Helper()
	return &ledger.Event{
		ID:        uuid.Must(uuid.NewV7()),
		Origin:    3,
		OriginSeq: 2,
		HLC:       clocks.New(1_764_000_000_000, 0),
		Model:     "gnuhealth.patient",
		Key:       "PAT-1",
		Op:        ledger.OpWrite,
		Fields:    map[string]ledger.Value{"name": ledger.String("Ana"), "weight": mustDecimal(tb, "70")},
		Base:      map[string]clocks.Timestamp{"weight": 7},
		User:      "admin",
		Tx:        9,
		PrevHash:  ledger.Hash{1},
	}
}

func TestValidate(t *testing.T) {
	if err := validEvent(t).Validate(); err != nil {
		t.Fatalf("control: %v", err)
	}
	v4 := uuid.Must(uuid.NewRandom())
	var ncs uuid.UUID // version 7, but not the RFC 4122 variant
	ncs = uuid.Must(uuid.NewV7())
	ncs[8] &= 0x3f
	tests := []struct {
		name   string
		mutate func(e *ledger.Event)
		msg    string
	}{
		{"nil id", func(e *ledger.Event) { e.ID = uuid.Nil }, "id is nil"},
		{"v4 id", func(e *ledger.Event) { e.ID = v4 }, "not a UUIDv7"},
		{"v7 id, wrong variant", func(e *ledger.Event) { e.ID = ncs }, "not a UUIDv7"},
		{"origin 512", func(e *ledger.Event) { e.Origin = 512 }, "origin 512 outside 0..511"},
		{"origin 65535", func(e *ledger.Event) { e.Origin = 65535 }, "outside"},
		{"seq 0", func(e *ledger.Event) { e.OriginSeq = 0 }, "origin_seq is 0"},
		{"zero hlc", func(e *ledger.Event) { e.HLC = 0 }, "hlc is zero"},
		{"seq 1 with prev", func(e *ledger.Event) { e.OriginSeq = 1 }, "zero prev_hash"},
		{"write without fields", func(e *ledger.Event) { e.Fields, e.Base = nil, nil }, "write changes no field"},
		{"write with empty fields", func(e *ledger.Event) { e.Fields, e.Base = map[string]ledger.Value{}, nil }, "write changes no field"},
		{"delete with fields", func(e *ledger.Event) { e.Op, e.Base = ledger.OpDelete, nil }, "delete carries field name (a delete carries at most _saw, _renamed_to and _lender)"},
		{"delete with base", func(e *ledger.Event) { e.Op, e.Fields = ledger.OpDelete, nil }, "delete carries base clocks"},
		{"delete with _saw and another field", func(e *ledger.Event) {
			e.Op, e.Base, e.Fields = ledger.OpDelete, nil, map[string]ledger.Value{ledger.Saw: ledger.Int(7), "name": ledger.Null()}
		}, "delete carries field name"},
		{"delete with _saw and its base", func(e *ledger.Event) {
			e.Op, e.Fields, e.Base = ledger.OpDelete, map[string]ledger.Value{ledger.Saw: ledger.Int(7)}, map[string]clocks.Timestamp{ledger.Saw: 1}
		}, "delete carries base clocks"},
		{"op 0", func(e *ledger.Event) { e.Op = 0 }, "unknown op 0"},
		{"op 9", func(e *ledger.Event) { e.Op = 9 }, "unknown op 9"},
		{"base names unchanged field", func(e *ledger.Event) { e.Base["dob"] = 1 }, "base names field dob"},
		{"field Name", func(e *ledger.Event) { e.Fields["Name"] = ledger.Null() }, `field "Name"`},
		{"field 1a", func(e *ledger.Event) { e.Fields["1a"] = ledger.Null() }, `field "1a"`},
		{"field a-b", func(e *ledger.Event) { e.Fields["a-b"] = ledger.Null() }, `field "a-b"`},
		{"field a.b", func(e *ledger.Event) { e.Fields["a.b"] = ledger.Null() }, `field "a.b"`},
		{"field empty", func(e *ledger.Event) { e.Fields[""] = ledger.Null() }, "field name must be"},
		{"field too long", func(e *ledger.Event) { e.Fields[strings.Repeat("f", 129)] = ledger.Null() }, "field name must be"},
		{"field ü", func(e *ledger.Event) { e.Fields["ü"] = ledger.Null() }, "field"},
		{"model Party", func(e *ledger.Event) { e.Model = "Party" }, "lowercase letter"},
		{"model party-party", func(e *ledger.Event) { e.Model = "party-party" }, "'-'"},
		{"model empty", func(e *ledger.Event) { e.Model = "" }, "model name must be"},
		{"model 1party", func(e *ledger.Event) { e.Model = "1party" }, "lowercase letter"},
		{"model too long", func(e *ledger.Event) { e.Model = strings.Repeat("m", 129) }, "model name must be"},
		{"key empty", func(e *ledger.Event) { e.Key = "" }, "key must be"},
		{"key too long", func(e *ledger.Event) { e.Key = strings.Repeat("k", 1025) }, "key must be"},
		{"key invalid UTF-8", func(e *ledger.Event) { e.Key = "\xc3" }, "UTF-8"},
		{"user invalid UTF-8", func(e *ledger.Event) { e.User = "adm\xffin" }, "UTF-8"},
		{"user too long", func(e *ledger.Event) { e.User = strings.Repeat("u", 257) }, "at most 256"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := validEvent(t)
			tt.mutate(e)
			err := e.Validate()
			if err == nil {
				t.Fatal("Validate succeeded")
			}
			if !errors.Is(err, ledger.ErrInvalidEvent) {
				t.Errorf("error %q does not wrap ErrInvalidEvent", err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not mention %q", err, tt.msg)
			}
			// Seal refuses it too, naming the event.
			err = e.Seal(e.PrevHash)
			var ee *ledger.EventError
			if !errors.Is(err, ledger.ErrInvalidEvent) || !errors.As(err, &ee) || ee.ID != e.ID {
				t.Errorf("Seal: %v, want an *EventError wrapping ErrInvalidEvent", err)
			}
			if e.Hash != (ledger.Hash{}) {
				t.Error("Seal of an invalid event set its hash")
			}
		})
	}

	// Edges that are valid.
	for _, tt := range []struct {
		name   string
		mutate func(e *ledger.Event)
	}{
		{"origin 0", func(e *ledger.Event) { e.Origin = 0 }},
		{"origin 511", func(e *ledger.Event) { e.Origin = ledger.MaxOrigin }},
		{"seq 1, zero prev", func(e *ledger.Event) { e.OriginSeq, e.PrevHash = 1, ledger.Hash{} }},
		{"seq 2, zero prev", func(e *ledger.Event) { e.PrevHash = ledger.Hash{} }}, // the chain is the store's check
		{"create without fields", func(e *ledger.Event) { e.Op, e.Fields, e.Base = ledger.OpCreate, nil, nil }},
		{"delete", func(e *ledger.Event) { e.Op, e.Fields, e.Base = ledger.OpDelete, nil, nil }},
		{"delete naming the delete its writer saw", func(e *ledger.Event) {
			e.Op, e.Fields, e.Base = ledger.OpDelete, map[string]ledger.Value{ledger.Saw: ledger.Int(7)}, nil
		}},
		{"delete half of a key change", func(e *ledger.Event) {
			e.Op, e.Fields, e.Base = ledger.OpDelete, map[string]ledger.Value{ledger.Saw: ledger.Int(7), ledger.RenamedTo: ledger.String("A-2")}, nil
		}},
		{"empty user", func(e *ledger.Event) { e.User = "" }},
		{"user of 256 bytes", func(e *ledger.Event) { e.User = strings.Repeat("u", 256) }},
		{"field _x9", func(e *ledger.Event) { e.Fields["_x9"] = ledger.Null() }},
		{"field of 128 bytes", func(e *ledger.Event) { e.Fields[strings.Repeat("f", 128)] = ledger.Null() }},
		{"model a", func(e *ledger.Event) { e.Model = "a" }},
		{"model of 128 bytes", func(e *ledger.Event) { e.Model = strings.Repeat("m", 128) }},
		{"key of any UTF-8", func(e *ledger.Event) { e.Key = "ü/%- \x00" }},
		{"key of 1024 bytes", func(e *ledger.Event) { e.Key = strings.Repeat("k", 1024) }},
	} {
		e := validEvent(t)
		tt.mutate(e)
		if err := e.Validate(); err != nil {
			t.Errorf("%s: %v", tt.name, err)
		}
	}
}

// TestSealDetectsChange: after Seal, any change to any covered field is
// ErrHashMismatch when the event is prepared for a store.
func TestSealDetectsChange(t *testing.T) {
	seal := func(t *testing.T) *ledger.Event {
		e := validEvent(t)
		if err := e.Seal(ledger.Hash{7}); err != nil {
			t.Fatal(err)
		}
		if e.PrevHash != (ledger.Hash{7}) || e.Hash.IsZero() {
			t.Fatalf("Seal set prev %s, hash %s", e.PrevHash, e.Hash)
		}
		if _, err := ledger.Prepare([]*ledger.Event{e}); err != nil {
			t.Fatalf("control: Prepare of a sealed event: %v", err)
		}
		return e
	}
	for _, tt := range []struct {
		name   string
		mutate func(e *ledger.Event)
	}{
		{"id", func(e *ledger.Event) { e.ID = uuid.Must(uuid.NewV7()) }},
		{"origin", func(e *ledger.Event) { e.Origin++ }},
		{"origin_seq", func(e *ledger.Event) { e.OriginSeq++ }},
		{"hlc", func(e *ledger.Event) { e.HLC++ }},
		{"model", func(e *ledger.Event) { e.Model = "gnuhealth.patient2" }},
		{"key", func(e *ledger.Event) { e.Key = "PAT-2" }},
		{"op", func(e *ledger.Event) { e.Op = ledger.OpCreate }},
		{"user", func(e *ledger.Event) { e.User = "mallory" }},
		{"tx", func(e *ledger.Event) { e.Tx++ }},
		{"field value", func(e *ledger.Event) { e.Fields["weight"] = mustDecimal(t, "70.1") }},
		{"field kind", func(e *ledger.Event) { e.Fields["weight"] = ledger.Int(70) }},
		{"field added", func(e *ledger.Event) { e.Fields["dob"] = ledger.Null() }},
		{"field removed", func(e *ledger.Event) { delete(e.Fields, "name") }},
		{"base value", func(e *ledger.Event) { e.Base["weight"] = 8 }},
		{"base added", func(e *ledger.Event) { e.Base["name"] = 0 }},
		{"base removed", func(e *ledger.Event) { delete(e.Base, "weight") }},
		{"prev_hash", func(e *ledger.Event) { e.PrevHash[31] ^= 1 }},
		{"hash", func(e *ledger.Event) { e.Hash[0] ^= 1 }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := seal(t)
			tt.mutate(e)
			_, err := ledger.Prepare([]*ledger.Event{e})
			if !errors.Is(err, ledger.ErrHashMismatch) {
				t.Fatalf("Prepare after changing %s: %v, want ErrHashMismatch", tt.name, err)
			}
			var ee *ledger.EventError
			if !errors.As(err, &ee) || ee.ID != e.ID || ee.OriginSeq != e.OriginSeq {
				t.Errorf("error %v does not name the event", err)
			}
			// Sealing again makes it acceptable: the new content has a new hash.
			if err := e.Seal(e.PrevHash); err != nil {
				t.Fatal(err)
			}
			if _, err := ledger.Prepare([]*ledger.Event{e}); err != nil {
				t.Errorf("Prepare after resealing: %v", err)
			}
		})
	}

	unsealed := validEvent(t)
	if _, err := ledger.Prepare([]*ledger.Event{unsealed}); !errors.Is(err, ledger.ErrInvalidEvent) || !strings.Contains(err.Error(), "not sealed") {
		t.Errorf("Prepare of an unsealed event: %v, want ErrInvalidEvent (not sealed)", err)
	}
}

func TestSealIsHashOfMarshal(t *testing.T) {
	e := validEvent(t)
	if err := e.Seal(ledger.Hash{3}); err != nil {
		t.Fatal(err)
	}
	if want := ledger.HashOf(mustMarshal(t, e)); e.Hash != want {
		t.Errorf("Seal hash %s, HashOf(Marshal) %s", e.Hash, want)
	}
	// Hash is not covered by itself: sealing twice gives the same hash.
	h := e.Hash
	if err := e.Seal(ledger.Hash{3}); err != nil || e.Hash != h {
		t.Errorf("resealing changed the hash: %s -> %s (%v)", h, e.Hash, err)
	}
}

func TestEventCompare(t *testing.T) {
	id := func(b byte) uuid.UUID {
		u := uuid.Must(uuid.Parse("01937a4b-5c6d-7e8f-9a0b-1c2d3e4f5a00"))
		u[15] = b
		return u
	}
	ev := func(hlc clocks.Timestamp, origin uint16, idb byte) *ledger.Event {
		return &ledger.Event{HLC: hlc, Origin: origin, ID: id(idb)}
	}
	// Ascending.
	order := []*ledger.Event{
		ev(clocks.New(1000, 0), 9, 9),
		ev(clocks.New(1000, 1), 0, 0),
		ev(clocks.New(1000, 1), 1, 0),
		ev(clocks.New(1000, 1), 1, 1),
		ev(clocks.New(1000, 1), 2, 0),
		ev(clocks.New(1001, 0), 0, 0),
	}
	for i, a := range order {
		for j, b := range order {
			if got := a.Compare(b); got != cmpInts(i, j) {
				t.Errorf("Compare(#%d, #%d) = %d, want %d", i, j, got, cmpInts(i, j))
			}
		}
	}
	// The order does not depend on a random source: it is total on
	// distinct events, so every replica picks the same winner.
	rng := ledgertest.Rand(t)
	events := ledgertest.NewOrigin(1).Patients(t, rng, 20)
	events = append(events, ledgertest.NewOrigin(2).Patients(t, rng, 20)...)
	for _, a := range events {
		for _, b := range events {
			if (a.Compare(b) == 0) != (a == b) || a.Compare(b) != -b.Compare(a) {
				t.Fatalf("Compare is not a total order on %v and %v", a, b)
			}
		}
	}
}

func TestOp(t *testing.T) {
	for _, tt := range []struct {
		op   ledger.Op
		name string
	}{
		{ledger.OpCreate, "create"},
		{ledger.OpWrite, "write"},
		{ledger.OpDelete, "delete"},
	} {
		if got := tt.op.String(); got != tt.name {
			t.Errorf("Op(%d).String() = %q, want %q", tt.op, got, tt.name)
		}
		if got, err := ledger.ParseOp(tt.name); err != nil || got != tt.op {
			t.Errorf("ParseOp(%q) = %v, %v", tt.name, got, err)
		}
	}
	if got := ledger.Op(9).String(); got != "op(9)" {
		t.Errorf("Op(9).String() = %q", got)
	}
	for _, bad := range []string{"", "Create", "CREATE", "update", "op(1)", "1", " write"} {
		if got, err := ledger.ParseOp(bad); err == nil {
			t.Errorf("ParseOp(%q) = %v, want an error", bad, got)
		}
	}
}

func TestHashAndEventString(t *testing.T) {
	var h ledger.Hash
	if !h.IsZero() {
		t.Error("zero Hash is not IsZero")
	}
	h[31] = 0xab
	if h.IsZero() || h.String() != strings.Repeat("0", 62)+"ab" || h.Short() != "000000000000" {
		t.Errorf("Hash %s short %s", h, h.Short())
	}
	e := validEvent(t)
	e.Fields["name"] = ledger.String("SECRET-NAME")
	s := e.String()
	if strings.Contains(s, "SECRET-NAME") || !strings.Contains(s, "[name,weight]") || !strings.Contains(s, "o3#2") {
		t.Errorf("Event.String() = %q: want field names, no values", s)
	}
	if st := e.Stream(); st != (ledger.Stream{Model: "gnuhealth.patient", Key: "PAT-1"}) {
		t.Errorf("Stream() = %v", st)
	}
}

func TestEventError(t *testing.T) {
	id := uuid.Must(uuid.NewV7())
	err := error(&ledger.EventError{ID: id, Origin: 4, OriginSeq: 5, Position: 6, Err: ledger.ErrConflict})
	if !errors.Is(err, ledger.ErrConflict) {
		t.Error("EventError does not unwrap")
	}
	want := "event " + id.String() + " (origin 4 seq 5) at position 6: " + ledger.ErrConflict.Error()
	if err.Error() != want {
		t.Errorf("Error() = %q, want %q", err, want)
	}
	err = &ledger.EventError{ID: id, Origin: 4, OriginSeq: 5, Err: ledger.ErrConflict}
	if strings.Contains(err.Error(), "position") {
		t.Errorf("unstored event error mentions a position: %q", err)
	}
}

func TestFilterMatch(t *testing.T) {
	e := &ledger.Event{Model: "gnuhealth.patient", Origin: 3}
	for _, tt := range []struct {
		f    ledger.Filter
		want bool
	}{
		{ledger.Filter{}, true},
		{ledger.Filter{Models: []string{"party.party", "gnuhealth.patient"}}, true},
		{ledger.Filter{Models: []string{"party.party"}}, false},
		{ledger.Filter{Origins: []uint16{1, 3}}, true},
		{ledger.Filter{Origins: []uint16{1}}, false},
		{ledger.Filter{Models: []string{"gnuhealth.patient"}, Origins: []uint16{1}}, false},
		{ledger.Filter{Models: []string{"gnuhealth.patient"}, Origins: []uint16{3}}, true},
	} {
		if got := tt.f.Match(e); got != tt.want {
			t.Errorf("%+v.Match = %v, want %v", tt.f, got, tt.want)
		}
	}
}
