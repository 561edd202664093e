package clocks_test

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/ghsync/ghsync/clocks"
)

// ms returns the Unix milliseconds of a UTC date-time.
func ms(year int, month time.Month, day, hour, minute, sec, milli int) int64 {
	return time.Date(year, month, day, hour, minute, sec, milli*int(time.Millisecond), time.UTC).UnixMilli()
}

func TestNewAndAccessors(t *testing.T) {
	tests := []struct {
		name        string
		wall        int64
		logical     uint16
		wantWall    int64
		wantLogical uint16
	}{
		{"zero", 0, 0, 0, 0},
		{"ordinary", 1_700_000_000_123, 7, 1_700_000_000_123, 7},
		{"max logical", 42, clocks.MaxLogical, 42, clocks.MaxLogical},
		{"max wall", clocks.MaxWallMillis, 1, clocks.MaxWallMillis, 1},
		{"negative wall clamps to 0", -5, 3, 0, 3},
		{"huge wall clamps to max", math.MaxInt64, 3, clocks.MaxWallMillis, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := clocks.New(tt.wall, tt.logical)
			if ts.WallMillis() != tt.wantWall || ts.Logical() != tt.wantLogical {
				t.Fatalf("New(%d, %d) = (%d, %d), want (%d, %d)",
					tt.wall, tt.logical, ts.WallMillis(), ts.Logical(), tt.wantWall, tt.wantLogical)
			}
			if got := ts.Time(); !got.Equal(time.UnixMilli(tt.wantWall)) || got.Location() != time.UTC {
				t.Fatalf("Time() = %v, want %v in UTC", got, time.UnixMilli(tt.wantWall).UTC())
			}
		})
	}
	if !clocks.Timestamp(0).IsZero() || clocks.New(0, 1).IsZero() {
		t.Fatal("IsZero must hold for the zero value only")
	}
}

func TestStringParse(t *testing.T) {
	base := ms(2026, 11, 30, 4, 44, 36, 123)
	tests := []struct {
		in      string
		want    clocks.Timestamp
		wantStr string // canonical form; "" means same as in
		wantErr string // substring of the error; "" means success
	}{
		{in: "2026-11-30T04:44:36.123Z/7", want: clocks.New(base, 7)},
		{in: "2026-11-30T04:44:36.123Z/0", want: clocks.New(base, 0)},
		{in: "2026-11-30T04:44:36.123Z/65535", want: clocks.New(base, clocks.MaxLogical)},
		{in: "2026-11-30T06:44:36.123+02:00/7", want: clocks.New(base, 7), wantStr: "2026-11-30T04:44:36.123Z/7"},
		{in: "2026-11-30T00:14:36.123-04:30/7", want: clocks.New(base, 7), wantStr: "2026-11-30T04:44:36.123Z/7"},
		{in: "2026-11-30T04:44:36.123Z", want: clocks.New(base, 0), wantStr: "2026-11-30T04:44:36.123Z/0"},
		{in: "2026-11-30T04:44:36Z/1", want: clocks.New(base-123, 1), wantStr: "2026-11-30T04:44:36.000Z/1"},
		{in: "2026-11-30T04:44:36.123000Z/1", want: clocks.New(base, 1), wantStr: "2026-11-30T04:44:36.123Z/1"},
		{in: "2026-11-30T04:44:36.123Z/007", want: clocks.New(base, 7), wantStr: "2026-11-30T04:44:36.123Z/7"},
		{in: "1970-01-01T00:00:00.000Z/0", want: 0},
		{in: "1970-01-01T00:00:00.000Z/1", want: 1},
		{in: "9999-12-31T23:59:59.999Z/65535", want: clocks.New(ms(9999, 12, 31, 23, 59, 59, 999), clocks.MaxLogical)},
		{in: "10000-01-01T00:00:00.000Z/3", want: clocks.New(ms(10000, 1, 1, 0, 0, 0, 0), 3)},
		{in: "10889-08-02T05:31:50.655Z/65535", want: clocks.New(clocks.MaxWallMillis, clocks.MaxLogical)},

		{in: "2026-11-30T04:44:36.1234Z/7", wantErr: "finer than a millisecond"},
		{in: "2026-11-30T04:44:36.123000001Z/7", wantErr: "finer than a millisecond"},
		{in: "2026-11-30T04:44:36.123Z/65536", wantErr: "logical part"},
		{in: "2026-11-30T04:44:36.123Z/-1", wantErr: "logical part"},
		{in: "2026-11-30T04:44:36.123Z/", wantErr: "logical part"},
		{in: "2026-11-30T04:44:36.123Z/7/8", wantErr: "logical part"},
		{in: "2026-11-30T04:44:36.123Z/x", wantErr: "logical part"},
		{in: "", wantErr: "parse timestamp"},
		{in: "garbage", wantErr: "parse timestamp"},
		{in: "/7", wantErr: "parse timestamp"},
		{in: " 2026-11-30T04:44:36.123Z/7", wantErr: "parse timestamp"},
		{in: "2026-11-30 04:44:36.123Z/7", wantErr: "parse timestamp"},
		{in: "2026-02-30T04:44:36.123Z/7", wantErr: "parse timestamp"},
		{in: "2026-11-30T04:44:36.123/7", wantErr: "parse timestamp"},
		{in: "1969-12-31T23:59:59.999Z/0", wantErr: "outside"},
		{in: "1970-01-01T00:30:00+01:00/0", wantErr: "outside"},
		{in: "0000-01-01T00:00:00Z/0", wantErr: "outside"},
		{in: "-0001-01-01T00:00:00Z/0", wantErr: "parse timestamp"},
		{in: "10889-08-02T05:31:50.656Z/0", wantErr: "outside"},
		{in: "10890-01-01T00:00:00Z/0", wantErr: "outside"},
		{in: "99999-12-31T23:59:59Z/0", wantErr: "outside"},
		{in: "100000-01-01T00:00:00Z/0", wantErr: "parse timestamp"},
		{in: "01000-01-01T00:00:00Z/0", wantErr: "parse timestamp"},
		{in: "10000-13-01T00:00:00Z/0", wantErr: "five-digit year"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := clocks.Parse(tt.in)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("Parse(%q) = %v, want error containing %q", tt.in, got, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "clocks: ") {
					t.Fatalf("Parse(%q) error = %q, want it prefixed \"clocks: \" and containing %q", tt.in, err, tt.wantErr)
				}
				if got != 0 {
					t.Fatalf("Parse(%q) returned %v alongside an error, want 0", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("Parse(%q) = %v (%d), want %v (%d)", tt.in, got, uint64(got), tt.want, uint64(tt.want))
			}
			wantStr := tt.wantStr
			if wantStr == "" {
				wantStr = tt.in
			}
			if s := got.String(); s != wantStr {
				t.Fatalf("Parse(%q).String() = %q, want %q", tt.in, s, wantStr)
			}
			back, err := clocks.Parse(got.String())
			if err != nil || back != got {
				t.Fatalf("round trip of %q: Parse(%q) = %v, %v; want %v", tt.in, got.String(), back, err, got)
			}
		})
	}
}

