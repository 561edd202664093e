package central_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ghsync/ghsync/central"
	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/ledger/ledgertest"
	"github.com/ghsync/ghsync/wire"
)

var (
	rngMu sync.Mutex
	rngs  = map[testing.TB]*rand.Rand{}
)

// rng is the test's seeded source (its seed logged once).
func rng(t testing.TB) *rand.Rand {
	rngMu.Lock()
	defer rngMu.Unlock()
	if r, ok := rngs[t]; ok {
		return r
	}
	r := ledgertest.Rand(t)
	rngs[t] = r
	return r
}

func TestAuth(t *testing.T) {
	r := newRig(t, false)
	tok := r.add(t, 1, wire.ScopeAll)
	events := ledgertest.NewOrigin(1).Patients(t, rng(t), 3)
	body := pushBody(t, events)
	for _, tc := range []struct {
		name   string
		token  string
		status int
		want   string
	}{
		{"missing", "", http.StatusUnauthorized, "missing bearer token"},
		{"wrong", "not-a-token", http.StatusUnauthorized, "unknown token"},
		{"another satellite's, altered", tok[:len(tok)-1] + "x", http.StatusUnauthorized, "unknown token"},
	} {
		status, raw := r.post(t, tc.token, bytes.NewReader(body))
		if e := errorBody(t, raw); status != tc.status || !strings.Contains(e.Error, tc.want) {
			t.Errorf("%s token: %d %s", tc.name, status, raw)
		}
	}
	if r.head(t) != 0 {
		t.Fatal("a refused push stored events")
	}
	// Revoked: refused too, saying so.
	if err := r.reg.RevokeSatellite(context.Background(), 1, time.Now()); err != nil {
		t.Fatal(err)
	}
	status, raw := r.post(t, tok, bytes.NewReader(body))
	if e := errorBody(t, raw); status != http.StatusForbidden || !strings.Contains(e.Error, "revoked") {
		t.Fatalf("revoked token: %d %s", status, raw)
	}
	if resp, _ := r.get(t, tok, wire.PathPull); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("pull with a revoked token: %d", resp.StatusCode)
	}
	if r.head(t) != 0 {
		t.Fatal("a refused push stored events")
	}
	if !strings.Contains(r.logs.String(), `"status":403`) {
		t.Fatalf("refusal not logged:\n%s", r.logs)
	}
	// Unknown endpoint and wrong method: JSON errors too.
	resp, raw := r.get(t, tok, "/v2/nothing")
	if resp.StatusCode != http.StatusNotFound || errorBody(t, raw).Error == "" {
		t.Fatalf("unknown path: %d %s", resp.StatusCode, raw)
	}
	resp, raw = r.get(t, tok, wire.PathPush)
	if resp.StatusCode != http.StatusMethodNotAllowed || errorBody(t, raw).Error == "" {
		t.Fatalf("GET push: %d %s", resp.StatusCode, raw)
	}
}

func TestForgedOriginRefused(t *testing.T) {
	r := newRig(t, false)
	tok := r.add(t, 1, wire.ScopeAll)
	mine := ledgertest.NewOrigin(1).Patients(t, rng(t), 4)
	theirs := ledgertest.NewOrigin(2).Patients(t, rng(t), 1)
	forged := append(mine[:2:2], theirs[0], mine[2])
	status, raw := r.post(t, tok, bytes.NewReader(pushBody(t, forged)))
	e := errorBody(t, raw)
	if status != http.StatusForbidden || e.Frame == nil || *e.Frame != 2 || !strings.Contains(e.Error, "claims origin 2") {
		t.Fatalf("forged origin: %d %s", status, raw)
	}
	central0 := ledgertest.NewOrigin(0).Patients(t, rng(t), 1)
	status, raw = r.post(t, tok, bytes.NewReader(pushBody(t, central0)))
	if e := errorBody(t, raw); status != http.StatusForbidden || !strings.Contains(e.Error, "origin 0 is central's own") || *e.Frame != 0 {
		t.Fatalf("origin 0 from a satellite: %d %s", status, raw)
	}
	// Not consecutive: refused as a whole.
	status, raw = r.post(t, tok, bytes.NewReader(pushBody(t, []*ledger.Event{mine[0], mine[2]})))
	if e := errorBody(t, raw); status != http.StatusBadRequest || *e.Frame != 1 {
		t.Fatalf("non-consecutive push: %d %s", status, raw)
	}
	if r.head(t) != 0 {
		t.Fatal("a refused push stored events")
	}
}

