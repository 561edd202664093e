package capture

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/models"
)

// row is a captured row image: column → JSON value, as the triggers wrote
// it (PostgreSQL's to_jsonb, SQLite's json_object).
type row map[string]json.RawMessage

// parseRow reads a row image, a JSON object of column → value, keeping
// each value as raw JSON (a slice of s; valueOf converts it). It accepts
// exactly what json.Unmarshal into a row accepts and yields the same map
// (FuzzParseRow holds it to that), but scans by hand: the drain parses
// two images a change, and json.Unmarshal was a quarter of its CPU.
func parseRow(s []byte) (row, error) {
	if len(s) == 0 {
		return nil, nil
	}
	p := scanner{s: s}
	p.space()
	if p.literal("null") {
		return nil, p.end()
	}
	if !p.eat('{') {
		return nil, p.fail("expected an object")
	}
	// A column takes 20-odd bytes of an image: an update's few fit the
	// map's first group, where a larger hint would allocate a table.
	r := make(row, min(len(s)/24, 64))
	p.space()
	if p.eat('}') {
		return r, p.end()
	}
	for {
		p.space()
		start := p.i
		if err := p.skipString(); err != nil {
			return nil, err
		}
		key, err := p.key(s[start:p.i])
		if err != nil {
			return nil, err
		}
		p.space()
		if !p.eat(':') {
			return nil, p.fail("expected :")
		}
		p.space()
		start = p.i
		if err := p.skipValue(); err != nil {
			return nil, err
		}
		r[key] = json.RawMessage(s[start:p.i:p.i])
		p.space()
		if p.eat(',') {
			continue
		}
		if p.eat('}') {
			return r, p.end()
		}
		return nil, p.fail("expected , or }")
	}
}

// scanner walks a JSON text for parseRow.
type scanner struct {
	s []byte
	i int
}

func (p *scanner) fail(what string) error {
	return fmt.Errorf("row image: %s at byte %d", what, p.i)
}

func (p *scanner) space() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t' || p.s[p.i] == '\n' || p.s[p.i] == '\r') {
		p.i++
	}
}

func (p *scanner) eat(c byte) bool {
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *scanner) literal(lit string) bool {
	if bytes.HasPrefix(p.s[p.i:], []byte(lit)) {
		p.i += len(lit)
		return true
	}
	return false
}

// end checks that only white space follows.
func (p *scanner) end() error {
	p.space()
	if p.i != len(p.s) {
		return p.fail("unexpected data after the object")
	}
	return nil
}

// key decodes an object key; column names need no unescaping, others go
// through encoding/json.
func (p *scanner) key(raw []byte) (string, error) {
	plain := true
	for _, c := range raw[1 : len(raw)-1] {
		if c == '\\' || c >= utf8.RuneSelf {
			plain = false
			break
		}
	}
	if plain {
		return string(raw[1 : len(raw)-1]), nil
	}
	var k string
	if err := json.Unmarshal(raw, &k); err != nil {
		return "", fmt.Errorf("row image: key at byte %d: %w", p.i, err)
	}
	return k, nil
}

func (p *scanner) skipString() error {
	if !p.eat('"') {
		return p.fail("expected a string")
	}
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			p.i++
			return nil
		case c < 0x20:
			return p.fail("control character in a string")
		case c == '\\':
			if p.i+1 >= len(p.s) {
				return p.fail("unterminated string")
			}
			switch p.s[p.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				p.i += 2
			case 'u':
				if p.i+6 > len(p.s) {
					return p.fail("short \\u escape")
				}
				for _, h := range p.s[p.i+2 : p.i+6] {
					if !isHex(h) {
						return p.fail("bad \\u escape")
					}
				}
				p.i += 6
			default:
				return p.fail("bad escape")
			}
		default:
			p.i++
		}
	}
	return p.fail("unterminated string")
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func (p *scanner) digits() int {
	n := 0
	for p.i < len(p.s) && '0' <= p.s[p.i] && p.s[p.i] <= '9' {
		p.i++
		n++
	}
	return n
}

// skipNumber follows JSON's grammar: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func (p *scanner) skipNumber() error {
	p.eat('-')
	if p.eat('0') {
		// no more integer digits
	} else if p.digits() == 0 {
		return p.fail("expected a value")
	}
	if p.eat('.') && p.digits() == 0 {
		return p.fail("expected a digit after the decimal point")
	}
	if p.eat('e') || p.eat('E') {
		if !p.eat('+') {
			p.eat('-')
		}
		if p.digits() == 0 {
			return p.fail("expected a digit in the exponent")
		}
	}
	return nil
}

