package bundle

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"

	"github.com/ghsync/ghsync/ledger"
)

// ImportOptions tune Check and Import.
type ImportOptions struct {
	Name  string // the file, for messages
	Trust Trust
	Batch int // events per Store.Append call (DefaultBatch when 0)
	// Admit, when set, is asked about each origin of which the bundle
	// brings events past the ledger's head (from seq from on), once the
	// bundle is verified and before anything is appended; an error
	// refuses the whole import. Those events must then be consecutive,
	// as a push's are. Central admits only what it would take in a push.
	Admit func(info *Info, origin uint16, from uint64) error
	// Sink, when set, takes each verified batch in place of Store.Append:
	// central stores a satellite's events as it stores a push (clock
	// bounds, held events, the satellite's held set).
	Sink Sink
	// After, when set, is the plan of the bundle before this one in the
	// same import: checked, to be applied before this one. This bundle
	// is checked against the ledger as those plans will leave it, so a
	// clinic's consecutive bundles, given in order, may continue each
	// other's chains although none is appended yet.
	After *Plan
}

// Sink stores one verified batch of a bundle's events, in bundle order.
// A refused event is reported as a *ledger.EventError, as Append does.
type Sink func(ctx context.Context, events []*ledger.Event) (SinkResult, error)

// SinkResult says what a Sink did with a batch.
type SinkResult struct {
	ledger.AppendResult
	Held int // events kept out of the ledger for review, neither stored nor refused
}

// ImportResult says what an import did.
type ImportResult struct {
	Info       *Info
	Appended   uint64 // events newly stored
	Duplicates uint64 // events the ledger already held
	Held       uint64 // events a Sink kept out of the ledger for review
	Batches    int    // Append calls that succeeded
	Head       uint64 // the ledger's head after the last successful batch
}

// maxRuns bounds how many runs of consecutive sequence numbers the
// pre-flight checks against the ledger (two small reads each). An export
// holds one run per origin, or a few; past the bound, Append alone checks
// the rest.
const maxRuns = 10000

// Plan is a bundle verified against a ledger, ready to be appended.
type Plan struct {
	store   ledger.Store
	sink    Sink
	r       *Reader
	name    string
	Partial bool // more runs than maxRuns: some run boundaries were left to Append
	// tails are the origins this plan and those before it in the same
	// import (ImportOptions.After) carry past the ledger's head.
	tails map[uint16]tail
}

// tail is how far the bundles of one import carry an origin past the
// ledger's head: its events from seq from (the first past the head, as
// Admit was asked) up to seq last, whose hash is hash.
type tail struct {
	from, last uint64
	hash       ledger.Hash
}

// Check verifies a bundle fully and checks its events against the ledger
// s, appending nothing. See Import.
func Check(ctx context.Context, s ledger.Store, src io.ReadSeeker, opts ImportOptions) (*Plan, error) {
	heads, err := s.Origins(ctx)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", opts.Name, err)
	}
	pf := &preflight{name: opts.Name, heads: map[uint16]ledger.OriginHead{}, cur: map[uint16]*run{}, fresh: map[uint16]*fresh{},
		top: map[uint16]link{}, pending: map[uint16]tail{}}
	for _, h := range heads {
		pf.heads[h.Origin] = h
	}
	if opts.After != nil {
		// The bundles before this one leave these heads, once applied.
		for o, t := range opts.After.tails {
			if t.last > pf.heads[o].Seq {
				pf.heads[o] = ledger.OriginHead{Origin: o, Seq: t.last, Hash: t.hash}
				pf.pending[o] = t
			}
		}
	}
	r, err := Open(src, Options{Name: opts.Name, Trust: opts.Trust, Batch: opts.Batch, Visit: pf.visit})
	if err != nil {
		return nil, err
	}
	pf.total = r.Info().Header.Events
	if pf.err != nil { // reported once the file itself is known good
		pf.err.Events = pf.total
		return nil, pf.err
	}
	if err := pf.finish(ctx, s); err != nil {
		return nil, err
	}
	if opts.Admit != nil {
		for _, o := range slices.Sorted(maps.Keys(pf.fresh)) {
			f := pf.fresh[o]
			if f.gap {
				return nil, pf.refuse(f.lastIndex, f.lastOff, fmt.Errorf("the bundle's new events of origin %d skip from seq %d to seq %d: they are taken in order, without gaps, as a push (export without --model filters)",
					o, f.last, f.gapSeq))
			}
			from := f.first
			if t, ok := pf.pending[o]; ok {
				if f.first != t.last+1 {
					return nil, pf.refuse(f.firstIndex, f.firstOff, fmt.Errorf("origin %d from seq %d is new to this ledger: the bundles before it in this import bring it through seq %d: import first the bundle holding seq %d",
						o, f.first, t.last, t.last+1))
				}
				from = t.from // they continue the events the earlier bundles bring
			}
			if err := opts.Admit(r.Info(), o, from); err != nil {
				return nil, pf.refuse(f.firstIndex, f.firstOff, fmt.Errorf("origin %d from seq %d is new to this ledger: %w", o, f.first, err))
			}
		}
	}
	tails := map[uint16]tail{}
	if opts.After != nil {
		maps.Copy(tails, opts.After.tails)
	}
	for o, f := range pf.fresh {
		top := pf.top[o]
		if t, ok := pf.pending[o]; ok && f.first == t.last+1 {
			tails[o] = tail{from: t.from, last: top.seq, hash: top.hash}
		} else {
			tails[o] = tail{from: f.first, last: top.seq, hash: top.hash}
		}
	}
	sink := opts.Sink
	if sink == nil {
		sink = func(ctx context.Context, events []*ledger.Event) (SinkResult, error) {
			res, err := s.Append(ctx, events)
			return SinkResult{AppendResult: res}, err
		}
	}
	return &Plan{store: s, sink: sink, r: r, name: opts.Name, Partial: pf.partial, tails: tails}, nil
}

