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

	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/models"
)

// row is a captured row image: column → JSON value, as the triggers wrote
// it (PostgreSQL's to_jsonb, SQLite's json_object).
type row map[string]json.RawMessage

func parseRow(s []byte) (row, error) {
	if len(s) == 0 {
		return nil, nil
	}
	var r row
	if err := json.Unmarshal(s, &r); err != nil {
		return nil, err
	}
	return r, nil
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
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s, true
		}
		return "", false
	}
	return string(raw), true
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
		if err := json.Unmarshal(raw, &s); err != nil {
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