// A push whose sixth event breaks the chain: the five before it are
// stored, it is rejected with the ledger's reason, the rest are not
// applied, and the answer says so per event.
func TestBadEventInTheMiddle(t *testing.T) {
	r := newRig(t, false)
	tok := r.add(t, 1, wire.ScopeAll)
	o := ledgertest.NewOrigin(1)
	good := o.Patients(t, rng(t), 10)
	bad := make([]*ledger.Event, len(good))
	copy(bad, good)
	forged := *good[5]
	forged.Fields = map[string]ledger.Value{"notes": ledger.String("altered")}
	forged.Base = nil
	if err := forged.Seal(ledger.Hash{1}); err != nil { // sealed, but linked to nothing
		t.Fatal(err)
	}
	bad[5] = &forged
	pr := r.push(t, tok, bad)
	if pr.Accepted != 5 || pr.Duplicates != 0 || pr.Rejected != 1 || pr.NotApplied != 4 || pr.HighWater != 5 || len(pr.Results) != 5 {
		t.Fatalf("answer: %+v", pr)
	}
	res := pr.Results[0]
	if res.Index != 5 || res.Status != wire.StatusRejected || res.ID != forged.ID.String() || res.Seq != 6 || !strings.Contains(res.Error, "hash chain broken") {
		t.Fatalf("the bad event's answer: %+v", res)
	}
	for i, res := range pr.Results[1:] {
		if res.Index != 6+i || res.Status != wire.StatusNotApplied {
			t.Fatalf("result %d: %+v", 6+i, res)
		}
	}
	if r.head(t) != 5 {
		t.Fatalf("head %d, want the 5 good events", r.head(t))
	}
	// The right events then go in; replaying them changes nothing.
	pr = r.push(t, tok, good)
	if pr.Accepted != 5 || pr.Duplicates != 5 || pr.HighWater != 10 || len(pr.Results) != 5 || pr.Results[0].Status != wire.StatusDuplicate {
		t.Fatalf("the good push: %+v", pr)
	}
	pr = r.push(t, tok, good)
	if pr.Accepted != 0 || pr.Duplicates != 10 || pr.HighWater != 10 || r.head(t) != 10 {
		t.Fatalf("replay: %+v (head %d)", pr, r.head(t))
	}
	// A gap (seq 12 when central holds up to 10) is rejected, not stored.
	o.Event(t, "party.party", "x", ledger.OpCreate, map[string]ledger.Value{"name": ledger.String("x")}) // seq 11, never sent
	twelve := o.Event(t, "party.party", "x", ledger.OpWrite, map[string]ledger.Value{"name": ledger.String("y")})
	pr = r.push(t, tok, []*ledger.Event{twelve})
	if pr.Rejected != 1 || !strings.Contains(pr.Results[0].Error, "must start at seq 11") || r.head(t) != 10 {
		t.Fatalf("gap: %+v", pr)
	}
}

