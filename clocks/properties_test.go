package clocks_test

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/ghsync/ghsync/clocks"
)

// prop is a property test's random source and failure reporter: every
// failure message carries the seed and the command that replays it.
type prop struct {
	t    *testing.T
	seed uint64
	rng  *rand.Rand
}

// newProp takes the seed from GHSYNC_TEST_SEED, or picks one at random, and
// logs it before the test starts.
func newProp(t *testing.T) *prop {
	t.Helper()
	seed := rand.Uint64()
	if s := os.Getenv("GHSYNC_TEST_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("GHSYNC_TEST_SEED=%q: %v", s, err)
		}
	}
	p := &prop{t: t, seed: seed, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	t.Logf("%s", p.rerun())
	return p
}

func (p *prop) rerun() string {
	return fmt.Sprintf("seed=%d (rerun: GHSYNC_TEST_SEED=%d go test -run '^%s$' ./clocks)", p.seed, p.seed, p.t.Name())
}

func (p *prop) Fatalf(format string, args ...any) {
	p.t.Helper()
	p.t.Fatalf("%s: %s", p.rerun(), fmt.Sprintf(format, args...))
}

// between returns a uniform int64 in [lo, hi].
func (p *prop) between(lo, hi int64) int64 { return lo + p.rng.Int64N(hi-lo+1) }

// TestPropertyMonotonic mixes wall-clock jumps, Now, Observe and Restore at
// random and checks that every Now exceeds everything issued, accepted or
// restored before it, that Observe never moves the clock back, and that a
// rejected remote leaves the clock unchanged.
func TestPropertyMonotonic(t *testing.T) {
	p := newProp(t)
	for round := range 20 {
		maxOffset := []time.Duration{0, time.Second, clocks.DefaultMaxOffset}[p.rng.IntN(3)]
		wall := clocks.NewManual(base.Add(time.Duration(p.between(-1e6, 1e6)) * time.Millisecond))
		c := clocks.NewClock(wall, maxOffset)
		var high clocks.Timestamp // everything issued, accepted or restored
		for step := range 2000 {
			where := fmt.Sprintf("round %d step %d (max offset %v, wall %v, high %v)", round, step, maxOffset, wall.Now().UTC(), high)
			switch r := p.rng.IntN(100); {
			case r < 15: // wall jump, mostly small, sometimes large, either way
				d := p.between(-5, 5)
				if p.rng.IntN(4) == 0 {
					d = p.between(-3_600_000, 3_600_000)
				}
				wall.Advance(time.Duration(d) * time.Millisecond)
			case r < 60:
				got := c.Now()
				if got <= high {
					p.Fatalf("%s: Now() = %v, not after %v", where, got, high)
				}
				if pt := wall.Now().UnixMilli(); got.WallMillis() < pt {
					p.Fatalf("%s: Now() = %v lags the wall clock", where, got)
				}
				high = got
			case r < 90:
				remote := clocks.New(wall.Now().UnixMilli()+p.between(-600_000, 600_000), uint16(p.rng.IntN(clocks.MaxLogical+1)))
				if p.rng.IntN(10) == 0 && high > 2 {
					remote = high - clocks.Timestamp(p.rng.IntN(3)) // collide with the state
				}
				got, err := c.Observe(remote)
				if err != nil {
					var oe *clocks.OffsetError
					if !errors.As(err, &oe) || !errors.Is(err, clocks.ErrUntrustworthyRemote) {
						p.Fatalf("%s: Observe(%v) error %v is not an *OffsetError", where, remote, err)
					}
					if maxOffset == 0 || oe.Offset() <= maxOffset || oe.Remote != remote {
						p.Fatalf("%s: Observe(%v) wrongly refused: %v", where, remote, err)
					}
					if got != high || c.Last() != high {
						p.Fatalf("%s: refused Observe(%v) changed the clock to %v / %v", where, remote, got, c.Last())
					}
					continue
				}
				if maxOffset > 0 && remote.WallMillis()-wall.Now().UnixMilli() > maxOffset.Milliseconds() {
					p.Fatalf("%s: Observe(%v) accepted beyond max offset", where, remote)
				}
				if got <= high || got <= remote {
					p.Fatalf("%s: Observe(%v) = %v, not after both", where, remote, got)
				}
				high = got
			default:
				v := clocks.Timestamp(max(0, int64(high)+p.between(-1<<30, 1<<30)))
				c.Restore(v)
				high = max(high, v)
			}
			if last := c.Last(); last != high {
				p.Fatalf("%s: Last() = %v, want %v", where, last, high)
			}
		}
	}
}

