package bundle

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/ghsync/ghsync/clocks"
	"github.com/ghsync/ghsync/ledger"
)

// The constants of format version 1 (see the package documentation).
const (
	// Magic opens every bundle.
	Magic = "GHSYNCB1"
	// Version is the bundle format version this build writes and the
	// newest it reads. Version 2 added the exporter's head and the
	// stability fields; version 1 files are still read.
	Version uint16 = 2
	// TrailerMagic opens the trailer, after the last event.
	TrailerMagic = "GHSYNCT1"
	// MaxEventSize bounds one event's encoding; a larger length prefix is
	// damage, not an event.
	MaxEventSize = 64 << 20
	// maxHeaderSize bounds the header fields (a few hundred bytes in
	// practice: at most 512 origins and the listed model names).
	maxHeaderSize = 1 << 20

	prologueSize = len(Magic) + 2 + 4 // magic, version, header length
	// TrailerSize is the fixed size of the trailer.
	TrailerSize = len(TrailerMagic) + 32 + 1 + ed25519PublicKeySize + ed25519SignatureSize

	ed25519PublicKeySize = 32
	ed25519SignatureSize = 64
)

// Signature schemes of the trailer.
const (
	schemeNone    byte = 0
	schemeEd25519 byte = 1
)

// Since kinds of the header's selection.
const (
	sinceNone     byte = 0
	sincePosition byte = 1
	sinceTime     byte = 2
)

// Selection is what an export took from its ledger. The zero value is
// everything.
type Selection struct {
	// SincePosition: only events after this position of the exporting
	// ledger (positions are local to one ledger). 0 is from the start.
	SincePosition uint64
	// SinceTime, when not zero: only events whose clock (HLC) reading is at
	// or after it. Kept to the microsecond. Exclusive with SincePosition.
	SinceTime time.Time
	// Origins and Models narrow the events; empty means all.
	Origins []uint16
	Models  []string
}

// Filter is the part of the selection a store filters on.
func (s Selection) Filter() ledger.Filter {
	return ledger.Filter{Origins: s.Origins, Models: s.Models}
}

// Match reports whether e belongs to the selection (positions aside: an
// event does not carry its position).
func (s Selection) Match(e *ledger.Event) bool {
	if !s.SinceTime.IsZero() && e.HLC.Time().Before(s.SinceTime) {
		return false
	}
	return s.Filter().Match(e)
}

// normalize sorts and deduplicates the lists, truncates the time to the
// microsecond the header keeps, and checks every part.
func (s Selection) normalize() (Selection, error) {
	if s.SincePosition != 0 && !s.SinceTime.IsZero() {
		return s, errors.New("selection: since a position and since a time are exclusive")
	}
	if !s.SinceTime.IsZero() {
		s.SinceTime = time.UnixMicro(s.SinceTime.UnixMicro()).UTC()
		if s.SinceTime.UnixMicro() <= 0 {
			return s, errors.New("selection: since time must be after 1970-01-01")
		}
	}
	s.Origins = slices.Compact(slices.Sorted(slices.Values(s.Origins)))
	for _, o := range s.Origins {
		if o > ledger.MaxOrigin {
			return s, fmt.Errorf("selection: origin %d outside 0..%d", o, ledger.MaxOrigin)
		}
	}
	s.Models = slices.Compact(slices.Sorted(slices.Values(s.Models)))
	for _, m := range s.Models {
		if err := ledger.ValidateModel(m); err != nil {
			return s, fmt.Errorf("selection: %w", err)
		}
	}
	if len(s.Models) > 1<<16-1 {
		return s, errors.New("selection: too many models")
	}
	return s, nil
}

// String describes the selection for people.
func (s Selection) String() string {
	var parts []string
	switch {
	case !s.SinceTime.IsZero():
		parts = append(parts, "since "+s.SinceTime.Format(time.RFC3339Nano))
	case s.SincePosition > 0:
		parts = append(parts, fmt.Sprintf("after position %d", s.SincePosition))
	default:
		parts = append(parts, "from the start")
	}
	if len(s.Origins) > 0 {
		os := make([]string, len(s.Origins))
		for i, o := range s.Origins {
			os[i] = fmt.Sprint(o)
		}
		parts = append(parts, "origins "+strings.Join(os, ","))
	} else {
		parts = append(parts, "all origins")
	}
	if len(s.Models) > 0 {
		parts = append(parts, "models "+strings.Join(s.Models, ","))
	} else {
		parts = append(parts, "all models")
	}
	return strings.Join(parts, ", ")
}

// Header is what a bundle says about itself before its events.
type Header struct {
	Version   uint16    // format version (Version when written by this build)
	Origin    uint16    // synchronisation id of the exporting instance
	Created   time.Time // when the export started, UTC, to the microsecond
	Selection Selection // what the export took
	Events    uint64    // number of events that follow

	// Since version 2. Through is the exporting ledger's head when the
	// export began: the bundle holds every selected event at positions
	// (SincePosition, Through]. Report and Frontier carry the stability
	// exchange (central's /v1/stable) for instances linked only by
	// bundles: a satellite's export vouches like a report, central's
	// announces the frontier.
	Through  uint64
	Report   *Report          // only in a satellite's bundle
	Frontier clocks.Timestamp // only in central's; 0: none
}

