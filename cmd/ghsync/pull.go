package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/ghsync/ghsync/satellite"
	"github.com/ghsync/ghsync/wire"
)

// PullCmd fetches central's events for this satellite.
type PullCmd struct {
	Remote
	Wait   time.Duration `help:"When central has nothing new, wait up to this long for something to arrive (at most 60s)." default:"0s"`
	Follow bool          `short:"f" help:"Keep pulling (long polls) until interrupted, as a service would, backing off while central is unavailable."`
	// After a scope change central does not resend what it left out.
	FromStart bool `name:"from-start" help:"Ask central for its whole ledger again, as this satellite's scope now covers it (after its scope widened: central satellite add ID --scope all); what is held here is skipped."`
}

func (c *PullCmd) Run(env *Env) error {
	if c.Wait < 0 || c.Wait > wire.MaxPullWait {
		return fmt.Errorf("--wait %v outside 0..%v", c.Wait, wire.MaxPullWait)
	}
	cl, store, err := c.dial(env, "pull")
	if err != nil {
		return err
	}
	defer store.Close()
	defer cl.Close()
	if c.FromStart {
		if err := cl.Rewind(env.Ctx); err != nil {
			return err
		}
	}
	if !c.Follow {
		st, err := cl.Pull(env.Ctx, c.Wait)
		if err != nil {
			return err
		}
		fmt.Fprintf(env.Out, "pulled %s (%d new here) in %s; at central position %d of %d; clock offset to central %v\n",
			count(st.Received, "event", "events"), st.Appended, count(st.Requests, "request", "requests"), st.Cursor, st.Head, cl.Offset().Round(time.Millisecond))
		return nil
	}
	wait := c.Wait
	if wait == 0 {
		wait = 30 * time.Second
	}
	backoff := time.Second
	for env.Ctx.Err() == nil {
		st, err := cl.Pull(env.Ctx, wait)
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
			env.Log.Info("pulled", "events", st.Received, "new", st.Appended, "cursor", st.Cursor, "head", st.Head)
		}
	}
	return nil
}

// NewCmd fetches a patient (or any record) and everything about it from
// central, for a patient who arrives at this clinic for the first time.
// --patient and --model are not tagged required: kong's usage line would
// then ask for both; Validate asks for one.
type NewCmd struct {
	Remote
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
	cl, store, err := c.dial(env, "new")
	if err != nil {
		return err
	}
	defer store.Close()
	defer cl.Close()
	st, err := cl.New(env.Ctx, satellite.NewRequest{Patient: c.Patient, Model: c.Model, Key: c.Key, Depth: c.Depth})
	if err != nil {
		return err
	}
	if st.Note != "" {
		fmt.Fprintf(env.Out, "note: %s\n", st.Note)
	}
	fmt.Fprintf(env.Out, "fetched %s and %s about it: %s (%d new here); they now come with every pull\n",
		st.Root, count(st.Streams-1, "record", "records"), count(st.Received, "event", "events"), st.Appended)
	return nil
}
