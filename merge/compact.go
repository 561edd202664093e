package merge

import (
	"slices"

	"github.com/ghsync/ghsync/clocks"
)

// Compact drops the writes the state no longer needs, given that every
// write stamped at or before stable is causally stable: every instance
// has applied it, no event stamped at or before stable is still to
// arrive, and every later write was made by an instance that had applied
// them all (so its Base is at or after the winner it replaced). The
// network computes that frontier (see ARCHITECTURE.md, "Stability and
// compaction"); without compaction a busy record's state grows with every
// write for ever.
//
// Compaction keeps Value and Values exactly. It keeps every conflict of
// the writes it keeps, and drops a write only when its own conflict (or
// the absence of one) can no longer change: the caller that stores
// conflicts keeps the ones Conflicts reported before and stops tracking
// them. Under the premise above, the conflicts stored that way equal the
// ones the uncompacted state would report, whatever arrives later.
//
// What is dropped, per field, among writes stamped at or before stable:
//
//   - LastWriterWins: the oldest writes whose fate is settled among stable
//     writes (replaced knowingly, lost to a concurrent write, or written
//     after a stable tombstone), up to the first that is not;
//   - FirstWins, Max, Min: every write but the stable winner;
//   - nothing under Union or CentralWins, nor on an OriginOwned model:
//     their outcomes or conflicts can still change with later writes;
//     nor anything of a revived record (see Revives) or of one whose
//     changes name a later lender life (Lender): each of its lives keeps
//     its own winners and conflicts.
//
// Compaction depends on the policy: after a rule changes, a compacted
// state may lack writes the new rule would use (ghsync rebuild replays the
// ledger). It returns how many writes it dropped.
func (s *State) Compact(p Policy, stable clocks.Timestamp) (dropped int) {
	if p.OriginOwned || stable == 0 || s.Revival() != nil || len(s.Fields[Lender]) > 0 {
		return 0 // a revived record, or one of several lender lives (rare), keeps every life's writes
	}
	for name, ws := range s.Fields {
		if len(ws) < 2 || ws[0].Stamp.HLC > stable || name == Revives || name == Saw || name == RenamedTo || name == Lender {
			continue // a later create may revive the record: kept
		}
		var keep []Write
		switch r := p.Rule(name); r {
		case LastWriterWins:
			keep = ws[s.settled(ws, stable):]
		case FirstWins, Max, Min:
			keep = s.stableWinner(r, ws, stable)
		default:
			continue
		}
		if n := len(ws) - len(keep); n > 0 {
			dropped += n
			s.Fields[name] = slices.Clone(keep)
		}
	}
	return dropped
}

// settled is how many of ws's oldest writes (LastWriterWins) are settled
// among stable writes: each is stable and either after a tombstone, or
// followed by a stable write that decides its fate (see successor). The
// greatest stable eligible write is never settled: no stable write
// follows it.
func (s *State) settled(ws []Write, stable clocks.Timestamp) int {
	var p Policy // LastWriterWins, not origin-owned: only the tombstone makes writes ineligible
	el := s.eligible(p, ws)
	n, e := 0, 0 // ws[n] is el[e] when eligible
	for ; n < len(ws) && ws[n].Stamp.HLC <= stable; n++ {
		if _, out := s.ineligible(p, &ws[n]); out {
			continue // after a stable tombstone: a final conflict
		}
		j, _ := successor(el, e)
		if j < 0 || el[j].Stamp.HLC > stable {
			break
		}
		e++
	}
	return n
}

// stableWinner is ws without its stable writes, except the winner among
// the stable eligible ones (FirstWins, Max, Min). A later write cannot
// change what they lost to: the FirstWins winner is the oldest write, and
// Max and Min report no conflicts.
func (s *State) stableWinner(r Rule, ws []Write, stable clocks.Timestamp) []Write {
	n, _ := slices.BinarySearchFunc(ws, stable, func(w Write, t clocks.Timestamp) int {
		if w.Stamp.HLC <= t {
			return -1
		}
		return 1
	})
	win, ok := winner(r, s.eligible(Policy{}, ws[:n]))
	if !ok {
		return ws[n:] // every stable write is after the tombstone
	}
	return append([]Write{win}, ws[n:]...)
}