// A body of 1 GiB is refused quickly, reading a bounded amount of it: the
// body is generated on the fly, never held.
func TestHugeBodyRefused(t *testing.T) {
	r := newRig(t, false, func(c *central.Config) { c.MaxBody, c.MaxDecoded = 4<<20, 16<<20 })
	tok := r.add(t, 1, wire.ScopeAll)
	event := ledgertest.NewOrigin(1).Patients(t, rng(t), 1)[0]
	payload, _ := ledger.Marshal(event)
	frame := append(appendUvarint(nil, uint64(len(payload))), payload...)
	const GiB = 1 << 30
	for _, tc := range []struct {
		name   string
		body   func() io.Reader
		status int
		want   string
	}{
		// Zeros claiming to be gzip: refused at the header.
		{"zeros", func() io.Reader { return io.LimitReader(zeros{}, GiB) }, http.StatusBadRequest, "not gzip"},
		// A valid gzip stream of 1 GiB, barely compressed (so the
		// compressed size is what grows): MaxBytesReader stops it.
		{"stored gzip of valid frames", func() io.Reader { return gzipStream(frame, GiB, gzip.NoCompression) }, http.StatusRequestEntityTooLarge, "too large"},
		// A decompression bomb: 1 GiB of frames compressing to little;
		// the event count limit stops it first.
		{"compressed frames", func() io.Reader { return gzipStream(frame, GiB, gzip.BestSpeed) }, http.StatusRequestEntityTooLarge, "more than 10000 frames"},
		// Big valid events, compressing to almost nothing: the limit on
		// decompressed bytes stops them (MaxDecoded is 16 MiB here).
		{"decompressed size", func() io.Reader { return gzipStream(bigFrame(t), GiB, gzip.BestSpeed) }, http.StatusRequestEntityTooLarge, "stream exceeds 16777216 bytes"},
		// One frame declaring 4 GiB.
		{"huge frame", func() io.Reader {
			return gzipStream(nil, 0, gzip.BestSpeed, append(wire.Magic[:], 0x80, 0x80, 0x80, 0x80, 0x10)...)
		}, http.StatusRequestEntityTooLarge, "frame of 4294967296 bytes"},
	} {
		var before runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		start := time.Now()
		status, raw := r.post(t, tok, tc.body())
		took := time.Since(start)
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		e := errorBody(t, raw)
		if status != tc.status || !strings.Contains(e.Error, tc.want) {
			t.Errorf("%s: %d %s", tc.name, status, raw)
		}
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 256<<20 || took > 20*time.Second {
			t.Errorf("%s: took %v and allocated %d MiB", tc.name, took, grew>>20)
		}
		t.Logf("%s: %d in %v, %d MiB allocated (client and server)", tc.name, status, took.Round(time.Millisecond), (after.TotalAlloc-before.TotalAlloc)>>20)
	}
	if r.head(t) != 0 {
		t.Fatal("a refused push stored events")
	}
}

// bigFrame is a frame holding a valid event of 1 MiB (a photo of zeros).
func bigFrame(t testing.TB) []byte {
	e := ledgertest.NewOrigin(1).Event(t, "party.party", "big", ledger.OpCreate, map[string]ledger.Value{"photo": ledger.Bytes(make([]byte, 1<<20))})
	payload, _ := ledger.Marshal(e)
	return append(appendUvarint(nil, uint64(len(payload))), payload...)
}

func appendUvarint(b []byte, x uint64) []byte {
	for x >= 0x80 {
		b = append(b, byte(x)|0x80)
		x >>= 7
	}
	return append(b, byte(x))
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// gzipStream generates, through a pipe, a gzip stream of Magic and then
// frame repeated until n bytes (or raw as the whole content).
func gzipStream(frame []byte, n int64, level int, raw ...byte) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		zw, _ := gzip.NewWriterLevel(pw, level)
		if raw != nil {
			zw.Write(raw)
			zw.Close()
			pw.Close()
			return
		}
		if _, err := zw.Write(wire.Magic[:]); err != nil {
			return
		}
		chunk := bytes.Repeat(frame, (64<<10)/len(frame)+1)
		for sent := int64(0); sent < n; sent += int64(len(chunk)) {
			if _, err := zw.Write(chunk); err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		zw.Close()
		pw.Close()
	}()
	return pr
}

