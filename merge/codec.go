package merge

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/ghsync/ghsync/clocks"
	"github.com/ghsync/ghsync/ledger"
)

// StateFormat is the first byte of an encoded State.
//
// Layout (version 1), integers big-endian unless marked uvarint:
//
//	format   byte = 1
//	flags    byte: bit 0 Created present, bit 1 Deleted present,
//	         bit 2 Redeleted present (later deletes)
//	created  stamp, if present
//	deleted  stamp, if present
//	redeleted uvarint count (at least 1), then stamps, ascending, after
//	         deleted, if present
//	nfields  uvarint, then per field in ascending name order:
//	  name     uvarint length + bytes
//	  nwrites  uvarint (at least 1), then per write in ascending stamp order:
//	    stamp    hlc uint64, origin uint16, id 16 bytes
//	    base     uvarint
//	    value    kind byte (ledger.Kind), then:
//	               null: nothing; bool: byte 0/1; int: varint (zigzag);
//	               decimal, string, bytes: uvarint length + bytes;
//	               date: varint days since 1970-01-01;
//	               datetime: varint µs since the epoch, UTC;
//	               ref: model, key, each uvarint length + bytes;
//	               refset: uvarint count, then refs as for ref, ascending;
//	             kind byte 0x80|ledger.KindRef (a ref naming a life,
//	             ledger.Ref.Saw): as ref, then the saw, uvarint, not 0.
//
// Every integer is in its shortest form, so the encoding is canonical:
// equal states encode to equal bytes.
const StateFormat byte = 1

const (
	flagCreated = 1 << iota
	flagDeleted
	flagRedeleted
)

const stampLen = 8 + 2 + 16

// ErrInvalidState wraps every UnmarshalState error.
var ErrInvalidState = errors.New("merge: invalid state encoding")

// MarshalBinary returns the canonical encoding of s. It fails only on a
// State that breaks its invariants (writes out of stamp order or repeated),
// which Apply and Merge never produce.
func (s *State) MarshalBinary() ([]byte, error) {
	writes := 2
	for _, ws := range s.Fields {
		writes += len(ws)
	}
	b := append(make([]byte, 0, 64*writes), StateFormat, 0) // ~ a stamp, a base and a short value each
	if s.Created != nil {
		b[1] |= flagCreated
		b = appendStamp(b, *s.Created)
	}
	if s.Deleted != nil {
		b[1] |= flagDeleted
		b = appendStamp(b, *s.Deleted)
		if len(s.Redeleted) > 0 {
			b[1] |= flagRedeleted
			b = binary.AppendUvarint(b, uint64(len(s.Redeleted)))
			prev := *s.Deleted
			for _, d := range s.Redeleted {
				if d.Compare(prev) <= 0 {
					return nil, fmt.Errorf("merge: deletes out of stamp order or repeated")
				}
				b, prev = appendStamp(b, d), d
			}
		}
	}
	var room [24]string // a record's fields, without allocating for most models
	names := room[:0]
	for n, ws := range s.Fields {
		if len(ws) > 0 {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	b = binary.AppendUvarint(b, uint64(len(names)))
	for _, name := range names {
		ws := s.Fields[name]
		b = appendString(b, name)
		b = binary.AppendUvarint(b, uint64(len(ws)))
		for i, w := range ws {
			if i > 0 && ws[i-1].Stamp.Compare(w.Stamp) >= 0 {
				return nil, fmt.Errorf("merge: field %s: writes out of stamp order or repeated", name)
			}
			b = appendStamp(b, w.Stamp)
			b = binary.AppendUvarint(b, uint64(w.Base))
			b = appendValue(b, w.Value)
		}
	}
	return b, nil
}

func appendStamp(b []byte, s Stamp) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(s.HLC))
	b = binary.BigEndian.AppendUint16(b, s.Origin)
	return append(b, s.ID[:]...)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendRef(b []byte, r ledger.Ref) []byte {
	return appendString(appendString(b, r.Model), r.Key)
}

// kindRefLife is the kind byte of a ref that names the life it means.
const kindRefLife = 0x80 | byte(ledger.KindRef)

// appendValue is the canonical encoding of v: a kind byte and a payload.
func appendValue(b []byte, v ledger.Value) []byte {
	b = append(b, byte(v.Kind()))
	switch v.Kind() {
	case ledger.KindBool:
		x, _ := v.AsBool()
		if x {
			return append(b, 1)
		}
		return append(b, 0)
	case ledger.KindInt:
		x, _ := v.AsInt()
		return binary.AppendVarint(b, x)
	case ledger.KindDecimal:
		x, _ := v.AsDecimal()
		return appendString(b, x)
	case ledger.KindString:
		x, _ := v.AsString()
		return appendString(b, x)
	case ledger.KindBytes:
		x, _ := v.AsBytes()
		return appendString(b, string(x))
	case ledger.KindDate:
		x, _ := v.AsDate()
		return binary.AppendVarint(b, x.Unix()/86400)
	case ledger.KindDateTime:
		x, _ := v.AsDateTime()
		return binary.AppendVarint(b, x.UnixMicro())
	case ledger.KindRef:
		x, _ := v.AsRef()
		if x.Saw != 0 {
			b[len(b)-1] = kindRefLife
			return binary.AppendUvarint(appendRef(b, x), uint64(x.Saw))
		}
		return appendRef(b, x)
	case ledger.KindRefSet:
		x, _ := v.AsRefSet()
		b = binary.AppendUvarint(b, uint64(len(x)))
		for _, r := range x {
			b = appendRef(b, r)
		}
	}
	return b
}

// UnmarshalState decodes a State from untrusted bytes. It is strict: an
// unknown format byte or flag, a value that is not valid, fields or writes
// out of order or repeated, a field without writes, an origin above
// ledger.MaxOrigin, a zero HLC in a stamp, trailing bytes, or any encoding
// that is not the canonical one are errors (wrapping ErrInvalidState).
func UnmarshalState(data []byte) (*State, error) {
	s, err := decodeState(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidState, err)
	}
	again, err := s.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidState, err)
	}
	if !bytes.Equal(again, data) {
		return nil, fmt.Errorf("%w: encoding is not canonical", ErrInvalidState)
	}
	return s, nil
}

