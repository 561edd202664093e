package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Magic opens every frame stream: "GHSE" and the wire format version (1).
// A body that does not start with it is not a ghsync event stream.
var Magic = [5]byte{'G', 'H', 'S', 'E', 1}

// Limits bound what a Decoder accepts from an untrusted peer. A zero field
// takes its default.
type Limits struct {
	// MaxFrame is the largest frame payload in bytes (DefaultMaxFrame).
	MaxFrame int
	// MaxBody is the largest decompressed stream in bytes (DefaultMaxBody).
	MaxBody int64
	// MaxFrames is the most frames a stream may hold (DefaultMaxFrames).
	MaxFrames int
}

// Defaults of Limits.
const (
	DefaultMaxFrame  = 4 << 20
	DefaultMaxBody   = 256 << 20
	DefaultMaxFrames = 1 << 20
	// DefaultMaxPushEvents is the most events one push may carry.
	DefaultMaxPushEvents = 10_000
)

func (l Limits) withDefaults() Limits {
	if l.MaxFrame <= 0 {
		l.MaxFrame = DefaultMaxFrame
	}
	if l.MaxBody <= 0 {
		l.MaxBody = DefaultMaxBody
	}
	if l.MaxFrames <= 0 {
		l.MaxFrames = DefaultMaxFrames
	}
	return l
}

// Sentinels a *FrameError wraps, tested with errors.Is.
var (
	// ErrMalformed: the bytes are not a frame stream (bad magic, an
	// overlong varint, a bad count in the trailer, bytes after it, a frame
	// whose payload is not an event).
	ErrMalformed = errors.New("wire: malformed stream")
	// ErrTooLarge: a frame, the stream or the frame count exceeds a limit.
	ErrTooLarge = errors.New("wire: too large")
	// ErrTruncated: the stream ended before its trailer: a cut transfer.
	ErrTruncated = errors.New("wire: truncated stream")
)

// FrameError says where a stream went wrong: the index of the frame being
// read (0-based; the trailer's index is the number of frames) and the byte
// offset in the decompressed stream where that frame starts.
type FrameError struct {
	Frame  int
	Offset int64
	Err    error
}

func (e *FrameError) Error() string {
	return fmt.Sprintf("frame %d at byte %d: %v", e.Frame, e.Offset, e.Err)
}

func (e *FrameError) Unwrap() error { return e.Err }

// Encoder writes a frame stream: Magic, then each frame as uvarint(len)
// and payload, then the trailer uvarint(0) uvarint(frame count) that
// marks a complete stream.
type Encoder struct {
	w      *bufio.Writer
	frames int
	bytes  int64
	closed bool
	err    error
	tmp    [2 * binary.MaxVarintLen64]byte
}

// NewEncoder starts a stream on w. Nothing is written until the first
// frame or Close; call Close to write the trailer and flush.
func NewEncoder(w io.Writer) *Encoder {
	e := &Encoder{w: bufio.NewWriterSize(w, 64<<10)}
	e.write(Magic[:])
	return e
}

func (e *Encoder) write(b []byte) {
	if e.err == nil {
		var n int
		n, e.err = e.w.Write(b)
		e.bytes += int64(n)
	}
}

// Frame writes one frame. payload must not be empty (a zero length is
// the trailer's mark).
func (e *Encoder) Frame(payload []byte) error {
	if len(payload) == 0 {
		return fmt.Errorf("%w: empty frame", ErrMalformed)
	}
	return e.frame(nil, payload)
}

// Positioned writes a pull frame: uvarint(position) then the event bytes.
func (e *Encoder) Positioned(pos uint64, payload []byte) error {
	if pos == 0 || len(payload) == 0 {
		return fmt.Errorf("%w: position 0 or empty event", ErrMalformed)
	}
	var p [binary.MaxVarintLen64]byte
	return e.frame(p[:binary.PutUvarint(p[:], pos)], payload)
}

func (e *Encoder) frame(prefix, payload []byte) error {
	if e.closed {
		return errors.New("wire: frame after Close")
	}
	n := binary.PutUvarint(e.tmp[:], uint64(len(prefix)+len(payload)))
	e.write(e.tmp[:n])
	e.write(prefix)
	e.write(payload)
	e.frames++
	return e.err
}

// Frames is the number of frames written so far.
func (e *Encoder) Frames() int { return e.frames }

// Bytes is the number of (uncompressed) bytes written so far, buffered or not.
func (e *Encoder) Bytes() int64 { return e.bytes }

// Flush pushes buffered bytes to the underlying writer, without the
// trailer: the stream is not complete yet.
func (e *Encoder) Flush() error {
	if e.err == nil {
		e.err = e.w.Flush()
	}
	return e.err
}

// Close writes the trailer and flushes. It does not close the underlying writer.
func (e *Encoder) Close() error {
	if e.closed {
		return e.err
	}
	e.closed = true
	e.tmp[0] = 0
	n := 1 + binary.PutUvarint(e.tmp[1:], uint64(e.frames))
	e.write(e.tmp[:n])
	return e.Flush()
}

// Decoder reads a frame stream from an untrusted peer within Limits. It
// never allocates more than one frame's payload (at most MaxFrame) at a
// time and never reads past MaxBody bytes.
type Decoder struct {
	r      *bufio.Reader
	lim    Limits
	off    int64 // bytes consumed
	frames int
	start  bool
	done   bool
	err    error
}

