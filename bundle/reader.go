package bundle

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"iter"
	"slices"

	"github.com/ghsync/ghsync/ledger"
)

// DefaultBatch is how many events an import appends per Store.Append
// call, and the unit the second pass re-checks against the first.
const DefaultBatch = 2000

// Trust says which signers a reader accepts.
type Trust struct {
	// Keys are the trusted public keys. A bundle must be signed by one of
	// them, with a valid signature.
	Keys []ed25519.PublicKey
	// InsecureSkipSignature accepts any bundle whose checksum verifies:
	// unsigned, signed by an unknown key, or with a bad signature. The
	// signature's state is still reported in Info.
	InsecureSkipSignature bool
}

// SignatureStatus is what a reader found of a bundle's signature.
type SignatureStatus int

// Signature states.
const (
	Unsigned         SignatureStatus = iota // the trailer carries no signature
	SignedTrusted                           // valid, by a trusted key
	SignedUntrusted                         // valid, by a key not trusted
	SignatureInvalid                        // does not verify under the key it names
)

func (s SignatureStatus) String() string {
	switch s {
	case Unsigned:
		return "unsigned"
	case SignedTrusted:
		return "signed by a trusted key"
	case SignedUntrusted:
		return "signed by an untrusted key"
	case SignatureInvalid:
		return "signature invalid"
	}
	return fmt.Sprintf("signature status %d", int(s))
}

// Info is what verifying a whole bundle found.
type Info struct {
	Name      string
	Header    Header
	Size      int64    // bytes, trailer included
	Checksum  [32]byte // SHA-256 of the bytes before the trailer
	Signer    ed25519.PublicKey
	Signature SignatureStatus
	Origins   []OriginSummary // per origin: events, sequence range
}

// scanner reads a bundle sequentially, keeping its byte offset and the
// running SHA-256 of what it consumed.
type scanner struct {
	name   string
	br     *bufio.Reader
	off    int64     // offset in the bundle of the next byte
	sum    hash.Hash // whole-bundle checksum, up to the trailer
	chunk  hash.Hash // digest of the current group of events (see Reader)
	events uint64    // the header's count, once known
	buf    []byte
}

func newScanner(name string, r io.Reader) *scanner {
	return &scanner{name: name, br: bufio.NewReaderSize(r, 64<<10), sum: sha256.New(), chunk: sha256.New()}
}

func (s *scanner) fail(off int64, event uint64, err error) *Error {
	return &Error{Name: s.name, Offset: off, Event: event, Events: s.events, Err: err}
}

// read consumes exactly n bytes into a reused buffer (valid until the
// next read) and feeds them to the checksums when hashed is set.
func (s *scanner) read(n int, what string, event uint64, hashed bool) ([]byte, error) {
	var got int
	var err error
	if cap(s.buf) >= n {
		got, err = io.ReadFull(s.br, s.buf[:n])
	} else {
		// Grow with the bytes that actually arrive, so a damaged length
		// claiming 64 MiB in a short file allocates no more than the file.
		b := s.buf[:0]
		for got < n && err == nil {
			step := min(n-got, max(cap(b)-got, 1<<20))
			b = slices.Grow(b, step)[:got+step]
			var k int
			k, err = io.ReadFull(s.br, b[got:got+step])
			got += k
		}
		s.buf = b
	}
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, s.fail(s.off+int64(got), event, fmt.Errorf("%w: the file ends inside the %s (%d of its %d bytes present)", ErrTruncated, what, got, n))
		}
		return nil, s.fail(s.off+int64(got), event, fmt.Errorf("read %s: %w", what, err))
	}
	b := s.buf[:n]
	if hashed {
		s.sum.Write(b)
		s.chunk.Write(b)
	}
	s.off += int64(n)
	return b, nil
}

