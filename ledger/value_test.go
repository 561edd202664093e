package ledger_test

import (
	"strings"
	"testing"
	"time"

	"github.com/ghsync/ghsync/ledger"
)

// Helpers shared by the package's tests: constructors that cannot fail on
// the inputs tests give them.

func mustDecimal(tb testing.TB, s string) ledger.Value {
	tb.Helper()
	v, err := ledger.Decimal(s)
	if err != nil {
		tb.Fatalf("Decimal(%q): %v", s, err)
	}
	return v
}

func mustDate(tb testing.TB, y int, m time.Month, d int) ledger.Value {
	tb.Helper()
	v, err := ledger.Date(time.Date(y, m, d, 0, 0, 0, 0, time.UTC))
	if err != nil {
		tb.Fatalf("Date(%d-%d-%d): %v", y, m, d, err)
	}
	return v
}

func mustDateTime(tb testing.TB, t time.Time) ledger.Value {
	tb.Helper()
	v, err := ledger.DateTime(t)
	if err != nil {
		tb.Fatalf("DateTime(%v): %v", t, err)
	}
	return v
}

func mustRef(tb testing.TB, model, key string) ledger.Value {
	tb.Helper()
	v, err := ledger.RefTo(model, key)
	if err != nil {
		tb.Fatalf("RefTo(%q, %q): %v", model, key, err)
	}
	return v
}

func mustRefSet(tb testing.TB, refs ...ledger.Ref) ledger.Value {
	tb.Helper()
	v, err := ledger.RefSet(refs...)
	if err != nil {
		tb.Fatalf("RefSet(%v): %v", refs, err)
	}
	return v
}

// accessors reports which accessors answer ok for v, in Kind order.
func accessors(v ledger.Value) map[ledger.Kind]bool {
	ok := map[ledger.Kind]bool{}
	_, ok[ledger.KindBool] = v.AsBool()
	_, ok[ledger.KindInt] = v.AsInt()
	_, ok[ledger.KindDecimal] = v.AsDecimal()
	_, ok[ledger.KindString] = v.AsString()
	_, ok[ledger.KindDate] = v.AsDate()
	_, ok[ledger.KindDateTime] = v.AsDateTime()
	_, ok[ledger.KindBytes] = v.AsBytes()
	_, ok[ledger.KindRef] = v.AsRef()
	_, ok[ledger.KindRefSet] = v.AsRefSet()
	ok[ledger.KindNull] = v.IsNull()
	return ok
}