// Report is what a satellite vouches for in a bundle, as it would in a
// stability report to central: every event it stamped at or before HLC
// has an origin_seq at or below Seq, and its Tryton tables reflect
// central's ledger through position Applied. Central records it only
// once its ledger holds the satellite's events through Seq.
type Report struct {
	HLC     clocks.Timestamp
	Applied uint64
	Seq     uint64
}

// Complete reports whether the bundle holds every event of the exporting
// ledger after SincePosition up to Through: positions selected, not times,
// and no origin or model left out.
func (h Header) Complete() bool {
	s := h.Selection
	return h.Version >= 2 && s.SinceTime.IsZero() && len(s.Origins) == 0 && len(s.Models) == 0
}

// appendHeader encodes the header fields (after magic, version and length).
func appendHeader(b []byte, h Header) []byte {
	b = binary.BigEndian.AppendUint16(b, h.Origin)
	b = binary.BigEndian.AppendUint64(b, uint64(h.Created.UnixMicro()))
	switch {
	case !h.Selection.SinceTime.IsZero():
		b = append(b, sinceTime)
		b = binary.BigEndian.AppendUint64(b, uint64(h.Selection.SinceTime.UnixMicro()))
	case h.Selection.SincePosition > 0:
		b = append(b, sincePosition)
		b = binary.BigEndian.AppendUint64(b, h.Selection.SincePosition)
	default:
		b = append(b, sinceNone)
		b = binary.BigEndian.AppendUint64(b, 0)
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(h.Selection.Origins)))
	for _, o := range h.Selection.Origins {
		b = binary.BigEndian.AppendUint16(b, o)
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(h.Selection.Models)))
	for _, m := range h.Selection.Models {
		b = binary.BigEndian.AppendUint16(b, uint16(len(m)))
		b = append(b, m...)
	}
	b = binary.BigEndian.AppendUint64(b, h.Events)
	b = binary.BigEndian.AppendUint64(b, h.Through)
	var flags byte
	if h.Report != nil {
		flags |= flagReport
	}
	if h.Frontier != 0 {
		flags |= flagFrontier
	}
	b = append(b, flags)
	if h.Report != nil {
		b = binary.BigEndian.AppendUint64(b, uint64(h.Report.HLC))
		b = binary.BigEndian.AppendUint64(b, h.Report.Applied)
		b = binary.BigEndian.AppendUint64(b, h.Report.Seq)
	}
	if h.Frontier != 0 {
		b = binary.BigEndian.AppendUint64(b, uint64(h.Frontier))
	}
	return b
}

// checkStability checks the version 2 fields a writer is given.
func checkStability(h Header) error {
	switch {
	case h.Report != nil && h.Origin == 0:
		return errors.New("a stability report in central's bundle (only satellites report)")
	case h.Report != nil && h.Report.HLC == 0:
		return errors.New("a stability report without a clock reading")
	case h.Report != nil && h.Report.Applied > math.MaxInt64, h.Report != nil && h.Report.Seq > math.MaxInt64:
		return errors.New("a stability report's position or seq out of range")
	case h.Frontier != 0 && h.Origin != 0:
		return fmt.Errorf("a stability frontier in instance %d's bundle (only central announces one)", h.Origin)
	case h.Selection.SincePosition > h.Through:
		return fmt.Errorf("since position %d is past the head %d the export covered", h.Selection.SincePosition, h.Through)
	}
	return nil
}

// Flags of the version 2 header: which stability fields follow.
const (
	flagReport   byte = 1
	flagFrontier byte = 2
)