// DecodeState decodes bytes that MarshalBinary wrote and that were kept
// where nothing else writes (the projector's own state table). It checks
// the layout but skips UnmarshalState's canonical re-encoding, which
// doubles the cost; untrusted bytes must go through UnmarshalState.
func DecodeState(data []byte) (*State, error) {
	s, err := decodeState(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidState, err)
	}
	return s, nil
}

// LastDeleteOf is State.LastDelete's HLC read from an encoded state's
// header, without decoding its fields: a capturer asks it of every record
// its references point at, and busy records carry long histories.
func LastDeleteOf(data []byte) (clocks.Timestamp, error) {
	_, d, err := PeekHeader(data)
	return d, err
}

// PeekHeader reads from an encoded state's header, without decoding its
// fields, whether a create is known and the HLC of the latest delete (0:
// none). A state with no delete is live exactly when it has a create.
func PeekHeader(data []byte) (created bool, lastDelete clocks.Timestamp, err error) {
	r := &reader{b: data}
	if f, err := r.byte(); err != nil || f != StateFormat {
		return false, 0, fmt.Errorf("%w: format byte", ErrInvalidState)
	}
	flags, err := r.byte()
	if err != nil {
		return false, 0, fmt.Errorf("%w: %w", ErrInvalidState, err)
	}
	created = flags&flagCreated != 0
	if flags&flagDeleted == 0 {
		return created, 0, nil
	}
	d, err := lastDeleteIn(r, flags)
	return created, d, err
}

func lastDeleteIn(r *reader, flags byte) (clocks.Timestamp, error) {
	if flags&flagCreated != 0 {
		if _, err := r.stamp(); err != nil {
			return 0, fmt.Errorf("%w: %w", ErrInvalidState, err)
		}
	}
	last, err := r.stamp()
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrInvalidState, err)
	}
	if flags&flagRedeleted != 0 {
		n, err := r.count(stampLen)
		if err != nil {
			return 0, fmt.Errorf("%w: %w", ErrInvalidState, err)
		}
		for range n {
			if last, err = r.stamp(); err != nil {
				return 0, fmt.Errorf("%w: %w", ErrInvalidState, err)
			}
		}
	}
	return last.HLC, nil
}

