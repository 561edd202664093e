package satellite

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ghsync/ghsync/clocks"
	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/wire"
)

// Config sets up a Client. URL, Token, Origin and Store are required.
type Config struct {
	URL    string // central's base URL, e.g. https://central.example.org:7420
	Token  string // the bearer token `ghsync central satellite add` printed
	Origin uint16 // this instance's synchronisation id (1..511)
	Store  ledger.Store
	// StateLocation is where the pull cursor and clock offset persist:
	// normally the location of Store itself ("sqlite:PATH" or a
	// postgres:// URL). Empty keeps them in memory only.
	StateLocation string
	HTTPClient    *http.Client // default: http.DefaultClient
	Logger        hclog.Logger
	// Progress, when set, is called after every page.
	Progress func(Progress)
	// PushEvents and PushBytes bound one push request (defaults 2,000
	// events and 8 MiB); PullLimit is the events per pull page (default
	// 2,000); MaxBody bounds a decompressed response (default 256 MiB).
	PushEvents int
	PushBytes  int
	PullLimit  int
	MaxBody    int64
	// FromStart sets the pull cursor back to position 0 (see Rewind), and
	// follows whichever central answers at URL even if the cursor kept
	// here belongs to another one (a central rebuilt from scratch): the
	// other centrals' cursors are forgotten.
	FromStart bool
}

// NewRequest asks for a record graph: a patient by PUID, or a record by
// model and key (see wire.NewRequest).
type NewRequest = wire.NewRequest

// Progress reports a long transfer.
type Progress struct {
	Op       string // "push", "pull" or "new"
	Events   int    // events sent or received so far
	Bytes    int64  // bytes on the wire so far
	Position uint64 // pull: the cursor; push: the last seq sent
	Head     uint64 // pull: central's head; push: this origin's last seq
	Rate     float64
	ETA      time.Duration // 0 when unknown
}

// PushStats says what Push did.
type PushStats struct {
	Requests   int
	Sent       int
	Accepted   int
	Duplicates int
	Held       int
	Bytes      int64
	HighWater  uint64             // this origin's high-water mark at central afterwards
	Results    []wire.PushResult  // every event central did not simply accept, across requests
	Response   *wire.PushResponse // the last answer
}

// PullStats says what Pull or New did.
type PullStats struct {
	Requests   int
	Received   int // events received
	Appended   int // of which new here
	Duplicates int
	Bytes      int64
	Cursor     uint64 // the cursor afterwards
	Head       uint64 // central's head as last seen
	Streams    int    // New: the records in the graph
	Root       string // New: the record the graph is of (a patient's party)
	Note       string // New: what central says of how it found it, for people
	// Rescanned: the pull fetched central's ledger again from the start,
	// for what an old scope left out (the scope widened: central said so
	// now or at Dial) or because Rewind or FromStart asked.
	Rescanned bool
}

// Errors, tested with errors.Is.
var (
	// ErrUnavailable: central could not be reached or answered 5xx or
	// 429, or the connection was lost during a transfer; nothing is lost,
	// try again later (back off). ErrUnreachable and ErrConnectionLost
	// say which of the first and the last it was, for people.
	ErrUnavailable = errors.New("central unavailable")
	// ErrUnreachable: no connection to central could be made (its name
	// did not resolve, the connection was refused or timed out, TLS
	// failed): nothing was sent. It matches ErrUnavailable too.
	ErrUnreachable = errors.New("central could not be reached")
	// ErrConnectionLost: central was reached, and the connection failed
	// before its answer was read whole (central stopped, the network
	// dropped). What was transferred before is kept: the pull cursor is
	// saved per page and a push resumes from central's heads. It matches
	// ErrUnavailable too.
	ErrConnectionLost = errors.New("the connection to central was lost during the transfer")
	// ErrRefused: central refused the request (4xx): retrying the same
	// request will not help.
	ErrRefused = errors.New("refused by central")
	// ErrRejected: central rejected some pushed events (see PushStats.Results).
	ErrRejected = errors.New("events rejected by central")
	// ErrHeld: central held some pushed events back because this
	// instance's clock is ahead of central's.
	ErrHeld = errors.New("events held by central")
)

// APIError is central's answer to a refused or failed request.
type APIError struct {
	Status  int
	Message string
	Frame   *int
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("central answered %d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
	if e.Frame != nil {
		s += fmt.Sprintf(" (frame %d)", *e.Frame)
	}
	return s
}

// Is makes a 5xx or 429 match ErrUnavailable and any other status ErrRefused.
func (e *APIError) Is(target error) bool {
	retry := e.Status >= 500 || e.Status == http.StatusTooManyRequests
	return target == ErrUnavailable && retry || target == ErrRefused && !retry
}

// unavailable marks a transport failure as retryable: with dial set, a
// failure to connect (ErrUnreachable), otherwise one after connecting
// (ErrConnectionLost).
type unavailable struct {
	err  error
	dial bool
}

func (u unavailable) Error() string { return u.err.Error() }
func (u unavailable) Unwrap() error { return u.err }
func (u unavailable) Is(target error) bool {
	return target == ErrUnavailable || target == ErrUnreachable && u.dial || target == ErrConnectionLost && !u.dial
}

// unconnected says whether err, from sending a request, is a failure to
// set up the connection, so that nothing reached central: dialling
// (name resolution, a refused or timed-out connection, a proxy's) or the
// TLS handshake.
func unconnected(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && (op.Op == "dial" || op.Op == "proxyconnect") {
		return true
	}
	var cert *tls.CertificateVerificationError
	var rec tls.RecordHeaderError
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	return errors.As(err, &cert) || errors.As(err, &rec) || errors.As(err, &unknown) || errors.As(err, &host)
}

// Client talks to central for one satellite. Its methods are safe for
// concurrent use: a push may run while a pull long-polls; pushes run one
// at a time, and so do pulls.
type Client struct {
	cfg   Config
	base  *url.URL
	http  *http.Client
	log   hclog.Logger
	state *stateDB
	url   string // central's URL, as configured (normalised)
	// central is central's identity (wire.Heads), "" from a central older
	// than identities; key is the state row: the identity, or the URL.
	central, key string

	pushMu sync.Mutex // one push at a time
	pullMu sync.Mutex // one pull (the cursor's owner) at a time
	omu    sync.Mutex // guards cursor, offset, scope, widened and rescan
	cursor uint64
	offset time.Duration
	scope  string
	// widened is central's count of this satellite's scope widenings as
	// last seen; rescan is the cursor the last widening found (State).
	widened, rescan uint64
}

// Dial checks the configuration, loads the persisted cursor and asks
// central who this token belongs to: a token of another satellite is an
// error before anything is sent.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	if cfg.Store == nil || cfg.Token == "" || cfg.URL == "" {
		return nil, errors.New("satellite: Config needs URL, Token and Store")
	}
	if cfg.Origin < 1 || cfg.Origin > ledger.MaxOrigin {
		return nil, fmt.Errorf("satellite: origin %d outside 1..%d (0 is central)", cfg.Origin, ledger.MaxOrigin)
	}
	base, err := url.Parse(strings.TrimRight(cfg.URL, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("satellite: central URL %q: want http(s)://host:port", cfg.URL)
	}
	if cfg.PushEvents <= 0 {
		cfg.PushEvents = wire.DefaultPullLimit
	}
	if cfg.PushBytes <= 0 {
		cfg.PushBytes = 8 << 20
	}
	if cfg.PullLimit <= 0 {
		cfg.PullLimit = wire.DefaultPullLimit
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = wire.DefaultMaxBody
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	c := &Client{cfg: cfg, base: base, http: cfg.HTTPClient, log: cfg.Logger.Named("satellite"), url: base.String()}
	c.key = c.url
	if c.http == nil {
		c.http = http.DefaultClient
	}
	if cfg.StateLocation != "" {
		if c.state, err = openState(ctx, cfg.StateLocation); err != nil {
			return nil, err
		}
	}
	h, err := c.Heads(ctx)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("dial %s: %w", c.url, err)
	}
	if h.Origin != cfg.Origin {
		c.Close()
		return nil, fmt.Errorf("dial %s: the token belongs to satellite %d (%s), but this instance is origin %d", c.url, h.Origin, h.Name, cfg.Origin)
	}
	if err := c.adopt(ctx, h); err != nil {
		c.Close()
		return nil, fmt.Errorf("dial %s: %w", c.url, err)
	}
	return c, nil
}

