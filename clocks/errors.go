package clocks

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// ErrUntrustworthyRemote is what Clock.Observe's errors match under
// errors.Is, so that a caller can recognise "this peer's clock is too far
// ahead" (quarantine the batch, alert an operator) without depending on the
// concrete *OffsetError type.
var ErrUntrustworthyRemote = errors.New("clocks: remote timestamp too far ahead of the local wall clock")

// OffsetError is returned by Clock.Observe when a remote timestamp is further
// ahead of the local wall clock than the clock's maximum offset. It records
// both readings so the rejection can be diagnosed (whose clock is wrong, and
// by how much) after the fact. The Clock is left unchanged.
type OffsetError struct {
	// Remote is the rejected timestamp.
	Remote Timestamp
	// LocalWallMillis is the local wall clock at rejection, in Unix
	// milliseconds.
	LocalWallMillis int64
	// MaxOffset is the limit that Remote exceeded.
	MaxOffset time.Duration
}

// Offset is how far the remote physical time was ahead of the local wall
// clock, saturating at the largest time.Duration (about 292 years).
func (e *OffsetError) Offset() time.Duration {
	diff := e.Remote.WallMillis() - e.LocalWallMillis
	if diff > math.MaxInt64/int64(time.Millisecond) {
		return math.MaxInt64
	}
	if diff < math.MinInt64/int64(time.Millisecond) {
		return math.MinInt64
	}
	return time.Duration(diff) * time.Millisecond
}

// Error states the remote timestamp, the local wall clock, the offset
// between them and the limit.
func (e *OffsetError) Error() string {
	local := time.UnixMilli(e.LocalWallMillis).UTC().Format(layout)
	return fmt.Sprintf("clocks: untrustworthy remote: timestamp %s is %s ahead of local wall clock %s (max offset %s)",
		e.Remote, e.Offset(), local, e.MaxOffset)
}

// Is makes errors.Is(err, ErrUntrustworthyRemote) true for an *OffsetError.
func (e *OffsetError) Is(target error) bool { return target == ErrUntrustworthyRemote }
