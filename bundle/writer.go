package bundle

import (
	"bufio"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/ghsync/ghsync/ledger"
)

// Writer streams a bundle: the header when it is made, each event as it is
// written, the trailer at Close. It holds one event at a time, whatever
// the bundle's size.
type Writer struct {
	w       *bufio.Writer
	sum     hash.Hash // SHA-256 of every byte written before the trailer
	key     ed25519.PrivateKey
	hdr     Header
	written uint64
	size    int64
	tally   originTally
	lenBuf  [4]byte
	err     error // sticky: a failed write spoils the bundle
	closed  bool
}

// NewWriter writes h's header to w and returns the writer for its events.
// h.Events must be the number of events that will be written: Close
// refuses any other count. key signs the bundle; nil writes an unsigned
// one. h.Version is set to Version and the selection normalised.
func NewWriter(w io.Writer, h Header, key ed25519.PrivateKey) (*Writer, error) {
	if key != nil && len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("bundle: signing key has %d bytes, want %d", len(key), ed25519.PrivateKeySize)
	}
	if h.Origin > ledger.MaxOrigin {
		return nil, fmt.Errorf("bundle: exporting origin %d outside 0..%d", h.Origin, ledger.MaxOrigin)
	}
	sel, err := h.Selection.normalize()
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	h.Selection = sel
	h.Version = Version
	if err := checkStability(h); err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	h.Created = h.Created.UTC().Truncate(1000) // the header keeps microseconds
	fields := appendHeader(nil, h)
	if len(fields) > maxHeaderSize {
		return nil, errors.New("bundle: header too large (too many models selected)")
	}
	bw := &Writer{w: bufio.NewWriterSize(w, 256<<10), sum: sha256.New(), key: key, hdr: h, tally: originTally{}}
	pro := make([]byte, 0, prologueSize+len(fields))
	pro = append(pro, Magic...)
	pro = binary.BigEndian.AppendUint16(pro, Version)
	pro = binary.BigEndian.AppendUint32(pro, uint32(len(fields)))
	pro = append(pro, fields...)
	bw.write(pro)
	return bw, bw.err
}

// Header is the header written (normalised).
func (w *Writer) Header() Header { return w.hdr }

func (w *Writer) write(b []byte) {
	if w.err != nil {
		return
	}
	w.sum.Write(b)
	n, err := w.w.Write(b)
	w.size += int64(n)
	if err != nil {
		w.err = fmt.Errorf("bundle: write: %w", err)
	}
}

// Write appends e, which must be sealed (its Hash the hash of its
// content) and belong to the header's selection.
func (w *Writer) Write(e *ledger.Event) error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return errors.New("bundle: write after Close")
	}
	if w.written == w.hdr.Events {
		return fmt.Errorf("bundle: the header announces %d events; event %d is one too many", w.hdr.Events, w.written+1)
	}
	if !w.hdr.Selection.Match(e) {
		return fmt.Errorf("bundle: event %s is outside the bundle's selection (%s)", e, w.hdr.Selection)
	}
	payload, err := ledger.Marshal(e)
	if err != nil {
		return fmt.Errorf("bundle: encode event %s: %w", e.ID, err)
	}
	if ledger.HashOf(payload) != e.Hash {
		return fmt.Errorf("bundle: event %s (origin %d seq %d): %w: content does not match its hash", e.ID, e.Origin, e.OriginSeq, ledger.ErrHashMismatch)
	}
	if len(payload) > MaxEventSize {
		return fmt.Errorf("bundle: event %s encodes to %d bytes, more than the %d a bundle holds", e.ID, len(payload), MaxEventSize)
	}
	binary.BigEndian.PutUint32(w.lenBuf[:], uint32(len(payload)))
	w.write(w.lenBuf[:])
	w.write(payload)
	if w.err != nil {
		return w.err
	}
	w.written++
	w.tally.add(e)
	return nil
}

// Close writes the trailer (checksum and signature) and flushes. It does
// not close the underlying writer. It fails, writing no trailer, if fewer
// events were written than the header announced, so a short bundle is
// never a valid one.
func (w *Writer) Close() error {
	if w.closed {
		return w.err
	}
	w.closed = true
	if w.err != nil {
		return w.err
	}
	if w.written != w.hdr.Events {
		w.err = fmt.Errorf("bundle: the header announces %d events but %d were written", w.hdr.Events, w.written)
		w.w.Flush()
		return w.err
	}
	var checksum [32]byte
	w.sum.Sum(checksum[:0])
	t := make([]byte, 0, TrailerSize)
	t = append(t, TrailerMagic...)
	t = append(t, checksum[:]...)
	if w.key != nil {
		t = append(t, schemeEd25519)
		t = append(t, w.key.Public().(ed25519.PublicKey)...)
		t = append(t, ed25519.Sign(w.key, checksum[:])...)
	} else {
		t = append(t, schemeNone)
		t = append(t, make([]byte, ed25519PublicKeySize+ed25519SignatureSize)...)
	}
	n, err := w.w.Write(t)
	w.size += int64(n)
	if err == nil {
		err = w.w.Flush()
	}
	if err != nil {
		w.err = fmt.Errorf("bundle: write: %w", err)
	}
	return w.err
}

// Written is the number of events written so far.
func (w *Writer) Written() uint64 { return w.written }

// Size is the number of bytes written so far (the whole bundle after Close).
func (w *Writer) Size() int64 { return w.size }

// Checksum is the SHA-256 of the bundle before its trailer, valid after Close.
func (w *Writer) Checksum() [32]byte {
	var c [32]byte
	w.sum.Sum(c[:0])
	return c
}

// Origins summarises what was written, per origin.
func (w *Writer) Origins() []OriginSummary { return w.tally.list() }