// TestPropertyHappenedBefore simulates nodes with skewed, jumpy wall clocks
// exchanging messages. For each node it tracks the largest timestamp in the
// node's causal past (its own events and, transitively, everything it has
// received); every new event must exceed it, which is exactly "e happened
// before f implies hlc(e) < hlc(f)". With skews within MaxOffset, no message
// may be refused, and no timestamp may run ahead of true time by more than
// the largest skew.
func TestPropertyHappenedBefore(t *testing.T) {
	p := newProp(t)
	const (
		nodes   = 5
		maxSkew = 2 * time.Minute
		maxJump = 30 * time.Second // backwards, relative to the skewed time
	)
	type msg struct {
		to int
		ts clocks.Timestamp
	}
	for round := range 10 {
		trueNow := base
		skew := make([]time.Duration, nodes)
		walls := make([]*clocks.Manual, nodes)
		cs := make([]*clocks.Clock, nodes)
		causal := make([]clocks.Timestamp, nodes)
		for i := range nodes {
			skew[i] = time.Duration(p.between(-int64(maxSkew), int64(maxSkew)))
			walls[i] = clocks.NewManual(trueNow.Add(skew[i]))
			cs[i] = clocks.NewClock(walls[i], clocks.DefaultMaxOffset)
		}
		var inFlight []msg
		for step := range 3000 {
			trueNow = trueNow.Add(time.Duration(p.between(0, 50)) * time.Millisecond)
			n := p.rng.IntN(nodes)
			jitter := time.Duration(0)
			if p.rng.IntN(5) == 0 {
				jitter = -time.Duration(p.between(0, int64(maxJump)))
			}
			walls[n].Set(trueNow.Add(skew[n] + jitter))
			where := fmt.Sprintf("round %d step %d node %d (skew %v)", round, step, n, skew[n])

			var got clocks.Timestamp
			switch r := p.rng.IntN(3); {
			case r == 0 && len(inFlight) > 0: // deliver a random in-flight message to n
				i := p.rng.IntN(len(inFlight))
				m := inFlight[i]
				inFlight = slices.Delete(inFlight, i, i+1)
				walls[m.to].Set(trueNow.Add(skew[m.to]))
				n, where = m.to, fmt.Sprintf("round %d step %d node %d receiving %v", round, step, m.to, m.ts)
				var err error
				if got, err = cs[n].Observe(m.ts); err != nil {
					p.Fatalf("%s: refused within the skew bound: %v", where, err)
				}
				if got <= m.ts {
					p.Fatalf("%s: Observe = %v, not after the message", where, got)
				}
				causal[n] = max(causal[n], m.ts)
				if next := cs[n].Now(); next <= m.ts {
					p.Fatalf("%s: next Now() = %v, not after the received %v", where, next, m.ts)
				} else if next <= got {
					p.Fatalf("%s: next Now() = %v, not after the receipt %v", where, next, got)
				} else {
					got = next
				}
			case r == 1: // send to another node
				got = cs[n].Now()
				to := (n + 1 + p.rng.IntN(nodes-1)) % nodes
				inFlight = append(inFlight, msg{to: to, ts: got})
			default: // local event
				got = cs[n].Now()
			}
			if got <= causal[n] {
				p.Fatalf("%s: event %v not after its causal past %v", where, got, causal[n])
			}
			causal[n] = got
			if lead := time.Duration(got.WallMillis()-trueNow.UnixMilli()) * time.Millisecond; lead > maxSkew {
				p.Fatalf("%s: %v runs %v ahead of true time %v, beyond the largest skew", where, got, lead, trueNow)
			}
		}
	}
}

