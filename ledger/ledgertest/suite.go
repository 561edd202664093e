package ledgertest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ghsync/ghsync/ledger"
)

// RunStoreSuite runs the whole ledger.Store contract against h's backend.
func RunStoreSuite(t *testing.T, h Harness) {
	tests := []struct {
		name string
		fn   func(*testing.T, Harness)
	}{
		{"AppendAndRead", testAppendAndRead},
		{"Filters", testFilters},
		{"IdempotentAcrossRestart", testIdempotentAcrossRestart},
		{"ConcurrentDuplicateAppends", testConcurrentDuplicates},
		{"ConflictingDuplicate", testConflict},
		{"ChainBroken", testChainBroken},
		{"RejectsBadEvents", testRejects},
		{"PartialOriginHistory", testPartialOrigin},
		{"LargeBatches", testLargeBatches},
		{"AppendHookSharesTransaction", testAppendHook},
		{"AppendEncoded", testAppendEncoded},
		{"CorruptPayload", testCorrupt},
		{"VerifyComparesColumns", testVerifyColumns},
		{"VerifyRehashedEvent", testVerifyRehashed},
		{"SubscribeCatchUpThenLive", testSubscribe},
		{"GapSafety", testGapSafety},
		{"Closed", testClosed},
		{"CrashSafety", testCrash},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, h) })
	}
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

func mustAppend(t testing.TB, s ledger.Store, evs []*ledger.Event) ledger.AppendResult {
	t.Helper()
	res, err := s.Append(ctx(t), evs)
	if err != nil {
		t.Fatalf("append %d events: %v", len(evs), err)
	}
	return res
}

// readAll pages through the whole ledger.
func readAll(t testing.TB, s ledger.Store, f ledger.Filter) []ledger.Record {
	t.Helper()
	var out []ledger.Record
	after := uint64(0)
	for {
		page, err := s.ReadAll(ctx(t), after, 37, f) // an odd page size exercises paging
		if err != nil {
			t.Fatalf("read all after %d: %v", after, err)
		}
		if len(page) == 0 {
			return out
		}
		out = append(out, page...)
		after = page[len(page)-1].Position
	}
}

func sameEvent(t testing.TB, got, want *ledger.Event) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("event read back differs:\n got %+v\nwant %+v", got, want)
	}
}

