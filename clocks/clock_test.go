package clocks_test

import (
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ghsync/ghsync/clocks"
)

// base is an arbitrary origin for scripted wall clocks; offsets from it are
// in milliseconds.
var base = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// at is the wall time off milliseconds after base.
func at(off int64) time.Time { return base.Add(time.Duration(off) * time.Millisecond) }

// ts is the Timestamp off milliseconds after base with the given logical part.
func ts(off int64, logical uint16) clocks.Timestamp {
	return clocks.New(base.UnixMilli()+off, logical)
}

// TestClockScript drives a clock through a script of sends (Now) and receives
// (Observe) under scripted wall time, in the manner of CockroachDB's
// TestHLCClock.
func TestClockScript(t *testing.T) {
	type op int
	const (
		send op = iota
		recv
	)
	steps := []struct {
		wall   int64 // wall clock, ms after base
		op     op
		remote clocks.Timestamp // for recv
		want   clocks.Timestamp
		why    string
	}{
		{5, send, 0, ts(5, 0), "first reading follows the wall"},
		{6, send, 0, ts(6, 0), "wall advances: logical resets"},
		{6, send, 0, ts(6, 1), "wall stalls: logical ticks"},
		{10, recv, ts(10, 5), ts(10, 6), "remote on the wall's millisecond: its logical + 1"},
		{7, send, 0, ts(10, 7), "wall jumps back: physical held, logical ticks"},
		{8, recv, ts(10, 4), ts(10, 8), "equal walls, local logical wins"},
		{9, recv, ts(10, 20), ts(10, 21), "equal walls, remote logical wins"},
		{9, recv, ts(15, 3), ts(15, 4), "remote ahead of clock and wall"},
		{12, send, 0, ts(15, 5), "wall behind the remote: logical ticks"},
		{15, send, 0, ts(15, 6), "wall reaches the physical part: still ticks"},
		{16, send, 0, ts(16, 0), "physical catches up: logical resets"},
		{20, recv, ts(18, 99), ts(20, 0), "wall ahead of clock and remote"},
		{20, recv, ts(20, 3), ts(20, 4), "all walls equal, remote logical wins"},
		{20, recv, ts(20, 1), ts(20, 5), "all walls equal, local logical wins"},
		{20, recv, 0, ts(20, 6), "zero remote"},
		{3, recv, ts(1, 0), ts(20, 7), "remote and wall behind: never backwards"},
		{25, send, 0, ts(25, 0), "wall passes everything"},
	}
	wall := clocks.NewManual(base)
	c := clocks.NewClock(wall, 0)
	for i, s := range steps {
		wall.Set(at(s.wall))
		var got clocks.Timestamp
		if s.op == send {
			got = c.Now()
		} else {
			var err error
			if got, err = c.Observe(s.remote); err != nil {
				t.Fatalf("step %d (%s): Observe(%v): %v", i, s.why, s.remote, err)
			}
		}
		if got != s.want {
			t.Fatalf("step %d (%s): got %v, want %v", i, s.why, got, s.want)
		}
		if last := c.Last(); last != s.want {
			t.Fatalf("step %d (%s): Last() = %v, want %v", i, s.why, last, s.want)
		}
	}
}

func TestClockLogicalOverflow(t *testing.T) {
	wall := clocks.NewManual(at(5))
	c := clocks.NewClock(wall, 0)
	c.Restore(ts(10, clocks.MaxLogical-1))
	for _, want := range []clocks.Timestamp{ts(10, clocks.MaxLogical), ts(11, 0), ts(11, 1)} {
		if got := c.Now(); got != want {
			t.Fatalf("Now() = %v, want %v", got, want)
		}
	}
	got, err := c.Observe(ts(20, clocks.MaxLogical))
	if err != nil || got != ts(21, 0) {
		t.Fatalf("Observe at MaxLogical = %v, %v; want %v", got, err, ts(21, 0))
	}
	if got := c.Now(); got != ts(21, 1) {
		t.Fatalf("Now() after overflowing receive = %v, want %v", got, ts(21, 1))
	}

	// A frozen wall clock: 65536 readings in one millisecond spill into the next.
	c = clocks.NewClock(clocks.NewManual(at(0)), 0)
	prev := c.Now()
	for range clocks.MaxLogical + 1 {
		next := c.Now()
		if next <= prev {
			t.Fatalf("Now() = %v after %v", next, prev)
		}
		prev = next
	}
	if prev != ts(1, 0) {
		t.Fatalf("after %d readings in one ms: %v, want %v", clocks.MaxLogical+2, prev, ts(1, 0))
	}
}

