package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/ghsync/ghsync/satellite"
	"github.com/ghsync/ghsync/wire"
)

// PullCmd fetches central's events for this satellite, and projects them
// when the instance's GNU Health database is known.
type PullCmd struct {
	Instance
	Wait   time.Duration `help:"When central has nothing new, wait up to this long for something to arrive (at most 60s)." default:"0s"`
	Follow bool          `short:"f" help:"Keep pulling (long polls) until interrupted, as a service would, backing off while central is unavailable."`
	// A widening central announces is followed by itself; this is for a
	// central older than that, or a central rebuilt from scratch.
	FromStart bool `name:"from-start" help:"Ask central for its whole ledger again (what is held here is skipped), and follow the central that answers even if this satellite's cursor belongs to another: after its central was rebuilt from scratch, or its scope widened at a central older than this version."`
}

func (c *PullCmd) Run(env *Env) error {
	if c.Wait < 0 || c.Wait > wire.MaxPullWait {
		return fmt.Errorf("--wait %v outside 0..%v", c.Wait, wire.MaxPullWait)
	}
	s, done, err := c.open(env, "pull", siteOptions{linked: true, fromStart: c.FromStart})
	if err != nil {
		return err
	}
	defer done()
	if !c.Follow {
		st, projected, err := s.Pull(env.Ctx, c.Wait)
		if cl := s.Client(); cl != nil && (err == nil || st.Requests > 0) {
			fmt.Fprintf(env.Out, "pulled %s (%d new here) in %s; at central position %d of %d",
				count(st.Received, "event", "events"), st.Appended, count(st.Requests, "request", "requests"), st.Cursor, st.Head)
			if c.Target != "" {
				fmt.Fprintf(env.Out, "; projected %d", projected)
			}
			fmt.Fprintf(env.Out, "; clock offset to central %v\n", cl.Offset().Round(time.Millisecond))
			if st.Rescanned && !c.FromStart {
				fmt.Fprintf(env.Out, "this satellite's scope was widened to %s: it fetched central's ledger again from the start for what its old scope left out\n", cl.Scope())
			}
			if c.Target == "" && st.Appended > 0 {
				fmt.Fprintln(env.Out, "not projected (no --target or [database] uri): ghsync sync, or ghsync project --target T, applies them to GNU Health")
			}
		}
		return err
	}
	wait := c.Wait
	if wait == 0 {
		wait = 30 * time.Second
	}
	backoff := time.Second
	for env.Ctx.Err() == nil {
		st, projected, err := s.Pull(env.Ctx, wait)
		switch {
		case env.Ctx.Err() != nil:
			return nil
		case errors.Is(err, satellite.ErrUnavailable):
			env.Log.Warn("central unavailable; retrying", "in", backoff.String(), "error", err)
			select {
			case <-env.Ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, time.Minute)
			continue
		case err != nil:
			return err
		}
		backoff = time.Second
		if st.Received > 0 {
			env.Log.Info("pulled", "events", st.Received, "new", st.Appended, "projected", projected, "cursor", st.Cursor, "head", st.Head)
		}
	}
	return nil
}

// NewCmd fetches a patient (or any record) and everything about it from
// central, for a patient who arrives at this clinic for the first time,
// and projects it when the instance's GNU Health database is known: the
// nurse expects to see the patient at once, as the 2014 engine's "remote
// party" wizard showed it. --patient and --model are not tagged required:
// kong's usage line would then ask for both; Validate asks for one.
type NewCmd struct {
	Instance
	Patient string `help:"The patient's PUID (party.party's ref field)." xor:"what" noconfig:"" placeholder:"PUID"`
	Model   string `help:"Or a record by model (with --key)." xor:"what" noconfig:"" placeholder:"MODEL"`
	Key     string `help:"The record's network key (with --model)." noconfig:"" placeholder:"KEY"`
	Depth   int    `help:"How many steps of 'records referring to it' to follow from the record (at most 8)." default:"4"`
}

// Validate runs as the command line is parsed: a patient, or a record
// by model and key.
func (c *NewCmd) Validate() error {
	switch {
	case c.Patient != "" && c.Model != "":
		return errors.New("give --patient or --model, not both")
	case c.Patient == "" && c.Model == "":
		return errors.New("give --patient PUID, or --model MODEL with --key KEY")
	case c.Model != "" && c.Key == "":
		return errors.New("--model needs --key KEY, the record's network key")
	case c.Patient != "" && c.Key != "":
		return errors.New("--key goes with --model, not with --patient")
	}
	return nil
}

func (c *NewCmd) Run(env *Env) error {
	s, done, err := c.open(env, "new", siteOptions{linked: true})
	if err != nil {
		return err
	}
	defer done()
	st, projected, err := s.New(env.Ctx, satellite.NewRequest{Patient: c.Patient, Model: c.Model, Key: c.Key, Depth: c.Depth})
	if st.Requests == 0 || st.Root == "" && err != nil {
		return err
	}
	if st.Note != "" {
		fmt.Fprintf(env.Out, "note: %s\n", st.Note)
	}
	fmt.Fprintf(env.Out, "fetched %s and %s about it: %s (%d new here); they now come with every pull\n",
		st.Root, count(st.Streams-1, "record", "records"), count(st.Received, "event", "events"), st.Appended)
	switch {
	case err != nil:
	case c.Target != "":
		fmt.Fprintf(env.Out, "projected %d events: the record is in GNU Health now\n", projected)
	default:
		fmt.Fprintln(env.Out, "not projected (no --target or [database] uri): ghsync sync, or ghsync project --target T, puts it in GNU Health")
	}
	return err
}