// adopt loads the state of the central that answered h: the row keyed by
// its identity, or, the first time a central with an identity answers,
// the row kept for its URL (moved to the identity). It refuses a central
// other than the one a cursor kept here belongs to, unless FromStart. A
// scope widened since the state was saved sets the cursor back to 0.
func (c *Client) adopt(ctx context.Context, h wire.Heads) error {
	c.central, c.scope = h.Central, h.Scope
	if h.Central != "" {
		c.key = h.Central
	}
	if c.state == nil {
		c.widened = h.Widened
		return nil
	}
	rows, err := c.state.rows(ctx)
	if err != nil {
		return err
	}
	var mine *stateRow
	var others []stateRow
	for _, r := range rows {
		switch {
		case r.Key == c.key:
			mine = &r
		case h.Central != "" && mine == nil && r.Key == c.url:
			mine = &r // the URL's row from before identities: this central's
		default:
			others = append(others, r)
		}
	}
	var drop []string
	if c.cfg.FromStart {
		for _, r := range others {
			drop = append(drop, r.Key)
		}
	} else if h.Central != "" && mine == nil {
		for _, r := range others { // the most recently used first
			if r.Cursor == 0 {
				continue
			}
			if r.legacy() {
				return fmt.Errorf("%w, perhaps: this satellite's pull cursor (central position %d) was kept for the central at %s, from before centrals had identities; %s (central %s) may be that central under another name, or another: reach central once at %s to tie the cursor to its identity, or pull --from-start to fetch this central's ledger from the start",
					ErrOtherCentral, r.Cursor, r.Key, c.url, h.Central, r.Key)
			}
			at := r.URL
			if at == "" {
				at = "an unrecorded URL"
			}
			return fmt.Errorf("%w: %s answers as central %s, but this satellite's pull cursor (central position %d) belongs to central %s, last reached at %s: check --central ([synchronisation] url); if this satellite now belongs to the central at %s (its central was rebuilt from scratch), pull --from-start once",
				ErrOtherCentral, c.url, h.Central, r.Cursor, r.Key, at, c.url)
		}
	}
	var st State
	from := ""
	if mine != nil {
		st, from = mine.State, mine.Key
	}
	if from != c.key || len(drop) > 0 {
		if err := c.state.rekey(ctx, from, c.key, drop); err != nil {
			return err
		}
		if from != "" && from != c.key {
			c.log.Info("pull cursor now keyed by central's identity, not its URL", "url", from, "central", c.key, "cursor", st.Cursor)
		}
	}
	changed := st.URL != c.url
	if c.cfg.FromStart && st.Cursor > 0 {
		st.RescanThrough, st.Cursor, changed = max(st.RescanThrough, st.Cursor), 0, true
	}
	if h.Widened != st.Widened {
		if h.Widened > st.Widened && st.Cursor > 0 {
			c.log.Info("scope widened: pulling central's ledger again from position 0 for what the old scope left out",
				"scope", h.Scope, "cursor", st.Cursor)
			st.RescanThrough, st.Cursor = max(st.RescanThrough, st.Cursor), 0
		}
		st.Widened, changed = h.Widened, true
	}
	c.omu.Lock()
	c.cursor, c.widened, c.rescan = st.Cursor, st.Widened, st.RescanThrough
	c.omu.Unlock()
	if changed {
		return c.save(ctx)
	}
	return nil
}

