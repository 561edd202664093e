package central_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"testing"

	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/ledger/ledgertest"
	"github.com/ghsync/ghsync/wire"
)

// /v1/own gives a satellite its own events back after an origin_seq, in
// pages, and nobody else's; /v1/heads?at=SEQ says the hash of its event
// at SEQ. Both need the satellite's token.
func TestOwnEventsAndHeadsAt(t *testing.T) {
	r := newRig(t, false)
	tok := r.add(t, 3, wire.ScopeAll)
	other := r.add(t, 4, wire.ScopeAll)
	mine := ledgertest.NewOrigin(3).Patients(t, rng(t), 12)
	r.push(t, tok, mine)
	r.push(t, other, ledgertest.NewOrigin(4).Patients(t, rng(t), 5))

	own := func(token, query string) (*http.Response, []ledger.Record) {
		t.Helper()
		resp, raw := r.get(t, token, wire.PathOwn+query)
		if resp.StatusCode == http.StatusNoContent {
			return resp, nil
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("own%s: %d %s", query, resp.StatusCode, raw)
		}
		var in io.Reader = bytes.NewReader(raw)
		if resp.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(in)
			if err != nil {
				t.Fatal(err)
			}
			in = zr
		}
		recs, err := wire.DecodePull(in, wire.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		return resp, recs
	}
	resp, recs := own(tok, "?after=4&limit=5")
	if len(recs) != 5 || resp.Header.Get(wire.HeaderNext) != "9" || resp.Header.Get(wire.HeaderHighWater) != "12" {
		t.Fatalf("own after 4: %d events, headers %v", len(recs), resp.Header)
	}
	for i, rec := range recs {
		if rec.Event.Origin != 3 || rec.Event.OriginSeq != uint64(5+i) || rec.Event.Hash != mine[4+i].Hash {
			t.Fatalf("own after 4, event %d: origin %d seq %d", i, rec.Event.Origin, rec.Event.OriginSeq)
		}
	}
	if resp, recs := own(tok, "?after=12"); len(recs) != 0 || resp.StatusCode != http.StatusNoContent || resp.Header.Get(wire.HeaderNext) != "12" {
		t.Fatalf("own after the high-water mark: %d %d", resp.StatusCode, len(recs))
	}
	if _, recs := own(other, "?after=0"); len(recs) != 5 || recs[0].Event.Origin != 4 {
		t.Fatalf("satellite 4's own: %d events", len(recs))
	}
	for _, c := range []struct {
		token, query string
		status       int
	}{
		{"", "?after=0", http.StatusUnauthorized},
		{tok, "?after=x", http.StatusBadRequest},
		{tok, "?after=0&limit=0", http.StatusBadRequest},
		{tok, "?after=0&limit=" + strconv.Itoa(wire.MaxPullLimit+1), http.StatusBadRequest},
	} {
		if resp, raw := r.get(t, c.token, wire.PathOwn+c.query); resp.StatusCode != c.status || errorBody(t, raw).Error == "" {
			t.Errorf("own%s: %d %s, want %d", c.query, resp.StatusCode, raw, c.status)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, r.ts.URL+wire.PathOwn, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	if resp, err := r.ts.Client().Do(req); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST own: %v %v", resp, err)
	}

	heads := func(query string) wire.Heads {
		t.Helper()
		resp, raw := r.get(t, tok, wire.PathHeads+query)
		var h wire.Heads
		if err := json.Unmarshal(raw, &h); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("heads%s: %d %s", query, resp.StatusCode, raw)
		}
		return h
	}
	if h := heads("?at=7"); h.At != 7 || h.AtHash != mine[6].Hash.String() || h.Hash != mine[11].Hash.String() {
		t.Fatalf("heads?at=7: %+v", h)
	}
	if h := heads("?at=13"); h.At != 13 || h.AtHash != "" {
		t.Fatalf("heads?at=13 (beyond the high-water mark): %+v", h)
	}
	if h := heads(""); h.At != 0 || h.AtHash != "" {
		t.Fatalf("heads: %+v", h)
	}
	if resp, raw := r.get(t, tok, wire.PathHeads+"?at=-1"); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("heads?at=-1: %d %s", resp.StatusCode, raw)
	}
}
