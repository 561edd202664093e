package bundle

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinels, tested with errors.Is. Reading and importing wrap them in an
// *Error that says which file and where.
var (
	// ErrNotBundle: the file does not start with Magic.
	ErrNotBundle = errors.New("not a ghsync bundle")
	// ErrNewerVersion: the bundle's format version is newer than this
	// build reads.
	ErrNewerVersion = errors.New("bundle format version is newer than this build reads")
	// ErrTruncated: the file ends before the bundle does.
	ErrTruncated = errors.New("bundle is truncated")
	// ErrMalformed: the bytes do not have the bundle's structure (a bad
	// length, a bad header field, a missing trailer, bytes after it...).
	ErrMalformed = errors.New("bundle is malformed")
	// ErrBadEvent: an event's bytes fail ledger.Unmarshal, or the event
	// does not belong to the selection the header declares.
	ErrBadEvent = errors.New("bundle holds an invalid event")
	// ErrChecksum: the SHA-256 in the trailer is not the SHA-256 of the
	// bytes before it: the file was altered or damaged.
	ErrChecksum = errors.New("bundle checksum does not match its content")
	// ErrUnsigned: the bundle carries no signature.
	ErrUnsigned = errors.New("bundle is not signed")
	// ErrUntrusted: the bundle is signed by a key that is not trusted.
	ErrUntrusted = errors.New("bundle is signed by a key that is not trusted")
	// ErrBadSignature: the signature does not verify under the key the
	// trailer names.
	ErrBadSignature = errors.New("bundle signature is not valid")
	// ErrRefused: the ledger refuses (or would refuse) an event; the error
	// also wraps the ledger's own error (ledger.ErrChainBroken,
	// ledger.ErrConflict...).
	ErrRefused = errors.New("the ledger refuses an event of the bundle")
	// ErrChanged: the file changed between verification and import.
	ErrChanged = errors.New("bundle file changed after it was verified")
)

// Error says what was wrong with a bundle and where.
type Error struct {
	Name   string // the file, as the caller named it ("" if unknown)
	Offset int64  // byte offset of the problem in the file, -1 if it has none
	Event  uint64 // 1-based index of the event concerned, 0 if none
	Events uint64 // the bundle's event count, when known (0 otherwise)
	Err    error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("bundle")
	if e.Name != "" {
		fmt.Fprintf(&b, " %s", e.Name)
	}
	var where []string
	if e.Event > 0 {
		if e.Events > 0 {
			where = append(where, fmt.Sprintf("event %d of %d", e.Event, e.Events))
		} else {
			where = append(where, fmt.Sprintf("event %d", e.Event))
		}
	}
	if e.Offset >= 0 {
		where = append(where, fmt.Sprintf("byte offset %d", e.Offset))
	}
	if len(where) > 0 {
		b.WriteString(" (" + strings.Join(where, ", ") + ")")
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }
