package ledger

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"

	"github.com/ghsync/ghsync/clocks"
)

// FormatVersion is the first byte of every encoded event. It changes
// whenever the layout does; decoders keep reading every older version.
const FormatVersion byte = 1

// eventArrayLen is the number of elements in a version-1 event array.
const eventArrayLen = 12

// Extension type ids for the value kinds msgpack has no native form for.
const (
	extDecimal  int8 = 1 // canonical decimal text
	extDate     int8 = 2 // int32 big-endian, days since 1970-01-01
	extDateTime int8 = 3 // int64 big-endian, microseconds since epoch, UTC
	extRef      int8 = 4 // uvarint len + model, then key
	extRefSet   int8 = 5 // repeated (uvarint len + model, uvarint len + key), sorted
)

type encoder struct {
	buf  bytes.Buffer
	enc  *msgpack.Encoder
	tmp  []byte
	keys []string // reused for sorting map keys
}

// sortedKeys returns m's keys in order, in the encoder's reused slice.
func sortedKeys[V any](x *encoder, m map[string]V) []string {
	x.keys = x.keys[:0]
	for k := range m {
		x.keys = append(x.keys, k)
	}
	slices.Sort(x.keys)
	return x.keys
}

var encoders = sync.Pool{New: func() any {
	e := &encoder{}
	e.enc = msgpack.NewEncoder(&e.buf)
	return e
}}

// Marshal returns the canonical encoding of e (everything but Hash): one
// format byte, then a msgpack array with map keys sorted and integers in
// their shortest form, so every machine produces the same bytes and hash.
func Marshal(e *Event) ([]byte, error) {
	x := encoders.Get().(*encoder)
	defer encoders.Put(x)
	x.buf.Reset()
	if err := x.event(e); err != nil {
		return nil, err
	}
	return bytes.Clone(x.buf.Bytes()), nil
}

// encodes reports whether data is e's canonical encoding, encoding e into
// a pooled buffer rather than a copy of its own.
func encodes(e *Event, data []byte) (bool, error) {
	x := encoders.Get().(*encoder)
	defer encoders.Put(x)
	x.buf.Reset()
	if err := x.event(e); err != nil {
		return false, err
	}
	return bytes.Equal(x.buf.Bytes(), data), nil
}

// HashOf is the SHA-256 of an event's canonical encoding.
func HashOf(payload []byte) Hash { return sha256.Sum256(payload) }

func (x *encoder) event(e *Event) error {
	x.buf.WriteByte(FormatVersion)
	w := x.enc
	w.EncodeArrayLen(eventArrayLen)
	w.EncodeBytes(e.ID[:])
	w.EncodeUint(uint64(e.Origin))
	w.EncodeUint(e.OriginSeq)
	w.EncodeUint(uint64(e.HLC))
	w.EncodeString(e.Model)
	w.EncodeString(e.Key)
	w.EncodeUint(uint64(e.Op))
	w.EncodeString(e.User)
	w.EncodeUint(e.Tx)
	w.EncodeMapLen(len(e.Fields))
	for _, name := range sortedKeys(x, e.Fields) {
		w.EncodeString(name)
		if err := x.value(e.Fields[name]); err != nil {
			return fmt.Errorf("encode field %s: %w", name, err)
		}
	}
	w.EncodeMapLen(len(e.Base))
	for _, name := range sortedKeys(x, e.Base) {
		w.EncodeString(name)
		w.EncodeUint(uint64(e.Base[name]))
	}
	w.EncodeBytes(e.PrevHash[:])
	// Writes go to a bytes.Buffer, which cannot fail; value() reports the
	// only error there is (an unknown kind).
	return nil
}

func (x *encoder) value(v Value) error {
	w := x.enc
	switch v.kind {
	case KindNull:
		return w.EncodeNil()
	case KindBool:
		return w.EncodeBool(v.i == 1)
	case KindInt:
		return w.EncodeInt(v.i)
	case KindString:
		return w.EncodeString(v.s)
	case KindBytes:
		return w.EncodeBytes([]byte(v.s))
	case KindDecimal:
		return x.ext(extDecimal, append(x.tmp[:0], v.s...))
	case KindDate:
		return x.ext(extDate, binary.BigEndian.AppendUint32(x.tmp[:0], uint32(int32(v.i))))
	case KindDateTime:
		return x.ext(extDateTime, binary.BigEndian.AppendUint64(x.tmp[:0], uint64(v.i)))
	case KindRef:
		r, _ := v.AsRef()
		b := appendRef(x.tmp[:0], r)
		if r.Saw != 0 || r.Lender != 0 {
			b = binary.AppendUvarint(b, uint64(r.Saw))
		}
		if r.Lender != 0 {
			b = binary.AppendUvarint(b, uint64(r.Lender))
		}
		return x.ext(extRef, b)
	case KindRefSet:
		b := x.tmp[:0]
		for _, r := range v.refs {
			b = appendRef(b, r)
		}
		return x.ext(extRefSet, b)
	}
	return fmt.Errorf("unknown value kind %d", v.kind)
}

