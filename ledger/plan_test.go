package ledger_test

import (
	"cmp"
	"context"
	"errors"
	"maps"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ghsync/ghsync/clocks"
	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/ledger/ledgertest"
	"github.com/ghsync/ghsync/ledger/sqlite"
)

// chain makes n chained events of one origin.
func chain(t *testing.T, o *ledgertest.Origin, n int) []*ledger.Event {
	t.Helper()
	out := make([]*ledger.Event, n)
	for i := range out {
		out[i] = o.Event(t, "gnuhealth.patient", "PAT-1", ledger.OpWrite, map[string]ledger.Value{"visits": ledger.Int(int64(i))})
	}
	return out
}

// fork makes events that claim the same origin as e but differ from
// e[after:]: they continue e[after-1] (or start afresh when after is 0).
func fork(t *testing.T, origin uint16, e []*ledger.Event, after, n int) []*ledger.Event {
	t.Helper()
	o := ledgertest.NewOrigin(origin)
	if after > 0 {
		o.ResumeAt(ledger.OriginHead{Origin: origin, Seq: uint64(after), Hash: e[after-1].Hash, MaxHLC: e[after-1].HLC})
	}
	out := make([]*ledger.Event, n)
	for i := range out {
		out[i] = o.Event(t, "gnuhealth.patient", "PAT-1", ledger.OpWrite, map[string]ledger.Value{"visits": ledger.Int(-1)})
	}
	return out
}

// store is a pure-function model of what a backend holds.
type store map[ledger.SeqKey]*ledger.Event

func hold(events ...*ledger.Event) store {
	s := store{}
	for _, e := range events {
		s[ledger.SeqKey{Origin: e.Origin, Seq: e.OriginSeq}] = e
	}
	return s
}

func (s store) heads() map[uint16]ledger.OriginHead {
	h := map[uint16]ledger.OriginHead{}
	for k, e := range s {
		x := h[k.Origin]
		x.Origin = k.Origin
		if k.Seq > x.Seq {
			x.Seq, x.Hash = k.Seq, e.Hash
		}
		x.Count++
		x.MaxHLC = max(x.MaxHLC, e.HLC)
		h[k.Origin] = x
	}
	return h
}

// held answers keys as a backend would: those it holds.
func (s store) held(keys []ledger.SeqKey) map[ledger.SeqKey]ledger.Held {
	out := map[ledger.SeqKey]ledger.Held{}
	for _, k := range keys {
		if e, ok := s[k]; ok {
			out[k] = ledger.Held{ID: e.ID, Hash: e.Hash, PrevHash: e.PrevHash}
		}
	}
	return out
}

// plan runs Prepare, Lookups and Resolve as a backend does.
func (s store) plan(t *testing.T, events ...*ledger.Event) ([]ledger.SeqKey, *ledger.Plan, error) {
	t.Helper()
	b, err := ledger.Prepare(events)
	if err != nil {
		return nil, nil, err
	}
	heads := s.heads()
	keys := b.Lookups(heads)
	p, err := b.Resolve(heads, s.held(keys))
	return keys, p, err
}

func head(origin uint16, seq uint64, hash ledger.Hash, count uint64, hlc clocks.Timestamp) ledger.OriginHead {
	return ledger.OriginHead{Origin: origin, Seq: seq, Hash: hash, Count: count, MaxHLC: hlc}
}

