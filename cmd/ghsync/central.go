package main

import (
	"errors"
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/ghsync/ghsync/central"
	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/wire"
)

// CentralCmd administers central: its satellites and held events. It
// works on the central's database (--ledger) directly, so it needs no
// running server.
type CentralCmd struct {
	Satellite CentralSatelliteCmd `cmd:"" help:"Register, list or remove satellites (health centres) and their tokens."`
	Held      CentralHeldCmd      `cmd:"" help:"List the events held back because their clock was ahead of central's, or release them into the ledger."`
}

// CentralSatelliteCmd manages the satellite registry.
type CentralSatelliteCmd struct {
	Add    SatelliteAddCmd    `cmd:"" help:"Register a satellite and print its token (shown once; central keeps only its SHA-256)."`
	Set    SatelliteSetCmd    `cmd:"" help:"Change a registered satellite's scope or name; its token, cursor and stability report stay as they are."`
	List   SatelliteListCmd   `cmd:"" help:"List the registered satellites."`
	Remove SatelliteRemoveCmd `cmd:"" help:"Revoke a satellite's token: its requests are refused from then on."`
}

func openRegistry(env *Env) (central.Registry, error) {
	return central.OpenRegistry(env.Ctx, env.Ledger)
}

// SatelliteAddCmd registers a satellite.
type SatelliteAddCmd struct {
	ID    uint16 `arg:"" satellite:"" help:"The satellite's synchronisation id (1..511)."`
	Name  string `required:"" help:"A name for people (the health centre)."`
	Scope string `default:"local" enum:"all,local" help:"What it receives: all (every event) or local (reference data, its own patients and what refers to them)."`
}

func (c *SatelliteAddCmd) Run(env *Env) error {
	if c.ID < 1 || c.ID > ledger.MaxOrigin {
		return fmt.Errorf("satellite id %d outside 1..%d (0 is central)", c.ID, ledger.MaxOrigin)
	}
	reg, err := openRegistry(env)
	if err != nil {
		return err
	}
	defer reg.Close()
	tok, hash, err := central.NewToken()
	if err != nil {
		return err
	}
	if err := reg.AddSatellite(env.Ctx, central.Satellite{ID: c.ID, Name: c.Name, Scope: c.Scope, TokenHash: hash, Created: time.Now()}); err != nil {
		return err
	}
	env.Log.Info("satellite added", "id", c.ID, "name", c.Name, "scope", c.Scope)
	fmt.Fprintf(env.Out, "satellite %d (%s) added, scope %s. Its token, shown only now (set it as GHSYNC_TOKEN on the satellite):\n%s\n", c.ID, c.Name, c.Scope, tok)
	return nil
}

// SatelliteSetCmd changes a satellite's scope or name in place. Removing
// and adding it again would issue a new token, locking out the running
// satellite, and forget its stability report.
type SatelliteSetCmd struct {
	ID    uint16 `arg:"" help:"The satellite's synchronisation id."`
	Name  string `help:"A new name for people." placeholder:"NAME"`
	Scope string `enum:",all,local" default:"" help:"A new scope: all (every event) or local. Widened to all, the satellite fetches what local left out at its next pull; narrowed to local, it keeps everything it has, and records outside the local scope stop receiving updates."`
}

func (c *SatelliteSetCmd) Run(env *Env) error {
	if c.Name == "" && c.Scope == "" {
		return usageError{errors.New("central satellite set: nothing to change: give --scope or --name")}
	}
	reg, err := openRegistry(env)
	if err != nil {
		return err
	}
	defer reg.Close()
	before, after, err := reg.ChangeSatellite(env.Ctx, c.ID, central.SatelliteChange{Name: c.Name, Scope: c.Scope})
	if errors.Is(err, central.ErrNotFound) {
		return fmt.Errorf("no active satellite %d (ghsync central satellite list shows them)", c.ID)
	}
	if err != nil {
		return err
	}
	env.Log.Info("satellite changed", "id", c.ID, "name", after.Name, "scope", after.Scope, "was_name", before.Name, "was_scope", before.Scope)
	fmt.Fprintf(env.Out, "satellite %d (%s): scope %s, its token unchanged", after.ID, after.Name, after.Scope)
	switch {
	case after.Widened > before.Widened:
		fmt.Fprintf(env.Out, "; widened from %s: at its next pull it fetches central's ledger again from the start, for what %s left out\n", before.Scope, before.Scope)
	case before.Scope != after.Scope:
		fmt.Fprintf(env.Out, "; narrowed from %s: it keeps every record it has, and those outside the local scope no longer receive updates (new --patient brings one back)\n", before.Scope)
	default:
		fmt.Fprintln(env.Out)
	}
	return nil
}

// SatelliteListCmd lists satellites.
type SatelliteListCmd struct{}