func (x *encoder) ext(id int8, payload []byte) error {
	x.tmp = payload[:0]
	if err := x.enc.EncodeExtHeader(id, len(payload)); err != nil {
		return err
	}
	_, err := x.buf.Write(payload)
	return err
}

func appendRef(b []byte, r Ref) []byte {
	b = binary.AppendUvarint(b, uint64(len(r.Model)))
	b = append(b, r.Model...)
	b = binary.AppendUvarint(b, uint64(len(r.Key)))
	return append(b, r.Key...)
}

type decoder struct {
	data []byte // the msgpack part being decoded
	r    bytes.Reader
	dec  *msgpack.Decoder
	// names interns the strings every event repeats (model, user and
	// field names): a page of events shares one copy of each instead of
	// allocating them per event. Bounded, so hostile input cannot grow it.
	names map[string]string
}

const (
	maxInterned    = 1024 // names a decoder keeps
	maxInternedLen = 64   // bytes; longer names are not kept
)

var decoders = sync.Pool{New: func() any {
	d := &decoder{names: map[string]string{}}
	d.dec = msgpack.NewDecoder(&d.r)
	return d
}}

// Unmarshal decodes an event from untrusted bytes (a peer, a bundle, a
// file). It is strict: an unknown format byte, wrong element types,
// unsorted or repeated map keys, trailing bytes, or any encoding that is
// not the canonical one are errors, and so is an event that fails
// Validate. Hash is set to the hash of data.
func Unmarshal(data []byte) (*Event, error) {
	e, err := decodeEvent(data)
	if err != nil {
		return nil, err
	}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	if canonical, err := encodes(e, data); err != nil {
		return nil, err
	} else if !canonical {
		return nil, fmt.Errorf("%w: encoding is not canonical", ErrInvalidEvent)
	}
	e.Hash = HashOf(data)
	return e, nil
}

// decodeEvent reads the layout without the canonical re-check; stores use
// it on bytes whose hash they have verified (they wrote them canonically).
func decodeEvent(data []byte) (e *Event, err error) {
	if len(data) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrInvalidEvent)
	}
	if data[0] != FormatVersion {
		return nil, fmt.Errorf("%w: format byte %d (this build reads %d)", ErrUnknownFormat, data[0], FormatVersion)
	}
	d := decoders.Get().(*decoder)
	defer decoders.Put(d)
	d.data = data[1:]
	d.r.Reset(d.data)
	d.dec.Reset(&d.r)
	e, err = d.event()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidEvent, err)
	}
	if d.r.Len() != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrInvalidEvent, d.r.Len())
	}
	return e, nil
}