func testAppendAndRead(t *testing.T, h Harness) {
	rng := Rand(t)
	s := h.open(t, h.NewLocation(t), Options{})
	defer s.Close()
	if head, err := s.Head(ctx(t)); err != nil || head != 0 {
		t.Fatalf("empty ledger head = %d, %v; want 0", head, err)
	}
	var all []*ledger.Event
	origins := []*Origin{NewOrigin(0), NewOrigin(3), NewOrigin(511)}
	for batch := 0; batch < 12; batch++ {
		o := origins[batch%3]
		evs := o.Patients(t, rng, 1+rng.IntN(60))
		res := mustAppend(t, s, evs)
		if res.Appended != len(evs) || res.Duplicates != 0 {
			t.Fatalf("batch %d: appended %d dup %d, want %d 0", batch, res.Appended, res.Duplicates, len(evs))
		}
		all = append(all, evs...)
		if res.Head != uint64(len(all)) {
			t.Fatalf("head after batch %d = %d, want %d", batch, res.Head, len(all))
		}
	}
	recs := readAll(t, s, ledger.Filter{})
	if len(recs) != len(all) {
		t.Fatalf("read %d records, want %d", len(recs), len(all))
	}
	for i, r := range recs {
		if r.Position != uint64(i+1) {
			t.Fatalf("record %d at position %d: positions must be dense from 1", i, r.Position)
		}
		sameEvent(t, r.Event, all[i])
	}
	// Raw reads: the same positions, origins and bytes, page by page.
	for after := uint64(0); after < uint64(len(all)); {
		raw, err := s.ReadAllRaw(ctx(t), after, 17)
		if err != nil || len(raw) == 0 || len(raw) > 17 {
			t.Fatalf("raw read after %d: %d records, %v", after, len(raw), err)
		}
		for _, r := range raw {
			want := recs[r.Position-1]
			if r.Position != after+1 || r.Origin != want.Event.Origin || string(r.Payload) != string(want.Payload) {
				t.Fatalf("raw record at %d (after %d): origin %d, %d bytes; want origin %d, the %d bytes ReadAll gives",
					r.Position, after, r.Origin, len(r.Payload), want.Event.Origin, len(want.Payload))
			}
			after = r.Position
		}
	}
	if raw, err := s.ReadAllRaw(ctx(t), uint64(len(all)), 10); err != nil || len(raw) != 0 {
		t.Fatalf("raw read at the head: %d records, %v", len(raw), err)
	}
	// Streams: one record's history, in order.
	st := all[0].Stream()
	var want []*ledger.Event
	for _, e := range all {
		if e.Stream() == st {
			want = append(want, e)
		}
	}
	got, err := s.ReadStream(ctx(t), st, 0, 0)
	if err != nil || len(got) != len(want) {
		t.Fatalf("stream %s: %d records, %v; want %d", st, len(got), err, len(want))
	}
	for i := range got {
		sameEvent(t, got[i].Event, want[i])
	}
	// Origins and per-origin reads.
	heads, err := s.Origins(ctx(t))
	if err != nil || len(heads) != 3 {
		t.Fatalf("origins = %v, %v; want 3", heads, err)
	}
	for i, o := range origins {
		hd := heads[i]
		seq, hash := o.seq, o.prev
		if hd.Origin != o.ID || hd.Seq != seq || hd.Count != seq || hd.Hash != hash || hd.MaxHLC != o.Clock.Last() {
			t.Fatalf("origin %d head = %+v, want seq=count=%d hash %s hlc %s", o.ID, hd, seq, hash.Short(), o.Clock.Last())
		}
		recs, err := s.ReadOrigin(ctx(t), o.ID, 2, 5)
		if err != nil || len(recs) != 5 {
			t.Fatalf("read origin %d: %d records, %v", o.ID, len(recs), err)
		}
		for j, r := range recs {
			if r.Event.Origin != o.ID || r.Event.OriginSeq != uint64(3+j) {
				t.Fatalf("read origin %d: record %d is origin %d seq %d", o.ID, j, r.Event.Origin, r.Event.OriginSeq)
			}
		}
	}
}

// testAppendEncoded: records read back carry their canonical bytes, and
// events decoded from those bytes (as a pull receives them) append with
// them to another store as they would through Append; bytes paired with
// the wrong event are refused and change nothing.
func testAppendEncoded(t *testing.T, h Harness) {
	rng := Rand(t)
	src := h.open(t, h.NewLocation(t), Options{})
	defer src.Close()
	dst := h.open(t, h.NewLocation(t), Options{})
	defer dst.Close()
	da, ok := dst.(ledger.EncodedAppender)
	if !ok {
		t.Fatalf("%T does not implement ledger.EncodedAppender", dst)
	}
	o := NewOrigin(7)
	mustAppend(t, src, o.Patients(t, rng, 40))
	recs := readAll(t, src, ledger.Filter{})
	events := make([]*ledger.Event, len(recs))
	payloads := make([][]byte, len(recs))
	for i, r := range recs {
		want, err := ledger.Marshal(r.Event)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(r.Payload, want) {
			t.Fatalf("record at %d: Payload is not the event's canonical encoding", r.Position)
		}
		if events[i], err = ledger.Unmarshal(r.Payload); err != nil {
			t.Fatal(err)
		}
		payloads[i] = r.Payload
	}
	// Half, then all: the second call's first half is duplicates.
	if res, err := da.AppendEncoded(ctx(t), events[:20], payloads[:20], nil); err != nil || res.Appended != 20 {
		t.Fatalf("append decoded: %+v, %v", res, err)
	}
	if res, err := da.AppendEncoded(ctx(t), events, payloads, nil); err != nil || res.Appended != 20 || res.Duplicates != 20 {
		t.Fatalf("append decoded again: %+v, %v; want 20 appended, 20 duplicates", res, err)
	}
	got := readAll(t, dst, ledger.Filter{})
	if !reflect.DeepEqual(got, recs) {
		t.Fatalf("the decoded append stored other records than the source holds")
	}

	// The next events, with the bytes of their neighbours.
	next := o.Patients(t, rng, 2)
	b0, _ := ledger.Marshal(next[0])
	b1, _ := ledger.Marshal(next[1])
	before, heads := snapshot(t, dst)
	_, err := da.AppendEncoded(ctx(t), next, [][]byte{b1, b0}, nil)
	wantEventErr(t, err, ledger.ErrHashMismatch, next[0])
	_, err = da.AppendEncoded(ctx(t), next, [][]byte{b0}, nil)
	wantEventErr(t, err, ledger.ErrInvalidEvent, nil)
	assertUnchanged(t, dst, before, heads)
	// Without bytes, an event is prepared as Append would.
	if res, err := da.AppendEncoded(ctx(t), next, [][]byte{b0, nil}, nil); err != nil || res.Appended != 2 {
		t.Fatalf("append decoded with one payload missing: %+v, %v", res, err)
	}
}