// Info describes the verified bundle.
func (p *Plan) Info() *Info { return p.r.Info() }

// Import appends the events of the bundle in src to s, in bundle order,
// with Store.Append in batches of opts.Batch events.
//
// How it stays all-or-nothing, or as near as a store of batches allows:
//
//  1. Before the first Append, the whole file is read once (Open): its
//     structure, every event through ledger.Unmarshal (strict, canonical,
//     validated), each event's membership in the declared selection, the
//     hash chain between consecutive events of an origin, the SHA-256 of
//     the whole file against the trailer, and the signature against the
//     trusted keys. A truncated file, a flipped byte, a bad signature or
//     an unknown format version is refused here, with nothing appended.
//  2. In the same pass, and right after it, the events are checked against
//     what the ledger holds, as Append would check them: an event at an
//     origin's head seq must be the held one; the event after an origin's
//     head must link to it; the first and last event of each run of
//     consecutive seqs must match, or link to, held neighbours. A bundle
//     the ledger would refuse for a chain break or a conflict is refused
//     here, with nothing appended.
//  3. Only then are events appended, batch by batch; each batch is
//     re-read and yielded only if its bytes hash to the digest taken in
//     step 1 (ErrChanged otherwise), so what is appended is what was
//     verified.
//
// Each Append is atomic, so a failure in a later batch (an event step 2
// could not check, a ledger written to concurrently, a full disk) leaves
// only whole good batches appended. Append is idempotent, so importing
// the same file again, once the cause is fixed, skips those as
// duplicates and completes the import; and importing a file twice changes
// nothing the second time. The error names the event Append refused, by
// its index and byte offset in the bundle, and how many were appended.
func Import(ctx context.Context, s ledger.Store, src io.ReadSeeker, opts ImportOptions) (*ImportResult, error) {
	p, err := Check(ctx, s, src, opts)
	if err != nil {
		return nil, err
	}
	return p.Apply(ctx)
}

// Apply appends the verified bundle's events (step 3 of Import). The
// result counts what was appended even when it fails.
func (p *Plan) Apply(ctx context.Context) (*ImportResult, error) {
	info := p.r.Info()
	res := &ImportResult{Info: info}
	h, err := p.store.Head(ctx)
	if err != nil {
		return res, fmt.Errorf("import %s: %w", p.name, err)
	}
	res.Head = h
	done := uint64(0)
	for b, err := range p.r.Batches() {
		if err != nil {
			return res, p.partial(err, done, res)
		}
		ar, err := p.sink(ctx, b.Events)
		res.Appended += uint64(ar.Appended)
		res.Duplicates += uint64(ar.Duplicates)
		res.Held += uint64(ar.Held)
		if err != nil {
			e := &Error{Name: p.name, Offset: b.Offsets[0], Event: b.First, Events: info.Header.Events}
			var ee *ledger.EventError
			if errors.As(err, &ee) {
				for j, ev := range b.Events {
					if ev.ID == ee.ID || ev.Origin == ee.Origin && ev.OriginSeq == ee.OriginSeq {
						e.Event, e.Offset = b.First+uint64(j), b.Offsets[j]
						break
					}
				}
			}
			e.Err = fmt.Errorf("%w: appending events %d..%d: %w", ErrRefused, b.First, b.First+uint64(len(b.Events))-1, err)
			return res, p.partial(e, done, res)
		}
		res.Batches++
		res.Head = ar.Head
		done = b.First + uint64(len(b.Events)) - 1
	}
	return res, nil
}

