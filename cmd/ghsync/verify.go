package main

import (
	"errors"
	"fmt"

	"github.com/ghsync/ghsync/ledger"
)

// errVerifyFailed makes the exit status 1 after the report was printed.
var errVerifyFailed = errors.New("ledger verification failed")

// VerifyCmd checks a ledger and says precisely where it breaks.
type VerifyCmd struct {
	Complete []uint16 `help:"Origins whose history must be complete here (e.g. this instance's own id; at central, every satellite): missing sequence numbers count as breaks." sep:","`
}

func (c *VerifyCmd) Run(env *Env) error {
	store, err := openLedger(env.Ctx, env.Ledger)
	if err != nil {
		return err
	}
	defer store.Close()
	r, err := ledger.Verify(env.Ctx, store)
	if err != nil {
		return err
	}
	w := env.Out
	fmt.Fprintf(w, "ledger %s: %s, head %d\n", env.Ledger, count(r.Events, "event", "events"), r.Head)
	ok := r.OK()
	for _, b := range r.Corrupt {
		fmt.Fprintf(w, "  CORRUPT %s\n", b)
	}
	for _, b := range r.Positions {
		fmt.Fprintf(w, "  HOLE    %s\n", b)
	}
	for _, b := range r.Columns {
		fmt.Fprintf(w, "  ALTERED %s\n", b)
	}
	for _, o := range r.Origins {
		switch {
		case o.Break != nil:
			held := ""
			if o.Held > o.Verified {
				held = fmt.Sprintf(", %d held in all", o.Held)
			}
			fmt.Fprintf(w, "  origin %3d: BREAK at %s (%s verified before it%s)\n", o.Origin, o.Break, count(o.Verified, "event", "events"), held)
		case o.Missing > 0:
			state := "partial history (normal for another instance's events on a satellite)"
			for _, want := range c.Complete {
				if want == o.Origin {
					state, ok = "INCOMPLETE: must be complete here", false
				}
			}
			fmt.Fprintf(w, "  origin %3d: %d of seq 1..%d held, %d missing: %s\n", o.Origin, o.Held, o.Seq, o.Missing, state)
		default:
			fmt.Fprintf(w, "  origin %3d: %s, seq 1..%d, chain intact\n", o.Origin, count(o.Held, "event", "events"), o.Seq)
		}
	}
	if !ok {
		fmt.Fprintln(w, "verify: FAILED")
		return errVerifyFailed
	}
	fmt.Fprintln(w, "verify: OK")
	return nil
}