func testFilters(t *testing.T, h Harness) {
	rng := Rand(t)
	s := h.open(t, h.NewLocation(t), Options{})
	defer s.Close()
	a, b := NewOrigin(1), NewOrigin(2)
	var evs []*ledger.Event
	for i := 0; i < 300; i++ {
		o := a
		if rng.IntN(3) == 0 {
			o = b
		}
		model := []string{"party.party", "gnuhealth.patient", "gnuhealth.appointment"}[rng.IntN(3)]
		evs = append(evs, o.Event(t, model, fmt.Sprint(rng.IntN(50)), ledger.OpWrite, SampleFields(rng)))
	}
	mustAppend(t, s, evs)
	for _, f := range []ledger.Filter{
		{Models: []string{"party.party"}},
		{Origins: []uint16{2}},
		{Models: []string{"gnuhealth.patient", "gnuhealth.appointment"}, Origins: []uint16{1}},
		{Models: []string{"no.such.model"}},
	} {
		var want []*ledger.Event
		for _, e := range evs {
			if f.Match(e) {
				want = append(want, e)
			}
		}
		got := readAll(t, s, f)
		if len(got) != len(want) {
			t.Fatalf("filter %+v: %d records, want %d", f, len(got), len(want))
		}
		for i := range got {
			sameEvent(t, got[i].Event, want[i])
		}
	}
}

func testIdempotentAcrossRestart(t *testing.T, h Harness) {
	rng := Rand(t)
	loc := h.NewLocation(t)
	o := NewOrigin(5)
	first := o.Patients(t, rng, 50)
	s := h.open(t, loc, Options{})
	mustAppend(t, s, first)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = h.open(t, loc, Options{})
	defer s.Close()
	res := mustAppend(t, s, first)
	if res.Appended != 0 || res.Duplicates != 50 || res.Head != 50 {
		t.Fatalf("re-append after reopen: %+v, want 0 appended, 50 duplicates, head 50", res)
	}
	// Half old, half new, and a repeat inside the call itself.
	more := o.Patients(t, rng, 20)
	mixed := append(append(append([]*ledger.Event{}, first[30:]...), more...), more[0])
	res = mustAppend(t, s, mixed)
	if res.Appended != 20 || res.Duplicates != 21 || res.Head != 70 {
		t.Fatalf("mixed re-append: %+v, want 20 appended, 21 duplicates, head 70", res)
	}
	if n := len(readAll(t, s, ledger.Filter{})); n != 70 {
		t.Fatalf("ledger holds %d events, want 70", n)
	}
}