func (d *decoder) event() (*Event, error) {
	r := d.dec
	n, err := r.DecodeArrayLen()
	if err != nil {
		return nil, err
	}
	if n != eventArrayLen {
		return nil, fmt.Errorf("event array has %d elements, want %d", n, eventArrayLen)
	}
	e := &Event{}
	if err := d.fixedBytes(e.ID[:], "id"); err != nil {
		return nil, err
	}
	origin, err := d.uint("origin")
	if err != nil {
		return nil, err
	}
	if origin > MaxOrigin {
		return nil, fmt.Errorf("origin %d outside 0..%d", origin, MaxOrigin)
	}
	e.Origin = uint16(origin)
	if e.OriginSeq, err = d.uint("origin_seq"); err != nil {
		return nil, err
	}
	hlc, err := d.uint("hlc")
	if err != nil {
		return nil, err
	}
	e.HLC = clocks.Timestamp(hlc)
	if e.Model, err = d.name("model"); err != nil {
		return nil, err
	}
	if e.Key, err = d.str("key"); err != nil {
		return nil, err
	}
	op, err := d.uint("op")
	if err != nil {
		return nil, err
	}
	if op > 255 {
		return nil, fmt.Errorf("op %d out of range", op)
	}
	e.Op = Op(op)
	if e.User, err = d.name("user"); err != nil {
		return nil, err
	}
	if e.Tx, err = d.uint("tx"); err != nil {
		return nil, err
	}
	nf, err := d.mapLen("fields")
	if err != nil {
		return nil, err
	}
	if nf > 0 {
		e.Fields = make(map[string]Value, nf)
	}
	prev := ""
	for i := 0; i < nf; i++ {
		name, err := d.name("field name")
		if err != nil {
			return nil, err
		}
		if i > 0 && name <= prev {
			return nil, fmt.Errorf("field %q out of order or repeated", name)
		}
		prev = name
		v, err := d.value()
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", name, err)
		}
		e.Fields[name] = v
	}
	nb, err := d.mapLen("base")
	if err != nil {
		return nil, err
	}
	if nb > 0 {
		e.Base = make(map[string]clocks.Timestamp, nb)
	}
	for i := 0; i < nb; i++ {
		name, err := d.name("base name")
		if err != nil {
			return nil, err
		}
		if i > 0 && name <= prev {
			return nil, fmt.Errorf("base %q out of order or repeated", name)
		}
		prev = name
		ts, err := d.uint("base " + name)
		if err != nil {
			return nil, err
		}
		e.Base[name] = clocks.Timestamp(ts)
	}
	if err := d.fixedBytes(e.PrevHash[:], "prev_hash"); err != nil {
		return nil, err
	}
	return e, nil
}

// Each element is type-checked by its leading code before it is decoded,
// so the library never converts one type into another on our behalf.

func (d *decoder) peek(what string) (byte, error) {
	c, err := d.dec.PeekCode()
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	return c, nil
}

func (d *decoder) uint(what string) (uint64, error) {
	c, err := d.peek(what)
	if err != nil {
		return 0, err
	}
	if !(c <= msgpcode.PosFixedNumHigh || c == msgpcode.Uint8 || c == msgpcode.Uint16 || c == msgpcode.Uint32 || c == msgpcode.Uint64) {
		return 0, fmt.Errorf("%s: want an unsigned integer, got code 0x%02x", what, c)
	}
	return d.dec.DecodeUint64()
}

func (d *decoder) str(what string) (string, error) {
	b, err := d.strBytes(what)
	return string(b), err
}

// name decodes a string as str does, interned (see decoder.names).
func (d *decoder) name(what string) (string, error) {
	b, err := d.strBytes(what)
	if err != nil {
		return "", err
	}
	s, ok := d.names[string(b)] // no allocation for the lookup
	if !ok {
		s = string(b)
		if len(d.names) < maxInterned && len(b) <= maxInternedLen {
			d.names[s] = s
		}
	}
	return s, nil
}

// strBytes reads a string in place, refusing a declared length longer
// than what is left. d.dec reads from d.r, a ByteScanner, so it holds
// nothing ahead of d.r's position and the two stay in step.
func (d *decoder) strBytes(what string) ([]byte, error) {
	c, err := d.peek(what)
	if err != nil {
		return nil, err
	}
	if !msgpcode.IsString(c) {
		return nil, fmt.Errorf("%s: want a string, got code 0x%02x", what, c)
	}
	at := d.data[len(d.data)-d.r.Len():] // at[0] is the code c
	head, n := 1, int(c&msgpcode.FixedStrMask)
	switch c {
	case msgpcode.Str8:
		head = 2
	case msgpcode.Str16:
		head = 3
	case msgpcode.Str32:
		head = 5
	}
	if len(at) < head {
		return nil, fmt.Errorf("%s: %w", what, io.ErrUnexpectedEOF)
	}
	switch head {
	case 2:
		n = int(at[1])
	case 3:
		n = int(binary.BigEndian.Uint16(at[1:]))
	case 5:
		n = int(binary.BigEndian.Uint32(at[1:]))
	}
	if n > len(at)-head {
		return nil, fmt.Errorf("%s: declared length %d exceeds the %d bytes left", what, n, len(at)-head)
	}
	if _, err := d.r.Seek(int64(head+n), io.SeekCurrent); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return at[head : head+n], nil
}