// parseHeader decodes and checks the header fields of a bundle of the
// given format version. Every list must be in the form appendHeader
// writes (sorted, unique, valid), so one header has one encoding. The
// error's offset is relative to the fields' start.
func parseHeader(b []byte, version uint16) (Header, int, error) {
	h := Header{Version: version}
	p := headerParser{b: b}
	h.Origin = p.u16("exporting origin")
	if p.err == nil && h.Origin > ledger.MaxOrigin {
		return h, 0, fmt.Errorf("exporting origin %d outside 0..%d", h.Origin, ledger.MaxOrigin)
	}
	created := int64(p.u64("creation time"))
	h.Created = time.UnixMicro(created).UTC()
	at := p.off
	kind := p.u8("since kind")
	since := p.u64("since")
	if p.err != nil {
		return h, p.off, p.err
	}
	switch kind {
	case sinceNone:
		if since != 0 {
			return h, at, fmt.Errorf("since kind none with a value %d", since)
		}
	case sincePosition:
		if since == 0 {
			return h, at, errors.New("since position 0 is written as no since")
		}
		h.Selection.SincePosition = since
	case sinceTime:
		if int64(since) <= 0 {
			return h, at, errors.New("since time not after 1970")
		}
		h.Selection.SinceTime = time.UnixMicro(int64(since)).UTC()
	default:
		return h, at, fmt.Errorf("unknown since kind %d", kind)
	}
	at = p.off
	n := int(p.u16("origin count"))
	if p.err == nil && n > p.left()/2 {
		return h, at, fmt.Errorf("%d origins in %d bytes", n, p.left())
	}
	for i := 0; i < n && p.err == nil; i++ {
		at = p.off
		o := p.u16("origin")
		if p.err != nil {
			break
		}
		if o > ledger.MaxOrigin {
			return h, at, fmt.Errorf("selected origin %d outside 0..%d", o, ledger.MaxOrigin)
		}
		if i > 0 && o <= h.Selection.Origins[i-1] {
			return h, at, errors.New("selected origins not sorted or repeated")
		}
		h.Selection.Origins = append(h.Selection.Origins, o)
	}
	at = p.off
	n = int(p.u16("model count"))
	if p.err == nil && n > p.left()/2 {
		return h, at, fmt.Errorf("%d models in %d bytes", n, p.left())
	}
	for i := 0; i < n && p.err == nil; i++ {
		at = p.off
		m := string(p.bytes(int(p.u16("model length")), "model"))
		if p.err != nil {
			break
		}
		if err := ledger.ValidateModel(m); err != nil {
			return h, at, fmt.Errorf("selected model: %w", err)
		}
		if i > 0 && m <= h.Selection.Models[i-1] {
			return h, at, errors.New("selected models not sorted or repeated")
		}
		h.Selection.Models = append(h.Selection.Models, m)
	}
	h.Events = p.u64("event count")
	if p.err == nil && version >= 2 {
		at = p.off
		if err := p.stability(&h); err != nil {
			return h, at, err
		}
	}
	if p.err != nil {
		return h, p.off, p.err
	}
	if p.left() != 0 {
		return h, p.off, fmt.Errorf("%d unexpected bytes at the end of the header", p.left())
	}
	return h, 0, nil
}

// stability reads the version 2 fields: the head covered, the flags and
// the report or frontier they announce.
func (p *headerParser) stability(h *Header) error {
	h.Through = p.u64("head covered")
	flags := p.u8("stability flags")
	if flags&flagReport != 0 {
		h.Report = &Report{HLC: clocks.Timestamp(p.u64("report clock")), Applied: p.u64("report position"), Seq: p.u64("report seq")}
	}
	if flags&flagFrontier != 0 {
		if h.Frontier = clocks.Timestamp(p.u64("frontier")); h.Frontier == 0 && p.err == nil {
			return errors.New("a zero frontier is written as none")
		}
	}
	if p.err != nil {
		return nil // the caller reports where the header ended
	}
	if flags&^(flagReport|flagFrontier) != 0 {
		return fmt.Errorf("unknown stability flags %#x", flags)
	}
	return checkStability(*h)
}

type headerParser struct {
	b   []byte
	off int
	err error
}

func (p *headerParser) left() int { return len(p.b) - p.off }

func (p *headerParser) bytes(n int, what string) []byte {
	if p.err != nil {
		return nil
	}
	if n > p.left() {
		p.err = fmt.Errorf("header ends inside the %s", what)
		return nil
	}
	b := p.b[p.off : p.off+n]
	p.off += n
	return b
}

func (p *headerParser) u8(what string) byte {
	if b := p.bytes(1, what); b != nil {
		return b[0]
	}
	return 0
}

func (p *headerParser) u16(what string) uint16 {
	if b := p.bytes(2, what); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

func (p *headerParser) u64(what string) uint64 {
	if b := p.bytes(8, what); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

// OriginSummary is what a bundle holds of one origin.
type OriginSummary struct {
	Origin         uint16
	Events         uint64
	MinSeq, MaxSeq uint64
	MaxHLC         clocks.Timestamp
}

// originTally accumulates OriginSummary values in bounded memory (at most
// MaxOrigin+1 entries).
type originTally map[uint16]*OriginSummary

func (t originTally) add(e *ledger.Event) {
	s, ok := t[e.Origin]
	if !ok {
		s = &OriginSummary{Origin: e.Origin, MinSeq: e.OriginSeq}
		t[e.Origin] = s
	}
	s.Events++
	s.MinSeq = min(s.MinSeq, e.OriginSeq)
	s.MaxSeq = max(s.MaxSeq, e.OriginSeq)
	s.MaxHLC = max(s.MaxHLC, e.HLC)
}

func (t originTally) list() []OriginSummary {
	out := make([]OriginSummary, 0, len(t))
	for _, s := range t {
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b OriginSummary) int { return cmp.Compare(a.Origin, b.Origin) })
	return out
}