func testConcurrentDuplicates(t *testing.T, h Harness) {
	rng := Rand(t)
	loc := h.NewLocation(t)
	evs := NewOrigin(9).Patients(t, rng, 200)
	stores := []ledger.Store{h.open(t, loc, Options{}), h.open(t, loc, Options{})}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(s ledger.Store) {
			defer wg.Done()
			for lo := 0; lo < len(evs); lo += 40 {
				if _, err := s.Append(context.Background(), evs[lo:lo+40]); err != nil {
					errs <- err
					return
				}
			}
		}(stores[i%2])
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent re-append: %v", err)
	}
	recs := readAll(t, stores[0], ledger.Filter{})
	if len(recs) != 200 {
		t.Fatalf("8 appenders of the same 200 events stored %d", len(recs))
	}
	for _, s := range stores {
		s.Close()
	}
}

// snapshot is everything a rejected call must leave unchanged.
func snapshot(t testing.TB, s ledger.Store) ([]ledger.Record, []ledger.OriginHead) {
	t.Helper()
	heads, err := s.Origins(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	return readAll(t, s, ledger.Filter{}), heads
}

func assertUnchanged(t testing.TB, s ledger.Store, recs []ledger.Record, heads []ledger.OriginHead) {
	t.Helper()
	r2, h2 := snapshot(t, s)
	if !reflect.DeepEqual(r2, recs) || !reflect.DeepEqual(h2, heads) {
		t.Fatalf("a rejected append changed the ledger: %d records (was %d), heads %+v (was %+v)", len(r2), len(recs), h2, heads)
	}
}

func wantEventErr(t testing.TB, err error, sentinel error, culprit *ledger.Event) {
	t.Helper()
	if !errors.Is(err, sentinel) {
		t.Fatalf("got error %v, want %v", err, sentinel)
	}
	var ee *ledger.EventError
	if culprit != nil && (!errors.As(err, &ee) || ee.ID != culprit.ID) {
		t.Fatalf("error %v does not name event %s", err, culprit.ID)
	}
}

func testConflict(t *testing.T, h Harness) {
	rng := Rand(t)
	s := h.open(t, h.NewLocation(t), Options{})
	defer s.Close()
	o := NewOrigin(4)
	evs := o.Patients(t, rng, 10)
	mustAppend(t, s, evs)
	recs, heads := snapshot(t, s)

	// Same (origin, seq) as a stored event, different content.
	forged := NewOrigin(4)
	forged.Wall.Advance(time.Hour)
	fake := forged.Patients(t, rng, 3)
	_, err := s.Append(ctx(t), fake)
	wantEventErr(t, err, ledger.ErrConflict, fake[0])
	assertUnchanged(t, s, recs, heads)

	// The same id reused at a new sequence number.
	dup := o.Event(t, "party.party", "P1", ledger.OpCreate, SampleFields(rng))
	dup.ID = evs[0].ID
	if err := dup.Seal(evs[len(evs)-1].Hash); err != nil {
		t.Fatal(err)
	}
	_, err = s.Append(ctx(t), []*ledger.Event{dup})
	wantEventErr(t, err, ledger.ErrConflict, dup)
	assertUnchanged(t, s, recs, heads)
}

func testChainBroken(t *testing.T, h Harness) {
	rng := Rand(t)
	s := h.open(t, h.NewLocation(t), Options{})
	defer s.Close()
	o := NewOrigin(6)
	mustAppend(t, s, o.Patients(t, rng, 5))
	recs, heads := snapshot(t, s)
	next := o.Patients(t, rng, 3)
	bad := *next[1]
	bad.PrevHash[0] ^= 1
	if err := bad.Seal(bad.PrevHash); err != nil {
		t.Fatal(err)
	}
	_, err := s.Append(ctx(t), []*ledger.Event{next[0], &bad})
	wantEventErr(t, err, ledger.ErrChainBroken, &bad)
	assertUnchanged(t, s, recs, heads)
	mustAppend(t, s, next) // the true continuation is still accepted
}

func testRejects(t *testing.T, h Harness) {
	rng := Rand(t)
	s := h.open(t, h.NewLocation(t), Options{})
	defer s.Close()
	o := NewOrigin(7)
	mustAppend(t, s, o.Patients(t, rng, 3))
	recs, heads := snapshot(t, s)

	good := o.Patients(t, rng, 2)
	outOfRange := *good[1]
	outOfRange.Origin = 512
	tampered := *good[1]
	tampered.Fields = SampleFields(rng)
	unsealed := *good[1]
	unsealed.Hash = ledger.Hash{}
	noFields := *good[1]
	noFields.Fields, noFields.Base = nil, nil
	for _, tc := range []struct {
		name string
		bad  *ledger.Event
		want error
	}{
		{"origin 512", &outOfRange, ledger.ErrInvalidEvent},
		{"tampered after seal", &tampered, ledger.ErrHashMismatch},
		{"unsealed", &unsealed, ledger.ErrInvalidEvent},
		{"write without fields", &noFields, ledger.ErrInvalidEvent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The bad event rides with a good one: the call is atomic.
			_, err := s.Append(ctx(t), []*ledger.Event{good[0], tc.bad})
			wantEventErr(t, err, tc.want, tc.bad)
			assertUnchanged(t, s, recs, heads)
		})
	}
	if _, err := s.Append(ctx(t), []*ledger.Event{good[0], nil}); !errors.Is(err, ledger.ErrInvalidEvent) {
		t.Fatalf("nil event: %v", err)
	}
	assertUnchanged(t, s, recs, heads)
	mustAppend(t, s, good)
}

