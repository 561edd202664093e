package satellite

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/wire"
)

// Errors about this satellite's own history at central, tested with
// errors.Is; the error is an *OwnHistoryError saying where each stands.
var (
	// ErrBehindCentral: central holds more of this satellite's own
	// origin than its ledger does, and the ledger is a prefix of it: the
	// ledger was restored from an older copy (or another satellite uses
	// the same synchronisation id). Recover fetches the rest back.
	ErrBehindCentral = errors.New("ledger behind central's history of its own origin")
	// ErrDiverged: this ledger and central hold different events under
	// the same origin_seq of this satellite's origin: changes were
	// captured after a restore before central was reached (or another
	// satellite uses the same synchronisation id). Nothing fixes it
	// automatically; see ARCHITECTURE.md, "A satellite restored from a
	// backup".
	ErrDiverged = errors.New("ledger diverged from central's history of its own origin")
)

// OwnHistoryError says how this ledger's history of its own origin
// stands against central's: behind it (ErrBehindCentral) or diverged
// from it (ErrDiverged). It is returned before anything is sent or
// stored.
type OwnHistoryError struct {
	Origin    uint16
	Local     uint64 // the last origin_seq this ledger holds of its origin
	HighWater uint64 // the last one central holds
	Diverged  bool
	// FirstDiff is the first origin_seq whose event differs here and at
	// central, with both events' hashes (0 when a central older than
	// /v1/heads?at= could not say: then it is at or before DiffBy).
	FirstDiff              uint64
	DiffBy                 uint64
	LocalHash, CentralHash string
}

func (e *OwnHistoryError) Error() string {
	id := e.Origin
	if !e.Diverged {
		return fmt.Sprintf("%v: this ledger ends at seq %d of origin %d, but central holds this origin's events up to seq %d: "+
			"it was restored from an older copy (or another satellite uses synchronisation id %d). Nothing was sent or changed. "+
			"Run ghsync recover (or ghsync sync, which recovers before it captures) before anyone works here: it fetches seqs %d..%d back from central "+
			"and applies them to this database. If another satellite uses id %d, give each instance its own id instead",
			ErrBehindCentral, e.Local, id, e.HighWater, id, e.Local+1, e.HighWater, id)
	}
	where := fmt.Sprintf("from seq %d (here %s, at central %s)", e.FirstDiff, short(e.LocalHash), short(e.CentralHash))
	from := e.FirstDiff
	if e.FirstDiff == 0 {
		where, from = fmt.Sprintf("at or before seq %d (central is too old to say where)", e.DiffBy), 1
	}
	s := fmt.Sprintf("%v %s: this ledger ends at seq %d of origin %d and central holds this origin's events up to seq %d. "+
		"This ledger was restored from an older copy and captured changes before central was reached (or another satellite uses synchronisation id %d). "+
		"Nothing was sent or changed, and ghsync rewrites no stamped event: ",
		ErrDiverged, where, e.Local, id, e.HighWater, id)
	if from <= e.Local {
		s += fmt.Sprintf("seqs %d..%d here never reached central (ghsync log --origin %d lists them)", from, e.Local, id)
	}
	if from <= e.HighWater {
		if from <= e.Local {
			s += " and "
		}
		s += fmt.Sprintf("central's seqs %d..%d never came back here", from, e.HighWater)
	}
	return s + ". See ARCHITECTURE.md, \"A satellite restored from a backup\": keep a copy of this ledger, then restore the database and its ledger again from the same backup, " +
		"run ghsync recover before anyone works, and enter again the changes the copy lists; or, if another instance uses this id, stop it and give it its own"
}

// Is makes the error match ErrBehindCentral or ErrDiverged.
func (e *OwnHistoryError) Is(target error) bool {
	return target == ErrDiverged && e.Diverged || target == ErrBehindCentral && !e.Diverged
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	if h == "" {
		return "none"
	}
	return h
}

// RecoverStats says what Recover did.
type RecoverStats struct {
	From     uint64 // the last origin_seq of its origin this ledger held before
	Through  uint64 // the last one it holds afterwards
	Events   int    // events appended
	Requests int
	Bytes    int64
}