// TestStringParseExtremes checks the round trip at the edges of the range,
// where String needs a five-digit year.
func TestStringParseExtremes(t *testing.T) {
	for _, ts := range []clocks.Timestamp{
		0, 1, clocks.MaxLogical, clocks.MaxLogical + 1,
		clocks.New(ms(2000, 2, 29, 12, 0, 0, 1), 9),
		clocks.New(ms(10000, 2, 29, 23, 59, 59, 999), 1), // leap day: 10000 is divisible by 400
		clocks.New(clocks.MaxWallMillis, 0),
		clocks.Timestamp(math.MaxUint64),
	} {
		back, err := clocks.Parse(ts.String())
		if err != nil || back != ts {
			t.Errorf("Parse(%q) = %v, %v; want %d", ts.String(), back, err, uint64(ts))
		}
	}
}

func TestNext(t *testing.T) {
	top := clocks.Timestamp(math.MaxUint64)
	tests := []struct {
		name string
		in   clocks.Timestamp
		want clocks.Timestamp
	}{
		{"zero", 0, clocks.New(0, 1)},
		{"logical ticks", clocks.New(5, 3), clocks.New(5, 4)},
		{"logical to max", clocks.New(5, clocks.MaxLogical-1), clocks.New(5, clocks.MaxLogical)},
		{"overflow advances physical", clocks.New(5, clocks.MaxLogical), clocks.New(6, 0)},
		{"overflow at last wall", clocks.New(clocks.MaxWallMillis-1, clocks.MaxLogical), clocks.New(clocks.MaxWallMillis, 0)},
		{"saturates at max", top, top},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.in.Next()
			if got != tt.want {
				t.Fatalf("%v.Next() = %v, want %v", tt.in, got, tt.want)
			}
			if tt.in != top && got <= tt.in {
				t.Fatalf("%v.Next() = %v is not after it", tt.in, got)
			}
		})
	}
}

func TestCompare(t *testing.T) {
	tests := []struct {
		a, b clocks.Timestamp
		want int
	}{
		{0, 0, 0},
		{clocks.New(5, 1), clocks.New(5, 1), 0},
		{clocks.New(5, 1), clocks.New(5, 2), -1},
		{clocks.New(5, 2), clocks.New(5, 1), 1},
		{clocks.New(5, clocks.MaxLogical), clocks.New(6, 0), -1}, // physical part dominates
		{clocks.New(7, 0), clocks.New(6, clocks.MaxLogical), 1},
		{0, clocks.Timestamp(math.MaxUint64), -1},
	}
	for _, tt := range tests {
		if got := tt.a.Compare(tt.b); got != tt.want {
			t.Errorf("%v.Compare(%v) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := tt.b.Compare(tt.a); got != -tt.want {
			t.Errorf("%v.Compare(%v) = %d, want %d", tt.b, tt.a, got, -tt.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"2026-11-30T04:44:36.123Z/7",
		"2026-11-30T06:44:36.123+02:00/65535",
		"2026-11-30T04:44:36.123Z",
		"2026-11-30T04:44:36,123Z/1",
		"2026-11-30T04:44:36.1234Z/7",
		"1970-01-01T00:00:00Z/0",
		"10889-08-02T05:31:50.655Z/65535",
		"10000-02-29T00:00:00Z/0",
		"99999-01-01T00:00:00Z",
		"",
		"/",
		"garbage/1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ts, err := clocks.Parse(s)
		if err != nil {
			if ts != 0 {
				t.Fatalf("Parse(%q) = %v with error %v, want 0", s, ts, err)
			}
			return
		}
		str := ts.String()
		back, err := clocks.Parse(str)
		if err != nil {
			t.Fatalf("Parse(%q) = %v, but Parse(%q): %v", s, ts, str, err)
		}
		if back != ts {
			t.Fatalf("Parse(%q) = %d, but Parse(%q) = %d", s, uint64(ts), str, uint64(back))
		}
		if back.String() != str {
			t.Fatalf("String not canonical: %q then %q", str, back.String())
		}
	})
}