func (d *decoder) mapLen(what string) (int, error) {
	c, err := d.peek(what)
	if err != nil {
		return 0, err
	}
	if !(msgpcode.IsFixedMap(c) || c == msgpcode.Map16 || c == msgpcode.Map32) {
		return 0, fmt.Errorf("%s: want a map, got code 0x%02x", what, c)
	}
	n, err := d.dec.DecodeMapLen()
	if err != nil {
		return 0, err
	}
	if n > d.r.Len() { // every entry takes at least one byte
		return 0, fmt.Errorf("%s: %d entries in %d bytes", what, n, d.r.Len())
	}
	return n, nil
}

func (d *decoder) fixedBytes(dst []byte, what string) error {
	c, err := d.peek(what)
	if err != nil {
		return err
	}
	if !msgpcode.IsBin(c) {
		return fmt.Errorf("%s: want bytes, got code 0x%02x", what, c)
	}
	if err := d.checkLen(c); err != nil { // DecodeBytes allocates the declared length
		return fmt.Errorf("%s: %w", what, err)
	}
	b, err := d.dec.DecodeBytes()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if len(b) != len(dst) {
		return fmt.Errorf("%s: %d bytes, want %d", what, len(b), len(dst))
	}
	copy(dst, b)
	return nil
}

// checkLen refuses a declared length longer than what is left, before the
// library allocates for it.
func (d *decoder) checkLen(c byte) error {
	var n int
	rest := d.r.Len()
	at := d.data[len(d.data)-rest:] // at[0] is the code c
	switch c {
	case msgpcode.Str8, msgpcode.Bin8:
		if rest >= 2 {
			n = int(at[1])
		}
	case msgpcode.Str16, msgpcode.Bin16:
		if rest >= 3 {
			n = int(binary.BigEndian.Uint16(at[1:]))
		}
	case msgpcode.Str32, msgpcode.Bin32:
		if rest >= 5 {
			n = int(binary.BigEndian.Uint32(at[1:]))
		}
	}
	if n > rest {
		return fmt.Errorf("declared length %d exceeds the %d bytes left", n, rest)
	}
	return nil
}

func (d *decoder) value() (Value, error) {
	r := d.dec
	c, err := d.peek("value")
	if err != nil {
		return Value{}, err
	}
	switch {
	case c == msgpcode.Nil:
		return Null(), r.DecodeNil()
	case c == msgpcode.True || c == msgpcode.False:
		b, err := r.DecodeBool()
		return Bool(b), err
	case msgpcode.IsFixedNum(c) || c >= msgpcode.Uint8 && c <= msgpcode.Int64:
		if c == msgpcode.Uint64 {
			u, err := r.DecodeUint64()
			if err != nil {
				return Value{}, err
			}
			if u > 1<<63-1 {
				return Value{}, errors.New("integer overflows int64")
			}
			return Int(int64(u)), nil
		}
		n, err := r.DecodeInt64()
		return Int(n), err
	case msgpcode.IsString(c):
		if err := d.checkLen(c); err != nil {
			return Value{}, err
		}
		s, err := r.DecodeString()
		return String(s), err
	case msgpcode.IsBin(c):
		if err := d.checkLen(c); err != nil {
			return Value{}, err
		}
		b, err := r.DecodeBytes()
		return Value{kind: KindBytes, s: string(b)}, err
	case msgpcode.IsExt(c):
		return d.ext()
	}
	return Value{}, fmt.Errorf("unknown value code 0x%02x", c)
}