// partial adds to err what a failed import left behind: whole batches
// (events 1..done) with Store.Append, which is atomic; with a Sink, which
// need not be, also what it stored of the failing batch (res counts it).
func (p *Plan) partial(err error, done uint64, res *ImportResult) error {
	switch {
	case res.Appended+res.Held == 0:
		return fmt.Errorf("%w (nothing was appended)", err)
	case res.Appended+res.Held+res.Duplicates == done:
		return fmt.Errorf("%w (events 1..%d, whole batches, were appended before this; import the file again once the cause is fixed: what the ledger has is skipped and the import completes)", err, done)
	}
	return fmt.Errorf("%w (%d events were appended and %d held before this, some of this batch's among them; import the file again once the cause is fixed: what the ledger has is skipped and the import completes)",
		err, res.Appended, res.Held)
}

// run is a stretch of consecutive sequence numbers of one origin that
// follow each other in the bundle.
type run struct {
	origin                uint16
	first, last           uint64
	firstPrev, lastHash   ledger.Hash
	firstIndex, lastIndex uint64
	firstOff, lastOff     int64
}

// preflight checks a bundle's events against a ledger's holdings during
// and after verification, before anything is appended.
type preflight struct {
	name    string
	total   uint64
	err     *Error                       // the first refusal found during verification
	heads   map[uint16]ledger.OriginHead // the ledger's, or as the bundles before this one leave it
	pending map[uint16]tail              // the origins whose head is the bundles' before this one
	cur     map[uint16]*run
	runs    []run
	partial bool
	fresh   map[uint16]*fresh
	top     map[uint16]link // each origin's highest seq in the bundle
}

// holds says who holds an origin's head event, for messages.
func (pf *preflight) holds(origin uint16) string {
	if _, ok := pf.pending[origin]; ok {
		return "a bundle before it in this import brings"
	}
	return "this ledger holds"
}

// fresh is an origin's events past its head (the ledger's, or as the
// bundles before this one in the import leave it): the first, and the
// first gap among them (lastIndex and lastOff then locate the event after
// the gap).
type fresh struct {
	run
	gap    bool
	gapSeq uint64
}

func (pf *preflight) refuse(index uint64, off int64, err error) *Error {
	return &Error{Name: pf.name, Offset: off, Event: index, Events: pf.total, Err: fmt.Errorf("%w: %w", ErrRefused, err)}
}

// visit checks one event during verification. A refusal is kept, not
// returned, so that damage to the file, found when its checksum is
// compared at the end, is what gets reported for a damaged file.
func (pf *preflight) visit(i uint64, off int64, e *ledger.Event) error {
	if t, ok := pf.top[e.Origin]; !ok || e.OriginSeq > t.seq {
		pf.top[e.Origin] = link{seq: e.OriginSeq, hash: e.Hash, index: i, off: off}
	}
	if e.OriginSeq > pf.heads[e.Origin].Seq {
		switch f := pf.fresh[e.Origin]; {
		case f == nil:
			pf.fresh[e.Origin] = &fresh{run: run{first: e.OriginSeq, last: e.OriginSeq, firstIndex: i, firstOff: off}}
		case f.gap:
		case e.OriginSeq != f.last+1:
			f.gap, f.gapSeq, f.lastIndex, f.lastOff = true, e.OriginSeq, i, off
		default:
			f.last = e.OriginSeq
		}
	}
	if h, ok := pf.heads[e.Origin]; ok && pf.err == nil {
		switch {
		case e.OriginSeq == h.Seq && e.Hash != h.Hash:
			pf.err = pf.refuse(i, off, fmt.Errorf("%w: %s origin %d seq %d with hash %s, the bundle's event %s has hash %s",
				ledger.ErrConflict, pf.holds(e.Origin), e.Origin, e.OriginSeq, h.Hash.Short(), e.ID, e.Hash.Short()))
		case e.OriginSeq == h.Seq+1 && e.PrevHash != h.Hash:
			pf.err = pf.refuse(i, off, fmt.Errorf("%w: the bundle's origin %d seq %d links to %s, but %s seq %d with hash %s",
				ledger.ErrChainBroken, e.Origin, e.OriginSeq, e.PrevHash.Short(), pf.holds(e.Origin), h.Seq, h.Hash.Short()))
		}
	}
	if r := pf.cur[e.Origin]; r != nil && e.OriginSeq == r.last+1 {
		r.last, r.lastHash, r.lastIndex, r.lastOff = e.OriginSeq, e.Hash, i, off
		return nil
	}
	pf.flush(e.Origin)
	pf.cur[e.Origin] = &run{origin: e.Origin, first: e.OriginSeq, last: e.OriginSeq, firstPrev: e.PrevHash, lastHash: e.Hash,
		firstIndex: i, lastIndex: i, firstOff: off, lastOff: off}
	return nil
}