// header reads the prologue and header fields. It returns the header and
// the raw bytes read (a copy).
func (s *scanner) header() (Header, []byte, error) {
	pro, err := s.read(prologueSize, "header", 0, true)
	if err != nil {
		var be *Error
		if errors.As(err, &be) && errors.Is(err, ErrTruncated) {
			// A short file that is not a bundle at all is not "truncated".
			if got := int(be.Offset); !bytes.HasPrefix([]byte(Magic), s.buf[:min(got, len(Magic))]) {
				return Header{}, nil, s.fail(0, 0, fmt.Errorf("%w (it does not start with %q)", ErrNotBundle, Magic))
			}
		}
		return Header{}, nil, err
	}
	if string(pro[:len(Magic)]) != Magic {
		return Header{}, nil, s.fail(0, 0, fmt.Errorf("%w (it does not start with %q)", ErrNotBundle, Magic))
	}
	version := binary.BigEndian.Uint16(pro[len(Magic):])
	if version > Version {
		return Header{}, nil, s.fail(int64(len(Magic)), 0, fmt.Errorf("%w: it is format version %d, this build reads up to version %d (upgrade ghsync on this instance)", ErrNewerVersion, version, Version))
	}
	if version == 0 {
		return Header{}, nil, s.fail(int64(len(Magic)), 0, fmt.Errorf("%w: format version 0", ErrMalformed))
	}
	n := binary.BigEndian.Uint32(pro[len(Magic)+2:])
	if n > maxHeaderSize {
		return Header{}, nil, s.fail(int64(len(Magic)+2), 0, fmt.Errorf("%w: header length %d exceeds %d", ErrMalformed, n, maxHeaderSize))
	}
	raw := slices.Clone(pro)
	fields, err := s.read(int(n), "header", 0, true)
	if err != nil {
		return Header{}, nil, err
	}
	raw = append(raw, fields...)
	h, at, err := parseHeader(fields, version)
	if err != nil {
		return Header{}, nil, s.fail(int64(prologueSize+at), 0, fmt.Errorf("%w: header: %w", ErrMalformed, err))
	}
	s.events = h.Events
	return h, raw, nil
}

// event reads the record of event i (1-based) and decodes it strictly.
// A record that cannot be read is a hard error (the rest of the file
// cannot be found); an event that fails ledger.Unmarshal is returned as
// bad, and reading can go on to the next record.
func (s *scanner) event(i uint64) (e *ledger.Event, at int64, bad *Error, err error) {
	at = s.off
	lb, err := s.read(4, "length of the event", i, true)
	if err != nil {
		return nil, at, nil, err
	}
	n := binary.BigEndian.Uint32(lb)
	if n == 0 || n > MaxEventSize {
		return nil, at, nil, s.fail(at, i, fmt.Errorf("%w: event length %d (want 1..%d)", ErrMalformed, n, MaxEventSize))
	}
	payload, err := s.read(int(n), "event", i, true)
	if err != nil {
		return nil, at, nil, err
	}
	e, err = ledger.Unmarshal(payload)
	if err != nil {
		return nil, at, s.fail(at, i, fmt.Errorf("%w: %w", ErrBadEvent, err)), nil
	}
	return e, at, nil, nil
}

