package clocks

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Timestamp is a hybrid logical clock reading packed into 64 bits: the high
// 48 bits are Unix milliseconds, the low 16 bits a logical counter. Packing
// makes the numeric order the causal order, so a Timestamp sorts, compares
// and stores as a plain unsigned integer. The zero value means "no time".
type Timestamp uint64

const (
	logicalBits = 16
	// MaxLogical is the largest logical counter; one more tick advances the
	// physical part instead of wrapping.
	MaxLogical = 1<<logicalBits - 1
	// MaxWallMillis is the largest representable physical part (year 10889).
	MaxWallMillis = 1<<48 - 1

	maxTimestamp = Timestamp(1<<64 - 1)
)

// New packs a physical reading and a logical counter. wallMillis outside
// [0, MaxWallMillis] is clamped, since a Timestamp cannot represent it.
func New(wallMillis int64, logical uint16) Timestamp {
	if wallMillis < 0 {
		wallMillis = 0
	}
	if wallMillis > MaxWallMillis {
		wallMillis = MaxWallMillis
	}
	return Timestamp(uint64(wallMillis)<<logicalBits | uint64(logical))
}

// WallMillis is the physical part, in Unix milliseconds.
func (t Timestamp) WallMillis() int64 { return int64(t >> logicalBits) }

// Logical is the counter that orders readings within one millisecond.
func (t Timestamp) Logical() uint16 { return uint16(t & MaxLogical) }

// Time is the physical part as a UTC time.Time (the logical part is dropped).
func (t Timestamp) Time() time.Time { return time.UnixMilli(t.WallMillis()).UTC() }

// IsZero reports whether t is the zero "no time" value.
func (t Timestamp) IsZero() bool { return t == 0 }

// Compare returns -1, 0 or +1 as t is before, equal to or after u.
func (t Timestamp) Compare(u Timestamp) int {
	switch {
	case t < u:
		return -1
	case t > u:
		return 1
	}
	return 0
}

// Next is the smallest Timestamp after t: the logical counter ticks, and on
// overflow the physical part advances by one millisecond instead of wrapping.
// The largest representable Timestamp (year 10889) has no successor; Next
// returns it unchanged rather than wrap to a smaller value.
func (t Timestamp) Next() Timestamp {
	if t == maxTimestamp {
		return t
	}
	if t.Logical() == MaxLogical {
		return New(t.WallMillis()+1, 0)
	}
	return t + 1
}

const layout = "2006-01-02T15:04:05.000Z07:00"

// String renders t as RFC 3339 UTC with milliseconds, a slash and the
// logical counter: "2026-11-30T04:44:36.123Z/7". Parse reads it back, for
// every Timestamp: readings after year 9999 get a five-digit year, which
// RFC 3339 lacks but Parse accepts.
func (t Timestamp) String() string {
	return t.Time().Format(layout) + "/" + strconv.Itoa(int(t.Logical()))
}

// Parse reads the form written by String. The logical part may be omitted
// (it is then 0); any RFC 3339 offset is accepted and converted to UTC, but
// precision finer than a millisecond is refused rather than rounded away,
// as are instants before 1970 or after MaxWallMillis.
func Parse(s string) (Timestamp, error) {
	wall, logical, hasLogical := strings.Cut(s, "/")
	tm, err := parseWall(wall)
	if err != nil {
		return 0, fmt.Errorf("clocks: parse timestamp %q: %w", s, err)
	}
	if tm.Nanosecond()%int(time.Millisecond) != 0 {
		return 0, fmt.Errorf("clocks: parse timestamp %q: finer than a millisecond", s)
	}
	ms := tm.UnixMilli()
	if ms < 0 || ms > MaxWallMillis {
		return 0, fmt.Errorf("clocks: parse timestamp %q: outside 1970..10889", s)
	}
	var l uint64
	if hasLogical {
		l, err = strconv.ParseUint(logical, 10, logicalBits)
		if err != nil {
			return 0, fmt.Errorf("clocks: parse timestamp %q: logical part: %w", s, err)
		}
	}
	return New(ms, uint16(l)), nil
}

// parseWall parses an RFC 3339 time, extended to the five-digit years (10000
// to 10889) that String writes for the top of the Timestamp range. Such a
// year is parsed as a stand-in four-digit year with the same position in the
// 400-year Gregorian cycle, so month lengths and leap days agree, and then
// moved back by a whole number of cycles.
func parseWall(s string) (time.Time, error) {
	if len(s) < 6 || s[5] != '-' || s[0] == '0' || !isDigits(s[:5]) {
		return time.Parse(time.RFC3339Nano, s)
	}
	year, _ := strconv.Atoi(s[:5]) // cannot fail: five digits
	standIn := 2000 + year%400
	tm, err := time.Parse(time.RFC3339Nano, strconv.Itoa(standIn)+s[5:])
	if err != nil {
		return time.Time{}, errors.New("not an RFC 3339 time with a five-digit year")
	}
	return tm.AddDate(year-standIn, 0, 0), nil
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