func (c *SatelliteListCmd) Run(env *Env) error {
	reg, err := openRegistry(env)
	if err != nil {
		return err
	}
	defer reg.Close()
	all, err := reg.Satellites(env.Ctx)
	if err != nil {
		return err
	}
	reps, err := reg.Stabilities(env.Ctx)
	if err != nil {
		return err
	}
	stable := map[uint16]central.Stability{}
	for _, r := range reps {
		stable[r.Origin] = r
	}
	// RECORDS IN SCOPE counts the records a satellite of scope local
	// receives besides reference data (those it pushed or fetched with
	// new, those referring to them, what they refer to); a satellite of
	// scope all receives every record. ("Held" is kept for events held
	// back for their clock: central held.) STABLE THROUGH is the clock
	// reading of the satellite's last complete cycle: the network's merge
	// states are compacted no further than the oldest active one
	// (ARCHITECTURE.md, "Stability and compaction"); "never" holds
	// compaction back entirely.
	w := tabwriter.NewWriter(env.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tNAME\tSCOPE\tCREATED\tSTATE\tRECORDS IN SCOPE\tSTABLE THROUGH")
	for _, s := range all {
		state := "active"
		if !s.Active() {
			state = "revoked " + s.Revoked.Format(time.RFC3339)
		}
		inScope := "all"
		if s.Scope == wire.ScopeLocal {
			n, err := reg.HeldCount(env.Ctx, s.ID)
			if err != nil {
				return err
			}
			inScope = strconv.Itoa(n) + " + reference"
		}
		through := "never"
		if r, ok := stable[s.ID]; ok {
			through = r.HLC.Time().Format(time.RFC3339)
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, s.Name, s.Scope, s.Created.Format(time.RFC3339), state, inScope, through)
	}
	w.Flush()
	fmt.Fprintln(env.Out, count(len(all), "satellite", "satellites"))
	return nil
}

// SatelliteRemoveCmd revokes a satellite.
type SatelliteRemoveCmd struct {
	ID uint16 `arg:"" help:"The satellite's synchronisation id."`
}

func (c *SatelliteRemoveCmd) Run(env *Env) error {
	reg, err := openRegistry(env)
	if err != nil {
		return err
	}
	defer reg.Close()
	if err := reg.RevokeSatellite(env.Ctx, c.ID, time.Now()); err != nil {
		if errors.Is(err, central.ErrNotFound) {
			return fmt.Errorf("no active satellite %d (ghsync central satellite list shows them)", c.ID)
		}
		return err
	}
	env.Log.Info("satellite removed", "id", c.ID)
	fmt.Fprintf(env.Out, "satellite %d removed: its token is refused from now on (its events stay in the ledger)\n", c.ID)
	return nil
}

// CentralHeldCmd lists (by default) or releases held events.
type CentralHeldCmd struct {
	List    HeldListCmd    `cmd:"" default:"withargs" help:"List held events (the default)."`
	Release HeldReleaseCmd `cmd:"" help:"Append an origin's held events to the ledger: an administrator's decision that their clock is to be trusted."`
}

// HeldListCmd lists held events.
type HeldListCmd struct {
	Origin int `help:"Only this origin's (default: all)." default:"-1" placeholder:"N"`
}

func (c *HeldListCmd) Run(env *Env) error {
	reg, err := openRegistry(env)
	if err != nil {
		return err
	}
	defer reg.Close()
	held, err := reg.HeldEvents(env.Ctx, c.Origin)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(env.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ORIGIN\tSEQ\tID\tSTREAM\tHLC\tAHEAD BY\tRECEIVED\tREASON")
	for _, h := range held {
		fmt.Fprintf(w, "%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", h.Origin, h.Seq, h.ID, ledger.Stream{Model: h.Model, Key: h.Key}, h.HLC,
			(time.Duration(h.SkewMillis) * time.Millisecond).Round(time.Second).String(), h.Received.Format(time.RFC3339), h.Reason)
	}
	w.Flush()
	fmt.Fprintln(env.Out, count(len(held), "held event", "held events"))
	return nil
}

// HeldReleaseCmd appends held events.
type HeldReleaseCmd struct {
	Origin uint16 `required:"" help:"The origin whose held events to release." placeholder:"N"`
}

func (c *HeldReleaseCmd) Run(env *Env) error {
	store, err := openLedger(env.Ctx, env.Ledger)
	if err != nil {
		return err
	}
	defer store.Close()
	reg, err := openRegistry(env)
	if err != nil {
		return err
	}
	defer reg.Close()
	n, err := central.Release(env.Ctx, store, reg, c.Origin)
	if n > 0 || err == nil {
		env.Log.Info("held events released", "origin", c.Origin, "appended", n)
		fmt.Fprintf(env.Out, "released %s of origin %d into the ledger\n", count(n, "held event", "held events"), c.Origin)
	}
	return err
}