func (p *scanner) skipValue() error {
	if p.i >= len(p.s) {
		return p.fail("expected a value")
	}
	switch c := p.s[p.i]; {
	case c == '"':
		return p.skipString()
	case c == '{' || c == '[':
		// Nested (a JSON column): rare, so found by a depth count and
		// checked whole by encoding/json.
		start, depth := p.i, 0
		for p.i < len(p.s) {
			switch p.s[p.i] {
			case '"':
				if err := p.skipString(); err != nil {
					return err
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
			}
			p.i++
			if depth == 0 {
				if !json.Valid(p.s[start:p.i]) {
					return fmt.Errorf("row image: invalid value at byte %d", start)
				}
				return nil
			}
		}
		return p.fail("unterminated value")
	case p.literal("true"), p.literal("false"), p.literal("null"):
		return nil
	default:
		return p.skipNumber()
	}
}

// isNull reports whether a column is absent or JSON null.
func (r row) isNull(col string) bool {
	v, ok := r[col]
	return !ok || bytes.Equal(v, []byte("null"))
}

// int reads an integer column (an id, a Many2One).
func (r row) int(col string) (int64, bool) {
	if r.isNull(col) {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.Trim(string(r[col]), `"`), 10, 64)
	return n, err == nil
}

// str renders a column as the string a key part uses.
func (r row) str(col string) (string, bool) {
	if r.isNull(col) {
		return "", false
	}
	raw := r[col]
	if raw[0] == '"' {
		s, err := unquote(raw)
		return s, err == nil
	}
	return string(raw), true
}

// unquote reads a JSON string as json.Unmarshal does; one of printable
// ASCII without escapes (most values) is its bytes, without the decoder.
func unquote(raw json.RawMessage) (string, error) {
	n := len(raw)
	plain := n >= 2 && raw[0] == '"' && raw[n-1] == '"'
	for i := 1; plain && i < n-1; i++ {
		c := raw[i]
		plain = c >= 0x20 && c < 0x80 && c != '"' && c != '\\'
	}
	if plain {
		return string(raw[1 : n-1]), nil
	}
	var s string
	err := json.Unmarshal(raw, &s)
	return s, err
}

// valueOf converts a column's JSON to the field's ledger value. Many2One
// and Many2Many are the caller's (they need the id map).
func valueOf(raw json.RawMessage, f *models.Field) (ledger.Value, error) {
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return ledger.Null(), nil
	}
	var s string
	quoted := raw[0] == '"'
	if quoted {
		var err error
		if s, err = unquote(raw); err != nil {
			return ledger.Value{}, err
		}
	} else {
		s = string(raw)
	}
	switch f.Type.ValueKind() {
	case ledger.KindString:
		return ledger.String(s), nil
	case ledger.KindInt:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return ledger.Value{}, fmt.Errorf("not an integer: %s", raw)
		}
		return ledger.Int(n), nil
	case ledger.KindDecimal:
		if strings.ContainsAny(s, "eE") { // a float in exponent notation
			fl, _, err := big.ParseFloat(s, 10, 256, big.ToNearestEven)
			if err != nil {
				return ledger.Value{}, err
			}
			s = fl.Text('f', -1)
		}
		return ledger.Decimal(s)
	case ledger.KindBool:
		switch s {
		case "true", "1":
			return ledger.Bool(true), nil
		case "false", "0":
			return ledger.Bool(false), nil
		}
		return ledger.Value{}, fmt.Errorf("not a boolean: %s", raw)
	case ledger.KindDate:
		t, err := time.Parse("2006-01-02", s[:min(len(s), 10)])
		if err != nil {
			return ledger.Value{}, err
		}
		return ledger.Date(t)
	case ledger.KindDateTime:
		t, err := parseTimestamp(s)
		if err != nil {
			return ledger.Value{}, err
		}
		return ledger.DateTime(t.Truncate(time.Microsecond))
	case ledger.KindBytes:
		h := strings.TrimPrefix(s, `\x`)
		b, err := hex.DecodeString(h)
		if err != nil {
			return ledger.Value{}, fmt.Errorf("binary is not hex: %w", err)
		}
		return ledger.Bytes(b), nil
	}
	return ledger.Value{}, fmt.Errorf("field type %s is not captured as a plain value", f.Type)
}

// parseTimestamp reads a timestamp as PostgreSQL's to_jsonb or Tryton on
// SQLite writes it; one without a zone is UTC (Tryton stores UTC).
func parseTimestamp(s string) (time.Time, error) {
	for _, layout := range []string{"2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999",
		time.RFC3339Nano, "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02T15:04:05.999999999Z07"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("not a timestamp: %q", s)
}