type reader struct{ b []byte }

var errShort = errors.New("unexpected end of data")

func (r *reader) byte() (byte, error) {
	if len(r.b) == 0 {
		return 0, errShort
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c, nil
}

func (r *reader) uvarint() (uint64, error) {
	x, n := binary.Uvarint(r.b)
	if n <= 0 {
		return 0, errors.New("bad uvarint")
	}
	r.b = r.b[n:]
	return x, nil
}

func (r *reader) varint() (int64, error) {
	x, n := binary.Varint(r.b)
	if n <= 0 {
		return 0, errors.New("bad varint")
	}
	r.b = r.b[n:]
	return x, nil
}

// count reads a uvarint count of elements of at least size bytes each,
// refusing one the bytes left cannot hold before anything allocates.
func (r *reader) count(size int) (int, error) {
	n, err := r.uvarint()
	if err != nil {
		return 0, err
	}
	if n > uint64(len(r.b)/size) {
		return 0, fmt.Errorf("count %d of %d-byte elements exceeds the %d bytes left", n, size, len(r.b))
	}
	return int(n), nil
}

func (r *reader) string() (string, error) {
	n, err := r.count(1)
	if err != nil {
		return "", err
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s, nil
}

func (r *reader) stamp() (Stamp, error) {
	if len(r.b) < stampLen {
		return Stamp{}, errShort
	}
	var s Stamp
	s.HLC = clocks.Timestamp(binary.BigEndian.Uint64(r.b))
	s.Origin = binary.BigEndian.Uint16(r.b[8:])
	copy(s.ID[:], r.b[10:stampLen])
	r.b = r.b[stampLen:]
	switch {
	case s.HLC == 0:
		return Stamp{}, errors.New("stamp with a zero hlc")
	case s.Origin > ledger.MaxOrigin:
		return Stamp{}, fmt.Errorf("origin %d outside 0..%d", s.Origin, ledger.MaxOrigin)
	}
	return s, nil
}

func (r *reader) ref() (ledger.Ref, error) {
	m, err := r.string()
	if err != nil {
		return ledger.Ref{}, err
	}
	k, err := r.string()
	if err != nil {
		return ledger.Ref{}, err
	}
	return ledger.Ref{Model: m, Key: k}, nil
}

// Date bounds in days since 1970-01-01: years 1..9999, as ledger.Date.
const (
	minDay = -719162
	maxDay = 2932896
)

func (r *reader) value() (ledger.Value, error) {
	k, err := r.byte()
	if err != nil {
		return ledger.Value{}, err
	}
	if k == kindRefLife {
		ref, err := r.ref()
		if err != nil {
			return ledger.Value{}, err
		}
		left := len(r.b)
		saw, err := r.uvarint()
		if err != nil || saw == 0 || left-len(r.b) != len(binary.AppendUvarint(nil, saw)) {
			return ledger.Value{}, fmt.Errorf("ref %s: bad life (saw)", ref)
		}
		ref.Saw = clocks.Timestamp(saw)
		return ledger.RefValue(ref)
	}
	switch ledger.Kind(k) {
	case ledger.KindNull:
		return ledger.Null(), nil
	case ledger.KindBool:
		c, err := r.byte()
		if err != nil {
			return ledger.Value{}, err
		}
		if c > 1 {
			return ledger.Value{}, fmt.Errorf("bool byte %d", c)
		}
		return ledger.Bool(c == 1), nil
	case ledger.KindInt:
		x, err := r.varint()
		return ledger.Int(x), err
	case ledger.KindDecimal:
		s, err := r.string()
		if err != nil {
			return ledger.Value{}, err
		}
		v, err := ledger.Decimal(s)
		if err != nil {
			return ledger.Value{}, err
		}
		if c, _ := v.AsDecimal(); c != s {
			return ledger.Value{}, fmt.Errorf("decimal %q not canonical", s)
		}
		return v, nil
	case ledger.KindString:
		s, err := r.string()
		return ledger.String(s), err
	case ledger.KindBytes:
		s, err := r.string()
		return ledger.Bytes([]byte(s)), err
	case ledger.KindDate:
		d, err := r.varint()
		if err != nil {
			return ledger.Value{}, err
		}
		if d < minDay || d > maxDay {
			return ledger.Value{}, fmt.Errorf("date %d outside years 1..9999", d)
		}
		return ledger.Date(time.Unix(d*86400, 0).UTC())
	case ledger.KindDateTime:
		us, err := r.varint()
		if err != nil {
			return ledger.Value{}, err
		}
		return ledger.DateTime(time.UnixMicro(us))
	case ledger.KindRef:
		ref, err := r.ref()
		if err != nil {
			return ledger.Value{}, err
		}
		return ledger.RefTo(ref.Model, ref.Key)
	case ledger.KindRefSet:
		n, err := r.count(4) // two lengths and two non-empty names
		if err != nil {
			return ledger.Value{}, err
		}
		refs := make([]ledger.Ref, n)
		for i := range refs {
			if refs[i], err = r.ref(); err != nil {
				return ledger.Value{}, err
			}
		}
		return ledger.RefSet(refs...) // order and duplicates: the canonical re-check
	}
	return ledger.Value{}, fmt.Errorf("unknown value kind %d", k)
}

func decodeState(data []byte) (*State, error) {
	r := &reader{b: data}
	f, err := r.byte()
	if err != nil {
		return nil, errors.New("empty")
	}
	if f != StateFormat {
		return nil, fmt.Errorf("format byte %d (this build reads %d)", f, StateFormat)
	}
	flags, err := r.byte()
	if err != nil {
		return nil, err
	}
	if flags&^(flagCreated|flagDeleted|flagRedeleted) != 0 || flags&flagRedeleted != 0 && flags&flagDeleted == 0 {
		return nil, fmt.Errorf("unknown flags 0x%02x", flags)
	}
	s := &State{}
	if flags&flagCreated != 0 {
		st, err := r.stamp()
		if err != nil {
			return nil, fmt.Errorf("created: %w", err)
		}
		s.Created = &st
	}
	if flags&flagDeleted != 0 {
		st, err := r.stamp()
		if err != nil {
			return nil, fmt.Errorf("deleted: %w", err)
		}
		s.Deleted = &st
	}
	if flags&flagRedeleted != 0 {
		n, err := r.count(stampLen)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("later deletes: count %d: %v", n, err)
		}
		s.Redeleted = make([]Stamp, n)
		prev := *s.Deleted
		for i := range s.Redeleted {
			if s.Redeleted[i], err = r.stamp(); err != nil {
				return nil, fmt.Errorf("later delete %d: %w", i, err)
			}
			if s.Redeleted[i].Compare(prev) <= 0 {
				return nil, errors.New("later deletes out of stamp order or repeated")
			}
			prev = s.Redeleted[i]
		}
	}
	nf, err := r.count(2) // a name length and a write count
	if err != nil {
		return nil, fmt.Errorf("fields: %w", err)
	}
	if nf > 0 {
		s.Fields = make(map[string][]Write, nf)
	}
	prev := ""
	for i := 0; i < nf; i++ {
		name, err := r.string()
		if err != nil {
			return nil, fmt.Errorf("field name: %w", err)
		}
		if i > 0 && name <= prev {
			return nil, fmt.Errorf("field %q out of order or repeated", name)
		}
		prev = name
		nw, err := r.count(stampLen + 2) // stamp, base, kind
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", name, err)
		}
		if nw == 0 {
			return nil, fmt.Errorf("field %s has no writes", name)
		}
		ws := make([]Write, nw)
		for j := range ws {
			w := &ws[j]
			if w.Stamp, err = r.stamp(); err != nil {
				return nil, fmt.Errorf("field %s write %d: %w", name, j, err)
			}
			if j > 0 && ws[j-1].Stamp.Compare(w.Stamp) >= 0 {
				return nil, fmt.Errorf("field %s: writes out of stamp order or repeated", name)
			}
			base, err := r.uvarint()
			if err != nil {
				return nil, fmt.Errorf("field %s write %d base: %w", name, j, err)
			}
			w.Base = clocks.Timestamp(base)
			if w.Value, err = r.value(); err != nil {
				return nil, fmt.Errorf("field %s write %d value: %w", name, j, err)
			}
		}
		s.Fields[name] = ws
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%d trailing bytes", len(r.b))
	}
	return s, nil
}