// trailer reads the trailer and checks that the file ends with it.
func (s *scanner) trailer(info *Info, trust Trust) error {
	at := s.off
	var checksum [32]byte
	s.sum.Sum(checksum[:0])
	t, err := s.read(TrailerSize, "trailer", 0, false)
	if err != nil {
		return err
	}
	if string(t[:len(TrailerMagic)]) != TrailerMagic {
		return s.fail(at, 0, fmt.Errorf("%w: no trailer (%q) after the %d events the header announces", ErrMalformed, TrailerMagic, s.events))
	}
	t = t[len(TrailerMagic):]
	stored, scheme, pub, sig := t[:32], t[32], t[33:33+ed25519PublicKeySize], t[33+ed25519PublicKeySize:]
	if _, err := s.br.ReadByte(); err == nil {
		return s.fail(s.off, 0, fmt.Errorf("%w: bytes after the trailer", ErrMalformed))
	} else if err != io.EOF {
		return s.fail(s.off, 0, fmt.Errorf("read past the trailer: %w", err))
	}
	if !bytes.Equal(stored, checksum[:]) {
		return s.fail(at+int64(len(TrailerMagic)), 0, fmt.Errorf("%w: the trailer records SHA-256 %x, the %d bytes before it hash to %x: the file was altered or damaged", ErrChecksum, stored[:8], at, checksum[:8]))
	}
	info.Checksum = checksum
	info.Size = s.off
	sigAt := at + int64(len(TrailerMagic)+32)
	switch scheme {
	case schemeNone:
		if !allZero(pub) || !allZero(sig) {
			return s.fail(sigAt, 0, fmt.Errorf("%w: an unsigned trailer with key or signature bytes", ErrMalformed))
		}
		info.Signature = Unsigned
	case schemeEd25519:
		info.Signer = ed25519.PublicKey(slices.Clone(pub))
		switch {
		case !ed25519.Verify(info.Signer, checksum[:], sig):
			info.Signature = SignatureInvalid
		case slices.ContainsFunc(trust.Keys, func(k ed25519.PublicKey) bool { return k.Equal(info.Signer) }):
			info.Signature = SignedTrusted
		default:
			info.Signature = SignedUntrusted
		}
	default:
		return s.fail(sigAt, 0, fmt.Errorf("%w: unknown signature scheme %d", ErrMalformed, scheme))
	}
	if trust.InsecureSkipSignature {
		return nil
	}
	switch info.Signature {
	case Unsigned:
		return s.fail(-1, 0, fmt.Errorf("%w: refusing it (sign exports with --key, or accept unsigned bundles explicitly with --insecure-skip-signature)", ErrUnsigned))
	case SignatureInvalid:
		return s.fail(sigAt, 0, fmt.Errorf("%w: the signature does not verify under the key it names, %s: the trailer was altered or damaged", ErrBadSignature, FormatPublicKey(info.Signer)))
	case SignedUntrusted:
		return s.fail(sigAt, 0, fmt.Errorf("%w: %s is not among the %d trusted key(s) given with --trust (or pass --insecure-skip-signature)", ErrUntrusted, FormatPublicKey(info.Signer), len(trust.Keys)))
	}
	return nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// link is the last event of one origin seen in a bundle.
type link struct {
	seq   uint64
	hash  ledger.Hash
	index uint64
	off   int64
}

// brokenLink is the first chain break inside a bundle: its origin's
// event at (index at.index, record at.off, hash at.hash) records prev as
// its predecessor's hash, but that event, to, has another hash. An
// event's hash is that of its bytes, so one changed byte in a file whose
// checksum no longer verifies shows so: the changed event mostly still
// decodes, under another hash, and the next event of its origin no
// longer links to it. Which of the two changed (to's bytes, or the link
// in at's) the event after at tells, when there is one: it links to at
// unless at's bytes changed.
type brokenLink struct {
	origin  uint16
	to, at  link
	prev    ledger.Hash
	decided bool // the event after at was seen
	atBad   bool // and it does not link to at either
}

// see takes note of e, an event after the break.
func (b *brokenLink) see(e *ledger.Event) {
	if b.decided || e == nil || e.Origin != b.origin || e.OriginSeq != b.at.seq+1 {
		return
	}
	b.decided, b.atBad = true, e.PrevHash != b.at.hash
}

// damage locates the change in a file whose checksum does not verify.
func (b *brokenLink) damage(name string, events uint64) *Error {
	if b.decided && b.atBad {
		return &Error{Name: name, Offset: b.at.off, Event: b.at.index, Events: events,
			Err: fmt.Errorf("%w: the file was altered or damaged; the first inconsistency found: %w: %w: event %d (origin %d seq %d) links neither to the event before it (%d) nor from the one after it: event %d's bytes were changed",
				ErrChecksum, ErrBadEvent, ledger.ErrChainBroken, b.at.index, b.origin, b.at.seq, b.to.index, b.at.index)}
	}
	alt := ""
	if !b.decided {
		alt = fmt.Sprintf(" (or event %d's link to it)", b.at.index)
	}
	return &Error{Name: name, Offset: b.to.off, Event: b.to.index, Events: events,
		Err: fmt.Errorf("%w: the file was altered or damaged; the first inconsistency found: %w: %w: event %d (origin %d seq %d) hashes to %s, but event %d (seq %d) records %s as its predecessor: event %d's bytes were changed%s",
			ErrChecksum, ErrBadEvent, ledger.ErrChainBroken, b.to.index, b.origin, b.to.seq, b.to.hash.Short(), b.at.index, b.at.seq, b.prev.Short(), b.to.index, alt)}
}

// verify reads a whole bundle: its header, every event (ledger.Unmarshal,
// membership in the declared selection, and the hash chain between
// consecutive events of an origin), the trailer, checksum and signature.
// visit, if not nil, sees every good event with its 1-based index and
// offset; its error stops the read. Every chunk events, the digest of
// their records is appended to digests.
//
// A bad event does not stop the read: the checksum decides what to say.
// If it does not verify, the file was damaged, and the error is
// ErrChecksum, located at the first bad event found (for a chain broken
// inside the bundle, at the event whose bytes changed: see brokenLink);
// if it verifies, the exporter wrote a bad event, and the error is that
// event's.
func verify(name string, r io.Reader, trust Trust, chunk int, visit func(i uint64, off int64, e *ledger.Event) error) (*Info, []ledger.Hash, []byte, error) {
	s := newScanner(name, r)
	h, raw, err := s.header()
	if err != nil {
		return nil, nil, nil, err
	}
	info := &Info{Name: name, Header: h}
	tally := originTally{}
	last := map[uint16]link{}
	var digests []ledger.Hash
	var bad *Error         // the first bad event
	var broken *brokenLink // when bad is a chain break inside the bundle
	s.chunk.Reset()
	for i := uint64(1); i <= h.Events; i++ {
		e, at, b, err := s.event(i)
		if err != nil {
			return nil, nil, nil, err
		}
		if broken != nil {
			broken.see(e)
		}
		if bad == nil && b != nil {
			bad = b
		}
		if bad == nil && !h.Selection.Match(e) {
			bad = s.fail(at, i, fmt.Errorf("%w: event %s is outside the selection the header declares (%s)", ErrBadEvent, e, h.Selection))
		}
		if bad == nil {
			if l, ok := last[e.Origin]; ok && e.OriginSeq == l.seq+1 && e.PrevHash != l.hash {
				bad = s.fail(at, i, fmt.Errorf("%w: %w: origin %d seq %d links to %s, but the bundle's event %d (seq %d) has hash %s",
					ErrBadEvent, ledger.ErrChainBroken, e.Origin, e.OriginSeq, e.PrevHash.Short(), l.index, l.seq, l.hash.Short()))
				broken = &brokenLink{origin: e.Origin, to: l, at: link{seq: e.OriginSeq, hash: e.Hash, index: i, off: at}, prev: e.PrevHash}
			} else if ok && e.OriginSeq == l.seq && e.Hash != l.hash {
				bad = s.fail(at, i, fmt.Errorf("%w: %w: two different events for origin %d seq %d (events %d and %d)",
					ErrBadEvent, ledger.ErrConflict, e.Origin, e.OriginSeq, l.index, i))
			}
		}
		if bad == nil {
			last[e.Origin] = link{seq: e.OriginSeq, hash: e.Hash, index: i, off: at}
			tally.add(e)
			if visit != nil {
				if err := visit(i, at, e); err != nil {
					return nil, nil, nil, err
				}
			}
		}
		if chunk > 0 && (i%uint64(chunk) == 0 || i == h.Events) {
			var d ledger.Hash
			s.chunk.Sum(d[:0])
			digests = append(digests, d)
			s.chunk.Reset()
		}
	}
	if err := s.trailer(info, trust); err != nil {
		if bad != nil && errors.Is(err, ErrChecksum) {
			// Say where the damage shows.
			if broken != nil {
				return nil, nil, nil, broken.damage(name, h.Events)
			}
			return nil, nil, nil, &Error{Name: name, Offset: bad.Offset, Event: bad.Event, Events: h.Events,
				Err: fmt.Errorf("%w: the file was altered or damaged; the first inconsistency found: %w", ErrChecksum, bad.Err)}
		}
		return nil, nil, nil, err
	}
	if bad != nil {
		return nil, nil, nil, bad
	}
	info.Origins = tally.list()
	return info, digests, raw, nil
}

// Verify reads a whole bundle from r and checks everything about it that
// does not need a ledger: structure, every event, checksum, signature
// against trust. It yields no event; the returned Info describes them.
// Errors are *Error. name labels errors (a file name).
func Verify(name string, r io.Reader, trust Trust) (*Info, error) {
	info, _, _, err := verify(name, r, trust, 0, nil)
	return info, err
}

// Reader reads the events of a verified bundle.
//
// Open reads the whole file once and verifies it (Verify); only then can
// Batches read it a second time to yield its events. Two passes over the
// file, rather than spooling it, because a bundle arrives as a file (a
// USB stick), which can be read twice at no cost in disk space, and a
// spool would need as much free space again on the importing machine. To
// make sure the second pass yields exactly the bytes the first verified,
// even if the file changes in between, the first pass keeps a SHA-256 per
// batch of events (32 bytes per batch: about 16 KiB for a million
// events), and the second pass yields a batch only after its bytes hash
// to that digest. Memory stays bounded by one batch.
type Reader struct {
	src     io.ReadSeeker
	start   int64
	info    *Info
	batch   int
	digests []ledger.Hash
	header  []byte
}

// Options tune Open.
type Options struct {
	Name  string // labels errors
	Trust Trust
	// Batch is the number of events per batch Batches yields (DefaultBatch
	// when 0).
	Batch int
	// Visit, if set, sees every event during verification, with its
	// 1-based index and byte offset; its error stops Open. Import uses it
	// to check the events against the ledger before appending any.
	Visit func(i uint64, off int64, e *ledger.Event) error
}

// Open verifies the bundle src holds, from its current offset to its end.
// The Reader then yields its events (Batches). Errors are *Error, or
// Visit's.
func Open(src io.ReadSeeker, opts Options) (*Reader, error) {
	if opts.Batch <= 0 {
		opts.Batch = DefaultBatch
	}
	start, err := src.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, &Error{Name: opts.Name, Offset: -1, Err: fmt.Errorf("seek: %w", err)}
	}
	info, digests, raw, err := verify(opts.Name, src, opts.Trust, opts.Batch, opts.Visit)
	if err != nil {
		return nil, err
	}
	return &Reader{src: src, start: start, info: info, batch: opts.Batch, digests: digests, header: raw}, nil
}

