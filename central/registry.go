package central

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/ghsync/ghsync/clocks"
	"github.com/ghsync/ghsync/ledger"
)

// Registry is central's own bookkeeping, kept in the same database as its
// ledger (SQLite: ghsync_* tables in the ledger file; PostgreSQL: tables in
// the ghsync schema): the satellites and their token hashes, each
// satellite's held set, the events held back for their clock, and an
// index of references and PUIDs that answers /v1/new without scanning the
// ledger. OpenRegistry opens the SQL implementation for either backend;
// both pass one contract test.
type Registry interface {
	// AddSatellite registers s (TokenHash set). It fails with ErrExists
	// while an active satellite has s.ID; a revoked one is replaced, and
	// its stability report forgotten.
	AddSatellite(ctx context.Context, s Satellite) error
	// Satellites lists every satellite, revoked ones too, by id.
	Satellites(ctx context.Context) ([]Satellite, error)
	// SatelliteByToken finds the satellite whose token hashes to h, or ErrNotFound.
	SatelliteByToken(ctx context.Context, h TokenHash) (Satellite, error)
	// RevokeSatellite marks id revoked at at; ErrNotFound if unknown.
	RevokeSatellite(ctx context.Context, id uint16, at time.Time) error
	// ChangeSatellite changes an active satellite's name or scope (an
	// empty field is left as it is), keeping its token, its held set and
	// its stability report: the instance goes on running as it was. A
	// change from scope local to all counts one more widening
	// (Satellite.Widened), which tells the satellite to fetch what its
	// old scope left out. It returns the satellite before and after;
	// ErrNotFound if id is not active.
	ChangeSatellite(ctx context.Context, id uint16, c SatelliteChange) (before, after Satellite, err error)

	// Identity is central's identity: a random id made the first time
	// the registry was opened in this database, kept with the ledger.
	// Satellites key their pull cursor by it rather than by central's
	// URL, and refuse a central whose identity is not the one their
	// cursor belongs to.
	Identity(ctx context.Context) (string, error)

	// Hold adds streams to satellite's held set. A stream already held
	// keeps its join position; Expand only ever turns on.
	Hold(ctx context.Context, satellite uint16, streams []HeldStream) error
	// HeldAmong returns which of streams satellite holds.
	HeldAmong(ctx context.Context, satellite uint16, streams []ledger.Stream) (map[ledger.Stream]HeldStream, error)
	// JoinedBetween lists the streams satellite's held set gained at
	// central positions in (after, through].
	JoinedBetween(ctx context.Context, satellite uint16, after, through uint64) ([]HeldStream, error)
	// HeldCount is the size of satellite's held set.
	HeldCount(ctx context.Context, satellite uint16) (int, error)

	// KeepEvents stores events held back from the ledger; an (origin,
	// seq) already kept is left as it is. It returns how many were new.
	KeepEvents(ctx context.Context, events []HeldEvent) (int, error)
	// HeldEvents lists kept events in (origin, seq) order, of one origin
	// or, when origin is negative, of all.
	HeldEvents(ctx context.Context, origin int) ([]HeldEvent, error)
	// ForgetEvents drops origin's kept events with seq <= through: the
	// ledger holds them now.
	ForgetEvents(ctx context.Context, origin uint16, through uint64) error

	// IndexPosition is the ledger position the reference index covers.
	IndexPosition(ctx context.Context) (uint64, error)
	// AddToIndex records edges and PUID values read from the ledger up to
	// position through, atomically with the new index position. It fails
	// with ErrIndexMoved if the index position is no longer from.
	AddToIndex(ctx context.Context, from, through uint64, edges []Edge, puids []PUID) error
	// Referrers returns the edges pointing at any of targets.
	Referrers(ctx context.Context, targets []ledger.Stream) ([]Edge, error)
	// Targets returns the edges leaving any of sources.
	Targets(ctx context.Context, sources []ledger.Stream) ([]Edge, error)
	// PartiesByPUID returns the party.party keys whose latest ref is puid.
	PartiesByPUID(ctx context.Context, puid string) ([]string, error)
	// PartiesOnceByPUID returns the party.party keys that any event ever
	// gave ref puid: a patient whose card carries a PUID that lost a
	// merge (a duplicate registration) is still found by it.
	PartiesOnceByPUID(ctx context.Context, puid string) ([]string, error)

	// ReportStable records what an instance last vouched for (see
	// Stability), replacing its previous report.
	ReportStable(ctx context.Context, st Stability) error
	// RaiseStable records st field by field as the greater of it and the
	// recorded report, in one statement (a bundle carried late must not
	// lower what a network report recorded meanwhile); raised is false
	// when neither field grew.
	RaiseStable(ctx context.Context, st Stability) (raised bool, err error)
	// Stabilities lists every instance's last report, by origin.
	Stabilities(ctx context.Context) ([]Stability, error)
	// RaiseFrontier records a stability frontier central derived, unless a
	// greater one is recorded; LastFrontier returns the greatest (0 when
	// none). Central's bundles carry it to instances that never call.
	RaiseFrontier(ctx context.Context, f clocks.Timestamp) error
	LastFrontier(ctx context.Context) (clocks.Timestamp, error)

	// SetClockPolicy records the clock policy serve runs with, and
	// ClockPolicy reads it (ok false when none was recorded), so that
	// events imported from bundles meet the same rule as pushes.
	SetClockPolicy(ctx context.Context, p ClockPolicy) error
	ClockPolicy(ctx context.Context) (p ClockPolicy, ok bool, err error)

	Close() error
}