func TestClockWallOutOfRange(t *testing.T) {
	// Before 1970 the wall reads as 0, and the clock never issues the zero
	// "no time" value.
	early := clocks.NewClock(clocks.NewManual(time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)), 0)
	if got := early.Now(); got != clocks.New(0, 1) {
		t.Fatalf("Now() before 1970 = %v, want %v", got, clocks.New(0, 1))
	}
	if got := early.Now(); got != clocks.New(0, 2) {
		t.Fatalf("second Now() before 1970 = %v, want %v", got, clocks.New(0, 2))
	}

	// Beyond year 10889 the wall clamps to MaxWallMillis, and at the very
	// top the clock saturates instead of wrapping.
	late := clocks.NewClock(clocks.NewManual(time.Date(20000, 1, 1, 0, 0, 0, 0, time.UTC)), 0)
	if got := late.Now(); got != clocks.New(clocks.MaxWallMillis, 0) {
		t.Fatalf("Now() beyond range = %v, want %v", got, clocks.New(clocks.MaxWallMillis, 0))
	}
	top := clocks.Timestamp(math.MaxUint64)
	late.Restore(top - 1)
	for range 3 {
		if got := late.Now(); got != top {
			t.Fatalf("Now() at the top of the range = %d, want saturation at %d", uint64(got), uint64(top))
		}
	}
}

func TestClockRestoreAfterClockSetBack(t *testing.T) {
	// Before the restart: the machine clock reads base+1h.
	before := clocks.NewClock(clocks.NewManual(at(int64(time.Hour/time.Millisecond))), clocks.DefaultMaxOffset)
	for range 3 {
		before.Now()
	}
	persisted := before.Last()

	// After the restart the machine clock has been set back an hour.
	wall := clocks.NewManual(base)
	c := clocks.NewClock(wall, clocks.DefaultMaxOffset)
	c.Restore(persisted)
	if got := c.Last(); got != persisted {
		t.Fatalf("Last() after Restore = %v, want %v", got, persisted)
	}
	prev := persisted
	for i := range 1000 {
		if i%100 == 0 {
			wall.Advance(time.Second) // still far behind persisted
		}
		got := c.Now()
		if got <= prev {
			t.Fatalf("Now() = %v, not after %v (persisted %v)", got, prev, persisted)
		}
		prev = got
	}

	// Restoring something older (or nothing) never moves the clock back.
	c.Restore(persisted)
	c.Restore(0)
	if got := c.Last(); got != prev {
		t.Fatalf("Last() after restoring older values = %v, want %v", got, prev)
	}

	// Once the wall clock passes the restored time, it takes over again.
	wall.Set(at(int64(time.Hour/time.Millisecond) + 1000))
	if got, want := c.Now(), ts(int64(time.Hour/time.Millisecond)+1000, 0); got != want {
		t.Fatalf("Now() after the wall caught up = %v, want %v", got, want)
	}

	// Restore is our own history, so it is not offset-checked.
	far := ts(int64(365*24*time.Hour/time.Millisecond), 0)
	c.Restore(far)
	if got := c.Now(); got != far.Next() {
		t.Fatalf("Now() after restoring a far-future time = %v, want %v", got, far.Next())
	}
}