func TestValueKindsAndAccessors(t *testing.T) {
	seen := time.Date(2026, 11, 30, 8, 15, 0, 123456000, time.UTC)
	staff := ledger.Ref{Model: "party.category", Key: "staff"}
	tests := []struct {
		v     ledger.Value
		kind  ledger.Kind
		name  string
		check func(t *testing.T, v ledger.Value)
	}{
		{ledger.Null(), ledger.KindNull, "null", func(t *testing.T, v ledger.Value) {}},
		{ledger.Value{}, ledger.KindNull, "null", func(t *testing.T, v ledger.Value) {}},
		{ledger.Bool(true), ledger.KindBool, "bool", func(t *testing.T, v ledger.Value) {
			if b, _ := v.AsBool(); !b {
				t.Error("AsBool = false, want true")
			}
		}},
		{ledger.Bool(false), ledger.KindBool, "bool", func(t *testing.T, v ledger.Value) {
			if b, _ := v.AsBool(); b {
				t.Error("AsBool = true, want false")
			}
		}},
		{ledger.Int(-1 << 63), ledger.KindInt, "int", func(t *testing.T, v ledger.Value) {
			if n, _ := v.AsInt(); n != -1<<63 {
				t.Errorf("AsInt = %d", n)
			}
		}},
		{mustDecimal(t, "-12.50"), ledger.KindDecimal, "decimal", func(t *testing.T, v ledger.Value) {
			if s, _ := v.AsDecimal(); s != "-12.5" {
				t.Errorf("AsDecimal = %q, want -12.5", s)
			}
		}},
		{ledger.String("Ana ü"), ledger.KindString, "string", func(t *testing.T, v ledger.Value) {
			if s, _ := v.AsString(); s != "Ana ü" {
				t.Errorf("AsString = %q", s)
			}
		}},
		{mustDate(t, 1980, 2, 29), ledger.KindDate, "date", func(t *testing.T, v ledger.Value) {
			if d, _ := v.AsDate(); !d.Equal(time.Date(1980, 2, 29, 0, 0, 0, 0, time.UTC)) || d.Location() != time.UTC {
				t.Errorf("AsDate = %v", d)
			}
		}},
		{mustDateTime(t, seen), ledger.KindDateTime, "datetime", func(t *testing.T, v ledger.Value) {
			if d, _ := v.AsDateTime(); !d.Equal(seen) || d.Location() != time.UTC {
				t.Errorf("AsDateTime = %v", d)
			}
		}},
		{ledger.Bytes([]byte{0, 1, 0xff}), ledger.KindBytes, "bytes", func(t *testing.T, v ledger.Value) {
			if b, _ := v.AsBytes(); string(b) != "\x00\x01\xff" {
				t.Errorf("AsBytes = %x", b)
			}
		}},
		{mustRef(t, "party.party", "PARTY-1"), ledger.KindRef, "ref", func(t *testing.T, v ledger.Value) {
			if r, _ := v.AsRef(); r != (ledger.Ref{Model: "party.party", Key: "PARTY-1"}) {
				t.Errorf("AsRef = %v", r)
			}
		}},
		{mustRefSet(t, staff), ledger.KindRefSet, "refset", func(t *testing.T, v ledger.Value) {
			if rs, _ := v.AsRefSet(); len(rs) != 1 || rs[0] != staff {
				t.Errorf("AsRefSet = %v", rs)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.v.String(), func(t *testing.T) {
			if tt.v.Kind() != tt.kind {
				t.Fatalf("Kind = %v, want %v", tt.v.Kind(), tt.kind)
			}
			if tt.kind.String() != tt.name {
				t.Errorf("Kind.String = %q, want %q", tt.kind.String(), tt.name)
			}
			for k, ok := range accessors(tt.v) {
				if ok != (k == tt.kind) {
					t.Errorf("accessor for %v: ok = %v on a %v value", k, ok, tt.kind)
				}
			}
			tt.check(t, tt.v)
		})
	}
	if s := ledger.Kind(42).String(); s != "kind(42)" {
		t.Errorf("Kind(42).String() = %q", s)
	}
}

func TestValueImmutable(t *testing.T) {
	in := []byte{1, 2, 3}
	v := ledger.Bytes(in)
	in[0] = 9
	out, _ := v.AsBytes()
	out[1] = 9
	if again, _ := v.AsBytes(); string(again) != "\x01\x02\x03" {
		t.Errorf("Bytes value changed through a slice: %x", again)
	}

	refs := []ledger.Ref{{Model: "a", Key: "2"}, {Model: "a", Key: "1"}}
	rs := mustRefSet(t, refs...)
	refs[0].Key = "changed"
	got, _ := rs.AsRefSet()
	got[0].Key = "changed too"
	if again, _ := rs.AsRefSet(); again[0].Key != "1" || again[1].Key != "2" {
		t.Errorf("RefSet value changed through a slice: %v", again)
	}
}

func TestDecimalCanonical(t *testing.T) {
	tests := []struct{ in, want string }{
		{"007.50", "7.5"},
		{"-0.00", "0"},
		{"-0", "0"},
		{"+0", "0"},
		{"+3", "3"},
		{".5", "0.5"},
		{"-.5", "-0.5"},
		{"5.", "5"},
		{"0", "0"},
		{"000", "0"},
		{"10", "10"},
		{"100.000", "100"},
		{"-12.50", "-12.5"},
		{"0.0001", "0.0001"},
		{"123456789012345678901234567890.123456789", "123456789012345678901234567890.123456789"},
		{strings.Repeat("9", 1000), strings.Repeat("9", 1000)},
		{"0." + strings.Repeat("0", 998) + "1", "0." + strings.Repeat("0", 998) + "1"},
	}
	for _, tt := range tests {
		v, err := ledger.Decimal(tt.in)
		if err != nil {
			t.Errorf("Decimal(%.20q): %v", tt.in, err)
			continue
		}
		if got, _ := v.AsDecimal(); got != tt.want {
			t.Errorf("Decimal(%.20q) = %.20q, want %.20q", tt.in, got, tt.want)
		}
		if w := mustDecimal(t, tt.want); !v.Equal(w) {
			t.Errorf("Decimal(%.20q) is not Equal to Decimal(%.20q)", tt.in, tt.want)
		}
	}
}

func TestDecimalRefused(t *testing.T) {
	for _, in := range []string{
		"", "-", "+", ".", "-.", "+.", "1e5", "1E5", "NaN", "Inf", "-Infinity", "1.2.3",
		" 1", "1 ", "1,5", "--1", "+-1", "0x10", "١", "½",
		strings.Repeat("1", 1001),
		"0." + strings.Repeat("0", 1000),
		strings.Repeat("1", 500) + "." + strings.Repeat("1", 501),
	} {
		v, err := ledger.Decimal(in)
		if err == nil {
			s, _ := v.AsDecimal()
			t.Errorf("Decimal(%.20q) = %.20q, want an error", in, s)
			continue
		}
		if v.Kind() != ledger.KindNull {
			t.Errorf("Decimal(%.20q) failed but returned a %v", in, v.Kind())
		}
		// The value may be clinical data: errors must not echo it.
		if len(strings.TrimSpace(in)) > 1 && strings.Contains(err.Error(), strings.TrimSpace(in)) {
			t.Errorf("Decimal(%.20q) error %q contains the value", in, err)
		}
	}
}

func TestDecimalCompare(t *testing.T) {
	// Ascending; equal neighbours share a group.
	order := [][]string{
		{"-10", "-10.0", "-010"},
		{"-9.5"},
		{"-0.5"},
		{"-0.05"},
		{"0", "-0", "0.000"},
		{"0.05"},
		{"0.5", ".50"},
		{"1"},
		{"9.99"},
		{"10"},
		{"10.01"},
		{"100"},
	}
	for i, gi := range order {
		for j, gj := range order {
			want := cmpInts(i, j)
			for _, a := range gi {
				for _, b := range gj {
					if got := mustDecimal(t, a).Compare(mustDecimal(t, b)); got != want {
						t.Errorf("Compare(%s, %s) = %d, want %d", a, b, got, want)
					}
				}
			}
		}
	}
}

func cmpInts(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func TestDate(t *testing.T) {
	east := time.FixedZone("east", 5*3600)
	west := time.FixedZone("west", -8*3600)
	tests := []struct {
		in   time.Time
		want string // "" when refused
	}{
		{time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), "2026-03-01"},
		{time.Date(2026, 3, 1, 23, 59, 59, 999999999, time.UTC), "2026-03-01"},
		// The calendar day in t's own location, not in UTC.
		{time.Date(2026, 3, 1, 1, 0, 0, 0, east), "2026-03-01"},
		{time.Date(2026, 3, 1, 23, 0, 0, 0, west), "2026-03-01"},
		{time.Date(1969, 12, 31, 12, 0, 0, 0, time.UTC), "1969-12-31"},
		{time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), "0001-01-01"},
		{time.Date(1, 1, 1, 0, 30, 0, 0, east), "0001-01-01"},
		{time.Date(9999, 12, 31, 23, 0, 0, 0, west), "9999-12-31"},
		{time.Date(0, 12, 31, 0, 0, 0, 0, time.UTC), ""},
		{time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), ""},
		{time.Date(-5, 6, 1, 0, 0, 0, 0, time.UTC), ""},
	}
	for _, tt := range tests {
		v, err := ledger.Date(tt.in)
		if tt.want == "" {
			if err == nil {
				t.Errorf("Date(%v) = %v, want an error", tt.in, v)
			} else if strings.Contains(err.Error(), tt.in.Format(time.DateOnly)) || strings.Contains(err.Error(), tt.in.Format("2006")) {
				t.Errorf("Date(%v) error %q contains the value", tt.in, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Date(%v): %v", tt.in, err)
			continue
		}
		if got := v.String(); got != tt.want {
			t.Errorf("Date(%v) = %s, want %s", tt.in, got, tt.want)
		}
		d, _ := v.AsDate()
		if d.Hour() != 0 || d.Minute() != 0 || d.Second() != 0 || d.Nanosecond() != 0 || d.Location() != time.UTC {
			t.Errorf("Date(%v).AsDate() = %v, want midnight UTC", tt.in, d)
		}
		if again, err := ledger.Date(d); err != nil || !again.Equal(v) {
			t.Errorf("Date(AsDate()) = %v, %v; want %v", again, err, v)
		}
	}
}

func TestDateTime(t *testing.T) {
	east := time.FixedZone("east", 5*3600+30*60)
	tests := []struct {
		in   time.Time
		want string // "" when refused
	}{
		{time.Date(2026, 11, 30, 8, 15, 0, 0, time.UTC), "2026-11-30T08:15:00Z"},
		{time.Date(2026, 11, 30, 8, 15, 0, 0, east), "2026-11-30T02:45:00Z"},
		{time.Date(2026, 11, 30, 8, 15, 0, 123456000, time.UTC), "2026-11-30T08:15:00.123456Z"},
		{time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), "0001-01-01T00:00:00Z"},
		{time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC), "9999-12-31T23:59:59.999999Z"},
		{time.Date(1969, 12, 31, 23, 59, 59, 999999000, time.UTC), "1969-12-31T23:59:59.999999Z"},
		{time.Date(2026, 11, 30, 8, 15, 0, 1, time.UTC), ""},           // sub-µs
		{time.Date(2026, 11, 30, 8, 15, 0, 123456789, time.UTC), ""},   // sub-µs
		{time.Date(1, 1, 1, 0, 0, 0, 0, east), ""},                     // year 0 in UTC
		{time.Date(0, 12, 31, 23, 59, 59, 999999000, time.UTC), ""},    // just below
		{time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), ""},             // just above
		{time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC), ""}, // sub-µs at the bound
	}
	for _, tt := range tests {
		v, err := ledger.DateTime(tt.in)
		if tt.want == "" {
			if err == nil {
				t.Errorf("DateTime(%v) = %v, want an error", tt.in, v)
			}
			continue
		}
		if err != nil {
			t.Errorf("DateTime(%v): %v", tt.in, err)
			continue
		}
		if got := v.String(); got != tt.want {
			t.Errorf("DateTime(%v) = %s, want %s", tt.in, got, tt.want)
		}
		d, _ := v.AsDateTime()
		if !d.Equal(tt.in) || d.Location() != time.UTC {
			t.Errorf("DateTime(%v).AsDateTime() = %v, want the same instant in UTC", tt.in, d)
		}
	}
	// The same instant in two zones is one value.
	a := mustDateTime(t, time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
	b := mustDateTime(t, time.Date(2026, 1, 1, 17, 30, 0, 0, east))
	if !a.Equal(b) {
		t.Errorf("%v and %v are one instant but not Equal", a, b)
	}
}

