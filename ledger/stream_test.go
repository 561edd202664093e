package ledger_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/ledger/ledgertest"
)

func TestStreamRoundTrip(t *testing.T) {
	for _, tt := range []struct {
		model, key, name string
	}{
		{"gnuhealth.patient", "PAT-1", "gnuhealth.patient-PAT-1"},
		{"gnuhealth.patient", "a-b", "gnuhealth.patient-a-b"},
		{"gnuhealth.patient", "-", "gnuhealth.patient--"},
		{"party.party", "%", "party.party-%25"},
		{"party.party", "/", "party.party-/"},
		{"party.party", "ü", "party.party-%C3%BC"},
		{"party.party", "with space", "party.party-with%20space"},
		{"party.party", "\x00", "party.party-%00"},
		{"party.party", "\x7f+?#&=", "party.party-%7F%2B%3F%23%26%3D"},
		{"party.party", "AZaz09-._~:@/", "party.party-AZaz09-._~:@/"},
		{"party.party", ledger.JoinKey("HOSP-1", "W/2", "50%"), "party.party-HOSP-1/W%252F2/50%2525"},
		{"a", "b", "a-b"},
		{"gnuhealth.patient_evaluation", "0193", "gnuhealth.patient_evaluation-0193"},
	} {
		s := ledger.Stream{Model: tt.model, Key: tt.key}
		if got := s.String(); got != tt.name {
			t.Errorf("Stream{%q, %q}.String() = %q, want %q", tt.model, tt.key, got, tt.name)
		}
		got, err := ledger.ParseStream(tt.name)
		if err != nil {
			t.Errorf("ParseStream(%q): %v", tt.name, err)
			continue
		}
		if got != s {
			t.Errorf("ParseStream(%q) = %#v, want %#v", tt.name, got, s)
		}
		// The category (EventStoreDB's "$ce-") is the model: the name up to its first '-'.
		if cat, _, _ := strings.Cut(tt.name, "-"); cat != tt.model {
			t.Errorf("category of %q is %q, want the model %q", tt.name, cat, tt.model)
		}
	}
}

func TestStreamRoundTripRandom(t *testing.T) {
	rng := ledgertest.Rand(t)
	for range 2000 {
		b := make([]byte, 1+rng.IntN(12))
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		key := strings.ToValidUTF8(string(b), "\uFFFD")
		s := ledger.Stream{Model: "gnuhealth.patient", Key: key}
		got, err := ledger.ParseStream(s.String())
		if err != nil || got != s {
			t.Fatalf("ParseStream(%q) = %#v, %v; want %#v", s.String(), got, err, s)
		}
	}
}

func TestParseStreamRefuses(t *testing.T) {
	for _, name := range []string{
		"",
		"party",           // no '-'
		"-PAT-1",          // no model
		"party.party-",    // no key
		"Party-1",         // model not lowercase
		"1party-1",        // model starts with a digit
		"party party-1",   // model with a space
		"party.party-%41", // 'A' escaped needlessly
		"party.party-%2D", // '-' escaped needlessly
		"party.party-%2F", // '/' escaped needlessly
		"party.party-%7E", // '~' escaped needlessly
		"party.party-%2f", // lowercase hex
		"party.party-%c3%bc",
		"party.party-%",
		"party.party-%2",
		"party.party-a%",
		"party.party-%G0",
		"party.party-%%25",
		"party.party-with space", // space unescaped
		"party.party-ü",          // non-ASCII unescaped
		"party.party-a+b",
		"party.party-%FF", // key not UTF-8
		"party.party-%C3", // truncated UTF-8
		"party.party-" + strings.Repeat("k", 1025),
		strings.Repeat("m", 129) + "-k",
	} {
		if got, err := ledger.ParseStream(name); err == nil {
			t.Errorf("ParseStream(%.40q) = %#v, want an error", name, got)
		}
	}
}

