package ledger

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ghsync/ghsync/clocks"
)

// Kind names the type of a field value. The set is closed: an encoded value
// of any other kind is an error, never guessed, so an event written today
// decodes to the same typed values in ten years.
type Kind uint8

// The value kinds Tryton fields map onto.
const (
	KindNull     Kind = iota // SQL NULL / Python None
	KindBool                 // Boolean
	KindInt                  // Integer, BigInteger (int64)
	KindDecimal              // Numeric: exact, never a float
	KindString               // Char, Text, Selection
	KindDate                 // Date: a civil date, no zone
	KindDateTime             // DateTime, Timestamp: UTC, microsecond precision
	KindBytes                // Binary
	KindRef                  // Many2One, Reference: the target's network key
	KindRefSet               // Many2Many: a set of targets
	kindEnd
)

var kindNames = [...]string{"null", "bool", "int", "decimal", "string", "date", "datetime", "bytes", "ref", "refset"}

func (k Kind) String() string {
	if k < kindEnd {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Ref points at another synchronised record by its network identity, never
// by a local id: local ids differ on every instance.
type Ref struct {
	Model string
	Key   string
	// Saw names the life of a natural key the reference means: the HLC of
	// the latest delete of the key its writer knew of, 0 if none (the
	// first life). A party code can be used again after its person was
	// deleted or recoded, and a reference made by a clinic that had not
	// heard of it means the old person, not the new one. Many2One only: a
	// Many2Many member carries none.
	Saw clocks.Timestamp
	// Lender names, for a target whose key borrows another record's (a
	// patient's is its person's code), the life of that lender the target
	// was registered for (Lender, the reserved field): a reference to a
	// patient record made under a code since given to someone else means
	// the registration of the person who had it. Many2One only.
	Lender clocks.Timestamp
}

func (r Ref) String() string {
	s := r.Model + ":" + r.Key
	if r.Saw != 0 {
		s += "@" + r.Saw.String()
	}
	if r.Lender != 0 {
		s += "^" + r.Lender.String()
	}
	return s
}

func compareRefs(a, b Ref) int {
	if c := strings.Compare(a.Model, b.Model); c != 0 {
		return c
	}
	if c := strings.Compare(a.Key, b.Key); c != 0 {
		return c
	}
	if c := cmpInt(int64(a.Saw), int64(b.Saw)); c != 0 {
		return c
	}
	return cmpInt(int64(a.Lender), int64(b.Lender))
}

// Value is one typed field value. It is immutable: constructors copy what
// they are given and accessors return copies, so a sealed event's values
// cannot change under its hash. The zero Value is null.
type Value struct {
	kind Kind
	i    int64  // bool (0/1), int, date (days since 1970-01-01), datetime (µs since epoch)
	s    string // string, decimal (canonical form), bytes, ref model
	k    string // ref key
	refs []Ref  // refset, sorted and without duplicates; a Ref naming a lender life (Ref.Lender) holds it as the Saw of one element
}

// Date and datetime bounds: Tryton (and PostgreSQL's date) use years 1..9999.
var (
	minDate = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	maxDate = time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC)
)

// Null is the absent value.
func Null() Value { return Value{} }

// Bool wraps a Boolean field value.
func Bool(b bool) Value {
	v := Value{kind: KindBool}
	if b {
		v.i = 1
	}
	return v
}

// Int wraps an Integer field value.
func Int(n int64) Value { return Value{kind: KindInt, i: n} }

// String wraps a Char, Text or Selection value.
func String(s string) Value { return Value{kind: KindString, s: s} }

// Bytes wraps a Binary value; b is copied.
func Bytes(b []byte) Value { return Value{kind: KindBytes, s: string(b)} }

// Decimal wraps a Numeric value given in plain decimal notation ("-12.50").
// It is kept exact and in canonical form (no leading zeros, no trailing
// fractional zeros, no "-0"), so equal numbers encode to equal bytes.
func Decimal(s string) (Value, error) {
	c, err := canonicalDecimal(s)
	if err != nil {
		return Value{}, err
	}
	return Value{kind: KindDecimal, s: c}, nil
}

// Date wraps a Date value. Only the calendar day of t counts (in t's own
// location), since a Tryton date has no zone.
func Date(t time.Time) (Value, error) {
	y, m, d := t.Date()
	day := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	if day.Before(minDate) || day.After(maxDate) {
		return Value{}, errors.New("ledger: date outside years 1..9999")
	}
	return Value{kind: KindDate, i: day.Unix() / 86400}, nil
}

// DateTime wraps a DateTime or Timestamp value. It is stored in UTC with
// microsecond precision, which is what PostgreSQL keeps; finer digits are
// refused rather than silently dropped.
func DateTime(t time.Time) (Value, error) {
	t = t.UTC()
	if t.Nanosecond()%1000 != 0 {
		return Value{}, errors.New("ledger: datetime finer than a microsecond")
	}
	if t.Before(minDate) || t.After(maxDate) {
		return Value{}, errors.New("ledger: datetime outside years 1..9999")
	}
	return Value{kind: KindDateTime, i: t.UnixMicro()}, nil
}

// RefTo wraps a Many2One value: the target model and its network key.
func RefTo(model, key string) (Value, error) { return RefValue(Ref{Model: model, Key: key}) }

// RefValue wraps a Many2One value that may name the life of its target
// (Ref.Saw) and of its target's lender (Ref.Lender).
func RefValue(r Ref) (Value, error) {
	if err := validateRef(r); err != nil {
		return Value{}, err
	}
	return refValue(r), nil
}

func refValue(r Ref) Value {
	v := Value{kind: KindRef, s: r.Model, k: r.Key, i: int64(r.Saw)}
	if r.Lender != 0 {
		v.refs = []Ref{{Saw: r.Lender}}
	}
	return v
}

// RefSet wraps a Many2Many value. Order and duplicates carry no meaning in a
// Many2Many, so the set is sorted and deduplicated here, once.
func RefSet(refs ...Ref) (Value, error) {
	out := slices.Clone(refs)
	for _, r := range out {
		if err := validateRef(r); err != nil {
			return Value{}, err
		}
		if r.Saw != 0 || r.Lender != 0 {
			return Value{}, fmt.Errorf("ledger: Many2Many member %s names a life (Saw, Lender)", r)
		}
	}
	slices.SortFunc(out, compareRefs)
	out = slices.Compact(out)
	if out == nil {
		out = []Ref{}
	}
	return Value{kind: KindRefSet, refs: out}, nil
}

func validateRef(r Ref) error {
	if err := ValidateModel(r.Model); err != nil {
		return fmt.Errorf("ledger: reference: %w", err)
	}
	if err := validateKey(r.Key); err != nil {
		return fmt.Errorf("ledger: reference to %s: %w", r.Model, err)
	}
	return nil
}

// Kind reports the value's type.
func (v Value) Kind() Kind { return v.kind }

// IsNull reports whether v is the absent value.
func (v Value) IsNull() bool { return v.kind == KindNull }

// AsBool returns the Boolean; ok is false for any other kind.
func (v Value) AsBool() (b, ok bool) { return v.i == 1, v.kind == KindBool }

// AsInt returns the Integer; ok is false for any other kind.
func (v Value) AsInt() (int64, bool) { return v.i, v.kind == KindInt }

// AsString returns a Char/Text/Selection value; ok is false for any other kind.
func (v Value) AsString() (string, bool) { return v.s, v.kind == KindString }

// AsDecimal returns the canonical decimal text; ok is false for any other kind.
func (v Value) AsDecimal() (string, bool) { return v.s, v.kind == KindDecimal }

// AsBytes returns a copy of a Binary value; ok is false for any other kind.
func (v Value) AsBytes() ([]byte, bool) { return []byte(v.s), v.kind == KindBytes }

// AsDate returns a Date as midnight UTC; ok is false for any other kind.
func (v Value) AsDate() (time.Time, bool) { return time.Unix(v.i*86400, 0).UTC(), v.kind == KindDate }

// AsDateTime returns a DateTime in UTC; ok is false for any other kind.
func (v Value) AsDateTime() (time.Time, bool) {
	return time.UnixMicro(v.i).UTC(), v.kind == KindDateTime
}

// AsRef returns a Many2One target; ok is false for any other kind.
func (v Value) AsRef() (Ref, bool) {
	r := Ref{Model: v.s, Key: v.k, Saw: clocks.Timestamp(v.i)}
	if v.kind == KindRef && len(v.refs) == 1 {
		r.Lender = v.refs[0].Saw
	}
	return r, v.kind == KindRef
}

// AsRefSet returns a copy of a Many2Many set, sorted; ok is false for any other kind.
func (v Value) AsRefSet() ([]Ref, bool) { return slices.Clone(v.refs), v.kind == KindRefSet }

// Equal reports whether two values are the same typed value. Merge rules
// use it to tell a real change from a write of the current value.
func (v Value) Equal(w Value) bool {
	return v.kind == w.kind && v.i == w.i && v.s == w.s && v.k == w.k && slices.Equal(v.refs, w.refs)
}

// Compare orders two values of the same kind (the max/min merge rules need
// it). Values of different kinds order by kind. Decimals compare
// numerically; bytes and strings bytewise; refsets lexicographically.
func (v Value) Compare(w Value) int {
	if v.kind != w.kind {
		return cmpInt(int64(v.kind), int64(w.kind))
	}
	switch v.kind {
	case KindBool, KindInt, KindDate, KindDateTime:
		return cmpInt(v.i, w.i)
	case KindDecimal:
		return compareDecimal(v.s, w.s)
	case KindString, KindBytes:
		return strings.Compare(v.s, w.s)
	case KindRef:
		x, _ := v.AsRef()
		y, _ := w.AsRef()
		return compareRefs(x, y)
	case KindRefSet:
		return slices.CompareFunc(v.refs, w.refs, compareRefs)
	}
	return 0
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// String renders v for people (ghsync log); it is not an encoding.
func (v Value) String() string {
	switch v.kind {
	case KindNull:
		return "null"
	case KindBool:
		return strconv.FormatBool(v.i == 1)
	case KindInt:
		return strconv.FormatInt(v.i, 10)
	case KindDecimal:
		return v.s
	case KindString:
		return strconv.Quote(v.s)
	case KindDate:
		d, _ := v.AsDate()
		return d.Format(time.DateOnly)
	case KindDateTime:
		t, _ := v.AsDateTime()
		return t.Format("2006-01-02T15:04:05.999999Z")
	case KindBytes:
		return fmt.Sprintf("<%d bytes>", len(v.s))
	case KindRef:
		r, _ := v.AsRef()
		return "→" + r.String()
	case KindRefSet:
		var b bytes.Buffer
		b.WriteByte('{')
		for i, r := range v.refs {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(r.String())
		}
		b.WriteByte('}')
		return b.String()
	}
	return v.kind.String()
}