func TestRefs(t *testing.T) {
	a1 := ledger.Ref{Model: "a", Key: "1"}
	a2 := ledger.Ref{Model: "a", Key: "2"}
	b1 := ledger.Ref{Model: "b", Key: "1"}
	v := mustRefSet(t, b1, a2, a1, a2, b1, a1)
	got, _ := v.AsRefSet()
	if want := []ledger.Ref{a1, a2, b1}; !slicesEqual(got, want) {
		t.Errorf("RefSet = %v, want %v", got, want)
	}
	if !v.Equal(mustRefSet(t, a1, a2, b1)) {
		t.Error("RefSet order or duplicates changed the value")
	}
	if v.String() != "{a:1, a:2, b:1}" {
		t.Errorf("String = %q", v.String())
	}

	empty := mustRefSet(t)
	if rs, ok := empty.AsRefSet(); !ok || rs == nil || len(rs) != 0 {
		t.Errorf("empty RefSet = %#v, %v; want an empty non-nil set", rs, ok)
	}
	if !empty.Equal(mustRefSet(t, []ledger.Ref{}...)) {
		t.Error("RefSet() and RefSet([]...) differ")
	}

	for _, bad := range []ledger.Ref{
		{Model: "", Key: "1"},
		{Model: "Party", Key: "1"},
		{Model: "party-party", Key: "1"},
		{Model: "party.party", Key: ""},
		{Model: "party.party", Key: "\xff"},
		{Model: "party.party", Key: strings.Repeat("k", 1025)},
	} {
		if _, err := ledger.RefTo(bad.Model, bad.Key); err == nil {
			t.Errorf("RefTo(%q, %.20q) succeeded", bad.Model, bad.Key)
		}
		if _, err := ledger.RefSet(a1, bad); err == nil {
			t.Errorf("RefSet(..., %q:%.20q) succeeded", bad.Model, bad.Key)
		}
	}
	if r := mustRef(t, "party.party", "P-1"); r.String() != "→party.party:P-1" {
		t.Errorf("Ref String = %q", r.String())
	}

	// A reference may name the life of its target; it is then another
	// value than the same key without, and a Many2Many member names none.
	life := ledger.Ref{Model: "party.party", Key: "P-1", Saw: 42}
	v, err := ledger.RefValue(life)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := v.AsRef(); got != life {
		t.Errorf("AsRef = %+v, want %+v", got, life)
	}
	if plain := mustRef(t, "party.party", "P-1"); v.Equal(plain) || v.Compare(plain) <= 0 {
		t.Errorf("%v and %v: Equal %v, Compare %d; want different, the life after", v, plain, v.Equal(plain), v.Compare(plain))
	}
	if _, err := ledger.RefSet(life); err == nil || !strings.Contains(err.Error(), "names a life") {
		t.Errorf("RefSet with a life: %v", err)
	}
}