// A refused stream name says what to write instead: the key is
// percent-encoded, a space as %20.
func TestParseStreamSaysWhatToWrite(t *testing.T) {
	for _, tt := range []struct{ name, want string }{
		{"party.party-CODE WITH SPACE", `' ' at byte 16 must be percent-encoded as %20 (the key after the first '-' is percent-encoded, as log prints it: write "party.party-CODE%20WITH%20SPACE")`},
		{"party.party-ü", `byte 0xC3 at byte 12 must be percent-encoded as %C3 (the key after the first '-' is percent-encoded, as log prints it: write "party.party-%C3%BC")`},
		{"party.party-a%20b c", `' ' at byte 17 must be percent-encoded as %20 (the key after the first '-' is percent-encoded, as log prints it)`},
		{"party.party-%c3%bc", `escape "%c3" at byte 12 must use uppercase hex digits: %C3`},
		{"party.party-a%2fb", `escape "%2f" at byte 13 needs no escaping: write '/' as is`},
		{"party.party-%41", `escapes 'A' needlessly at byte 12: write it as is`},
		{"party.party-50%", `'%' at byte 14 starts no escape %XX (two uppercase hex digits); a '%' in the key is written %25`},
		{"party.party-%G0", `'%' at byte 12 starts no escape %XX`},
	} {
		_, err := ledger.ParseStream(tt.name)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseStream(%q): %v; want an error saying %s", tt.name, err, tt.want)
		}
	}
}

func TestJoinSplitKey(t *testing.T) {
	for _, tt := range []struct {
		parts []string
		key   string
	}{
		{[]string{"HOSP1"}, "HOSP1"},
		{[]string{"HOSP1", "WARD-A"}, "HOSP1/WARD-A"},
		{[]string{"a/b", "c%d"}, "a%2Fb/c%25d"},
		{[]string{"%2F"}, "%252F"},
		{[]string{"", ""}, "/"},
		{[]string{"", "x", ""}, "/x/"},
		{[]string{"ü-/"}, "ü-%2F"},
		{[]string{""}, ""},
	} {
		if got := ledger.JoinKey(tt.parts...); got != tt.key {
			t.Errorf("JoinKey(%q) = %q, want %q", tt.parts, got, tt.key)
		}
		got, err := ledger.SplitKey(tt.key)
		if err != nil || !slices.Equal(got, tt.parts) {
			t.Errorf("SplitKey(%q) = %q, %v; want %q", tt.key, got, err, tt.parts)
		}
	}
	for _, bad := range []string{"%", "a%", "a%2", "a%2f", "a%41", "x/%%25", "%2F/%3"} {
		if got, err := ledger.SplitKey(bad); err == nil {
			t.Errorf("SplitKey(%q) = %q, want an error", bad, got)
		}
	}
}

// TestJoinSplitKeyProperty: SplitKey(JoinKey(parts)) == parts for any
// (non-empty list of) parts, however many '/', '%' and '-' they hold.
func TestJoinSplitKeyProperty(t *testing.T) {
	rng := ledgertest.Rand(t)
	const alphabet = "/%-25Fa"
	for range 5000 {
		parts := make([]string, 1+rng.IntN(4))
		for i := range parts {
			b := make([]byte, rng.IntN(6))
			for j := range b {
				b[j] = alphabet[rng.IntN(len(alphabet))]
			}
			parts[i] = string(b)
		}
		key := ledger.JoinKey(parts...)
		got, err := ledger.SplitKey(key)
		if err != nil || !slices.Equal(got, parts) {
			t.Fatalf("SplitKey(JoinKey(%q)) = %q, %v", parts, got, err)
		}
		if again := ledger.JoinKey(got...); again != key {
			t.Fatalf("JoinKey(SplitKey(%q)) = %q", key, again)
		}
	}
}

func TestValidateModel(t *testing.T) {
	for _, m := range []string{"a", "party.party", "gnuhealth.patient_evaluation", "a1._", strings.Repeat("z", 128)} {
		if err := ledger.ValidateModel(m); err != nil {
			t.Errorf("ValidateModel(%q): %v", m, err)
		}
	}
	for _, m := range []string{"", "Party", "party-party", "_a", ".a", "1a", "a b", "aü", strings.Repeat("z", 129)} {
		if err := ledger.ValidateModel(m); err == nil {
			t.Errorf("ValidateModel(%q) succeeded", m)
		}
	}
}