// A satellite holds only part of another origin's history; the chain is
// still checked wherever neighbours are held.
func testPartialOrigin(t *testing.T, h Harness) {
	rng := Rand(t)
	s := h.open(t, h.NewLocation(t), Options{})
	defer s.Close()
	evs := NewOrigin(8).Patients(t, rng, 6)
	mustAppend(t, s, evs[:2])
	mustAppend(t, s, evs[4:5]) // seq 5 arrives before 3 and 4
	heads, _ := s.Origins(ctx(t))
	if heads[0].Seq != 5 || heads[0].Count != 3 {
		t.Fatalf("head after partial history = %+v, want seq 5 count 3", heads[0])
	}
	// A forged seq 4 that does not link to the held seq 5 is refused.
	forged := *evs[3]
	forged.Fields = SampleFields(rng)
	if err := forged.Seal(evs[2].Hash); err != nil {
		t.Fatal(err)
	}
	_, err := s.Append(ctx(t), []*ledger.Event{&forged})
	wantEventErr(t, err, ledger.ErrChainBroken, &forged)
	mustAppend(t, s, evs) // fills the gap; the rest are duplicates
	heads, _ = s.Origins(ctx(t))
	if heads[0].Seq != 6 || heads[0].Count != 6 || heads[0].Hash != evs[5].Hash {
		t.Fatalf("head after filling = %+v, want seq 6 count 6", heads[0])
	}
	got, err := s.ReadOrigin(ctx(t), 8, 0, 0)
	if err != nil || len(got) != 6 {
		t.Fatalf("read origin: %d, %v", len(got), err)
	}
	for i, r := range got {
		if r.Event.OriginSeq != uint64(i+1) {
			t.Fatalf("read origin returns seq %d at %d: want origin_seq order", r.Event.OriginSeq, i)
		}
	}
}

