package models

import (
	"errors"
	"fmt"

	"github.com/ghsync/ghsync/merge"
)

// ErrKeyNotNetworkUnique is what CheckNetworkKey's errors match
// (errors.Is): a key value that other instances generate too.
var ErrKeyNotNetworkUnique = errors.New("models: key is not network-unique")

// The one rule for key values that look like a per-instance counter.
// Check counts the rows it flags (SequenceKeys) before the first
// synchronisation; the capturer refuses to give a network identity from
// such a value (CheckNetworkKey), so that a record created after install
// cannot slip through either. Both go through sequenceKey and
// isPlainNumber / plainNumberSQL, which a test holds to the same answers.

// sequenceKey returns the key field whose values are judged, and whether
// m has one: a single Char key of a model that is neither reference data
// nor central-wins. Reference data and central-wins models (countries,
// pathologies, products) are the same records everywhere, so a numeric
// code there names one shared record, not a local counter's value.
func (m *Model) sequenceKey() (*Field, bool) {
	if m.Kind != UniqueKey || len(m.Key) != 1 || m.Reference || m.Policy.Default == merge.CentralWins {
		return nil, false
	}
	f, ok := m.Field(m.Key[0])
	if !ok || f.Type != Char {
		return nil, false
	}
	return f, true
}

// isPlainNumber reports whether s is what Tryton's default sequences
// generate: ASCII digits only ("1", "0042"), no prefix or suffix.
func isPlainNumber(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// plainNumberSQL is isPlainNumber as an SQL condition on the quoted
// column col: true exactly when the value is not NULL and isPlainNumber.
func plainNumberSQL(col, dialect string) string {
	if dialect == SQLite {
		return fmt.Sprintf("(%s <> '' AND %s NOT GLOB '*[^0-9]*')", col, col)
	}
	return col + ` ~ '^[0-9]+$'`
}

// CheckNetworkKey reports whether a record of m whose key fields hold
// parts (in m.Key's order) may be identified by them across the network.
// It returns nil when they may, else an error matching
// ErrKeyNotNetworkUnique whose message names the value and what the
// administrator can do; it names the value, so it is for this instance's
// own log and status, not for the network.
//
// The capturer calls it before it gives a record a network identity: a
// party coded "1" at two clinics (Tryton's party sequence starts at 1 in
// every database) would otherwise be one network record, and two
// different people would be merged.
func (m *Model) CheckNetworkKey(parts ...string) error {
	f, ok := m.sequenceKey()
	if !ok || len(parts) != 1 || !isPlainNumber(parts[0]) {
		return nil
	}
	return fmt.Errorf("%w: %s %q is a plain number, as a per-instance sequence generates (other instances generate the same ones, so different records would be merged); "+
		"give the record a network-unique %s (an instance prefix on its Tryton sequence, then edit the %s, or GNU Health's uuid-based codes), or identify %s by UUID",
		ErrKeyNotNetworkUnique, f.Name, parts[0], f.Name, f.Name, m.Name)
}
