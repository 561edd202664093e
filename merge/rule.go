package merge

import (
	"fmt"
	"strconv"
)

// Rule says how concurrent and successive writes of one field combine.
type Rule uint8

// The merge rules. The zero Rule is LastWriterWins.
const (
	LastWriterWins Rule = iota // default: per field, the write with the greatest Stamp wins
	FirstWins                  // write-once: the write with the smallest Stamp wins
	Max                        // greatest value wins (ties: greatest Stamp), e.g. last visit date
	Min                        // smallest value wins (ties: greatest Stamp)
	Union                      // Many2Many: add-wins observed-remove set of refs (values are ledger RefSet)
	CentralWins                // writes from origin 0 beat all others; LWW within each class
	ruleEnd
)

var ruleNames = [...]string{"last-writer-wins", "first-wins", "max", "min", "union", "central-wins"}

func (r Rule) String() string {
	if r < ruleEnd {
		return ruleNames[r]
	}
	return "rule(" + strconv.Itoa(int(r)) + ")"
}

// ParseRule reads the names String writes.
func ParseRule(s string) (Rule, error) {
	for r := Rule(0); r < ruleEnd; r++ {
		if s == ruleNames[r] {
			return r, nil
		}
	}
	return 0, fmt.Errorf("merge: unknown rule %q (want last-writer-wins, first-wins, max, min, union or central-wins)", s)
}

// Policy is a model's merge rules.
type Policy struct {
	Default     Rule            // rule for fields not listed
	Fields      map[string]Rule // per-field exceptions
	OriginOwned bool            // only the record's creating origin may change it
}

// Rule is the rule for field. A Rule outside the defined set (a corrupt
// configuration) merges as LastWriterWins; configurations should be read
// with ParseRule, which refuses it.
func (p Policy) Rule(field string) Rule {
	r, ok := p.Fields[field]
	if !ok {
		r = p.Default
	}
	if r >= ruleEnd {
		return LastWriterWins
	}
	return r
}

// Reason says why a write lost.
type Reason uint8

// The reasons a write can lose and be reported as a Conflict.
const (
	ConcurrentWrite Reason = iota // overwritten by a write that had not seen it, with another value
	WriteOnce                     // a FirstWins field already had another value
	CentralOnly                   // a CentralWins field: central's value beats this satellite write
	NotOwner                      // OriginOwned model: the writer is not the creating origin
	RecordDeleted                 // written after the record's delete (by Stamp)
	ConcurrentMove                // a delete of the life that disagrees with its first on where the record went (RenamedTo)
	reasonEnd
)

var reasonNames = [...]string{"concurrent write", "write once", "central only", "not owner", "record deleted", "concurrent move"}

func (r Reason) String() string {
	if r < reasonEnd {
		return reasonNames[r]
	}
	return "reason(" + strconv.Itoa(int(r)) + ")"
}

// ParseReason reads the names String writes.
func ParseReason(s string) (Reason, error) {
	for r := Reason(0); r < reasonEnd; r++ {
		if s == reasonNames[r] {
			return r, nil
		}
	}
	return 0, fmt.Errorf("merge: unknown conflict reason %q", s)
}