func testCorrupt(t *testing.T, h Harness) {
	rng := Rand(t)
	loc := h.NewLocation(t)
	s := h.open(t, loc, Options{})
	defer s.Close()
	evs := NewOrigin(2).Patients(t, rng, 10)
	mustAppend(t, s, evs)
	h.Corrupt(t, loc, 7)
	_, err := s.ReadAll(ctx(t), 0, 100, ledger.Filter{})
	var ee *ledger.EventError
	if !errors.Is(err, ledger.ErrCorrupt) || !errors.As(err, &ee) || ee.Position != 7 {
		t.Fatalf("reading a corrupted ledger: %v; want ErrCorrupt naming position 7", err)
	}
	if recs, err := s.ReadAll(ctx(t), 0, 6, ledger.Filter{}); err != nil || len(recs) != 6 {
		t.Fatalf("events before the damage must stay readable: %d, %v", len(recs), err)
	}
	if recs, err := s.ReadAll(ctx(t), 7, 100, ledger.Filter{}); err != nil || len(recs) != 3 {
		t.Fatalf("events after the damage must stay readable: %d, %v", len(recs), err)
	}
	// Raw reads check the bytes too, though they do not decode them.
	if _, err := s.ReadAllRaw(ctx(t), 0, 100); !errors.Is(err, ledger.ErrCorrupt) || !errors.As(err, &ee) || ee.Position != 7 {
		t.Fatalf("raw read of a corrupted ledger: %v; want ErrCorrupt naming position 7", err)
	}
	if raw, err := s.ReadAllRaw(ctx(t), 7, 100); err != nil || len(raw) != 3 {
		t.Fatalf("raw read after the damage: %d, %v", len(raw), err)
	}
	// The origin stored beside a payload must be the payload's: a central
	// forwarding by it would otherwise skip or misroute the event.
	h.SetColumn(t, loc, 9, "origin", 3)
	if _, err := s.ReadAllRaw(ctx(t), 7, 100); !errors.Is(err, ledger.ErrCorrupt) || !errors.As(err, &ee) || ee.Position != 9 {
		t.Fatalf("raw read of a damaged origin: %v; want ErrCorrupt naming position 9", err)
	}
	// The stored hash is intact, so re-appending the original is recognised
	// as held: the damaged row is reported, never overwritten.
	res, err := s.Append(ctx(t), evs[6:7])
	if err != nil || res.Duplicates != 1 {
		t.Fatalf("re-append over a damaged row: %+v, %v", res, err)
	}
}

// testVerifyColumns: a column changed behind the store's back (model, key,
// origin...) would hide an event from the reads that filter by it; Verify
// compares every row's columns with its event's bytes and names the
// position and the column.
func testVerifyColumns(t *testing.T, h Harness) {
	rng := Rand(t)
	for _, c := range []struct {
		column string
		value  any
	}{
		{"model", "gnuhealth.appointment"},
		{"key", "zzz"},
		{"origin", 9},
		{"origin_seq", 999},
		{"hlc", 1},
		{"tx", 4242},
	} {
		t.Run(c.column, func(t *testing.T) {
			loc := h.NewLocation(t)
			s := h.open(t, loc, Options{})
			defer s.Close()
			mustAppend(t, s, NewOrigin(1).Patients(t, rng, 6))
			if r, err := ledger.Verify(ctx(t), s); err != nil || !r.OK() {
				t.Fatalf("verify before: %+v, %v", r, err)
			}
			h.SetColumn(t, loc, 4, c.column, c.value)
			r, err := ledger.Verify(ctx(t), s)
			if err != nil || r.OK() || len(r.Columns) != 1 || r.Columns[0].Position != 4 || !strings.Contains(r.Columns[0].Problem, "column "+c.column+" holds") {
				t.Fatalf("verify after changing column %s at position 4: %+v, %v", c.column, r, err)
			}
		})
	}
}

// An event altered and re-hashed behind the store's back breaks the chain
// at the next event; either may be the altered one, so neither counts as
// verified.
func testVerifyRehashed(t *testing.T, h Harness) {
	loc := h.NewLocation(t)
	s := h.open(t, loc, Options{})
	defer s.Close()
	evs := NewOrigin(1).Patients(t, Rand(t), 6)
	mustAppend(t, s, evs)
	forged := *evs[2]
	forged.User = "intruder"
	if err := forged.Seal(evs[1].Hash); err != nil {
		t.Fatal(err)
	}
	payload, err := ledger.Marshal(&forged)
	if err != nil {
		t.Fatal(err)
	}
	h.SetColumn(t, loc, 3, "payload", payload)
	h.SetColumn(t, loc, 3, "hash", forged.Hash[:])
	r, err := ledger.Verify(ctx(t), s)
	if err != nil || len(r.Origins) != 1 || r.Origins[0].Break == nil || r.Origins[0].Break.Seq != 4 ||
		!strings.Contains(r.Origins[0].Break.Problem, "this event or seq 3 was altered") || r.Origins[0].Verified != 2 {
		t.Fatalf("verify after re-hashing seq 3: %+v, %v", r, err)
	}
}

