package capture_test

import (
	"fmt"
	"os"
	"strings"

	"github.com/ghsync/ghsync/ledger"
)

// dumpLedger prints the site's ledger events of models, one line each with
// the fields that tell records' lives and moves apart, when
// GHSYNC_TEST_DUMP is set: the first thing to read when a random history
// of userview_network_test.go fails.
func (s *site) dumpLedger(models ...string) {
	if os.Getenv("GHSYNC_TEST_DUMP") == "" {
		return
	}
	recs, err := s.store.ReadAll(ctx(s.t), 0, 1<<20, ledger.Filter{Models: models})
	if err != nil {
		s.t.Logf("dump the ledger of origin %d: %v", s.origin, err)
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "ledger of origin %d:\n", s.origin)
	for _, r := range recs {
		e := r.Event
		fmt.Fprintf(&b, "%d %s %s o%d#%d %s %s", r.Position, e.HLC, e.Op, e.Origin, e.OriginSeq, e.Model, e.Key)
		for _, n := range []string{"name", "code", "patient", "critical_info", "comments", "_lender", "_saw", "_revives", "_renamed_to", "_renamed_from"} {
			if v, ok := e.Fields[n]; ok {
				fmt.Fprintf(&b, " %s=%v", n, v)
			}
		}
		b.WriteByte('\n')
	}
	s.t.Log(b.String())
}