// ClockPolicy is central's rule for satellites' clocks (Config.MaxAhead
// and Config.Skew).
type ClockPolicy struct {
	MaxAhead time.Duration
	Skew     SkewPolicy
}

// Registry errors.
var (
	ErrNotFound   = errors.New("central: not found")
	ErrExists     = errors.New("central: already exists")
	ErrIndexMoved = errors.New("central: reference index moved concurrently")
)

// TokenHash is the SHA-256 of a satellite's bearer token: all central
// stores of it.
type TokenHash [32]byte

// HashToken hashes a bearer token as central stores it.
func HashToken(token string) TokenHash { return sha256.Sum256([]byte(token)) }

// TokenPrefix begins every token NewToken makes: base64url text may begin
// with '-', and a token given as `--token -x…` then reads as a flag (one
// token in 64 failed so); the prefix also tells a leaked token for what
// it is.
const TokenPrefix = "ghsync_"

// NewToken returns a random 32-byte token, base64url without padding
// after TokenPrefix, and its hash. The token is shown once; only the hash
// is stored. Tokens issued before the prefix keep working.
func NewToken() (string, TokenHash, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", TokenHash{}, fmt.Errorf("new token: %w", err)
	}
	tok := TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return tok, HashToken(tok), nil
}

// Satellite is one registered instance.
type Satellite struct {
	ID        uint16
	Name      string
	Scope     string // wire.ScopeAll or wire.ScopeLocal
	TokenHash TokenHash
	Created   time.Time
	Revoked   time.Time // zero while active
	// Widened counts the times the satellite's scope went from local to
	// all (ChangeSatellite, or AddSatellite over a revoked registration).
	// Every response to it carries the count (wire.HeaderWidened): a
	// satellite that sees it grow pulls central's ledger again from the
	// start, since its cursor passed events its old scope left out.
	Widened uint64
}

// SatelliteChange is what ChangeSatellite changes; empty fields stay.
type SatelliteChange struct {
	Name  string
	Scope string
}

// Active reports whether the satellite's token is still accepted.
func (s Satellite) Active() bool { return s.Revoked.IsZero() }

// HeldStream is one record of a satellite's held set.
type HeldStream struct {
	Stream ledger.Stream
	// Expand: records that reference this one join the held set too (a
	// patient's records); off for shared records a patient merely points
	// at (an institution, a doctor), which would otherwise pull in
	// everyone who points at them.
	Expand bool
	// Join is the central position at which the stream joined: a pull that
	// covers it also sends the stream's earlier events. 0 when the history
	// was delivered otherwise (by /v1/new).
	Join uint64
}

// HeldEvent is an event central kept out of its ledger (its clock was too
// far ahead of central's, or it follows such an event in its chain),
// stored durably until it becomes acceptable or an administrator releases it.
type HeldEvent struct {
	Origin     uint16
	Seq        uint64
	ID         uuid.UUID
	Model, Key string
	HLC        clocks.Timestamp
	Payload    []byte // canonical bytes, as received
	Reason     string
	SkewMillis int64
	Received   time.Time
}

// Stability is an instance's last report after a complete sync cycle
// (wire.StableReport): central holds every event of Origin stamped at or
// before HLC, and none Origin stamps later will be; its Tryton tables
// reflect central's ledger up to position Applied. The stability
// frontier is derived from every active instance's report.
type Stability struct {
	Origin   uint16
	HLC      clocks.Timestamp
	Applied  uint64
	Reported time.Time
}

// Edge is a reference from one record (any version of it) to another.
type Edge struct{ From, To ledger.Stream }

// PUID is the value a party.party event gave its ref field (the PUID),
// with the event's order stamp; the index keeps the latest per party.
// Ref is "" when the event cleared it or deleted the party.
type PUID struct {
	Party  string
	Ref    string
	HLC    clocks.Timestamp
	Origin uint16
	ID     uuid.UUID
}
