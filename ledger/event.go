package ledger

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/ghsync/ghsync/clocks"
)

// MaxOrigin is the largest synchronisation_id: central is 0, satellites
// 1..511, the range the 2014 engine's 512-bit instance mask fixed and that
// GNU Health administrators already use.
const MaxOrigin = 511

// Op is what happened to a record.
type Op uint8

// The three record operations Tryton performs.
const (
	OpCreate Op = 1
	OpWrite  Op = 2
	OpDelete Op = 3
)

func (o Op) String() string {
	switch o {
	case OpCreate:
		return "create"
	case OpWrite:
		return "write"
	case OpDelete:
		return "delete"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// ParseOp reads the names String writes.
func ParseOp(s string) (Op, error) {
	for _, o := range []Op{OpCreate, OpWrite, OpDelete} {
		if s == o.String() {
			return o, nil
		}
	}
	return 0, fmt.Errorf("ledger: unknown op %q (want create, write or delete)", s)
}

// Hash is a SHA-256 digest of an event's canonical encoding.
type Hash [32]byte

// IsZero reports whether h is unset (the PrevHash of an origin's first event).
func (h Hash) IsZero() bool { return h == Hash{} }

func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// Short is the first 12 hex digits, enough to tell hashes apart in a listing.
func (h Hash) Short() string { return hex.EncodeToString(h[:6]) }

// Event is one immutable record change. Every field but Hash is covered by
// Hash; PrevHash links it to the previous event of the same origin, so a
// changed or missing event breaks the chain and is detected.
type Event struct {
	ID        uuid.UUID        // UUIDv7; the idempotency key
	Origin    uint16           // synchronisation_id of the writing instance, 0..MaxOrigin
	OriginSeq uint64           // 1, 2, 3... per origin, gap-free at the origin
	HLC       clocks.Timestamp // when, as a hybrid logical clock reading
	Model     string           // Tryton model, e.g. "gnuhealth.patient"
	Key       string           // network-wide identity: natural, composite (JoinKey) or UUID
	Op        Op
	// Fields holds only the fields the change set, by Tryton field name.
	Fields map[string]Value
	// Base holds, per changed field, the HLC of the value this write
	// replaced (zero if none), so a merge can tell a concurrent overwrite
	// from a later one.
	Base     map[string]clocks.Timestamp
	User     string // Tryton login of whoever made the change
	Tx       uint64 // origin transaction id: events of one transaction apply together
	PrevHash Hash
	Hash     Hash
}

// Saw is the reserved field a write or a delete of a natural key carries
// when its writer had seen the record deleted (its value an Int: the HLC
// of the latest delete the writer knew of): the record was in a later life
// there (merge.Revives). Without it the change was made on the record's
// first life. Tryton field names never start with '_'.
const Saw = "_saw"

// RenamedTo is the reserved field the delete half of a key change carries:
// a reference to the key the record moved to, so two concurrent changes of
// one key (the record then lives under both new keys) are a conflict an
// auditor sees. A delete carries no field but Saw, RenamedTo and Lender.
const RenamedTo = "_renamed_to"

// Lender is the reserved field every event of a record whose key borrows
// another record's key carries once that other record (the lender: a
// patient's person) is in a later life than its first: an Int, the HLC of
// the delete that ended the lender's previous life, as the writer knew
// it. A person's code given to someone else then keys two different
// patient records; the merge keeps them apart by it (merge.Lender), and
// references to such records name it too (Ref.Lender).
const Lender = "_lender"

// Stream is the record's history this event belongs to.
func (e *Event) Stream() Stream { return Stream{Model: e.Model, Key: e.Key} }

// Compare is the total order of events used everywhere a winner must be
// chosen: by HLC, then origin, then id. Every replica decides alike.
func (e *Event) Compare(f *Event) int {
	if c := e.HLC.Compare(f.HLC); c != 0 {
		return c
	}
	if e.Origin != f.Origin {
		return cmpInt(int64(e.Origin), int64(f.Origin))
	}
	return bytes.Compare(e.ID[:], f.ID[:])
}

// Validate checks every rule of the format that an event can break on its
// own. The error wraps ErrInvalidEvent.
func (e *Event) Validate() error {
	if err := e.validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidEvent, err)
	}
	return nil
}