// Info describes the verified bundle.
func (r *Reader) Info() *Info { return r.info }

// Batch is a group of consecutive events of a bundle.
type Batch struct {
	First   uint64          // 1-based index of Events[0] in the bundle
	Events  []*ledger.Event // in bundle (ledger) order
	Offsets []int64         // byte offset of each event's record
}

// Batches reads the bundle again and yields its events, a batch at a time,
// each batch only after checking its bytes are those Open verified
// (ErrChanged otherwise, and nothing more is yielded). Each call starts
// from the first event.
func (r *Reader) Batches() iter.Seq2[Batch, error] {
	return func(yield func(Batch, error) bool) {
		if _, err := r.src.Seek(r.start, io.SeekStart); err != nil {
			yield(Batch{}, &Error{Name: r.info.Name, Offset: -1, Err: fmt.Errorf("seek: %w", err)})
			return
		}
		s := newScanner(r.info.Name, r.src)
		s.events = r.info.Header.Events
		raw, err := s.read(len(r.header), "header", 0, false)
		if err != nil {
			yield(Batch{}, err)
			return
		}
		if !bytes.Equal(raw, r.header) {
			yield(Batch{}, s.fail(0, 0, fmt.Errorf("%w: its header differs", ErrChanged)))
			return
		}
		total := r.info.Header.Events
		for k, first := 0, uint64(1); first <= total; k, first = k+1, first+uint64(r.batch) {
			n := min(uint64(r.batch), total-first+1)
			b := Batch{First: first, Events: make([]*ledger.Event, 0, n), Offsets: make([]int64, 0, n)}
			s.chunk.Reset()
			for i := first; i < first+n; i++ {
				e, at, bad, err := s.event(i)
				if err == nil && bad != nil {
					err = bad
				}
				if err != nil {
					// Bytes that no longer read or decode changed since Open.
					var be *Error
					if errors.As(err, &be) {
						err = be.Err
					}
					yield(Batch{}, &Error{Name: r.info.Name, Offset: at, Event: i, Events: total, Err: fmt.Errorf("%w: %w", ErrChanged, err)})
					return
				}
				b.Events = append(b.Events, e)
				b.Offsets = append(b.Offsets, at)
			}
			var d ledger.Hash
			s.chunk.Sum(d[:0])
			if k >= len(r.digests) || d != r.digests[k] {
				yield(Batch{}, s.fail(b.Offsets[0], first, fmt.Errorf("%w: events %d..%d are not the bytes verified", ErrChanged, first, first+n-1)))
				return
			}
			if !yield(b, nil) {
				return
			}
		}
	}
}