// Close releases the state database. It does not close the Store.
func (c *Client) Close() error {
	if c.state != nil {
		return c.state.close()
	}
	return nil
}

// Offset is central's clock minus this machine's, as last measured (from
// the midpoint of a request central answered at once and its
// X-Ghsync-Time).
func (c *Client) Offset() time.Duration {
	c.omu.Lock()
	defer c.omu.Unlock()
	return c.offset
}

// Cursor is the central position this satellite has pulled through.
func (c *Client) Cursor() uint64 {
	c.omu.Lock()
	defer c.omu.Unlock()
	return c.cursor
}

// Scope is the scope central gives this satellite, as last seen.
func (c *Client) Scope() string {
	c.omu.Lock()
	defer c.omu.Unlock()
	return c.scope
}

// Central is central's identity ("" from a central older than
// identities): the pull cursor belongs to it.
func (c *Client) Central() string { return c.central }

// Rescanning reports whether the satellite is fetching central's ledger
// again from the start (its scope widened, or Rewind) and has not yet
// reached where its cursor was: the histories of records new to it then
// arrive over many pages, so a projector must not compact merge states
// meanwhile (projections.Projector.HoldCompaction).
func (c *Client) Rescanning() bool {
	c.omu.Lock()
	defer c.omu.Unlock()
	return c.cursor < c.rescan
}

// Heads asks central for this origin's high-water mark there and its head.
func (c *Client) Heads(ctx context.Context) (wire.Heads, error) {
	return c.heads(ctx, nil)
}

// heads asks GET /v1/heads with query (nil, or wire.QueryAt).
func (c *Client) heads(ctx context.Context, query url.Values) (wire.Heads, error) {
	var h wire.Heads
	resp, err := c.do(ctx, http.MethodGet, wire.PathHeads, query, nil)
	if err != nil {
		return h, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&h); err != nil {
		return h, unavailable{err: fmt.Errorf("read heads: %w", err)}
	}
	return h, nil
}

// do sends one request and, when central answers it at once, measures the
// clock offset from the answer. A non-2xx answer is an *APIError; a
// transport failure matches ErrUnavailable.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body []byte) (*http.Response, error) {
	u := *c.base
	u.Path = strings.TrimRight(u.Path, "/") + path
	u.RawQuery = query.Encode()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.cfg.Token)
	// Asking for gzip ourselves turns off the transport's transparent
	// decompression: we check the stream (and its CRC) ourselves.
	req.Header.Set("Accept-Encoding", "gzip")
	if path == wire.PathPush {
		req.Header.Set("Content-Type", wire.ContentType)
		req.Header.Set("Content-Encoding", "gzip")
	} else if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	sent := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, unavailable{err: err, dial: unconnected(err)}
	}
	// Central stamps its time as it answers, so the midpoint of the
	// round trip stands for that moment only when central answers at
	// once: not after a long poll (wait), nor after reading an upload
	// (push, new). Those leave the offset as the last quick request
	// (heads, a pull page) measured it; every dial and push begins
	// with heads.
	if id := resp.Header.Get(wire.HeaderCentral); id != "" && c.central != "" && id != c.central {
		resp.Body.Close()
		return nil, fmt.Errorf("%w: %s now answers as central %s, but this satellite follows central %s", ErrOtherCentral, c.url, id, c.central)
	}
	if body == nil && !query.Has("wait") {
		c.measure(resp, sent, time.Now())
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		e := &APIError{Status: resp.StatusCode}
		var body wire.Error
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(raw, &body) == nil && body.Error != "" {
			e.Message, e.Frame = body.Error, body.Frame
		} else {
			e.Message = strings.TrimSpace(string(raw))
		}
		return nil, e
	}
	return resp, nil
}