func (e *Event) validate() error {
	switch {
	case e.ID == uuid.Nil:
		return fmt.Errorf("id is nil")
	case e.ID.Version() != 7 || e.ID.Variant() != uuid.RFC4122:
		return fmt.Errorf("id %s is not a UUIDv7", e.ID)
	case e.Origin > MaxOrigin:
		return fmt.Errorf("origin %d outside 0..%d", e.Origin, MaxOrigin)
	case e.OriginSeq == 0:
		return fmt.Errorf("origin_seq is 0 (sequences start at 1)")
	case e.HLC.IsZero():
		return fmt.Errorf("hlc is zero")
	case e.OriginSeq == 1 && !e.PrevHash.IsZero():
		return fmt.Errorf("origin_seq 1 must have a zero prev_hash")
	case len(e.User) > maxUserLen || !utf8.ValidString(e.User):
		return fmt.Errorf("user must be valid UTF-8 of at most %d bytes", maxUserLen)
	}
	if err := ValidateModel(e.Model); err != nil {
		return err
	}
	if err := validateKey(e.Key); err != nil {
		return err
	}
	switch e.Op {
	case OpCreate:
	case OpWrite:
		if len(e.Fields) == 0 {
			return fmt.Errorf("write changes no field")
		}
	case OpDelete:
		bad := ""
		for name := range e.Fields {
			if name != Saw && name != RenamedTo && name != Lender && (bad == "" || name < bad) {
				bad = name // the first by name: the same message every time
			}
		}
		if bad != "" {
			return fmt.Errorf("delete carries field %s (a delete carries at most %s, %s and %s)", bad, Saw, RenamedTo, Lender)
		}
		if len(e.Base) != 0 {
			return fmt.Errorf("delete carries base clocks")
		}
	default:
		return fmt.Errorf("unknown op %d", e.Op)
	}
	for name, v := range e.Fields {
		if err := validateFieldName(name); err != nil {
			return err
		}
		if err := v.validate(); err != nil {
			return fmt.Errorf("field %s: %w", name, err)
		}
	}
	for name := range e.Base {
		if _, ok := e.Fields[name]; !ok {
			return fmt.Errorf("base names field %s, which the event does not change", name)
		}
	}
	return nil
}

// validate re-checks a Value's invariants; a Value built by the
// constructors always passes, but one built by a decoder must be checked.
func (v Value) validate() error {
	switch v.kind {
	case KindNull, KindInt, KindString, KindBytes:
	case KindBool:
		if v.i != 0 && v.i != 1 {
			return fmt.Errorf("bad bool")
		}
	case KindDecimal:
		if c, err := canonicalDecimal(v.s); err != nil || c != v.s {
			return fmt.Errorf("decimal not canonical")
		}
	case KindDate:
		if v.i < minDate.Unix()/86400 || v.i > maxDate.Unix()/86400 {
			return fmt.Errorf("date outside years 1..9999")
		}
	case KindDateTime:
		if v.i < minDate.UnixMicro() || v.i > maxDate.UnixMicro() {
			return fmt.Errorf("datetime outside years 1..9999")
		}
	case KindRef:
		r, _ := v.AsRef()
		return validateRef(r)
	case KindRefSet:
		for i, r := range v.refs {
			if err := validateRef(r); err != nil {
				return err
			}
			if i > 0 && compareRefs(v.refs[i-1], r) >= 0 {
				return fmt.Errorf("refset not sorted or has duplicates")
			}
		}
	default:
		return fmt.Errorf("unknown value kind %d", v.kind)
	}
	return nil
}

// Seal links e to its origin's previous event and computes its hash. After
// Seal the event must not change: any change is detected as ErrHashMismatch.
func (e *Event) Seal(prev Hash) error {
	_, err := e.SealEncoded(prev)
	return err
}

// SealEncoded is Seal returning the canonical encoding it hashed, which
// AppendEncoded stores as it is: an event sealed and appended at once is
// then validated and encoded once, not twice.
func (e *Event) SealEncoded(prev Hash) ([]byte, error) {
	e.PrevHash = prev
	if err := e.Validate(); err != nil {
		return nil, eventErr(e, 0, err)
	}
	payload, err := Marshal(e)
	if err != nil {
		return nil, eventErr(e, 0, err)
	}
	e.Hash = sha256.Sum256(payload)
	return payload, nil
}

// String is a one-line summary for people; it shows no field values.
func (e *Event) String() string {
	names := slices.Sorted(maps.Keys(e.Fields))
	return fmt.Sprintf("%s %s o%d#%d %s %s [%s]", e.HLC, e.Op, e.Origin, e.OriginSeq, e.Model, e.Key, strings.Join(names, ","))
}