func testSubscribe(t *testing.T, h Harness) {
	rng := Rand(t)
	s := h.open(t, h.NewLocation(t), Options{})
	defer s.Close()
	o := NewOrigin(1)
	mustAppend(t, s, o.Patients(t, rng, 1500)) // more than a page
	c, cancel := context.WithCancel(ctx(t))
	defer cancel()
	f := ledger.Filter{Models: []string{"gnuhealth.patient"}}
	type result struct {
		got []uint64
		err error
	}
	done := make(chan result, 1)
	go func() {
		var got []uint64
		for r, err := range s.Subscribe(c, 0, f) {
			if err != nil {
				done <- result{got, err}
				return
			}
			got = append(got, r.Position)
			if len(got) == 1510 {
				cancel()
			}
		}
		done <- result{got, errors.New("subscription ended without an error")}
	}()
	// Live: non-matching events interleave with matching ones.
	for i := 0; i < 10; i++ {
		mustAppend(t, s, []*ledger.Event{o.Event(t, "party.party", "X", ledger.OpWrite, SampleFields(rng))})
		mustAppend(t, s, []*ledger.Event{o.Event(t, "gnuhealth.patient", "Y", ledger.OpWrite, SampleFields(rng))})
	}
	var res result
	select {
	case res = <-done:
	case <-time.After(30 * time.Second):
		cancel()
		res = <-done
		t.Fatalf("subscription delivered %d of 1510 records in 30s", len(res.got))
	}
	if !errors.Is(res.err, context.Canceled) {
		t.Fatalf("subscription ended with %v, want context.Canceled", res.err)
	}
	for i, p := range res.got {
		want := uint64(i + 1)
		if i >= 1500 {
			want = uint64(1500 + 2*(i-1500) + 2)
		}
		if p != want {
			t.Fatalf("subscription delivered position %d as record %d, want %d", p, i, want)
		}
	}
}

