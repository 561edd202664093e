package main

import (
	"fmt"

	"github.com/ghsync/ghsync/clocks"
	"github.com/ghsync/ghsync/fixtures"
	"github.com/ghsync/ghsync/ledger"
)

// GenerateCmd fills a new ledger with seeded clinic activity so an
// administrator can try log and verify before connecting a real instance.
// It refuses a ledger that holds events: a second run's records would
// start over (same institutions, new clocks) and collide with the first's
// as concurrent writes.
type GenerateCmd struct {
	Clinics int    `help:"Health centres to simulate, besides central (synchronisation id 0)." default:"3"`
	Events  int    `help:"Events per instance." default:"400"`
	Seed    uint64 `help:"Random seed: the same seed gives the same people and changes." default:"1"`
	Batch   int    `help:"Events per append." default:"100"`
}

func (c *GenerateCmd) Run(env *Env) error {
	if c.Clinics < 0 || c.Clinics > ledger.MaxOrigin || c.Events < 1 || c.Batch < 1 {
		return fmt.Errorf("generate: want 0..%d clinics, at least 1 event and a batch of at least 1", ledger.MaxOrigin)
	}
	store, err := openLedger(env.Ctx, env.Ledger)
	if err != nil {
		return err
	}
	defer store.Close()
	if head, err := store.Head(env.Ctx); err != nil {
		return err
	} else if head > 0 {
		return fmt.Errorf("generate: ledger %s already holds events (head position %d): generate writes sample activity into a new ledger only; give another --ledger", redact(env.Ledger), head)
	}
	var clinics []*fixtures.Clinic
	for origin := uint16(0); origin <= uint16(c.Clinics); origin++ {
		seq, err := ledger.Resume(env.Ctx, store, origin, clocks.NewClock(clocks.System, clocks.DefaultMaxOffset))
		if err != nil {
			return err
		}
		clinics = append(clinics, fixtures.NewClinic(origin, seq, c.Seed))
	}
	if err := fixtures.Fill(env.Ctx, store, clinics, c.Events, c.Batch); err != nil {
		return err
	}
	head, err := store.Head(env.Ctx)
	if err != nil {
		return err
	}
	env.Log.Info("ledger written", "ledger", env.Ledger, "instances", len(clinics), "head", head)
	fmt.Fprintf(env.Out, "wrote %s activity to %s (head position %d)\n", count(len(clinics), "instance's", "instances'"), env.Ledger, head)
	fmt.Fprintf(env.Out, "next: ghsync log --ledger %s --limit 10   |   ghsync verify --ledger %s\n", env.Ledger, env.Ledger)
	return nil
}

// Help is generate's detailed help (ghsync generate --help).
func (c *GenerateCmd) Help() string {
	return "Generate writes into a new or empty ledger only: it refuses one that already holds events, " +
		"because a second run would start each instance over (the same health centres, created again) " +
		"and its events would collide with the first run's as concurrent writes. " +
		"For more activity, give a larger --events to a new ledger."
}