// measure updates the clock offset: central's time minus the midpoint of
// the request here.
func (c *Client) measure(resp *http.Response, sent, got time.Time) {
	t, err := wire.ParseTime(resp.Header.Get(wire.HeaderTime))
	if err != nil {
		return
	}
	mid := sent.Add(got.Sub(sent) / 2)
	off := t.Sub(mid)
	c.omu.Lock()
	c.offset = off
	c.omu.Unlock()
	if off > clocks.DefaultMaxOffset/2 || off < -clocks.DefaultMaxOffset/2 {
		c.log.Warn("this machine's clock differs from central's", "offset", off.Round(time.Millisecond).String(), "round_trip", got.Sub(sent).String())
	}
}

// body returns a response's decompressed body.
func body(resp *http.Response) (io.Reader, error) {
	switch resp.Header.Get("Content-Encoding") {
	case "gzip":
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			return nil, unavailable{err: fmt.Errorf("response is not gzip: %w", err)}
		}
		zr.Multistream(false)
		return zr, nil
	case "", "identity":
		return resp.Body, nil
	}
	return nil, fmt.Errorf("response has content encoding %q", resp.Header.Get("Content-Encoding"))
}

// save persists the cursor and offset.
func (c *Client) save(ctx context.Context) error {
	if c.state == nil {
		return nil
	}
	c.omu.Lock()
	st := State{Cursor: c.cursor, Offset: c.offset, Updated: time.Now(), URL: c.url, Widened: c.widened, RescanThrough: c.rescan}
	c.omu.Unlock()
	return c.state.save(ctx, c.key, st)
}

// Push sends this origin's events that central does not hold yet, in
// pages, until central holds them all. It is stateless: central's
// high-water mark says where to start, so a push cut at any point is
// resumed by pushing again. A ledger that is behind central's history of
// its origin, or diverged from it, is refused before anything is sent
// (an *OwnHistoryError: see CheckOwn and Recover).
func (c *Client) Push(ctx context.Context) (PushStats, error) {
	c.pushMu.Lock()
	defer c.pushMu.Unlock()
	var st PushStats
	local, err := ledger.HeadOf(ctx, c.cfg.Store, c.cfg.Origin)
	if err != nil {
		return st, fmt.Errorf("push origin %d: %w", c.cfg.Origin, err)
	}
	h, err := c.headsAt(ctx, local.Seq)
	if err != nil {
		return st, fmt.Errorf("push origin %d: %w", c.cfg.Origin, err)
	}
	hw := h.HighWater
	st.HighWater = hw
	// A ledger restored from an older copy would otherwise push nothing
	// and say nothing, and stamp events central refuses later.
	if err := c.compare(ctx, local, h); err != nil {
		return st, fmt.Errorf("push origin %d: %w", c.cfg.Origin, err)
	}
	last := local.Seq
	start := time.Now()
	for {
		recs, err := c.cfg.Store.ReadOrigin(ctx, c.cfg.Origin, hw, c.cfg.PushEvents)
		if err != nil {
			return st, fmt.Errorf("push origin %d: read after seq %d: %w", c.cfg.Origin, hw, err)
		}
		if len(recs) == 0 {
			break
		}
		var raw bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&raw, gzip.BestSpeed)
		enc := wire.NewEncoder(zw)
		n := 0
		for _, r := range recs {
			if n > 0 && r.Event.OriginSeq != recs[n-1].Event.OriginSeq+1 {
				break // a hole in this store's own history: send what is consecutive
			}
			b, err := r.Encoded()
			if err != nil {
				return st, err
			}
			if n > 0 && enc.Bytes()+int64(len(b)) > int64(c.cfg.PushBytes) {
				break
			}
			enc.Frame(b)
			n++
		}
		if err := enc.Close(); err != nil {
			return st, err
		}
		zw.Close()
		first, end := recs[0].Event.OriginSeq, recs[n-1].Event.OriginSeq
		wrap := func(err error) error {
			return fmt.Errorf("push origin %d seq %d..%d: %w", c.cfg.Origin, first, end, err)
		}
		resp, err := c.do(ctx, http.MethodPost, wire.PathPush, nil, raw.Bytes())
		if err != nil {
			return st, wrap(err)
		}
		var pr wire.PushResponse
		err = json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&pr)
		resp.Body.Close()
		if err != nil {
			return st, wrap(unavailable{err: fmt.Errorf("read answer: %w", err)})
		}
		st.Requests++
		st.Sent += n
		st.Bytes += int64(raw.Len())
		st.Accepted += pr.Accepted
		st.Duplicates += pr.Duplicates
		st.Held += pr.Held
		st.Results = append(st.Results, pr.Results...)
		st.Response = &pr
		st.HighWater = pr.HighWater
		if c.cfg.Progress != nil {
			c.cfg.Progress(progress("push", st.Sent, st.Bytes, end, last, start, h.HighWater))
		}
		if pr.Rejected > 0 {
			return st, wrap(fmt.Errorf("%w: %s", ErrRejected, firstResult(pr.Results, wire.StatusRejected)))
		}
		if pr.Held > 0 {
			return st, wrap(fmt.Errorf("%w: %s", ErrHeld, firstResult(pr.Results, wire.StatusHeld)))
		}
		if pr.HighWater < end {
			return st, wrap(fmt.Errorf("%w: central's high-water mark is %d after the push", ErrRefused, pr.HighWater))
		}
		hw = pr.HighWater
	}
	if c.state != nil {
		if err := c.state.saveOffset(ctx, c.key, c.url, c.Offset(), time.Now()); err != nil {
			c.log.Warn("could not save the clock offset", "error", err)
		}
	}
	return st, nil
}