// With the hold policy, events whose clock is far ahead of central's are
// held, not appended: with the rest of their chain, durably, listed, and
// releasable by an administrator. Nothing is lost, and once central's
// clock catches up the same push goes in by itself.
func TestSkewedEventsHeld(t *testing.T) {
	r := newRig(t, false, func(c *central.Config) { c.Skew = central.SkewHold })
	tok := r.add(t, 2, wire.ScopeAll)
	r.clock.Set(epoch.Add(time.Minute))
	o := ledgertest.NewOrigin(2)
	events := o.Patients(t, rng(t), 3)
	o.Wall.Advance(2 * time.Hour) // this clinic's clock jumps ahead
	events = append(events, o.Patients(t, rng(t), 3)...)
	pr := r.push(t, tok, events)
	if pr.Accepted != 3 || pr.Held != 3 || pr.HighWater != 3 || r.head(t) != 3 {
		t.Fatalf("skewed push: %+v", pr)
	}
	first := pr.Results[0]
	if first.Index != 3 || first.Status != wire.StatusHeld || first.SkewMillis < int64(time.Hour/time.Millisecond) || !strings.Contains(first.Error, "ahead of central's") {
		t.Fatalf("held answer: %+v", first)
	}
	held, err := r.reg.HeldEvents(context.Background(), 2)
	if err != nil || len(held) != 3 || held[0].Seq != 4 || held[2].Seq != 6 {
		t.Fatalf("held table: %+v %v", held, err)
	}
	if resp, raw := r.get(t, tok, wire.PathHeads); resp.StatusCode != 200 || !strings.Contains(string(raw), `"held_events":3`) {
		t.Fatalf("heads: %s", raw)
	}
	// Pushing again holds them again, without duplicating them.
	r.push(t, tok, events[3:])
	if held, _ := r.reg.HeldEvents(context.Background(), 2); len(held) != 3 {
		t.Fatalf("held twice: %d", len(held))
	}
	// An administrator releases them.
	n, err := central.Release(context.Background(), r.store, r.reg, 2)
	if err != nil || n != 3 || r.head(t) != 6 {
		t.Fatalf("release: %d %v (head %d)", n, err, r.head(t))
	}
	if held, _ := r.reg.HeldEvents(context.Background(), 2); len(held) != 0 {
		t.Fatalf("still held after release: %d", len(held))
	}
	// Another origin: central's clock catches up and the same push goes in.
	tok3 := r.add(t, 3, wire.ScopeAll)
	o3 := ledgertest.NewOrigin(3)
	o3.Wall.Advance(3 * time.Hour)
	ahead := o3.Patients(t, rng(t), 2)
	if pr := r.push(t, tok3, ahead); pr.Held != 2 {
		t.Fatalf("ahead: %+v", pr)
	}
	r.clock.Set(epoch.Add(3 * time.Hour))
	if pr := r.push(t, tok3, ahead); pr.Accepted != 2 || pr.Held != 0 {
		t.Fatalf("after central's clock caught up: %+v", pr)
	}
	if held, _ := r.reg.HeldEvents(context.Background(), 3); len(held) != 0 {
		t.Fatalf("appended events are still listed as held: %d", len(held))
	}
}

// When the cursor is at central's head, a pull costs one Head call: no
// ledger read, whatever the ledger's size.
func TestIdlePullReadsOnlyHead(t *testing.T) {
	r := newRig(t, false)
	tok := r.add(t, 1, wire.ScopeAll)
	tok2 := r.add(t, 2, wire.ScopeLocal)
	r.push(t, tok2, ledgertest.NewOrigin(2).Patients(t, rng(t), 50))
	all := r.pullAll(t, tok)
	if len(all) != 50 {
		t.Fatalf("caught up with %d events", len(all))
	}
	for _, token := range []string{tok, tok2} {
		r.store.reset()
		for range 5 {
			resp, recs := r.pull(t, token, 50, "")
			if resp.StatusCode != http.StatusNoContent || len(recs) != 0 || resp.Header.Get(wire.HeaderNext) != "50" || resp.Header.Get(wire.HeaderHead) != "50" {
				t.Fatalf("idle pull: %d %v", resp.StatusCode, resp.Header)
			}
		}
		if calls := r.store.reset(); len(calls) != 1 || calls["Head"] != 5 {
			t.Fatalf("5 idle pulls made these store calls: %v", calls)
		}
	}
	// A cursor beyond the head is refused (central restored from a backup).
	if resp, raw := r.get(t, tok, wire.PathPull+"?after=51"); resp.StatusCode != http.StatusConflict {
		t.Fatalf("cursor beyond head: %d %s", resp.StatusCode, raw)
	}
	for _, q := range []string{"?after=x", "?limit=0", "?limit=10001", "?wait=61s", "?wait=forever"} {
		if resp, _ := r.get(t, tok, wire.PathPull+q); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("pull%s: %d", q, resp.StatusCode)
		}
	}
}