// testGapSafety: appenders commit in random order while a subscriber
// reads; it must see every event exactly once, in position order.
func testGapSafety(t *testing.T, h Harness) {
	rng := Rand(t)
	loc := h.NewLocation(t)
	var mu sync.Mutex
	delay := func(ctx context.Context) error {
		mu.Lock()
		d := time.Duration(rng.IntN(8000)) * time.Microsecond
		mu.Unlock()
		time.Sleep(d)
		return nil
	}
	const appenders, batches, perBatch = 8, 25, 4
	const total = appenders * batches * perBatch
	reader := h.open(t, loc, Options{})
	defer reader.Close()
	c, cancel := context.WithCancel(ctx(t))
	defer cancel()
	seen := make(chan []uint64, 1)
	go func() {
		var got []uint64
		for r, err := range reader.Subscribe(c, 0, ledger.Filter{}) {
			if err != nil {
				break
			}
			got = append(got, r.Position)
			if len(got) == total {
				break
			}
		}
		seen <- got
	}()
	var wg sync.WaitGroup
	errs := make(chan error, appenders)
	for a := 0; a < appenders; a++ {
		o := NewOrigin(uint16(100 + a))
		var evs []*ledger.Event
		for i := 0; i < batches*perBatch; i++ {
			evs = append(evs, o.Event(t, "gnuhealth.appointment", fmt.Sprint(i), ledger.OpCreate, map[string]ledger.Value{"state": ledger.String("confirmed")}))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := h.open(t, loc, Options{BeforeCommit: delay}) // a handle each, as separate processes would
			defer s.Close()
			for b := 0; b < batches; b++ {
				if _, err := s.Append(context.Background(), evs[b*perBatch:(b+1)*perBatch]); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("appender: %v", err)
	}
	var got []uint64
	select {
	case got = <-seen:
	case <-time.After(60 * time.Second):
		cancel()
		got = <-seen
	}
	if len(got) != total {
		t.Fatalf("subscriber saw %d events, want %d", len(got), total)
	}
	for i, p := range got {
		if p != uint64(i+1) {
			t.Fatalf("subscriber saw position %d as its %dth event: skipped or repeated", p, i+1)
		}
	}
}

func testClosed(t *testing.T, h Harness) {
	s := h.open(t, h.NewLocation(t), Options{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	o := NewOrigin(1)
	e := o.Event(t, "party.party", "A", ledger.OpCreate, map[string]ledger.Value{"name": ledger.String("A")})
	checks := map[string]error{}
	_, checks["Append"] = s.Append(ctx(t), []*ledger.Event{e})
	_, checks["ReadAll"] = s.ReadAll(ctx(t), 0, 1, ledger.Filter{})
	_, checks["ReadAllRaw"] = s.ReadAllRaw(ctx(t), 0, 1)
	_, checks["Head"] = s.Head(ctx(t))
	_, checks["Origins"] = s.Origins(ctx(t))
	for _, err := range s.Subscribe(ctx(t), 0, ledger.Filter{}) {
		checks["Subscribe"] = err
		break
	}
	for name, err := range checks {
		if !errors.Is(err, ledger.ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// testLargeBatches runs the idempotency and rejection rules on batches big
// enough for a backend's bulk paths (COPY, parallel preparation).
func testLargeBatches(t *testing.T, h Harness) {
	rng := Rand(t)
	s := h.open(t, h.NewLocation(t), Options{})
	defer s.Close()
	a, b := NewOrigin(21), NewOrigin(22)
	evs := a.Patients(t, rng, 1500)
	check := func(name string, got ledger.AppendResult, appended, dups int, head uint64) {
		t.Helper()
		if got.Appended != appended || got.Duplicates != dups || got.Head != head {
			t.Fatalf("%s: %+v, want %d appended, %d duplicates, head %d", name, got, appended, dups, head)
		}
	}
	check("fresh", mustAppend(t, s, evs[:1000]), 1000, 0, 1000)
	check("retry", mustAppend(t, s, evs[:1000]), 0, 1000, 1000)
	check("half stored", mustAppend(t, s, evs[500:1500]), 500, 500, 1500)
	// Two origins interleaved, with a repeat inside the call.
	var mixed []*ledger.Event
	for _, e := range b.Patients(t, rng, 400) {
		mixed = append(mixed, e, a.Event(t, "party.party", fmt.Sprint(rng.IntN(9)), ledger.OpWrite, SampleFields(rng)))
	}
	mixed = append(mixed, mixed[123])
	check("interleaved", mustAppend(t, s, mixed), 800, 1, 2300)
	recs, heads := snapshot(t, s)

	// A reused id deep inside a large batch: the whole call is refused.
	more := a.Patients(t, rng, 600)
	bad := *more[300]
	bad.ID = evs[7].ID
	if err := bad.Seal(more[299].Hash); err != nil {
		t.Fatal(err)
	}
	withBad := append(append(append([]*ledger.Event{}, more[:300]...), &bad), more[301:]...)
	for i := 301; i < len(withBad); i++ { // keep the chain intact around the bad event
		e := *withBad[i]
		if err := e.Seal(withBad[i-1].Hash); err != nil {
			t.Fatal(err)
		}
		withBad[i] = &e
	}
	_, err := s.Append(ctx(t), withBad)
	wantEventErr(t, err, ledger.ErrConflict, &bad)
	assertUnchanged(t, s, recs, heads)

	// A broken link deep inside a large batch.
	broken := *more[400]
	broken.PrevHash[3] ^= 1
	if err := broken.Seal(broken.PrevHash); err != nil {
		t.Fatal(err)
	}
	withBroken := append(append(append([]*ledger.Event{}, more[:400]...), &broken), more[401:]...)
	_, err = s.Append(ctx(t), withBroken)
	wantEventErr(t, err, ledger.ErrChainBroken, &broken)
	assertUnchanged(t, s, recs, heads)

	check("the true continuation", mustAppend(t, s, more), 600, 0, 2900)
}