func firstResult(rs []wire.PushResult, status string) string {
	for _, r := range rs {
		if r.Status == status {
			return fmt.Sprintf("event %s (seq %d, frame %d): %s", r.ID, r.Seq, r.Index, r.Error)
		}
	}
	return ""
}

// progress computes rate and ETA from how far pos moved since start.
func progress(op string, events int, bytes int64, pos, head uint64, start time.Time, from uint64) Progress {
	p := Progress{Op: op, Events: events, Bytes: bytes, Position: pos, Head: head}
	if el := time.Since(start).Seconds(); el > 0 && pos > from {
		p.Rate = float64(pos-from) / el
		if head > pos {
			p.ETA = time.Duration(float64(head-pos) / p.Rate * float64(time.Second))
		}
	}
	return p
}

// page is one decoded pull or new answer.
type page struct {
	recs       []ledger.Record
	head, next uint64
	bytes      int64
	streams    int
	root, note string // a /v1/new answer's
	// scope and widened are the satellite's scope as this answer was
	// computed for it (widened -1: not said, an older central).
	scope   string
	widened int64
}

// read decodes a whole answer before anything is appended: a cut
// transfer is an error, never a shorter page.
func (c *Client) read(resp *http.Response) (page, error) {
	defer resp.Body.Close()
	var p page
	var err error
	if p.head, err = strconv.ParseUint(resp.Header.Get(wire.HeaderHead), 10, 64); err != nil {
		return p, fmt.Errorf("answer has no %s header", wire.HeaderHead)
	}
	if v := resp.Header.Get(wire.HeaderNext); v != "" {
		if p.next, err = strconv.ParseUint(v, 10, 64); err != nil {
			return p, fmt.Errorf("bad %s header %q", wire.HeaderNext, v)
		}
	}
	p.streams, _ = strconv.Atoi(resp.Header.Get(wire.HeaderStreams))
	p.root, p.note = resp.Header.Get(wire.HeaderRoot), resp.Header.Get(wire.HeaderNote)
	p.scope, p.widened = resp.Header.Get(wire.HeaderScope), -1
	if w, err := strconv.ParseUint(resp.Header.Get(wire.HeaderWidened), 10, 63); err == nil {
		p.widened = int64(w)
	}
	if resp.StatusCode == http.StatusNoContent {
		return p, nil
	}
	cr := &countReader{r: resp.Body}
	in, err := body(&http.Response{Header: resp.Header, Body: io.NopCloser(cr)})
	if err != nil {
		return p, err
	}
	if p.recs, err = wire.DecodePull(in, wire.Limits{MaxBody: c.cfg.MaxBody}); err != nil {
		// A cut or damaged transfer: the network's fault, not central's answer.
		return p, unavailable{err: fmt.Errorf("answer: %w", err)}
	}
	p.bytes = cr.n
	return p, nil
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}