// event is a ledger event's ordering key: ghsync orders events by
// (hlc, origin, event id).
type event struct {
	hlc    clocks.Timestamp
	origin uint16
	id     [16]byte
}

func compareEvents(a, b event) int {
	if c := a.hlc.Compare(b.hlc); c != 0 {
		return c
	}
	if c := cmp.Compare(a.origin, b.origin); c != 0 {
		return c
	}
	return bytes.Compare(a.id[:], b.id[:])
}

// TestPropertyEventOrder checks that ordering by (hlc, origin, event id) is a
// strict total order, on events built to collide on hlc and origin and to
// share id prefixes.
func TestPropertyEventOrder(t *testing.T) {
	p := newProp(t)
	for round := range 20 {
		set := map[event]bool{}
		for range 80 {
			e := event{
				hlc:    clocks.New(base.UnixMilli()+p.between(0, 2), uint16(p.rng.IntN(3))),
				origin: uint16(p.rng.IntN(3)),
			}
			for i := range e.id {
				if p.rng.IntN(4) == 0 {
					e.id[i] = byte(p.rng.IntN(3))
				}
			}
			set[e] = true
		}
		events := make([]event, 0, len(set))
		for e := range set {
			events = append(events, e)
		}
		for _, a := range events {
			for _, b := range events {
				ab, ba := compareEvents(a, b), compareEvents(b, a)
				if ab != -ba {
					p.Fatalf("round %d: not antisymmetric: cmp(%v, %v) = %d, reverse %d", round, a, b, ab, ba)
				}
				if (ab == 0) != (a == b) {
					p.Fatalf("round %d: cmp(%v, %v) = %d for events that are equal=%v", round, a, b, ab, a == b)
				}
				for _, c := range events {
					if ab < 0 && compareEvents(b, c) < 0 && compareEvents(a, c) >= 0 {
						p.Fatalf("round %d: not transitive: %v < %v < %v but not %v < %v", round, a, b, c, a, c)
					}
				}
			}
		}
		// Sorting from two different shuffles yields the same strictly
		// increasing sequence.
		first := slices.Clone(events)
		p.rng.Shuffle(len(first), func(i, j int) { first[i], first[j] = first[j], first[i] })
		second := slices.Clone(events)
		p.rng.Shuffle(len(second), func(i, j int) { second[i], second[j] = second[j], second[i] })
		slices.SortFunc(first, compareEvents)
		slices.SortFunc(second, compareEvents)
		if !slices.Equal(first, second) {
			p.Fatalf("round %d: sort order depends on the input order", round)
		}
		for i := 1; i < len(first); i++ {
			if compareEvents(first[i-1], first[i]) >= 0 {
				p.Fatalf("round %d: sorted events %v and %v not strictly increasing", round, first[i-1], first[i])
			}
		}
	}
}

// TestPropertyStringRoundTrip checks that every Timestamp, however large,
// survives String and Parse.
func TestPropertyStringRoundTrip(t *testing.T) {
	p := newProp(t)
	for range 10000 {
		v := clocks.Timestamp(p.rng.Uint64())
		if p.rng.IntN(2) == 0 {
			v = clocks.New(base.UnixMilli()+p.between(-1e12, 1e12), uint16(p.rng.IntN(clocks.MaxLogical+1)))
		}
		back, err := clocks.Parse(v.String())
		if err != nil || back != v {
			p.Fatalf("Parse(%q) = %d, %v; want %d", v.String(), uint64(back), err, uint64(v))
		}
	}
}