// headsAt asks central for its heads and the hash of this origin's event
// at seq (wire.QueryAt).
func (c *Client) headsAt(ctx context.Context, seq uint64) (wire.Heads, error) {
	return c.heads(ctx, url.Values{wire.QueryAt: {strconv.FormatUint(seq, 10)}})
}

// localHash is the hash of this ledger's event of its origin at seq; ok
// is false when the ledger does not hold it.
func (c *Client) localHash(ctx context.Context, seq uint64) (h ledger.Hash, ok bool, err error) {
	recs, err := c.cfg.Store.ReadOrigin(ctx, c.cfg.Origin, seq-1, 1)
	if err != nil {
		return h, false, fmt.Errorf("read origin %d seq %d here: %w", c.cfg.Origin, seq, err)
	}
	if len(recs) == 0 || recs[0].Event.OriginSeq != seq {
		return h, false, nil
	}
	return recs[0].Event.Hash, true, nil
}

// CheckOwn compares this ledger's history of its own origin with
// central's, before anything is captured or pushed: nil when central's
// is a prefix of it (what push expects), an *OwnHistoryError otherwise.
// It reads only.
func (c *Client) CheckOwn(ctx context.Context) error {
	local, err := ledger.HeadOf(ctx, c.cfg.Store, c.cfg.Origin)
	if err != nil {
		return fmt.Errorf("check origin %d: %w", c.cfg.Origin, err)
	}
	h, err := c.headsAt(ctx, local.Seq)
	if err != nil {
		return fmt.Errorf("check origin %d: %w", c.cfg.Origin, err)
	}
	return c.compare(ctx, local, h)
}

// compare is CheckOwn on what was read: this ledger's head of its origin
// and central's heads (asked at local.Seq, or not: then asked again).
func (c *Client) compare(ctx context.Context, local ledger.OriginHead, h wire.Heads) error {
	hw := h.HighWater
	e := &OwnHistoryError{Origin: c.cfg.Origin, Local: local.Seq, HighWater: hw}
	switch {
	case hw == 0:
		return nil // central holds nothing of this origin: push sends it all
	case local.Seq >= hw:
		mine := local.Hash
		if local.Seq > hw {
			var ok bool
			var err error
			if mine, ok, err = c.localHash(ctx, hw); err != nil || !ok {
				return err // a hole here at hw: push stops at it and says so
			}
		}
		if mine.String() == h.Hash {
			return nil
		}
		e.Diverged, e.DiffBy = true, hw
	case local.Seq == 0:
		return e // behind: the empty prefix
	default:
		if h.At != local.Seq {
			var err error
			if h, err = c.headsAt(ctx, local.Seq); err != nil {
				return fmt.Errorf("check origin %d: %w", c.cfg.Origin, err)
			}
		}
		if h.AtHash == "" || h.AtHash == local.Hash.String() {
			// An older central cannot say: the store's chain check
			// refuses Recover's first event if the histories differ.
			return e
		}
		e.Diverged, e.DiffBy = true, local.Seq
	}
	return c.firstDiff(ctx, e)
}

// firstDiff finds the first origin_seq at or before e.DiffBy whose event
// differs here and at central, by bisection: the hash chain makes every
// event before a shared one shared too.
func (c *Client) firstDiff(ctx context.Context, e *OwnHistoryError) error {
	differs := func(seq uint64) (bool, string, string, error) {
		h, err := c.headsAt(ctx, seq)
		if err != nil {
			return false, "", "", err
		}
		mine, ok, err := c.localHash(ctx, seq)
		if err != nil || !ok || h.AtHash == "" {
			return false, "", "", err // unknown: say no more than DiffBy
		}
		return mine.String() != h.AtHash, mine.String(), h.AtHash, nil
	}
	d, mine, theirs, err := differs(e.DiffBy)
	if err != nil {
		return fmt.Errorf("check origin %d: %w", c.cfg.Origin, err)
	}
	if !d {
		return e // the central cannot say where
	}
	lo, hi := uint64(1), e.DiffBy
	for lo < hi {
		mid := lo + (hi-lo)/2
		dm, m, t, err := differs(mid)
		if err != nil {
			return fmt.Errorf("check origin %d: %w", c.cfg.Origin, err)
		}
		if dm {
			hi, mine, theirs = mid, m, t
		} else {
			lo = mid + 1
		}
	}
	e.FirstDiff, e.LocalHash, e.CentralHash = hi, mine, theirs
	return e
}