func TestPlan(t *testing.T) {
	e := chain(t, ledgertest.NewOrigin(1), 6) // e[i] has seq i+1
	q := chain(t, ledgertest.NewOrigin(2), 3)
	f := fork(t, 1, e, 0, 3) // different seq 1..3
	g := fork(t, 1, e, 1, 2) // seq 2..3 continuing e[0]

	tests := []struct {
		name       string
		held       store
		batch      []*ledger.Event
		wantKeys   []ledger.SeqKey
		wantErr    error
		wantMsg    string
		wantInsert []int
		wantDups   int
		wantHeads  map[uint16]ledger.OriginHead
	}{
		{
			name:       "first events, empty store",
			held:       hold(),
			batch:      e[:2],
			wantInsert: []int{0, 1},
			wantHeads:  map[uint16]ledger.OriginHead{1: head(1, 2, e[1].Hash, 2, e[1].HLC)},
		},
		{
			name:       "in-order continuation needs no lookups",
			held:       hold(e[:2]...),
			batch:      e[2:4],
			wantInsert: []int{0, 1},
			wantHeads:  map[uint16]ledger.OriginHead{1: head(1, 4, e[3].Hash, 4, e[3].HLC)},
		},
		{
			name:       "two origins in one call",
			held:       hold(e[0], q[0]),
			batch:      []*ledger.Event{q[1], e[1], q[2]},
			wantInsert: []int{0, 1, 2},
			wantHeads: map[uint16]ledger.OriginHead{
				1: head(1, 2, e[1].Hash, 2, e[1].HLC),
				2: head(2, 3, q[2].Hash, 3, q[2].HLC),
			},
		},
		{
			name:      "all duplicates: heads unchanged",
			held:      hold(e[:3]...),
			batch:     e[:3],
			wantKeys:  []ledger.SeqKey{{1, 1}, {1, 2}, {1, 3}},
			wantDups:  3,
			wantHeads: map[uint16]ledger.OriginHead{},
		},
		{
			name:       "duplicates and new events",
			held:       hold(e[:3]...),
			batch:      e[1:5],
			wantKeys:   []ledger.SeqKey{{1, 1}, {1, 2}, {1, 3}},
			wantInsert: []int{2, 3},
			wantDups:   2,
			wantHeads:  map[uint16]ledger.OriginHead{1: head(1, 5, e[4].Hash, 5, e[4].HLC)},
		},
		{
			name:       "intra-batch repeat counted as a duplicate",
			held:       hold(),
			batch:      []*ledger.Event{e[0], e[1], e[0], clone(e[1])},
			wantInsert: []int{0, 1},
			wantDups:   2,
			wantHeads:  map[uint16]ledger.OriginHead{1: head(1, 2, e[1].Hash, 2, e[1].HLC)},
		},
		{
			name:       "out of order batch",
			held:       hold(e[0]),
			batch:      []*ledger.Event{e[3], e[1], e[2]},
			wantInsert: []int{0, 1, 2},
			wantHeads:  map[uint16]ledger.OriginHead{1: head(1, 4, e[3].Hash, 4, e[3].HLC)},
		},
		{
			name:       "gap left: no chain check across it",
			held:       hold(e[0]),
			batch:      []*ledger.Event{e[4]},
			wantInsert: []int{0},
			wantHeads:  map[uint16]ledger.OriginHead{1: head(1, 5, e[4].Hash, 2, e[4].HLC)},
		},
		{
			name:       "gap filled: Seq stays, Count grows",
			held:       hold(e[0], e[1], e[3]),
			batch:      []*ledger.Event{e[2]},
			wantKeys:   []ledger.SeqKey{{1, 2}, {1, 3}, {1, 4}},
			wantInsert: []int{0},
			wantHeads:  map[uint16]ledger.OriginHead{1: head(1, 4, e[3].Hash, 4, e[3].HLC)},
		},
		{
			name:       "gap filled from the start",
			held:       hold(e[2]),
			batch:      e[:2],
			wantKeys:   []ledger.SeqKey{{1, 1}, {1, 2}, {1, 3}},
			wantInsert: []int{0, 1},
			wantHeads:  map[uint16]ledger.OriginHead{1: head(1, 3, e[2].Hash, 3, e[2].HLC)},
		},
		{
			name:     "conflict with a held event",
			held:     hold(e[:3]...),
			batch:    []*ledger.Event{f[1]},
			wantKeys: []ledger.SeqKey{{1, 1}, {1, 2}, {1, 3}},
			wantErr:  ledger.ErrConflict,
			wantMsg:  "already stored",
		},
		{
			name:    "chain mismatch with the batch predecessor",
			held:    hold(),
			batch:   []*ledger.Event{e[0], f[1]},
			wantErr: ledger.ErrChainBroken,
			wantMsg: "prev_hash",
		},
		{
			name:    "chain mismatch with the batch predecessor, given after",
			held:    hold(),
			batch:   []*ledger.Event{f[1], e[0]},
			wantErr: ledger.ErrChainBroken,
			wantMsg: "prev_hash",
		},
		{
			name:    "chain mismatch with the head",
			held:    hold(e[:2]...),
			batch:   []*ledger.Event{f[2]},
			wantErr: ledger.ErrChainBroken,
			wantMsg: "prev_hash",
		},
		{
			name:    "chain mismatch with the head, first of origin",
			held:    hold(e[0]),
			batch:   []*ledger.Event{f[1]},
			wantErr: ledger.ErrChainBroken,
			wantMsg: "prev_hash",
		},
		{
			name:     "chain mismatch with a held predecessor",
			held:     hold(e[0], e[1], e[3]),
			batch:    []*ledger.Event{f[2]},
			wantKeys: []ledger.SeqKey{{1, 2}, {1, 3}, {1, 4}},
			wantErr:  ledger.ErrChainBroken,
			wantMsg:  "prev_hash",
		},
		{
			name:     "chain mismatch with a held successor",
			held:     hold(e[0], e[2]),
			batch:    []*ledger.Event{g[0]},
			wantKeys: []ledger.SeqKey{{1, 1}, {1, 2}, {1, 3}},
			wantErr:  ledger.ErrChainBroken,
			wantMsg:  "links to",
		},
		{
			name:     "chain mismatch with a held successor, behind the batch",
			held:     hold(e[0], e[3]),
			batch:    []*ledger.Event{g[0], g[1]},
			wantKeys: []ledger.SeqKey{{1, 1}, {1, 2}, {1, 3}, {1, 4}},
			wantErr:  ledger.ErrChainBroken,
			wantMsg:  "links to",
		},
		{
			name:       "a fork that continues the held predecessor is not a conflict",
			held:       hold(e[0]),
			batch:      []*ledger.Event{g[0]},
			wantInsert: []int{0},
			wantHeads:  map[uint16]ledger.OriginHead{1: head(1, 2, g[0].Hash, 2, max(e[0].HLC, g[0].HLC))},
		},
		{
			name:    "two different events for one (origin, seq) in a call",
			held:    hold(),
			batch:   []*ledger.Event{e[0], f[0]},
			wantErr: ledger.ErrConflict,
			wantMsg: "two different events",
		},
		{
			name:    "one id twice in a call",
			held:    hold(),
			batch:   []*ledger.Event{e[0], sameID(t, e[0], 2, e[0].Hash)},
			wantErr: ledger.ErrConflict,
			wantMsg: "id also used",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys, p, err := tt.held.plan(t, tt.batch...)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("error %v, want %v", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantMsg) {
					t.Errorf("error %q does not mention %q", err, tt.wantMsg)
				}
				var ee *ledger.EventError
				if !errors.As(err, &ee) || ee.ID.Version() != 7 {
					t.Errorf("error %v does not name an event", err)
				}
				if tt.wantKeys != nil && !slices.Equal(keys, tt.wantKeys) {
					t.Errorf("Lookups = %v, want %v", keys, tt.wantKeys)
				}
				return
			}
			if err != nil {
				t.Fatalf("plan: %v", err)
			}
			if !slices.Equal(keys, tt.wantKeys) {
				t.Errorf("Lookups = %v, want %v", keys, tt.wantKeys)
			}
			if !slices.Equal(p.Insert, tt.wantInsert) {
				t.Errorf("Insert = %v, want %v", p.Insert, tt.wantInsert)
			}
			if p.Duplicates != tt.wantDups {
				t.Errorf("Duplicates = %d, want %d", p.Duplicates, tt.wantDups)
			}
			if !reflect.DeepEqual(p.Heads, tt.wantHeads) {
				t.Errorf("Heads = %+v, want %+v", p.Heads, tt.wantHeads)
			}
			// The new heads are what the store holds after the insert.
			b, _ := ledger.Prepare(tt.batch)
			after := maps.Clone(tt.held)
			for _, i := range p.Insert {
				ev := b.Events[i]
				after[ledger.SeqKey{Origin: ev.Origin, Seq: ev.OriginSeq}] = ev
			}
			for o, h := range p.Heads {
				if after.heads()[o] != h {
					t.Errorf("origin %d: plan head %+v, store would hold %+v", o, h, after.heads()[o])
				}
			}
		})
	}
}

