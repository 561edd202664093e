package wire

import (
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Paths of the protocol, version 1.
const (
	PathHeads = "/v1/heads" // GET: the caller's high-water mark at central, and central's head
	PathPush  = "/v1/push"  // POST: frames of the caller's own events, in origin_seq order
	PathPull  = "/v1/pull"  // GET ?after=POS&limit=N&wait=DUR: central's events after POS
	PathNew   = "/v1/new"   // POST NewRequest: a record graph's full history, added to the caller's held set
	// PathStable: POST StableReport, after a complete cycle; the answer
	// is the network's stability frontier (StableResponse).
	PathStable = "/v1/stable"
	// PathOwn: GET ?after=SEQ&limit=N: the caller's own events with
	// origin_seq above SEQ, in origin_seq order, as pull frames (position:
	// central's). What a satellite restored from an older copy of its
	// ledger fetches back (central never sends an origin its own events
	// in a pull).
	PathOwn = "/v1/own"
)

// Media types and headers.
const (
	// ContentType is the media type of a frame stream (push bodies, pull
	// and new responses); the body is gzip-compressed (Content-Encoding: gzip).
	ContentType = "application/vnd.ghsync.events"
	// HeaderTime carries the sender's wall clock (RFC 3339, nanoseconds) on
	// every central response, so a satellite can measure its clock offset.
	HeaderTime = "X-Ghsync-Time"
	// HeaderHead is central's ledger head position.
	HeaderHead = "X-Ghsync-Head"
	// HeaderNext is the pull cursor to use next: the last position central
	// examined for this caller (events filtered out are not scanned again).
	HeaderNext = "X-Ghsync-Next"
	// HeaderStreams counts the streams a new response carries.
	HeaderStreams = "X-Ghsync-Streams"
	// HeaderRoot names the record a /v1/new answer is the graph of, and
	// HeaderNote says what a person should know about how it was found
	// (a PUID that is no longer the patient's current one).
	HeaderRoot = "X-Ghsync-Root"
	HeaderNote = "X-Ghsync-Note"
	// HeaderCentral carries central's identity on every answer to a
	// satellite: the satellite keys its pull cursor by it (not by the
	// URL it reached central at) and refuses another central's answers.
	HeaderCentral = "X-Ghsync-Central"
	// HeaderScope and HeaderWidened carry, on every answer to a
	// satellite, its scope and how many times that scope went from
	// local to all: a satellite that sees the count grow pulls again
	// from position 0 what its old scope left out.
	HeaderScope   = "X-Ghsync-Scope"
	HeaderWidened = "X-Ghsync-Widened"
	// HeaderHighWater carries, on a /v1/own answer, the caller's
	// high-water mark at central: where the caller's own history ends.
	// HeaderNext is then the origin_seq to ask after next.
	HeaderHighWater = "X-Ghsync-High-Water"
)

// Pull bounds.
const (
	DefaultPullLimit = 2_000
	MaxPullLimit     = 10_000
	MaxPullWait      = 60 * time.Second
)

// Scopes say which of central's events a satellite receives.
const (
	ScopeAll   = "all"   // every event but the satellite's own
	ScopeLocal = "local" // reference data, held records, and records referencing them
)

// ValidScope reports whether s is a scope name.
func ValidScope(s string) bool { return s == ScopeAll || s == ScopeLocal }

// Error is the JSON body of every refused request.
type Error struct {
	Error string `json:"error"`
	// Frame is the index of the frame at fault, when one is.
	Frame *int `json:"frame,omitempty"`
}

// QueryAt is the /v1/heads parameter that asks for the hash of the
// caller's event at that origin_seq (Heads.At and Heads.AtHash): a
// satellite compares it with its own to know whether its ledger is a
// prefix of what central holds of its origin.
const QueryAt = "at"

// Heads answers GET /v1/heads.
type Heads struct {
	Origin      uint16    `json:"origin"`     // the caller's synchronisation id
	Name        string    `json:"name"`       // the caller's registered name
	Scope       string    `json:"scope"`      // the caller's scope
	HighWater   uint64    `json:"high_water"` // highest origin_seq of the caller central holds
	Count       uint64    `json:"count"`      // events of the caller central holds
	Hash        string    `json:"hash,omitempty"`
	Head        uint64    `json:"head"` // central's ledger head
	HeldEvents  int       `json:"held_events"`
	CentralTime time.Time `json:"central_time"`
	// Central is central's identity (see HeaderCentral); empty from a
	// central older than identities.
	Central string `json:"central,omitempty"`
	// Widened counts the caller's scope widenings (see HeaderWidened).
	Widened uint64 `json:"widened,omitempty"`
	// At and AtHash answer ?at=SEQ: the hash of the caller's event at
	// origin_seq At as central holds it; AtHash is empty when central
	// does not hold that event (or is older than the parameter).
	At     uint64 `json:"at,omitempty"`
	AtHash string `json:"at_hash,omitempty"`
}

// Push statuses, per event.
const (
	StatusAccepted   = "accepted"    // newly stored
	StatusDuplicate  = "duplicate"   // already held; nothing changed
	StatusRejected   = "rejected"    // refused: Error says why
	StatusNotApplied = "not-applied" // follows a rejected or held event of the chain: send it again later
	StatusHeld       = "held"        // stored aside at central (clock too far ahead), not in the ledger
	StatusBounded    = "bounded"     // stored behind a clock bound (clock too far ahead): merges at central's time
)

// PushResult is the answer about one event that was not simply accepted.
type PushResult struct {
	Index  int    `json:"index"`
	ID     string `json:"id"`
	Seq    uint64 `json:"seq"`
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
	// SkewMillis is how far the event's clock is ahead of central's, for held events.
	SkewMillis int64 `json:"skew_ms,omitempty"`
}

// PushResponse answers POST /v1/push.
type PushResponse struct {
	Origin      uint16       `json:"origin"`
	HighWater   uint64       `json:"high_water"` // the caller's high-water mark at central after the push
	Accepted    int          `json:"accepted"`
	Duplicates  int          `json:"duplicates"`
	Held        int          `json:"held"`
	Bounded     int          `json:"bounded"` // accepted, behind a clock bound
	Rejected    int          `json:"rejected"`
	NotApplied  int          `json:"not_applied"`
	Results     []PushResult `json:"results"` // every event not accepted, in index order
	CentralTime time.Time    `json:"central_time"`
}

// StableReport is what a satellite vouches for after a complete sync
// cycle (POST /v1/stable): central holds every event of its origin
// stamped at or before HLC, none it stamps later will be at or before
// HLC, and its Tryton tables reflect every event of central's ledger up
// to position Applied. Central derives the stability frontier from all
// instances' reports (ARCHITECTURE.md, "Stability and compaction").
type StableReport struct {
	HLC     uint64 `json:"hlc"`     // a clocks.Timestamp
	Applied uint64 `json:"applied"` // a central ledger position
}

// StableResponse answers POST /v1/stable.
type StableResponse struct {
	// Frontier is the stability frontier (a clocks.Timestamp): every
	// write stamped at or before it has reached every instance. Zero
	// while some instance has not reported.
	Frontier    uint64    `json:"frontier"`
	CentralTime time.Time `json:"central_time"`
}

// NewRequest asks central for a record graph (POST /v1/new): either a
// patient by PUID (party.party's ref) or one record by model and key.
type NewRequest struct {
	Patient string `json:"patient,omitempty"`
	Model   string `json:"model,omitempty"`
	Key     string `json:"key,omitempty"`
	// Depth bounds how many steps of "records referencing it" are
	// followed from the root (default 4, at most 8).
	Depth int `json:"depth,omitempty"`
}

// Validate checks the request's shape.
func (r NewRequest) Validate() error {
	switch {
	case r.Patient != "" && (r.Model != "" || r.Key != ""):
		return fmt.Errorf("give either patient or model and key, not both")
	case r.Patient == "" && (r.Model == "" || r.Key == ""):
		return fmt.Errorf("give a patient (PUID) or a model and key")
	case r.Depth < 0 || r.Depth > 8:
		return fmt.Errorf("depth %d outside 0..8", r.Depth)
	}
	return nil
}

// BearerToken extracts the token of an "Authorization: Bearer <token>" header.
func BearerToken(h http.Header) (string, bool) {
	v := h.Get("Authorization")
	scheme, tok, ok := strings.Cut(v, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// FormatTime writes a time as HeaderTime carries it.
func FormatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// ParseTime reads HeaderTime.
func ParseTime(s string) (time.Time, error) { return time.Parse(time.RFC3339Nano, s) }