func (pf *preflight) flush(origin uint16) {
	if r := pf.cur[origin]; r != nil {
		if len(pf.runs) < maxRuns {
			pf.runs = append(pf.runs, *r)
		} else {
			pf.partial = true
		}
		delete(pf.cur, origin)
	}
}

// finish checks the runs: against each other (two runs of an origin that
// meet must link) and against the events the ledger holds next to them.
func (pf *preflight) finish(ctx context.Context, s ledger.Store) error {
	for _, o := range slices.Sorted(maps.Keys(pf.cur)) {
		pf.flush(o)
	}
	slices.SortFunc(pf.runs, func(a, b run) int {
		return cmp.Or(cmp.Compare(a.origin, b.origin), cmp.Compare(a.first, b.first))
	})
	for i := 1; i < len(pf.runs); i++ {
		a, b := pf.runs[i-1], pf.runs[i]
		if a.origin == b.origin && b.first == a.last+1 && b.firstPrev != a.lastHash {
			return &Error{Name: pf.name, Offset: b.firstOff, Event: b.firstIndex, Events: pf.total, Err: fmt.Errorf("%w: %w: origin %d seq %d links to %s, but the bundle's event %d (seq %d) has hash %s",
				ErrBadEvent, ledger.ErrChainBroken, b.origin, b.first, b.firstPrev.Short(), a.lastIndex, a.last, a.lastHash.Short())}
		}
	}
	for _, r := range pf.runs {
		h, ok := pf.heads[r.origin]
		if !ok {
			continue // the ledger holds nothing of this origin
		}
		if r.first > 1 && r.first-1 < h.Seq { // first-1 == h.Seq was checked against the head
			recs, err := s.ReadOrigin(ctx, r.origin, r.first-2, 1)
			if err != nil {
				return fmt.Errorf("import %s: check against the ledger: %w", pf.name, err)
			}
			if len(recs) == 1 && recs[0].Event.OriginSeq == r.first-1 && recs[0].Event.Hash != r.firstPrev {
				return pf.refuse(r.firstIndex, r.firstOff, fmt.Errorf("%w: the bundle's origin %d seq %d links to %s, but this ledger holds seq %d with hash %s",
					ledger.ErrChainBroken, r.origin, r.first, r.firstPrev.Short(), r.first-1, recs[0].Event.Hash.Short()))
			}
		}
		if r.last < h.Seq { // r.last == h.Seq was checked against the head
			recs, err := s.ReadOrigin(ctx, r.origin, r.last-1, 2)
			if err != nil {
				return fmt.Errorf("import %s: check against the ledger: %w", pf.name, err)
			}
			switch {
			case len(recs) == 0:
			case recs[0].Event.OriginSeq == r.last && recs[0].Event.Hash != r.lastHash:
				return pf.refuse(r.lastIndex, r.lastOff, fmt.Errorf("%w: this ledger holds origin %d seq %d with hash %s, the bundle's event has hash %s",
					ledger.ErrConflict, r.origin, r.last, recs[0].Event.Hash.Short(), r.lastHash.Short()))
			case recs[0].Event.OriginSeq == r.last+1 && recs[0].Event.PrevHash != r.lastHash:
				return pf.refuse(r.lastIndex, r.lastOff, fmt.Errorf("%w: this ledger's origin %d seq %d links to %s, not to the bundle's seq %d with hash %s",
					ledger.ErrChainBroken, r.origin, r.last+1, recs[0].Event.PrevHash.Short(), r.last, r.lastHash.Short()))
			}
		}
	}
	return nil
}