// A long poll answers as soon as an event arrives, whoever appended it.
func TestLongPollWakesOnAppend(t *testing.T) {
	for _, pg := range []bool{false, true} {
		name := map[bool]string{false: "sqlite", true: "postgres"}[pg]
		t.Run(name, func(t *testing.T) {
			r := newRig(t, pg)
			tok := r.add(t, 1, wire.ScopeAll)
			type answer struct {
				resp *http.Response
				recs []ledger.Record
				took time.Duration
			}
			done := make(chan answer)
			start := time.Now()
			go func() {
				resp, recs := r.pull(t, tok, 0, "&wait=20s")
				done <- answer{resp, recs, time.Since(start)}
			}()
			time.Sleep(300 * time.Millisecond)
			// Central's own event, appended straight to its ledger.
			if _, err := r.store.Store.Append(context.Background(), ledgertest.NewOrigin(0).Patients(t, rng(t), 1)); err != nil {
				t.Fatal(err)
			}
			a := <-done
			if len(a.recs) != 1 || a.recs[0].Position != 1 || a.took > 5*time.Second || a.took < 250*time.Millisecond {
				t.Fatalf("long poll: %d events after %v", len(a.recs), a.took)
			}
			t.Logf("woke %v after the append", a.took-300*time.Millisecond)
			// With nothing arriving it ends after the wait, with 204.
			start = time.Now()
			resp, recs := r.pull(t, tok, 1, "&wait=500ms")
			if resp.StatusCode != http.StatusNoContent || len(recs) != 0 || time.Since(start) < 450*time.Millisecond {
				t.Fatalf("empty long poll: %d after %v", resp.StatusCode, time.Since(start))
			}
		})
	}
}

func TestHeadsAndClock(t *testing.T) {
	r := newRig(t, false)
	tok := r.add(t, 4, wire.ScopeLocal)
	r.push(t, tok, ledgertest.NewOrigin(4).Patients(t, rng(t), 7))
	resp, raw := r.get(t, tok, wire.PathHeads)
	var h wire.Heads
	if err := json.Unmarshal(raw, &h); err != nil || resp.StatusCode != 200 {
		t.Fatalf("heads: %d %s", resp.StatusCode, raw)
	}
	if h.Origin != 4 || h.HighWater != 7 || h.Count != 7 || h.Head != 7 || h.Scope != wire.ScopeLocal || h.Name != "clinic 4" {
		t.Fatalf("heads: %+v", h)
	}
	ct, err := wire.ParseTime(resp.Header.Get(wire.HeaderTime))
	if err != nil || ct.Sub(r.clock.Now()).Abs() > time.Second {
		t.Fatalf("%s %q: %v", wire.HeaderTime, resp.Header.Get(wire.HeaderTime), err)
	}
	if resp.Header.Get(wire.HeaderHead) != strconv.Itoa(7) {
		t.Fatalf("head header %q", resp.Header.Get(wire.HeaderHead))
	}
	// Central's identity and the caller's scope travel with every answer,
	// a pull's too, so a satellite keys its cursor by central, not by URL,
	// and notices a widening.
	id, err := r.reg.Identity(context.Background())
	if err != nil || h.Central != id || id == "" || r.srv.Identity() != id || h.Widened != 0 {
		t.Fatalf("heads: central %q widened %d; registry %q %v", h.Central, h.Widened, id, err)
	}
	if _, _, err := r.reg.ChangeSatellite(context.Background(), 4, central.SatelliteChange{Scope: wire.ScopeAll}); err != nil {
		t.Fatal(err)
	}
	presp, _ := r.pull(t, tok, 0, "")
	if presp.Header.Get(wire.HeaderCentral) != id || presp.Header.Get(wire.HeaderScope) != wire.ScopeAll || presp.Header.Get(wire.HeaderWidened) != "1" {
		t.Fatalf("pull answer's headers: %v", presp.Header)
	}
}