// NewDecoder reads a stream from r (already decompressed).
func NewDecoder(r io.Reader, lim Limits) *Decoder {
	lim = lim.withDefaults()
	// The bufio.Reader reads ahead, so the limit is enforced on what it
	// pulls from r: at most MaxBody+1 bytes are ever read.
	return &Decoder{r: bufio.NewReaderSize(&capReader{r: r, left: lim.MaxBody + 1}, 32<<10), lim: lim}
}

// capReader reads at most left bytes from r and then reports ErrTooLarge,
// so a decompression bomb is stopped without being inflated.
type capReader struct {
	r    io.Reader
	left int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, errBodyLimit
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

var errBodyLimit = errors.New("body limit")

// Frames is the number of frames returned so far.
func (d *Decoder) Frames() int { return d.frames }

// Offset is the number of stream bytes consumed so far.
func (d *Decoder) Offset() int64 { return d.off }

func (d *Decoder) fail(at int64, err error) error {
	d.err = &FrameError{Frame: d.frames, Offset: at, Err: err}
	return d.err
}

// readErr turns a read failure into the error to report.
func (d *Decoder) readErr(err error) error {
	switch {
	case errors.Is(err, errBodyLimit):
		return fmt.Errorf("%w: stream exceeds %d bytes", ErrTooLarge, d.lim.MaxBody)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: stream ended before its trailer", ErrTruncated)
	}
	return err
}

// Next returns the next frame's payload, a new slice the caller may keep. At the
// end of a complete stream (trailer read, nothing after it) it returns
// io.EOF. Any other error is a *FrameError and is returned again by every
// later call.
func (d *Decoder) Next() ([]byte, error) {
	if d.err != nil {
		return nil, d.err
	}
	if d.done {
		return nil, io.EOF
	}
	if !d.start {
		var m [len(Magic)]byte
		n, err := io.ReadFull(d.r, m[:])
		d.off += int64(n)
		switch {
		case err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF):
			return nil, d.fail(0, d.readErr(err))
		case string(m[:n]) != string(Magic[:n]) || n == len(Magic) && m != Magic:
			return nil, d.fail(0, fmt.Errorf("%w: not a ghsync event stream (header %q, want %q)", ErrMalformed, m[:n], Magic[:]))
		case err != nil:
			return nil, d.fail(0, fmt.Errorf("%w: stream ended in its header", ErrTruncated))
		}
		d.start = true
	}
	at := d.off
	n, err := d.uvarint()
	if err != nil {
		return nil, d.fail(at, err)
	}
	if n == 0 {
		count, err := d.uvarint()
		if err != nil {
			return nil, d.fail(at, err)
		}
		if count != uint64(d.frames) {
			return nil, d.fail(at, fmt.Errorf("%w: trailer counts %d frames, stream has %d", ErrMalformed, count, d.frames))
		}
		if _, err := d.r.ReadByte(); err == nil {
			return nil, d.fail(d.off, fmt.Errorf("%w: bytes after the trailer", ErrMalformed))
		} else if !errors.Is(err, io.EOF) {
			return nil, d.fail(d.off, d.readErr(err))
		}
		d.done = true
		return nil, io.EOF
	}
	if d.frames >= d.lim.MaxFrames {
		return nil, d.fail(at, fmt.Errorf("%w: more than %d frames", ErrTooLarge, d.lim.MaxFrames))
	}
	if n > uint64(d.lim.MaxFrame) {
		return nil, d.fail(at, fmt.Errorf("%w: frame of %d bytes (limit %d)", ErrTooLarge, n, d.lim.MaxFrame))
	}
	if d.off+int64(n) > d.lim.MaxBody {
		return nil, d.fail(at, fmt.Errorf("%w: stream exceeds %d bytes", ErrTooLarge, d.lim.MaxBody))
	}
	buf := make([]byte, n)
	got, err := io.ReadFull(d.r, buf)
	d.off += int64(got)
	if err != nil {
		return nil, d.fail(at, d.readErr(err))
	}
	d.frames++
	return buf, nil
}

// uvarint reads a canonical (shortest-form) unsigned varint.
func (d *Decoder) uvarint() (uint64, error) {
	var x uint64
	for i := 0; i < binary.MaxVarintLen64; i++ {
		b, err := d.r.ReadByte()
		if err != nil {
			return 0, d.readErr(err)
		}
		d.off++
		if i == binary.MaxVarintLen64-1 && b > 1 {
			return 0, fmt.Errorf("%w: varint overflows 64 bits", ErrMalformed)
		}
		if b < 0x80 {
			if b == 0 && i > 0 {
				return 0, fmt.Errorf("%w: varint not in its shortest form", ErrMalformed)
			}
			return x | uint64(b)<<(7*i), nil
		}
		x |= uint64(b&0x7f) << (7 * i)
	}
	return 0, fmt.Errorf("%w: varint overflows 64 bits", ErrMalformed)
}

// SplitPositioned splits a pull frame into its position and event bytes.
func SplitPositioned(frame []byte) (uint64, []byte, error) {
	pos, n := binary.Uvarint(frame)
	switch {
	case n <= 0:
		return 0, nil, fmt.Errorf("%w: bad position varint", ErrMalformed)
	case n > 1 && frame[n-1] == 0:
		return 0, nil, fmt.Errorf("%w: position varint not in its shortest form", ErrMalformed)
	case pos == 0:
		return 0, nil, fmt.Errorf("%w: position 0", ErrMalformed)
	case n == len(frame):
		return 0, nil, fmt.Errorf("%w: frame holds a position and no event", ErrMalformed)
	}
	return pos, frame[n:], nil
}