func (d *decoder) ext() (Value, error) {
	id, n, err := d.dec.DecodeExtHeader()
	if err != nil {
		return Value{}, err
	}
	if n > d.r.Len() {
		return Value{}, fmt.Errorf("extension %d declares %d bytes, %d left", id, n, d.r.Len())
	}
	b := make([]byte, n)
	if err := d.dec.ReadFull(b); err != nil {
		return Value{}, err
	}
	var v Value
	switch id {
	case extDecimal:
		v = Value{kind: KindDecimal, s: string(b)}
	case extDate:
		if n != 4 {
			return Value{}, fmt.Errorf("date: %d bytes, want 4", n)
		}
		v = Value{kind: KindDate, i: int64(int32(binary.BigEndian.Uint32(b)))}
	case extDateTime:
		if n != 8 {
			return Value{}, fmt.Errorf("datetime: %d bytes, want 8", n)
		}
		v = Value{kind: KindDateTime, i: int64(binary.BigEndian.Uint64(b))}
	case extRef:
		ref, rest, err := readRef(b)
		if err != nil {
			return Value{}, err
		}
		// The life it names (Ref.Saw), then its lender's (Ref.Lender), each
		// a minimal uvarint; Saw may be 0 only before a Lender.
		for i := 0; len(rest) != 0; i++ {
			n, k := binary.Uvarint(rest)
			switch {
			case i == 2:
				return Value{}, errors.New("ref: trailing bytes")
			case k <= 0 || k != len(binary.AppendUvarint(nil, n)):
				return Value{}, errors.New("ref: bad life")
			case i == 0 && n == 0 && k == len(rest):
				return Value{}, errors.New("ref: bad life (saw 0 with no lender)")
			case i == 1 && n == 0:
				return Value{}, errors.New("ref: bad lender life (0)")
			}
			if i == 0 {
				ref.Saw = clocks.Timestamp(n)
			} else {
				ref.Lender = clocks.Timestamp(n)
			}
			rest = rest[k:]
		}
		v = refValue(ref)
	case extRefSet:
		v = Value{kind: KindRefSet, refs: []Ref{}}
		for len(b) > 0 {
			var ref Ref
			if ref, b, err = readRef(b); err != nil {
				return Value{}, err
			}
			v.refs = append(v.refs, ref)
		}
	default:
		return Value{}, fmt.Errorf("unknown value type (extension %d)", id)
	}
	if err := v.validate(); err != nil {
		return Value{}, err
	}
	return v, nil
}

func readRef(b []byte) (Ref, []byte, error) {
	var parts [2]string
	for i := range parts {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return Ref{}, nil, errors.New("ref: bad length")
		}
		parts[i] = string(b[k : k+int(n)])
		b = b[k+int(n):]
	}
	return Ref{Model: parts[0], Key: parts[1]}, b, nil
}

// DecodeStored decodes an event a store read back, after checking its
// bytes against the hash stored beside them: a flipped bit on disk is
// ErrCorrupt naming the event and its position, never a wrong event.
func DecodeStored(pos uint64, hash, payload []byte) (*Event, error) {
	h, err := CheckStored(pos, hash, payload)
	if err != nil {
		return nil, err
	}
	e, err := decodeEvent(payload)
	if err != nil {
		return nil, &EventError{Position: pos, Err: fmt.Errorf("%w: %w", ErrCorrupt, err)}
	}
	e.Hash = h
	return e, nil
}

// PeekOrigin reads the origin from an event's canonical encoding without
// decoding the rest: it is the third element of the event's array, after
// the 16-byte id, at a fixed offset.
func PeekOrigin(payload []byte) (uint16, error) {
	const at = 1 + 1 + 2 + 16 // format, array header, bin8 header, id
	prefix := []byte{FormatVersion, 0x90 | eventArrayLen, 0xc4, 16}
	if len(payload) <= at || !bytes.Equal(payload[:len(prefix)], prefix) {
		return 0, errors.New("not a canonical event encoding")
	}
	var o uint64
	switch b := payload[at:]; {
	case b[0] < 0x80: // positive fixint
		o = uint64(b[0])
	case b[0] == 0xcc && len(b) >= 2: // uint8
		o = uint64(b[1])
	case b[0] == 0xcd && len(b) >= 3: // uint16
		o = uint64(b[1])<<8 | uint64(b[2])
	default:
		return 0, errors.New("origin is not a small unsigned integer")
	}
	if o > MaxOrigin {
		return 0, fmt.Errorf("origin %d outside 0..%d", o, MaxOrigin)
	}
	return uint16(o), nil
}

// CheckStored checks a stored payload against its stored hash, without
// decoding it unless they differ (to name the event in the error).
func CheckStored(pos uint64, hash, payload []byte) (Hash, error) {
	var h Hash
	if len(hash) != len(h) {
		return h, &EventError{Position: pos, Err: fmt.Errorf("%w: stored hash has %d bytes", ErrCorrupt, len(hash))}
	}
	copy(h[:], hash)
	if HashOf(payload) != h {
		e := &EventError{Position: pos, Err: fmt.Errorf("%w: payload does not match its hash %s", ErrCorrupt, h.Short())}
		if partial, err := decodeEvent(payload); err == nil {
			e.ID, e.Origin, e.OriginSeq = partial.ID, partial.Origin, partial.OriginSeq
		}
		return h, e
	}
	return h, nil
}
