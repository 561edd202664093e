package main

import (
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ghsync/ghsync/wire"
)

// cutBody ends with an error after n bytes: the proxy then drops the
// connection, as a central that dies mid-answer does.
type cutBody struct {
	io.ReadCloser
	n int
}

func (c *cutBody) Read(p []byte) (int, error) {
	if c.n <= 0 {
		return 0, errors.New("central died")
	}
	k, err := c.ReadCloser.Read(p[:min(len(p), c.n)])
	c.n -= k
	return k, err
}

// sync says which way central failed: never reached, answering that it
// is unavailable, or lost in the middle of a transfer (which the next
// sync resumes).
func TestSyncSaysHowCentralFailed(t *testing.T) {
	dir := t.TempDir()
	centralDB := generatedCentral(t, dir, 60)
	tok := addSatellite(t, centralDB, "1", "all")
	centralURL, _ := serving(t, centralDB)
	u, err := url.Parse(centralURL)
	if err != nil {
		t.Fatal(err)
	}
	// In front of central: cuts pull answers after their headers and 100
	// bytes of body, or answers 503 itself, as told.
	var cut, down atomic.Bool
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = func(resp *http.Response) error {
		if cut.Load() && resp.Request.URL.Path == wire.PathPull {
			resp.Body = &cutBody{ReadCloser: resp.Body, n: 100}
		}
		return nil
	}
	rp.ErrorLog = log.New(io.Discard, "", 0)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, `{"error":"down for maintenance"}`, http.StatusServiceUnavailable)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	defer proxy.Close()

	sat := "sqlite:" + filepath.Join(dir, "sat1.db")
	var stderr string // of the last sync, for failure messages
	sync := func(central string) (int, string) {
		t.Helper()
		code, out, errOut := ghsync(t, "sync", "--ledger", sat, "--id", "1", "--central", central, "--token", tok)
		stderr = errOut
		return code, out
	}
	cut.Store(true)
	code, out := sync(proxy.URL)
	if code != 1 || !strings.Contains(out, "the connection to central was lost during the transfer: what was transferred is kept, and the next sync resumes where this one stopped") ||
		strings.Contains(out, "could not be reached") {
		t.Fatalf("sync cut mid-pull: exit %d\n%s\nstderr:\n%s", code, out, stderr)
	}
	down.Store(true)
	if code, out := sync(proxy.URL); code != 1 || !strings.Contains(out, "central answered 503 Service Unavailable, unavailable for now: local changes are captured and kept") {
		t.Fatalf("sync while central answers 503: exit %d\n%s", code, out)
	}
	if code, out := sync("http://" + freeAddr(t)); code != 1 || !strings.Contains(out, "central could not be reached: local changes are captured and kept") {
		t.Fatalf("sync with nobody listening: exit %d\n%s", code, out)
	}
	cut.Store(false)
	down.Store(false)
	if code, out := sync(proxy.URL); code != 0 || !strings.Contains(out, "pulled 60,") {
		t.Fatalf("sync once central is whole again: exit %d\n%s", code, out)
	}
}