// Malformed bodies are refused whole, with a JSON error naming the frame
// when one is at fault, and store nothing.
func TestMalformedBodiesRefused(t *testing.T) {
	r := newRig(t, false)
	tok := r.add(t, 1, wire.ScopeAll)
	events := ledgertest.NewOrigin(1).Patients(t, rng(t), 3)
	var plain bytes.Buffer
	wire.EncodePush(&plain, events)
	good := plain.Bytes()
	first, _ := ledger.Marshal(events[0])
	badEvent := bytes.Clone(good)
	badEvent[len(wire.Magic)+2+len(first)+2+1] ^= 0x01 // frame 1's event array: 13 elements
	z := gz(good)
	for _, tc := range []struct {
		name     string
		body     []byte
		ctype    string
		encoding string
		status   int
		frame    int // -1: none
		want     string
	}{
		{"truncated gzip", z[:len(z)-9], wire.ContentType, "gzip", 400, 3, "truncated"},
		{"bytes after the gzip stream", append(bytes.Clone(z), 0), wire.ContentType, "gzip", 400, -1, "after the end of the gzip stream"},
		{"a second gzip member", append(bytes.Clone(z), z...), wire.ContentType, "gzip", 400, -1, "after the end of the gzip stream"},
		{"bad event", gz(badEvent), wire.ContentType, "gzip", 400, 1, "invalid event"},
		{"truncated frames", gz(good[:len(good)-20]), wire.ContentType, "gzip", 400, 2, "truncated"},
		{"identity, bad event", badEvent, wire.ContentType, "", 400, 1, "invalid event"},
		{"wrong content type", z, "application/json", "gzip", 415, -1, "content type"},
		{"wrong encoding", z, wire.ContentType, "br", 415, -1, "content encoding"},
	} {
		req, _ := http.NewRequest(http.MethodPost, r.ts.URL+wire.PathPush, bytes.NewReader(tc.body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", tc.ctype)
		if tc.encoding != "" {
			req.Header.Set("Content-Encoding", tc.encoding)
		}
		resp, err := r.ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		e := errorBody(t, raw)
		if resp.StatusCode != tc.status || !strings.Contains(e.Error, tc.want) || (tc.frame < 0) != (e.Frame == nil) || e.Frame != nil && *e.Frame != tc.frame {
			t.Errorf("%s: %d %s", tc.name, resp.StatusCode, raw)
		}
	}
	if r.head(t) != 0 {
		t.Fatal("a malformed push stored events")
	}
	// And the good body goes in.
	if pr := r.push(t, tok, events); pr.Accepted != 3 {
		t.Fatalf("good push: %+v", pr)
	}
}

// With the default bound policy, events whose clock is far ahead are
// stored behind a clock bound that central appends first (as origin 0):
// nothing waits for an administrator, and every projector merges them at
// central's time of receipt.
func TestSkewedEventsBounded(t *testing.T) {
	r := newRig(t, false)
	tok := r.add(t, 2, wire.ScopeAll)
	r.clock.Set(epoch.Add(time.Minute))
	o := ledgertest.NewOrigin(2)
	events := o.Patients(t, rng(t), 3)
	o.Wall.Advance(365 * 24 * time.Hour) // a year ahead
	events = append(events, o.Patients(t, rng(t), 3)...)
	pr := r.push(t, tok, events)
	if pr.Accepted != 6 || pr.Bounded != 3 || pr.HighWater != 6 || r.head(t) != 7 {
		t.Fatalf("skewed push: %+v, head %d; want 6 accepted, 3 bounded, head 7 (with the bound)", pr, r.head(t))
	}
	if first := pr.Results[0]; first.Index != 3 || first.Status != wire.StatusBounded || first.SkewMillis < int64(300*24*time.Hour/time.Millisecond) {
		t.Fatalf("bounded answer: %+v", first)
	}
	recs, err := r.store.ReadAll(context.Background(), 0, 10, ledger.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	cb, err := ledger.ParseClockBound(recs[0].Event)
	if err != nil || cb.Origin != 2 || cb.FromSeq != 4 || cb.ToSeq != 6 || cb.Bound.WallMillis()-epoch.Add(time.Minute).UnixMilli() > 1000 {
		t.Fatalf("position 1 holds %v (%+v, %v), want the bound of origin 2 seq 4..6 at central's time", recs[0].Event, cb, err)
	}
	if recs[4].Event.OriginSeq != 4 || recs[4].Event.Origin != 2 {
		t.Fatalf("the bounded events do not follow their bound: %v", recs[4].Event)
	}
	// A replay changes nothing, not even another bound.
	if pr := r.push(t, tok, events); pr.Duplicates != 6 || r.head(t) != 7 {
		t.Fatalf("replayed skewed push: %+v, head %d", pr, r.head(t))
	}
}

// A satellite of scope all is sent every other origin's events as central
// stored them (read without decoding), in pages bounded by MaxPageBytes,
// each event once; a page read never decodes.
func TestPullForwardsStoredBytes(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			r := newRig(t, pg, func(c *central.Config) { c.MaxPageBytes = 800 })
			tok1, tok2 := r.add(t, 1, wire.ScopeAll), r.add(t, 2, wire.ScopeAll)
			r.push(t, tok1, ledgertest.NewOrigin(1).Patients(t, rng(t), 5))
			r.push(t, tok2, ledgertest.NewOrigin(2).Patients(t, rng(t), 12))
			stored, err := r.store.Store.ReadAll(context.Background(), 0, 0, ledger.Filter{Origins: []uint16{2}})
			if err != nil {
				t.Fatal(err)
			}
			r.store.reset()
			var got []ledger.Record
			pages := 0
			for after := uint64(0); ; {
				resp, recs := r.pull(t, tok1, after, "")
				pages++
				size := 0
				for _, rec := range recs {
					size += len(rec.Payload)
				}
				if len(recs) > 1 && size-len(recs[len(recs)-1].Payload) >= 800 {
					t.Fatalf("page after %d: %d bytes in %d events, past the 800-byte bound by more than its last event", after, size, len(recs))
				}
				got = append(got, recs...)
				next, _ := strconv.ParseUint(resp.Header.Get(wire.HeaderNext), 10, 64)
				head, _ := strconv.ParseUint(resp.Header.Get(wire.HeaderHead), 10, 64)
				if after = next; next >= head {
					break
				}
			}
			if len(got) != len(stored) || pages < 2 {
				t.Fatalf("received %d events in %d pages, want satellite 2's %d in several", len(got), pages, len(stored))
			}
			for i, rec := range got {
				if rec.Position != stored[i].Position || !bytes.Equal(rec.Payload, stored[i].Payload) {
					t.Fatalf("event %d: position %d, %d bytes; stored at %d, %d bytes", i, rec.Position, len(rec.Payload), stored[i].Position, len(stored[i].Payload))
				}
			}
			if calls := r.store.reset(); calls["ReadAll"] != 0 || calls["ReadAllRaw"] == 0 {
				t.Fatalf("the pulls read the ledger with %v, want raw reads only", calls)
			}
		})
	}
}
