package main

import (
	"fmt"
)

// RecoverCmd fetches back from central this satellite's own events its
// ledger lacks, after the instance was restored from a backup older than
// what it had pushed since, and projects them when the instance's GNU
// Health database is known. sync and run do it by themselves before they
// capture; push refuses until it is done.
type RecoverCmd struct {
	Instance
}

func (c *RecoverCmd) Run(env *Env) error {
	s, done, err := c.open(env, "recover", siteOptions{linked: true})
	if err != nil {
		return err
	}
	defer done()
	st, projected, err := s.Recover(env.Ctx)
	if err != nil {
		return err
	}
	if st.Events == 0 {
		fmt.Fprintf(env.Out, "nothing to recover: central holds no event of origin %d that this ledger lacks (it holds seqs up to %d)\n", c.ID, st.Through)
		return nil
	}
	fmt.Fprintf(env.Out, "recovered %s of origin %d from central (seqs %d..%d) in %s: this ledger was restored from an older copy; it now holds this origin through seq %d, as central does",
		count(st.Events, "event", "events"), c.ID, st.From+1, st.Through, count(st.Requests, "request", "requests"), st.Through)
	if c.Target != "" {
		fmt.Fprintf(env.Out, "; projected %d\n", projected)
	} else {
		fmt.Fprintln(env.Out, "\nnot projected (no --target or [database] uri): ghsync sync, or ghsync project --target T, applies them to GNU Health")
	}
	return nil
}
