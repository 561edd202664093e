package clocks

import (
	"sync"
	"time"
)

// WallClock is the source of physical time for a Clock. It is injected
// rather than hard-wired to time.Now so that tests can drive the clock
// through jumps, skew and stalls deterministically, without sleeping.
// Implementations must be safe for concurrent use.
type WallClock interface {
	// Now returns the current physical time. It need not be monotonic:
	// Clock tolerates readings that jump backwards.
	Now() time.Time
}

// System is the machine's real-time clock, the WallClock for production use.
// It is a variable only so that it can be passed around as a WallClock;
// nothing should reassign it.
var System WallClock = systemClock{}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Manual is a WallClock that moves only when told to, so tests can script
// physical time (including backwards jumps) exactly. It is safe for
// concurrent use: one goroutine may move it while others read it. The zero
// value is usable and reads the zero time.Time (before 1970, which a Clock
// treats as Unix millisecond 0).
type Manual struct {
	mu  sync.Mutex
	now time.Time
}

// NewManual returns a Manual clock that reads t until moved.
func NewManual(t time.Time) *Manual { return &Manual{now: t} }

// Now returns the time last set, advanced by every Advance since.
func (m *Manual) Now() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.now
}

// Set moves the clock to t, forwards or backwards, the way an operator or
// NTP step can move a machine clock.
func (m *Manual) Set(t time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.now = t
}

// Advance moves the clock by d; a negative d jumps it backwards.
func (m *Manual) Advance(d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.now = m.now.Add(d)
}

// Corrected is a WallClock that reads base shifted by an offset measured
// against a reference (central's clock), so a satellite whose machine
// clock is off by hours or years still stamps its events near true time
// once it has talked to central. The offset can be replaced while in use.
type Corrected struct {
	base   WallClock
	mu     sync.Mutex
	offset time.Duration
}

// NewCorrected returns base (System if nil) shifted by offset.
func NewCorrected(base WallClock, offset time.Duration) *Corrected {
	if base == nil {
		base = System
	}
	return &Corrected{base: base, offset: offset}
}

// Now is base's reading plus the offset.
func (c *Corrected) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.base.Now().Add(c.offset)
}

// SetOffset replaces the correction, e.g. after a new measurement.
func (c *Corrected) SetOffset(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset = d
}

// Offset is the correction in force.
func (c *Corrected) Offset() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.offset
}