func slicesEqual[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestValueEqualCompare(t *testing.T) {
	d1 := mustDate(t, 2026, 1, 1)
	d2 := mustDate(t, 2026, 1, 2)
	t1 := mustDateTime(t, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	t2 := mustDateTime(t, time.Date(2026, 1, 1, 0, 0, 0, 1000, time.UTC))
	ra := ledger.Ref{Model: "a", Key: "1"}
	rb := ledger.Ref{Model: "a", Key: "2"}
	// Pairs with a < b, of one kind.
	less := [][2]ledger.Value{
		{ledger.Bool(false), ledger.Bool(true)},
		{ledger.Int(-5), ledger.Int(3)},
		{mustDecimal(t, "-9.5"), mustDecimal(t, "0.05")},
		{ledger.String("Ab"), ledger.String("a")},
		{ledger.String(""), ledger.String("a")},
		{d1, d2},
		{t1, t2},
		{ledger.Bytes([]byte{0}), ledger.Bytes([]byte{0, 0})},
		{mustRef(t, "a", "1"), mustRef(t, "a", "2")},
		{mustRef(t, "a", "z"), mustRef(t, "b", "a")},
		{mustRefSet(t), mustRefSet(t, ra)},
		{mustRefSet(t, ra), mustRefSet(t, ra, rb)},
		{mustRefSet(t, ra, rb), mustRefSet(t, rb)},
	}
	for _, p := range less {
		a, b := p[0], p[1]
		if a.Compare(b) != -1 || b.Compare(a) != 1 {
			t.Errorf("Compare(%v, %v) = %d, reverse %d; want -1, 1", a, b, a.Compare(b), b.Compare(a))
		}
		if a.Compare(a) != 0 || a.Equal(b) || !a.Equal(a) {
			t.Errorf("%v: Equal/Compare with itself or %v wrong", a, b)
		}
	}
	// Different kinds never Equal, and order by kind.
	all := []ledger.Value{
		ledger.Null(), ledger.Bool(false), ledger.Int(0), mustDecimal(t, "0"), ledger.String(""),
		mustDate(t, 1970, 1, 1), mustDateTime(t, time.Unix(0, 0)), ledger.Bytes(nil), mustRef(t, "a", "0"), mustRefSet(t),
	}
	for i, a := range all {
		for j, b := range all {
			if got := a.Equal(b); got != (i == j) {
				t.Errorf("Equal(%v %v, %v %v) = %v", a.Kind(), a, b.Kind(), b, got)
			}
			if got := a.Compare(b); got != cmpInts(i, j) {
				t.Errorf("Compare(%v %v, %v %v) = %d, want %d", a.Kind(), a, b.Kind(), b, got, cmpInts(i, j))
			}
		}
	}
	// Equal is about the typed value: Int 1 is not Bool true, "1" not 1.
	if ledger.Int(1).Equal(ledger.Bool(true)) || ledger.String("1").Equal(mustDecimal(t, "1")) {
		t.Error("values of different kinds compare Equal")
	}
	if !ledger.Bytes(nil).Equal(ledger.Bytes([]byte{})) {
		t.Error("Bytes(nil) and Bytes({}) differ")
	}
}

func TestValueString(t *testing.T) {
	for _, tt := range []struct {
		v    ledger.Value
		want string
	}{
		{ledger.Null(), "null"},
		{ledger.Bool(true), "true"},
		{ledger.Int(-3), "-3"},
		{mustDecimal(t, "1.50"), "1.5"},
		{ledger.String("a\"b"), `"a\"b"`},
		{mustDate(t, 2026, 2, 3), "2026-02-03"},
		{ledger.Bytes([]byte("secret")), "<6 bytes>"},
	} {
		if got := tt.v.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}