func clone(e *ledger.Event) *ledger.Event {
	c := *e
	c.Fields = maps.Clone(e.Fields)
	c.Base = maps.Clone(e.Base)
	return &c
}

// sameID is a valid, sealed event reusing e's id at another seq.
func sameID(t *testing.T, e *ledger.Event, seq uint64, prev ledger.Hash) *ledger.Event {
	t.Helper()
	c := clone(e)
	c.OriginSeq = seq
	if err := c.Seal(prev); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestPrepare(t *testing.T) {
	e := chain(t, ledgertest.NewOrigin(4), 3)
	b, err := ledger.Prepare([]*ledger.Event{e[2], e[0], e[2], e[1]})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(b.Events, []*ledger.Event{e[2], e[0], e[1]}) {
		t.Errorf("Events = %v, want unique events in caller order", b.Events)
	}
	for i, ev := range b.Events {
		if !slices.Equal(b.Payloads[i], mustMarshal(t, ev)) {
			t.Errorf("Payloads[%d] is not the encoding of Events[%d]", i, i)
		}
	}
	if got := b.Origins(); !slices.Equal(got, []uint16{4}) {
		t.Errorf("Origins = %v", got)
	}
	q := chain(t, ledgertest.NewOrigin(0), 1)
	r := chain(t, ledgertest.NewOrigin(511), 1)
	b, _ = ledger.Prepare([]*ledger.Event{r[0], e[0], q[0], e[1]})
	if got := b.Origins(); !slices.Equal(got, []uint16{0, 4, 511}) {
		t.Errorf("Origins = %v, want sorted and unique", got)
	}
	if b, err := ledger.Prepare(nil); err != nil || len(b.Events) != 0 {
		t.Errorf("Prepare(nil) = %v, %v", b, err)
	}

	bad := clone(e[0])
	bad.Origin = 600
	for _, tt := range []struct {
		name  string
		batch []*ledger.Event
		want  error
	}{
		{"nil event", []*ledger.Event{e[0], nil}, ledger.ErrInvalidEvent},
		{"invalid event", []*ledger.Event{bad}, ledger.ErrInvalidEvent},
		{"unsealed", []*ledger.Event{validEvent(t)}, ledger.ErrInvalidEvent},
		{"hash mismatch", []*ledger.Event{func() *ledger.Event { c := clone(e[1]); c.Tx++; return c }()}, ledger.ErrHashMismatch},
	} {
		if _, err := ledger.Prepare(tt.batch); !errors.Is(err, tt.want) {
			t.Errorf("%s: Prepare: %v, want %v", tt.name, err, tt.want)
		}
	}
}

// TestResolveNeedsOnlyLookups: held answering only the keys Lookups asked
// for gives the same plan as held answering every key the store holds.
func TestResolveNeedsOnlyLookups(t *testing.T) {
	rng := ledgertest.Rand(t)
	e := chain(t, ledgertest.NewOrigin(1), 12)
	f := fork(t, 1, e, 5, 7) // a second history of seq 6..12
	var failed int
	for range 2000 {
		forked := rng.IntN(2) == 0
		pick := func(ev *ledger.Event) *ledger.Event {
			if forked && ev.OriginSeq > 5 && rng.IntN(4) == 0 {
				return f[ev.OriginSeq-6]
			}
			return ev
		}
		// The store holds part of one consistent history; the batch may mix both.
		hist := e
		if forked && rng.IntN(2) == 0 {
			hist = append(slices.Clone(e[:5]), f...)
		}
		s := store{}
		for _, ev := range hist {
			if rng.IntN(2) == 0 {
				s[ledger.SeqKey{Origin: 1, Seq: ev.OriginSeq}] = ev
			}
		}
		var batch []*ledger.Event
		for _, ev := range e {
			if rng.IntN(3) == 0 {
				batch = append(batch, pick(ev))
			}
		}
		rng.Shuffle(len(batch), func(i, j int) { batch[i], batch[j] = batch[j], batch[i] })
		b, err := ledger.Prepare(batch)
		if err != nil {
			t.Fatal(err)
		}
		heads := s.heads()
		all := map[ledger.SeqKey]ledger.Held{}
		for k := range s {
			all[k] = s.held([]ledger.SeqKey{k})[k]
		}
		want, err1 := b.Resolve(heads, all)
		got, err2 := b.Resolve(heads, s.held(b.Lookups(heads)))
		if !reflect.DeepEqual(got, want) || (err1 == nil) != (err2 == nil) || err1 != nil && err1.Error() != err2.Error() {
			t.Fatalf("held %v, batch %v: lookups-only plan %+v (%v), full plan %+v (%v)", slices.Collect(maps.Keys(s)), batch, got, err2, want, err1)
		}
		if err1 != nil {
			if !forked { // a genuine chain never breaks
				t.Fatalf("genuine chain refused: %v", err1)
			}
			if !errors.Is(err1, ledger.ErrConflict) && !errors.Is(err1, ledger.ErrChainBroken) {
				t.Fatalf("unexpected error %v", err1)
			}
			failed++
			continue
		}
		// Everything not held is inserted once, and the store stays one chain.
		if len(got.Insert)+got.Duplicates != len(batch) {
			t.Fatalf("inserted %d + duplicates %d != %d events", len(got.Insert), got.Duplicates, len(batch))
		}
		for _, i := range got.Insert {
			ev := b.Events[i]
			k := ledger.SeqKey{Origin: 1, Seq: ev.OriginSeq}
			if _, ok := s[k]; ok {
				t.Fatalf("plan overwrites held seq %d", k.Seq)
			}
			s[k] = ev
		}
		for k, ev := range s {
			if next, ok := s[ledger.SeqKey{Origin: 1, Seq: k.Seq + 1}]; ok && next.PrevHash != ev.Hash {
				t.Fatalf("after the plan, seq %d does not link to seq %d", k.Seq+1, k.Seq)
			}
		}
	}
	if failed == 0 {
		t.Error("no forked history was refused: the test does not test refusal")
	}
}

func openSQLite(t *testing.T) ledger.Store {
	t.Helper()
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "ledger.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestSequencer(t *testing.T) {
	ctx := context.Background()
	s := openSQLite(t)
	const origin = 3
	wall := clocks.NewManual(time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC))

	// Another origin's events must not move this one's sequence.
	other := ledgertest.NewOrigin(5)
	if _, err := s.Append(ctx, chain(t, other, 4)); err != nil {
		t.Fatal(err)
	}

	q, err := ledger.Resume(ctx, s, origin, clocks.NewClock(wall, 0))
	if err != nil {
		t.Fatalf("Resume on a store without origin %d: %v", origin, err)
	}
	if seq, prev := q.Head(); seq != 0 || !prev.IsZero() {
		t.Fatalf("fresh Head = %d, %s; want 0, zero", seq, prev)
	}
	stamp := func(q *ledger.Sequencer, n int) []*ledger.Event {
		out := make([]*ledger.Event, n)
		for i := range out {
			e := &ledger.Event{Model: "gnuhealth.patient", Key: "PAT-1", Op: ledger.OpWrite, User: "admin",
				Fields: map[string]ledger.Value{"visits": ledger.Int(int64(i))}}
			if err := q.Stamp(e); err != nil {
				t.Fatalf("Stamp: %v", err)
			}
			out[i] = e
		}
		return out
	}
	first := stamp(q, 3)
	checkChain(t, origin, 1, ledger.Hash{}, first)
	if seq, prev := q.Head(); seq != 3 || prev != first[2].Hash {
		t.Errorf("Head = %d, %s; want 3, %s", seq, prev, first[2].Hash)
	}
	res, err := s.Append(ctx, first)
	if err != nil || res.Appended != 3 {
		t.Fatalf("Append stamped events: %+v, %v", res, err)
	}

	// A restart with the wall clock set back: the sequence and the clock
	// continue from the store.
	wall.Set(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC))
	clock := clocks.NewClock(wall, 0)
	q2, err := ledger.Resume(ctx, s, origin, clock)
	if err != nil {
		t.Fatalf("Resume on a non-empty store: %v", err)
	}
	if seq, prev := q2.Head(); seq != 3 || prev != first[2].Hash {
		t.Fatalf("resumed Head = %d, %s; want 3, %s", seq, prev, first[2].Hash)
	}
	if clock.Last() < first[2].HLC {
		t.Errorf("resumed clock at %v, behind the stored %v", clock.Last(), first[2].HLC)
	}
	second := stamp(q2, 2)
	checkChain(t, origin, 4, first[2].Hash, second)
	if second[0].HLC <= first[2].HLC {
		t.Errorf("HLC went backwards across a restart: %v after %v", second[0].HLC, first[2].HLC)
	}
	if res, err := s.Append(ctx, second); err != nil || res.Appended != 2 {
		t.Fatalf("Append after resume: %+v, %v", res, err)
	}

	// Concurrent stamping still yields one chain.
	q3, err := ledger.Resume(ctx, s, origin, clocks.NewClock(wall, 0))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	var many []*ledger.Event
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				e := &ledger.Event{Model: "party.party", Key: "P", Op: ledger.OpCreate}
				if err := q3.Stamp(e); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				many = append(many, e)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	slices.SortFunc(many, func(a, b *ledger.Event) int { return cmp.Compare(a.OriginSeq, b.OriginSeq) })
	checkChain(t, origin, 6, second[1].Hash, many)
	if res, err := s.Append(ctx, many); err != nil || res.Appended != 80 {
		t.Fatalf("Append concurrently stamped events: %+v, %v", res, err)
	}
	heads, err := s.Origins(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := head(origin, 85, many[79].Hash, 85, many[79].HLC); len(heads) != 2 || heads[0] != want || heads[1].Origin != 5 || heads[1].Seq != 4 {
		t.Errorf("Origins = %+v, want %+v and origin 5 at seq 4", heads, want)
	}

	if _, err := ledger.Resume(ctx, s, ledger.MaxOrigin+1, clocks.NewClock(wall, 0)); !errors.Is(err, ledger.ErrInvalidEvent) {
		t.Errorf("Resume(origin 512): %v, want ErrInvalidEvent", err)
	}
}

// checkChain checks events are origin's seq from, from+1... each linking to
// the one before, with rising clock readings and fresh UUIDv7 ids.
func checkChain(t *testing.T, origin uint16, from uint64, prev ledger.Hash, events []*ledger.Event) {
	t.Helper()
	var hlc clocks.Timestamp
	for i, e := range events {
		if e.Origin != origin || e.OriginSeq != from+uint64(i) || e.PrevHash != prev || e.HLC <= hlc || e.ID.Version() != 7 {
			t.Fatalf("event %d: o%d#%d prev %s hlc %v id %s; want o%d#%d prev %s hlc > %v",
				i, e.Origin, e.OriginSeq, e.PrevHash.Short(), e.HLC, e.ID, origin, from+uint64(i), prev.Short(), hlc)
		}
		if want := ledger.HashOf(mustMarshal(t, e)); e.Hash != want {
			t.Fatalf("event %d: hash %s, content hashes to %s", i, e.Hash, want)
		}
		prev, hlc = e.Hash, e.HLC
	}
}