// Recover fetches back from central this satellite's own events that its
// ledger lacks, when the ledger is a prefix of central's history of its
// origin (ErrBehindCentral: restored from an older copy), and appends
// them: the sequencer then continues after central's high-water mark,
// and a projector applies the changes to the restored database. When the
// ledger is not behind it does nothing; when the histories diverged it
// refuses (ErrDiverged) and changes nothing. Pages are appended as they
// arrive, so a cut transfer resumes where it stopped; its error matches
// ErrBehindCentral as well as what cut it (ErrUnavailable...).
func (c *Client) Recover(ctx context.Context) (RecoverStats, error) {
	c.pushMu.Lock()
	defer c.pushMu.Unlock()
	var st RecoverStats
	local, err := ledger.HeadOf(ctx, c.cfg.Store, c.cfg.Origin)
	if err != nil {
		return st, fmt.Errorf("recover origin %d: %w", c.cfg.Origin, err)
	}
	st.From, st.Through = local.Seq, local.Seq
	h, err := c.headsAt(ctx, local.Seq)
	if err != nil {
		return st, fmt.Errorf("recover origin %d: %w", c.cfg.Origin, err)
	}
	err = c.compare(ctx, local, h)
	if err == nil || !errors.Is(err, ErrBehindCentral) {
		return st, err
	}
	start := time.Now()
	after, hw := local.Seq, h.HighWater
	// A recovery cut short leaves the ledger behind still: the error
	// matches ErrBehindCentral too, so that nothing is captured on it.
	cut := func(err error) error {
		behind := &OwnHistoryError{Origin: c.cfg.Origin, Local: after, HighWater: hw}
		return fmt.Errorf("recover origin %d after seq %d: %w; %w", c.cfg.Origin, after, err, behind)
	}
	for after < hw {
		q := url.Values{"after": {strconv.FormatUint(after, 10)}, "limit": {strconv.Itoa(c.cfg.PullLimit)}}
		resp, err := c.do(ctx, http.MethodGet, wire.PathOwn, q, nil)
		if err != nil {
			return st, cut(err)
		}
		if v, err := strconv.ParseUint(resp.Header.Get(wire.HeaderHighWater), 10, 64); err == nil {
			hw = max(hw, v)
		}
		p, err := c.read(resp)
		st.Requests++
		if err != nil {
			return st, cut(err)
		}
		st.Bytes += p.bytes
		if len(p.recs) == 0 {
			return st, cut(fmt.Errorf("central holds this origin up to seq %d but sent nothing after seq %d", hw, after))
		}
		events := make([]*ledger.Event, len(p.recs))
		payloads := make([][]byte, len(p.recs))
		for i, r := range p.recs {
			if r.Event.Origin != c.cfg.Origin || r.Event.OriginSeq != after+uint64(i)+1 {
				return st, cut(fmt.Errorf("central sent event %s of origin %d seq %d where seq %d of origin %d was due; nothing of this page was stored",
					r.Event.ID, r.Event.Origin, r.Event.OriginSeq, after+uint64(i)+1, c.cfg.Origin))
			}
			events[i], payloads[i] = r.Event, r.Payload
		}
		last := p.recs[len(p.recs)-1].Event.OriginSeq
		if _, err := ledger.AppendEncoded(ctx, c.cfg.Store, events, payloads); err != nil {
			return st, cut(fmt.Errorf("append seqs %d..%d: %w", after+1, last, err))
		}
		st.Events += len(events)
		after, st.Through = last, last
		if c.cfg.Progress != nil {
			c.cfg.Progress(progress("recover", st.Events, st.Bytes, after, hw, start, local.Seq))
		}
	}
	c.log.Warn("this ledger was behind central's history of its own origin (restored from an older copy?): fetched this origin's events back from central",
		"origin", c.cfg.Origin, "had_through_seq", st.From, "now_through_seq", st.Through, "events", st.Events, "requests", st.Requests)
	return st, nil
}
