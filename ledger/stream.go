package ledger

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Limits on names, so a hostile or broken peer cannot make rows unbounded.
const (
	maxModelLen = 128
	maxKeyLen   = 1024
	maxFieldLen = 128
	maxUserLen  = 256
)

// ValidateModel checks a Tryton model name ("gnuhealth.patient"): lowercase
// letters, digits, '_' and '.', starting with a letter. '-' is excluded
// because it separates model and key in a stream name.
func ValidateModel(m string) error {
	if m == "" || len(m) > maxModelLen {
		return fmt.Errorf("model name must be 1..%d bytes", maxModelLen)
	}
	if m[0] < 'a' || m[0] > 'z' {
		return fmt.Errorf("model %q must start with a lowercase letter", m)
	}
	for i := 0; i < len(m); i++ {
		c := m[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '.') {
			return fmt.Errorf("model %q has %q at byte %d (allowed: a-z 0-9 _ .)", m, c, i)
		}
	}
	return nil
}

func validateKey(k string) error {
	if k == "" || len(k) > maxKeyLen {
		return fmt.Errorf("key must be 1..%d bytes", maxKeyLen)
	}
	if !utf8.ValidString(k) {
		return errors.New("key is not valid UTF-8")
	}
	return nil
}

func validateFieldName(f string) error {
	if f == "" || len(f) > maxFieldLen {
		return fmt.Errorf("field name must be 1..%d bytes", maxFieldLen)
	}
	for i := 0; i < len(f); i++ {
		c := f[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' && i > 0 || c == '_') {
			return fmt.Errorf("field %q has %q at byte %d (allowed: a-z 0-9 _)", f, c, i)
		}
	}
	return nil
}

// Stream names one record's history: all events of one model and key.
// Auditors replay a patient by reading the stream of each of its records.
type Stream struct {
	Model string
	Key   string
}

// String is the EventStoreDB-style stream name "<model>-<escaped key>": the
// category (the model) ends at the first '-', and the key is
// percent-escaped so that any key, whatever bytes it holds, round-trips
// through ParseStream.
func (s Stream) String() string {
	var b strings.Builder
	b.Grow(len(s.Model) + 1 + len(s.Key))
	b.WriteString(s.Model)
	b.WriteByte('-')
	for i := 0; i < len(s.Key); i++ {
		c := s.Key[i]
		if keepUnescaped(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

const hexDigits = "0123456789ABCDEF"

func keepUnescaped(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~:@/", c) >= 0
}

// ParseStream reads a stream name written by Stream.String. It accepts
// exactly that form (uppercase escapes, nothing escaped needlessly), so a
// stream has one name only.
func ParseStream(name string) (Stream, error) {
	model, esc, ok := strings.Cut(name, "-")
	if !ok {
		return Stream{}, fmt.Errorf("ledger: stream %q has no '-' between model and key", name)
	}
	if err := ValidateModel(model); err != nil {
		return Stream{}, fmt.Errorf("ledger: stream %q: %w", name, err)
	}
	key := make([]byte, 0, len(esc))
	for i := 0; i < len(esc); i++ {
		c := esc[i]
		switch {
		case keepUnescaped(c):
			key = append(key, c)
		case c == '%' && i+2 < len(esc) && isUpperHex(esc[i+1]) && isUpperHex(esc[i+2]):
			d := unhex(esc[i+1])<<4 | unhex(esc[i+2])
			if keepUnescaped(d) {
				return Stream{}, fmt.Errorf("ledger: stream %q escapes %q needlessly at byte %d: write it as is", name, d, len(model)+1+i)
			}
			key = append(key, d)
			i += 2
		default:
			return Stream{}, fmt.Errorf("ledger: stream %q: %s", name, badKeyByte(model, esc, i))
		}
	}
	if err := validateKey(string(key)); err != nil {
		return Stream{}, fmt.Errorf("ledger: stream %q: %w", name, err)
	}
	return Stream{Model: model, Key: string(key)}, nil
}

// badKeyByte says why byte i of the escaped key esc is refused, and what
// to write instead.
func badKeyByte(model, esc string, i int) string {
	at := len(model) + 1 + i
	rule := "the key after the first '-' is percent-encoded, as log prints it"
	if c := esc[i]; c != '%' {
		what := fmt.Sprintf("%q", c)
		if c >= utf8.RuneSelf {
			what = fmt.Sprintf("byte 0x%02X", c)
		}
		if !strings.Contains(esc, "%") { // a raw key: say the whole name
			rule += fmt.Sprintf(": write %q", Stream{Model: model, Key: esc}.String())
		}
		return fmt.Sprintf("%s at byte %d must be percent-encoded as %%%c%c (%s)", what, at, hexDigits[c>>4], hexDigits[c&15], rule)
	}
	if e := strings.ToUpper(esc[i:min(i+3, len(esc))]); len(e) == 3 && isUpperHex(e[1]) && isUpperHex(e[2]) {
		if d := unhex(e[1])<<4 | unhex(e[2]); keepUnescaped(d) {
			return fmt.Sprintf("escape %q at byte %d needs no escaping: write %q as is", esc[i:i+3], at, d)
		}
		return fmt.Sprintf("escape %q at byte %d must use uppercase hex digits: %s", esc[i:i+3], at, e)
	}
	return fmt.Sprintf("'%%' at byte %d starts no escape %%XX (two uppercase hex digits); a '%%' in the key is written %%25 (%s)", at, rule)
}

func isUpperHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'A' && c <= 'F' }

func unhex(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c - 'A' + 10
}

// JoinKey builds a composite network key from its parts (a ward is its
// institution's code plus its own name). Each part has '%' and '/'
// percent-escaped and the parts are joined with '/', so SplitKey recovers
// them exactly whatever they contain.
func JoinKey(parts ...string) string {
	var b strings.Builder
	for i, p := range parts {
		if i > 0 {
			b.WriteByte('/')
		}
		for j := 0; j < len(p); j++ {
			switch p[j] {
			case '%':
				b.WriteString("%25")
			case '/':
				b.WriteString("%2F")
			default:
				b.WriteByte(p[j])
			}
		}
	}
	return b.String()
}

// SplitKey undoes JoinKey.
func SplitKey(key string) ([]string, error) {
	parts := strings.Split(key, "/")
	for i, p := range parts {
		if !strings.Contains(p, "%") {
			continue
		}
		var b strings.Builder
		for j := 0; j < len(p); j++ {
			if p[j] != '%' {
				b.WriteByte(p[j])
				continue
			}
			switch {
			case strings.HasPrefix(p[j:], "%25"):
				b.WriteByte('%')
			case strings.HasPrefix(p[j:], "%2F"):
				b.WriteByte('/')
			default:
				return nil, fmt.Errorf("ledger: composite key part %d has a bad escape", i)
			}
			j += 2
		}
		parts[i] = b.String()
	}
	return parts, nil
}