// Rewind sets the pull cursor back to central's position 0, durably, so
// the next Pull asks central for everything this satellite's scope covers.
// A widening central announces does this by itself (wire.HeaderWidened);
// Rewind is for a satellite whose scope widened at a central older than
// that. What the ledger holds is skipped.
func (c *Client) Rewind(ctx context.Context) error {
	c.pullMu.Lock()
	defer c.pullMu.Unlock()
	c.omu.Lock()
	c.rescan, c.cursor = max(c.rescan, c.cursor), 0
	c.omu.Unlock()
	if err := c.save(ctx); err != nil {
		return fmt.Errorf("rewind the pull cursor: %w", err)
	}
	return nil
}

// Pull fetches central's events after the cursor, page by page, appends
// each page to the store and then persists the cursor, until it has
// reached central's head. With wait > 0 the first request long-polls:
// central answers as soon as something arrives, or after wait. A transfer
// cut anywhere leaves the cursor where the last whole page put it; the
// next Pull resumes there (appends are idempotent anyway). An answer that
// says this satellite's scope widened since the cursor was saved sets the
// cursor back to 0, durably, and the pull goes on from there: the cursor
// had passed events the old scope left out.
func (c *Client) Pull(ctx context.Context, wait time.Duration) (PullStats, error) {
	c.pullMu.Lock()
	defer c.pullMu.Unlock()
	var st PullStats
	from := c.Cursor()
	st.Rescanned = c.Rescanning()
	start := time.Now()
	reset := false
	for {
		cursor := c.Cursor()
		q := url.Values{"after": {strconv.FormatUint(cursor, 10)}, "limit": {strconv.Itoa(c.cfg.PullLimit)}}
		if wait > 0 {
			q.Set("wait", wait.String())
		}
		resp, err := c.do(ctx, http.MethodGet, wire.PathPull, q, nil)
		var ae *APIError
		if errors.As(err, &ae) && ae.Status == http.StatusConflict && !reset {
			// The cursor is beyond central's head: central's ledger was
			// restored. Pull again from the start (appends are idempotent).
			c.log.Warn("cursor beyond central's head: pulling again from position 0", "cursor", cursor, "error", ae.Message)
			c.omu.Lock()
			c.cursor = 0
			c.omu.Unlock()
			reset, from = true, 0
			continue
		}
		if err != nil {
			return st, fmt.Errorf("pull after position %d: %w", cursor, err)
		}
		p, err := c.read(resp)
		st.Requests++
		if err != nil {
			return st, fmt.Errorf("pull after position %d: %w", cursor, err)
		}
		if err := c.apply(ctx, &st, p, "pull", cursor); err != nil {
			return st, err
		}
		if p.next < cursor {
			return st, fmt.Errorf("pull after position %d: central sent cursor %d, which goes back", cursor, p.next)
		}
		c.omu.Lock()
		c.cursor = p.next
		if p.scope != "" {
			c.scope = p.scope
		}
		widened := p.widened >= 0 && uint64(p.widened) > c.widened
		if widened {
			c.rescan, c.cursor, c.widened = max(c.rescan, p.next), 0, uint64(p.widened)
		}
		c.omu.Unlock()
		if err := c.save(ctx); err != nil {
			return st, fmt.Errorf("pull: %w", err)
		}
		if widened {
			c.log.Info("scope widened: pulling central's ledger again from position 0 for what the old scope left out", "scope", p.scope, "cursor", p.next)
			st.Rescanned, from = true, 0
			wait = 0
			continue
		}
		st.Cursor, st.Head = p.next, p.head
		if c.cfg.Progress != nil {
			c.cfg.Progress(progress("pull", st.Received, st.Bytes, p.next, p.head, start, from))
		}
		if p.next >= p.head {
			return st, nil
		}
		wait = 0
	}
}

