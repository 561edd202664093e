package ledger_test

import (
	"bytes"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/ledger/ledgertest"
)

// FuzzUnmarshal feeds untrusted bytes to the decoder. It must never panic,
// and whatever it accepts must be canonical: re-encoding gives the input
// back, so one event has one encoding and one hash.
func FuzzUnmarshal(f *testing.F) {
	golden, _ := readGolden(f)
	f.Add(golden)
	o := ledgertest.NewOrigin(9)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, e := range o.Patients(f, rng, 4) {
		f.Add(mustMarshal(f, e))
	}
	for _, op := range []ledger.Op{ledger.OpCreate, ledger.OpDelete} {
		f.Add(mustMarshal(f, o.Event(f, "party.party", "P/1", op, nil)))
	}
	f.Add(rawOf(f, smallEvent(f)).bytes())
	for _, m := range malformedEvents(f) {
		f.Add(m.data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		peeked, peekErr := ledger.PeekOrigin(data) // never panics
		e, err := ledger.Unmarshal(data)
		if err != nil {
			if e != nil {
				t.Fatal("Unmarshal failed but returned an event")
			}
			return
		}
		if peekErr != nil || peeked != e.Origin {
			t.Fatalf("PeekOrigin = %d, %v; the decoded event's origin is %d", peeked, peekErr, e.Origin)
		}
		again, err := ledger.Marshal(e)
		if err != nil {
			t.Fatalf("Marshal of a decoded event: %v", err)
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("accepted a non-canonical encoding:\n in %x\nout %x", data, again)
		}
		if e.Hash != ledger.HashOf(data) {
			t.Fatalf("Hash %s, want HashOf(input) %s", e.Hash, ledger.HashOf(data))
		}
		if err := e.Validate(); err != nil {
			t.Fatalf("accepted an invalid event: %v", err)
		}
		if _, err := ledger.Prepare([]*ledger.Event{e}); err != nil {
			t.Fatalf("a decoded event is not appendable: %v", err)
		}
		stored, err := ledger.DecodeStored(1, e.Hash[:], data)
		if err != nil || !reflect.DeepEqual(stored, e) {
			t.Fatalf("DecodeStored = %v, %v; want %v", stored, err, e)
		}
	})
}

// FuzzParseStream: stream names are parsed from URLs and CLI arguments.
func FuzzParseStream(f *testing.F) {
	for _, s := range []string{
		"gnuhealth.patient-PAT-1", "party.party-%25", "party.party-/", "party.party-%C3%BC",
		"party.party-with%20space", "party.party-%00", "party.party-%41", "party.party-%2f",
		"Party-1", "party", "-", "a--", "a-%", "a-%2", "a-%FF", "a-%C3%BC%", "a-" + strings.Repeat("k", 1024),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		s, err := ledger.ParseStream(name)
		if err == nil {
			if got := s.String(); got != name {
				t.Fatalf("ParseStream(%q) = %#v, whose name is %q", name, s, got)
			}
			if err := ledger.ValidateModel(s.Model); err != nil {
				t.Fatalf("ParseStream(%q) accepted model %q: %v", name, s.Model, err)
			}
			if s.Key == "" || !utf8.ValidString(s.Key) {
				t.Fatalf("ParseStream(%q) accepted key %q", name, s.Key)
			}
		}
		// The other way: any valid key round-trips through a name.
		if name != "" && len(name) <= 1024 && utf8.ValidString(name) {
			s := ledger.Stream{Model: "gnuhealth.patient", Key: name}
			got, err := ledger.ParseStream(s.String())
			if err != nil || got != s {
				t.Fatalf("ParseStream(%q) = %#v, %v; want %#v", s.String(), got, err, s)
			}
		}
	})
}

// FuzzSplitKey: composite keys come from peers.
func FuzzSplitKey(f *testing.F) {
	for _, s := range []string{"", "a", "a/b", "a%2Fb/c%25d", "%", "%2", "%2f", "%41", "//", "%252F", "ü/-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		parts, err := ledger.SplitKey(key)
		if err == nil {
			if got := ledger.JoinKey(parts...); got != key {
				t.Fatalf("JoinKey(SplitKey(%q)) = %q (parts %q)", key, got, parts)
			}
		}
		// Any string is a valid part.
		if got, err := ledger.SplitKey(ledger.JoinKey(key, key)); err != nil || !slices.Equal(got, []string{key, key}) {
			t.Fatalf("SplitKey(JoinKey(%q, %q)) = %q, %v", key, key, got, err)
		}
	})
}
