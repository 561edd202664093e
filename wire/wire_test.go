package wire

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/ledger/ledgertest"
)

func sampleEvents(t testing.TB, n int) []*ledger.Event {
	o := ledgertest.NewOrigin(3)
	return o.Patients(t, rand.New(rand.NewPCG(1, 2)), n)
}

func pushBody(t testing.TB, events []*ledger.Event) []byte {
	var b bytes.Buffer
	if err := EncodePush(&b, events); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestPushRoundTrip(t *testing.T) {
	events := sampleEvents(t, 50)
	body := pushBody(t, events)
	got, payloads, err := DecodePushEncoded(bytes.NewReader(body), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(events) || len(payloads) != len(events) {
		t.Fatalf("decoded %d events and %d payloads, want %d", len(got), len(payloads), len(events))
	}
	for i := range got {
		if got[i].Hash != events[i].Hash || got[i].ID != events[i].ID {
			t.Fatalf("event %d differs after the round trip", i)
		}
		if want, _ := ledger.Marshal(events[i]); !bytes.Equal(payloads[i], want) {
			t.Fatalf("event %d: the payload is not its canonical encoding", i)
		}
	}
	// An empty push is a complete stream of no frames.
	var empty bytes.Buffer
	if err := EncodePush(&empty, nil); err != nil {
		t.Fatal(err)
	}
	if got, err := DecodePush(&empty, Limits{}); err != nil || len(got) != 0 {
		t.Fatalf("empty push: %d events, %v", len(got), err)
	}
}

func TestPullRoundTrip(t *testing.T) {
	events := sampleEvents(t, 20)
	var recs []ledger.Record
	for i, e := range events {
		recs = append(recs, ledger.Record{Position: uint64(1000 + i*7), Event: e})
	}
	var b bytes.Buffer
	if err := EncodePull(&b, recs); err != nil {
		t.Fatal(err)
	}
	got, err := DecodePull(&b, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range recs {
		if got[i].Position != recs[i].Position || got[i].Event.Hash != recs[i].Event.Hash {
			t.Fatalf("record %d: got position %d, want %d", i, got[i].Position, recs[i].Position)
		}
		if want, _ := ledger.Marshal(recs[i].Event); !bytes.Equal(got[i].Payload, want) {
			t.Fatalf("record %d: the payload is not the event's canonical encoding", i)
		}
	}
}

// Every cut of a stream, at every byte, is an error: a truncated transfer
// never decodes as a shorter page.
func TestEveryTruncationIsAnError(t *testing.T) {
	body := pushBody(t, sampleEvents(t, 4))
	for cut := 0; cut < len(body); cut++ {
		_, err := DecodePush(bytes.NewReader(body[:cut]), Limits{})
		if err == nil {
			t.Fatalf("stream cut at byte %d of %d decoded without error", cut, len(body))
		}
		var fe *FrameError
		if !errors.As(err, &fe) {
			t.Fatalf("cut at %d: %v is not a *FrameError", cut, err)
		}
	}
	// And through gzip: the compressed stream cut anywhere is an error too.
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(body)
	zw.Close()
	for cut := 0; cut < z.Len(); cut += 7 {
		zr, err := gzip.NewReader(bytes.NewReader(z.Bytes()[:cut]))
		if err != nil {
			continue
		}
		if _, err := DecodePush(zr, Limits{}); err == nil {
			t.Fatalf("gzip stream cut at byte %d decoded without error", cut)
		}
	}
}

func TestDecoderErrorsNameFrameAndOffset(t *testing.T) {
	events := sampleEvents(t, 3)
	body := pushBody(t, events)
	// Flip a byte inside the second frame's event: its encoding is then
	// not canonical or not valid.
	first, _ := ledger.Marshal(events[0])
	second := len(Magic) + 2 + len(first) // frame 1 starts here (2-byte length prefix)
	bad := bytes.Clone(body)
	bad[second+2+1] ^= 0xff
	_, err := DecodePush(bytes.NewReader(bad), Limits{})
	var fe *FrameError
	if !errors.As(err, &fe) || fe.Frame != 1 || fe.Offset != int64(second) || !errors.Is(err, ErrMalformed) {
		t.Fatalf("a bad second event: %v (want frame 1 at byte %d)", err, second)
	}
	for _, tc := range []struct {
		name string
		body []byte
		lim  Limits
		want error
	}{
		{"not a stream", []byte("hello world"), Limits{}, ErrMalformed},
		{"empty", nil, Limits{}, ErrTruncated},
		{"too many events", body, Limits{MaxFrames: 2}, ErrTooLarge},
		{"frame too large", body, Limits{MaxFrame: 100}, ErrTooLarge},
		{"body too large", body, Limits{MaxBody: int64(len(body) - 10)}, ErrTooLarge},
		{"trailing bytes", append(bytes.Clone(body), 0), Limits{}, ErrMalformed},
		{"wrong count", append(bytes.Clone(body[:len(body)-1]), 9), Limits{}, ErrMalformed},
		{"overlong varint", append(Magic[:], 0x80, 0x00), Limits{}, ErrMalformed},
		{"huge declared frame", append(Magic[:], 0xff, 0xff, 0xff, 0xff, 0x0f), Limits{}, ErrTooLarge},
	} {
		_, err := DecodePush(bytes.NewReader(tc.body), tc.lim)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

// A decompression bomb stops at MaxBody: the decoder never inflates more.
func TestDecompressionBombStops(t *testing.T) {
	pr, pw := io.Pipe()
	go func() {
		zw, _ := gzip.NewWriterLevel(pw, gzip.BestCompression)
		zw.Write(Magic[:])
		// One frame declaring 3 MiB of zeros, then another, forever.
		zeros := make([]byte, 1<<20)
		for {
			if _, err := zw.Write([]byte{0x80, 0x80, 0xc0, 0x01}); err != nil { // 3 MiB
				break
			}
			for i := 0; i < 3; i++ {
				if _, err := zw.Write(zeros); err != nil {
					pw.CloseWithError(err)
					return
				}
			}
		}
	}()
	zr, err := gzip.NewReader(pr)
	if err != nil {
		t.Fatal(err)
	}
	d := NewDecoder(zr, Limits{MaxBody: 10 << 20})
	var n int
	for {
		_, err = d.Next()
		if err != nil {
			break
		}
		n++
	}
	pr.CloseWithError(errors.New("done"))
	if !errors.Is(err, ErrTooLarge) || d.Offset() > 10<<20 {
		t.Fatalf("bomb: %v after %d frames, %d bytes", err, n, d.Offset())
	}
}

func TestSplitPositioned(t *testing.T) {
	for _, bad := range [][]byte{nil, {0}, {0x80, 0x00, 1}, {5}, {0x80}} {
		if _, _, err := SplitPositioned(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("SplitPositioned(%x): %v", bad, err)
		}
	}
	if pos, rest, err := SplitPositioned([]byte{0x96, 0x01, 7, 8}); err != nil || pos != 150 || !bytes.Equal(rest, []byte{7, 8}) {
		t.Errorf("SplitPositioned: %d %x %v", pos, rest, err)
	}
}

func TestBearerToken(t *testing.T) {
	h := map[string][]string{"Authorization": {"Bearer abc"}}
	if tok, ok := BearerToken(h); !ok || tok != "abc" {
		t.Fatal(tok, ok)
	}
	for _, v := range []string{"", "Basic abc", "Bearer ", "Bearer"} {
		if _, ok := BearerToken(map[string][]string{"Authorization": {v}}); ok {
			t.Errorf("%q accepted", v)
		}
	}
	if err := (NewRequest{Patient: "x", Model: "m"}).Validate(); err == nil || !strings.Contains(err.Error(), "either") {
		t.Error(err)
	}
}

// FuzzDecodePush: no input makes the decoder panic or allocate beyond its
// limits, and whatever decodes is exactly the canonical stream of the
// decoded events (so there is one valid encoding of a push, and anything
// else is refused as a whole). Central decodes a whole push before it
// touches its store (see central's FuzzPushRequest), so an error here
// means nothing is stored.
func FuzzDecodePush(f *testing.F) {
	events := sampleEvents(f, 3)
	f.Add(pushBody(f, events))
	f.Add(pushBody(f, events[:1]))
	f.Add(pushBody(f, nil))
	f.Add(Magic[:])
	f.Add([]byte{})
	f.Add(append(Magic[:], 0xff, 0xff, 0xff, 0xff, 0x0f))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := DecodePush(bytes.NewReader(data), Limits{MaxFrame: 1 << 16, MaxBody: 1 << 20, MaxFrames: 100})
		if err != nil {
			var fe *FrameError
			if got != nil || !errors.As(err, &fe) || fe.Offset < 0 || fe.Offset > int64(len(data)) {
				t.Fatalf("error %v with %d events", err, len(got))
			}
			return
		}
		if again := pushBody(t, got); !bytes.Equal(again, data) {
			t.Fatalf("accepted a non-canonical stream:\n%x\nre-encodes as\n%x", data, again)
		}
	})
}
