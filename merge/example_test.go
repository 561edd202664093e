package merge_test

import (
	"fmt"

	"github.com/google/uuid"

	"github.com/ghsync/ghsync/clocks"
	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/merge"
)

func Example() {
	ev := func(origin uint16, hlc clocks.Timestamp, op ledger.Op, phone string, base clocks.Timestamp) *ledger.Event {
		e := &ledger.Event{ID: uuid.Must(uuid.NewV7()), Origin: origin, HLC: hlc, Op: op}
		if op != ledger.OpDelete {
			e.Fields = map[string]ledger.Value{"phone": ledger.String(phone)}
			e.Base = map[string]clocks.Timestamp{"phone": base}
		}
		return e
	}
	created := ev(1, 10, ledger.OpCreate, "555-0100", 0)
	central := ev(0, 20, ledger.OpWrite, "555-0199", 10)   // saw the create
	satellite := ev(2, 21, ledger.OpWrite, "555-0142", 10) // concurrent with central

	// Any order, any duplicates: the same state.
	var s merge.State
	for _, e := range []*ledger.Event{satellite, central, created, satellite} {
		s.Apply(e)
	}
	for _, p := range []merge.Policy{{}, {Default: merge.CentralWins}} {
		fmt.Println(p.Default, s.Values(p)["phone"])
		for _, c := range s.Conflicts(p) {
			fmt.Printf("  %s: o%d's %s lost to o%d's %s (%s)\n", c.Field,
				c.Loser.Stamp.Origin, c.Loser.Value, c.Winner.Stamp.Origin, c.Winner.Value, c.Reason)
		}
	}
	// Output:
	// last-writer-wins "555-0142"
	//   phone: o0's "555-0199" lost to o2's "555-0142" (concurrent write)
	// central-wins "555-0199"
	//   phone: o2's "555-0142" lost to o0's "555-0199" (central only)
}