// apply appends a decoded page's events to the store.
func (c *Client) apply(ctx context.Context, st *PullStats, p page, op string, cursor uint64) error {
	st.Bytes += p.bytes
	if len(p.recs) == 0 {
		return nil
	}
	events := make([]*ledger.Event, len(p.recs))
	payloads := make([][]byte, len(p.recs))
	for i, r := range p.recs {
		events[i], payloads[i] = r.Event, r.Payload
	}
	res, err := ledger.AppendEncoded(ctx, c.cfg.Store, events, payloads)
	if err != nil {
		return fmt.Errorf("%s after position %d: append %d events (central positions %d..%d): %w",
			op, cursor, len(events), p.recs[0].Position, p.recs[len(p.recs)-1].Position, err)
	}
	st.Received += len(events)
	st.Appended += res.Appended
	st.Duplicates += res.Duplicates
	return nil
}

// New asks central for a record graph (a patient by PUID, or a record and
// what refers to it), appends its full history here, and from then on
// those records come with every pull.
func (c *Client) New(ctx context.Context, req NewRequest) (PullStats, error) {
	var st PullStats
	what := req.Patient
	if what == "" {
		what = ledger.Stream{Model: req.Model, Key: req.Key}.String()
	}
	if err := req.Validate(); err != nil {
		return st, fmt.Errorf("new %s: %w", what, err)
	}
	body, _ := json.Marshal(req)
	resp, err := c.do(ctx, http.MethodPost, wire.PathNew, nil, body)
	if err != nil {
		return st, fmt.Errorf("new %s: %w", what, err)
	}
	p, err := c.read(resp)
	st.Requests++
	if err != nil {
		return st, fmt.Errorf("new %s: %w", what, err)
	}
	if err := c.apply(ctx, &st, p, "new "+what, c.Cursor()); err != nil {
		return st, err
	}
	st.Head, st.Streams, st.Cursor, st.Root, st.Note = p.head, p.streams, c.Cursor(), p.root, p.note
	if c.cfg.Progress != nil {
		c.cfg.Progress(Progress{Op: "new", Events: st.Received, Bytes: st.Bytes, Head: p.head})
	}
	return st, nil
}

// ReportStable tells central what this satellite vouches for after a
// complete cycle (see wire.StableReport): every event it stamped at or
// before hlc is acknowledged, later ones will be stamped after it, and
// its Tryton tables reflect central's ledger through applied. It returns
// the network's stability frontier, up to which the projector may
// compact merge states.
func (c *Client) ReportStable(ctx context.Context, hlc clocks.Timestamp, applied uint64) (clocks.Timestamp, error) {
	body, _ := json.Marshal(wire.StableReport{HLC: uint64(hlc), Applied: applied})
	resp, err := c.do(ctx, http.MethodPost, wire.PathStable, nil, body)
	if err != nil {
		return 0, fmt.Errorf("report stability (clock %s, applied through %d): %w", hlc, applied, err)
	}
	defer resp.Body.Close()
	var sr wire.StableResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&sr); err != nil {
		return 0, unavailable{err: fmt.Errorf("report stability: read answer: %w", err)}
	}
	return clocks.Timestamp(sr.Frontier), nil
}