func TestClockMaxOffset(t *testing.T) {
	wall := clocks.NewManual(base)
	c := clocks.NewClock(wall, clocks.DefaultMaxOffset)
	if c.MaxOffset() != clocks.DefaultMaxOffset {
		t.Fatalf("MaxOffset() = %v, want %v", c.MaxOffset(), clocks.DefaultMaxOffset)
	}
	state := c.Now()

	limit := clocks.DefaultMaxOffset.Milliseconds()
	remote := ts(limit+1, 7)
	got, err := c.Observe(remote)
	if err == nil {
		t.Fatalf("Observe(%v) with wall %v: no error", remote, base)
	}
	if got != state || c.Last() != state {
		t.Fatalf("rejected Observe changed the clock: returned %v, Last() %v, want %v", got, c.Last(), state)
	}
	if !errors.Is(err, clocks.ErrUntrustworthyRemote) {
		t.Fatalf("errors.Is(%v, ErrUntrustworthyRemote) = false", err)
	}
	var oe *clocks.OffsetError
	if !errors.As(err, &oe) {
		t.Fatalf("error %T is not an *OffsetError", err)
	}
	if oe.Remote != remote || oe.LocalWallMillis != base.UnixMilli() || oe.MaxOffset != clocks.DefaultMaxOffset {
		t.Fatalf("OffsetError = %+v, want remote %v, local %d, max %v", *oe, remote, base.UnixMilli(), clocks.DefaultMaxOffset)
	}
	if want := clocks.DefaultMaxOffset + time.Millisecond; oe.Offset() != want {
		t.Fatalf("Offset() = %v, want %v", oe.Offset(), want)
	}
	msg := err.Error()
	for _, part := range []string{"clocks: ", remote.String(), "2026-01-01T00:00:00.000Z", "5m0.001s", "5m0s"} {
		if !strings.Contains(msg, part) {
			t.Errorf("Error() = %q, missing %q", msg, part)
		}
	}

	// Not poisoned: the next local event follows the local wall.
	if got := c.Now(); got != ts(0, 1) {
		t.Fatalf("Now() after a rejected remote = %v, want %v", got, ts(0, 1))
	}

	// Absurd remotes are refused too, with a sane offset.
	if _, err := c.Observe(clocks.New(clocks.MaxWallMillis, 0)); !errors.As(err, &oe) || oe.Offset() <= clocks.DefaultMaxOffset {
		t.Fatalf("Observe(year 10889) = %v, want an *OffsetError with a large offset", err)
	}
	if !strings.HasPrefix(clocks.ErrUntrustworthyRemote.Error(), "clocks: ") {
		t.Fatalf("sentinel %q lacks the clocks: prefix", clocks.ErrUntrustworthyRemote)
	}

	// Remotes behind, or ahead by exactly the limit, are accepted.
	if got, err := c.Observe(clocks.New(base.Add(-24*time.Hour).UnixMilli(), 0)); err != nil || got != ts(0, 2) {
		t.Fatalf("Observe(a day behind) = %v, %v; want %v", got, err, ts(0, 2))
	}
	if got, err := c.Observe(ts(limit, 0)); err != nil || got != ts(limit, 1) {
		t.Fatalf("Observe(exactly MaxOffset ahead) = %v, %v; want %v", got, err, ts(limit, 1))
	}

	// The limit is measured against the wall clock, not the clock's state.
	if got, err := c.Observe(ts(limit+2, 0)); err == nil {
		t.Fatalf("Observe(MaxOffset+2ms ahead of the wall) = %v, want error even though the state is ahead", got)
	}

	// Sub-millisecond limits round down to whole milliseconds.
	fine := clocks.NewClock(wall, 1500*time.Microsecond)
	if _, err := fine.Observe(ts(1, 0)); err != nil {
		t.Fatalf("1ms ahead with max 1.5ms: %v", err)
	}
	if _, err := fine.Observe(ts(2, 0)); err == nil {
		t.Fatal("2ms ahead with max 1.5ms: accepted")
	}
}

func TestClockNoOffsetCheck(t *testing.T) {
	for _, maxOffset := range []time.Duration{0, -time.Second} {
		c := clocks.NewClock(clocks.NewManual(base), maxOffset)
		if c.MaxOffset() != 0 {
			t.Fatalf("NewClock(_, %v).MaxOffset() = %v, want 0", maxOffset, c.MaxOffset())
		}
		far := ts(int64(100*365*24*time.Hour/time.Millisecond), 0)
		if got, err := c.Observe(far); err != nil || got != far.Next() {
			t.Fatalf("Observe(far future) without check = %v, %v; want %v", got, err, far.Next())
		}
	}
}

func TestOffsetErrorSaturates(t *testing.T) {
	e := &clocks.OffsetError{Remote: clocks.New(clocks.MaxWallMillis, 0), LocalWallMillis: 0, MaxOffset: time.Minute}
	if e.Offset() != math.MaxInt64 {
		t.Fatalf("Offset() = %v, want saturation at %v", e.Offset(), time.Duration(math.MaxInt64))
	}
	if !strings.Contains(e.Error(), "10889-08-02T05:31:50.655Z/0") {
		t.Fatalf("Error() = %q lacks the remote timestamp", e.Error())
	}
}

func TestClockDefaults(t *testing.T) {
	for name, c := range map[string]*clocks.Clock{
		"NewClock(nil)": clocks.NewClock(nil, clocks.DefaultMaxOffset),
		"zero value":    new(clocks.Clock),
	} {
		lo := time.Now().UnixMilli()
		got := c.Now()
		hi := time.Now().UnixMilli()
		if w := got.WallMillis(); w < lo || w > hi || got.Logical() != 0 {
			t.Errorf("%s: Now() = %v, want physical in [%d, %d] and logical 0", name, got, lo, hi)
		}
		if next := c.Now(); next <= got {
			t.Errorf("%s: Now() = %v after %v", name, next, got)
		}
	}
	if w := clocks.System.Now(); time.Since(w) > time.Minute || time.Since(w) < 0 {
		t.Errorf("System.Now() = %v, not the current time", w)
	}
}

