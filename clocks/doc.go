/*
Package clocks implements the hybrid logical clock (HLC) of Kulkarni et al.,
"Logical Physical Clocks" (OPODIS 2014), which ghsync uses to order record
changes across GNU Health nodes that sync intermittently.

Every record change is stamped with a Timestamp from the node's Clock, and
events are totally ordered by (hlc, origin, event id): the HLC gives causal
order with physical time as a close proxy, the origin node breaks ties
between concurrent events, and the event id breaks the rest. A Timestamp packs
Unix milliseconds (48 bits) and a logical counter (16 bits) into a uint64 so
that numeric order is timestamp order.

Physical time is read through a WallClock: System in production, Manual in
tests, which can move time (also backwards) without sleeping.

# Strict monotonicity

Clock.Now returns a value strictly greater than everything the clock has
issued, observed or restored, whatever the wall clock does. Across restarts
this holds only if the caller passes the latest persisted timestamp to
Clock.Restore before issuing any.

# Happened-before is preserved

If event e happened before f (same node, or a chain of sends and receives
with Clock.Observe on each receipt), then hlc(e) < hlc(f).

# Bounded drift

The physical part of a timestamp never lags the local wall clock, and leads
it only when the clock has seen a later time: its own reading before the wall
clock was set back, a restored timestamp, or a peer's. Clock.Observe refuses
remotes more than MaxOffset ahead of the local wall clock, so a single bad
clock cannot drag the cluster into the future.

# Overflow

When the logical counter passes MaxLogical, the physical part advances by a
millisecond instead; the counter never wraps. At MaxWallMillis (year 10889)
the clock saturates and Now repeats the largest Timestamp.

# HAZARD: wall clock wrong by more than MaxOffset

A node whose clock runs ahead by more than MaxOffset has its changes refused
by every correct peer (they get an *OffsetError, ErrUntrustworthyRemote) until
it is fixed; its own timestamps stay in the future. A node whose clock runs
behind refuses all correct peers instead. Either way sync stalls rather than
corrupting order, and the error carries both readings to diagnose whose
clock is wrong. With MaxOffset zero nothing is refused: one timestamp years
ahead pins every node that observes it to logical ticks until real time
catches up, and a timestamp near MaxWallMillis exhausts the range.

# HAZARD: restore from an empty ledger after the clock was set back

Restore can only protect what was persisted. If a node's ledger is lost or
recreated while its machine clock was set back, and it keeps its origin id,
its new events can sort before events it issued earlier, which peers still
hold. Give a node with a fresh ledger a fresh origin id, or Restore it from
the highest timestamp the peers hold for that origin.
*/
package clocks
