package clocks

import (
	"sync"
	"time"
)

// DefaultMaxOffset is the maximum offset ghsync tolerates between a peer's
// clock and ours when nothing else is configured: generous enough for
// machines without NTP that are set by hand, tight enough that a clock off by
// hours or years is refused before it can drag every later timestamp along.
const DefaultMaxOffset = 5 * time.Minute

// Clock is a hybrid logical clock: it issues timestamps that follow physical
// time closely yet never go backwards and always order an event after
// everything it could have been caused by, even when wall clocks disagree.
//
// A Clock is safe for concurrent use by multiple goroutines. The zero value
// is usable: it reads System time and performs no offset check. A Clock must
// not be copied after first use.
type Clock struct {
	wall      WallClock
	maxOffset time.Duration

	mu   sync.Mutex
	last Timestamp // latest issued, observed or restored; guarded by mu
}

// NewClock returns a Clock reading physical time from wall (System if nil).
// Remote timestamps whose physical part is more than maxOffset ahead of wall
// are refused by Observe; a maxOffset of zero (or less) disables the check.
func NewClock(wall WallClock, maxOffset time.Duration) *Clock {
	if maxOffset < 0 {
		maxOffset = 0
	}
	return &Clock{wall: wall, maxOffset: maxOffset}
}

// MaxOffset is the limit Observe enforces, zero when unchecked.
func (c *Clock) MaxOffset() time.Duration { return c.maxOffset }

// Now issues a timestamp for a local event (a record change, or sending
// one). It is strictly greater than every timestamp this clock has issued,
// observed or restored, and its physical part is at least the wall clock's.
// When the wall clock stalls or jumps back, the logical counter ticks
// instead; when that overflows, the physical part advances by a millisecond.
//
// The only exception is at the very end of the representable range (year
// 10889, see MaxWallMillis), where the clock saturates and Now repeats
// the largest Timestamp.
func (c *Clock) Now() Timestamp {
	c.mu.Lock()
	defer c.mu.Unlock()
	ts := max(New(c.physicalMillis(), 0), c.last.Next())
	c.last = ts
	return ts
}

// At issues a timestamp for a local event that happened at when but is
// stamped only now: a change captured from a database after ghsync was
// stopped for days must not claim to be newer than the edits made
// elsewhere in between. Its physical part is when (never beyond the wall
// clock), and like Now it is strictly greater than every timestamp this
// clock has issued, observed or restored.
func (c *Clock) At(when time.Time) Timestamp {
	c.mu.Lock()
	defer c.mu.Unlock()
	pt := c.physicalMillis()
	if !when.Before(minWall) {
		pt = min(pt, when.UnixMilli())
	}
	ts := max(New(pt, 0), c.last.Next())
	c.last = ts
	return ts
}

// Observe applies the HLC receive rule to a timestamp received from another
// node, so that every later local event is ordered after it. It returns the
// clock's new state: a timestamp greater than both remote and the previous
// state, suitable for stamping the receipt itself and exceeded by every
// following Now. A remote behind this clock never moves it backwards.
//
// If remote's physical part is more than MaxOffset ahead of the local wall
// clock, the clock is left unchanged and Observe returns its current state
// with an *OffsetError (matching ErrUntrustworthyRemote): accepting it would
// let one bad clock drag every node's timestamps into the future.
func (c *Clock) Observe(remote Timestamp) (Timestamp, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	pt := c.physicalMillis()
	// Compare in whole milliseconds: remote's offset is a whole number of
	// them, and converting it to a Duration could overflow.
	if c.maxOffset > 0 && remote.WallMillis()-pt > c.maxOffset.Milliseconds() {
		return c.last, &OffsetError{Remote: remote, LocalWallMillis: pt, MaxOffset: c.maxOffset}
	}
	ts := max(New(pt, 0), c.last.Next(), remote.Next())
	c.last = ts
	return ts, nil
}

// Restore ratchets the clock up to last, the latest timestamp the ledger
// persisted before a restart, so that the clock never issues a timestamp
// at or below it even if the machine clock has since been set back. A value
// below the current state is ignored. Unlike Observe, Restore does not check
// the offset: the ledger is our own history, not a peer's claim.
func (c *Clock) Restore(last Timestamp) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.last = max(c.last, last)
}

// Last returns the clock's state: the latest timestamp it issued, observed
// or restored (zero for a fresh clock). The next Now will exceed it.
func (c *Clock) Last() Timestamp {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

// physicalMillis reads the wall clock in Unix milliseconds, clamped to the
// range a Timestamp can represent.
func (c *Clock) physicalMillis() int64 {
	wall := c.wall
	if wall == nil {
		wall = System
	}
	t := wall.Now()
	switch {
	case t.Before(minWall):
		return 0
	case t.After(maxWall):
		return MaxWallMillis
	}
	return t.UnixMilli()
}

var (
	minWall = time.UnixMilli(0)
	maxWall = time.UnixMilli(MaxWallMillis)
)