func TestManual(t *testing.T) {
	var zero clocks.Manual
	if !zero.Now().IsZero() {
		t.Fatalf("zero Manual reads %v, want the zero time", zero.Now())
	}
	m := clocks.NewManual(base)
	if !m.Now().Equal(base) {
		t.Fatalf("Now() = %v, want %v", m.Now(), base)
	}
	m.Advance(90 * time.Second)
	m.Advance(-30 * time.Second)
	if want := base.Add(time.Minute); !m.Now().Equal(want) {
		t.Fatalf("after +90s-30s: %v, want %v", m.Now(), want)
	}
	m.Set(base.Add(-time.Hour))
	if want := base.Add(-time.Hour); !m.Now().Equal(want) {
		t.Fatalf("after Set: %v, want %v", m.Now(), want)
	}
}

// TestClockConcurrentNow runs Now from 8 goroutines while another moves the
// wall clock back and forth and observes remotes. Each goroutine must see
// strictly increasing values, and no value may be issued twice. Run it with
// -race. 8×10000 readings also overflow the logical counter repeatedly.
func TestClockConcurrentNow(t *testing.T) {
	const goroutines, perGoroutine = 8, 10000
	wall := clocks.NewManual(base)
	c := clocks.NewClock(wall, clocks.DefaultMaxOffset)
	start := c.Now()

	var wg sync.WaitGroup
	results := make([][]clocks.Timestamp, goroutines)
	for g := range goroutines {
		wg.Go(func() {
			out := make([]clocks.Timestamp, 0, perGoroutine)
			for range perGoroutine {
				out = append(out, c.Now())
			}
			results[g] = out
		})
	}
	wg.Go(func() {
		for i := range 2000 {
			if i%2 == 0 {
				wall.Advance(time.Duration(i%7-3) * time.Millisecond)
			} else if _, err := c.Observe(clocks.New(wall.Now().UnixMilli()+int64(i%5), uint16(i))); err != nil {
				t.Errorf("Observe: %v", err)
			}
			_ = c.Last()
		}
	})
	wg.Wait()

	seen := make(map[clocks.Timestamp]int, goroutines*perGoroutine)
	for g, out := range results {
		prev := start
		for i, v := range out {
			if v <= prev {
				t.Fatalf("goroutine %d reading %d: %v, not after %v", g, i, v, prev)
			}
			if other, dup := seen[v]; dup {
				t.Fatalf("%v issued to goroutines %d and %d", v, other, g)
			}
			seen[v] = g
			prev = v
		}
	}
}

func TestClockAt(t *testing.T) {
	wall := clocks.NewManual(at(10_000))
	c := clocks.NewClock(wall, clocks.DefaultMaxOffset)
	steps := []struct {
		name string
		when time.Time
		want clocks.Timestamp
	}{
		{"a change captured late keeps its own time", at(4_000), ts(4_000, 0)},
		{"an earlier one still orders after what was issued", at(3_000), ts(4_000, 1)},
		{"a later one takes its own time", at(6_000), ts(6_000, 0)},
		{"a time beyond the wall clock is clamped to it", at(99_000), ts(10_000, 0)},
		{"a zero time means now", time.Time{}, ts(10_000, 1)},
	}
	for _, s := range steps {
		if got := c.At(s.when); got != s.want {
			t.Fatalf("%s: At(%v) = %v, want %v", s.name, s.when, got, s.want)
		}
	}
	if got := c.Now(); got != ts(10_000, 2) {
		t.Fatalf("Now() after At = %v, want %v", got, ts(10_000, 2))
	}
}

func TestCorrectedWallClock(t *testing.T) {
	machine := clocks.NewManual(at(365 * 24 * 3600 * 1000)) // a year ahead
	w := clocks.NewCorrected(machine, -365*24*time.Hour)
	c := clocks.NewClock(w, clocks.DefaultMaxOffset)
	if got := c.Now(); got != ts(0, 0) {
		t.Fatalf("Now() with the year corrected = %v, want %v", got, ts(0, 0))
	}
	w.SetOffset(0)
	if got := c.Now(); got != ts(365*24*3600*1000, 0) {
		t.Fatalf("Now() without correction = %v", got)
	}
	if w.Offset() != 0 {
		t.Fatalf("Offset() = %v", w.Offset())
	}
}
