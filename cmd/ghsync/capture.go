package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/ghsync/ghsync/capture"
	"github.com/ghsync/ghsync/clocks"
	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/models"
	"github.com/ghsync/ghsync/site"
)

// CaptureCmd manages change capture in a GNU Health database.
type CaptureCmd struct {
	Install   CaptureInstallCmd   `cmd:"" help:"Install the outbox and triggers that record every change made in the database (idempotent)."`
	Uninstall CaptureUninstallCmd `cmd:"" help:"Remove every trace of capture from the database (triggers, functions, outbox)."`
	Status    CaptureStatusCmd    `cmd:"" help:"Show what is installed, how many changes wait in the outbox and the oldest one."`
	Drain     CaptureDrainCmd     `cmd:"" help:"Turn the changes waiting in the outbox into ledger events (what sync does first)."`
	Reconcile CaptureReconcileCmd `cmd:"" aliases:"snapshot" help:"Capture what the network does not know of the rows: rows it never saw become creates, rows edited while capture was not recording become writes (after capture install; resumable)."`
}

// Origin is this instance's synchronisation_id.
type Origin struct {
	ID uint16 `name:"id" help:"This instance's synchronisation_id (0 = central, 1..511 = satellites)." required:"" env:"GHSYNC_ID"`
}

type CaptureInstallCmd struct{ Target }

func (c *CaptureInstallCmd) Run(env *Env) error {
	reg, err := env.registry()
	if err != nil {
		return err
	}
	// Two different people must never be merged because their local
	// counters agree: keys that are not network-unique are refused first.
	db, dialect, err := openTryton(c.Target.Target)
	if err != nil {
		return err
	}
	check, err := models.Check(env.Ctx, db, dialect, reg)
	db.Close()
	if err != nil {
		return fmt.Errorf("check %s: %w", redact(c.Target.Target), err)
	}
	var refused []string
	for _, mc := range check.Models {
		for _, f := range mc.Findings {
			if f.Problem == models.KeyNotNetworkUnique || f.Problem == models.SequenceKeys {
				refused = append(refused, fmt.Sprintf("  %s: %s", mc.Model, f.Message))
			}
		}
	}
	if len(refused) > 0 {
		fmt.Fprintln(env.Out, strings.Join(refused, "\n"))
		return fmt.Errorf("capture install: %d models have keys that are not network-unique (above); give their sequences an instance prefix in Tryton, or identify them by UUID (--uuid-identity), then install again", len(refused))
	}
	rep, err := capture.Install(env.Ctx, c.Target.Target, reg)
	if err != nil {
		return err
	}
	rels := 0
	for _, t := range rep.Tables {
		if t.Field != "" {
			rels++
		}
	}
	fmt.Fprintf(env.Out, "capture installed in %s: %d tables (%d of them Many2Many relations) record their changes\n",
		redact(c.Target.Target), len(rep.Tables), rels)
	if len(rep.Missing) > 0 {
		fmt.Fprintf(env.Out, "%d registered models have no table here (module not activated), nothing of theirs is captured: %s\n",
			len(rep.Missing), abbreviate(rep.Missing, 6))
	}
	switch {
	case len(rep.Reconcile) > 0:
		fmt.Fprintf(env.Out, "the network already knows rows of %s, and edits made there while capture was not recording are in no event:\n"+
			"run ghsync capture reconcile --db %s --id N now; until it completes, sync, run and project do not project (they would overwrite those edits)\n",
			abbreviate(rep.Reconcile, 6), redact(c.Target.Target))
	case rep.Rows:
		fmt.Fprintf(env.Out, "rows already in the database are not events yet: run ghsync capture reconcile --db %s --id N once\n", redact(c.Target.Target))
	}
	return nil
}

type CaptureUninstallCmd struct {
	Target
	Force bool `help:"Uninstall even though changes still wait in the outbox (they are lost)."`
}

func (c *CaptureUninstallCmd) Run(env *Env) error {
	if err := capture.Uninstall(env.Ctx, c.Target.Target, c.Force); err != nil {
		return err
	}
	fmt.Fprintf(env.Out, "capture removed from %s\n", redact(c.Target.Target))
	fmt.Fprintf(env.Out, "edits made in it from now on are not recorded, and projecting (sync, run, project) may overwrite them: capture install, then capture reconcile, before the next sync\n")
	return nil
}

type CaptureStatusCmd struct{ Target }

func (c *CaptureStatusCmd) Run(env *Env) error {
	st, err := capture.Inspect(env.Ctx, c.Target.Target)
	if err != nil {
		return err
	}
	w := env.Out
	fmt.Fprintf(w, "capture installed in %s (schema version %d, since %s, install %s)\n",
		redact(c.Target.Target), st.Version, st.InstalledAt.Format(time.RFC3339), st.InstallID)
	fmt.Fprintf(w, "tables:   %d captured, %d of %d triggers present\n", len(st.Tables), st.Triggers, st.WantTriggers)
	if st.Triggers < st.WantTriggers {
		fmt.Fprintf(w, "          some triggers are missing or disabled, and edits are not recorded: run ghsync capture install again, then capture reconcile\n")
	}
	if len(st.Outdated) > 0 {
		fmt.Fprintf(w, "          columns changed since install in %s: run ghsync capture install again\n", strings.Join(st.Outdated, ", "))
	}
	fmt.Fprintf(w, "outbox:   %d changes waiting", st.Pending)
	if st.Pending > 0 {
		fmt.Fprintf(w, ", oldest made %s (%s ago)", st.Oldest.Format(time.RFC3339), time.Since(st.Oldest).Round(time.Second))
	}
	fmt.Fprintln(w)
	if st.HandedOff > 0 {
		fmt.Fprintf(w, "hand-off: %d stamped events not yet confirmed in the ledger (the next drain appends them)\n", st.HandedOff)
	}
	if st.ReconcileDue {
		fmt.Fprintf(w, "reconcile: due (edits made while capture was not recording are not events yet): projection waits for ghsync capture reconcile\n")
	}
	return nil
}

type CaptureDrainCmd struct {
	Target
	Origin
}

func (c *CaptureDrainCmd) Run(env *Env) error {
	cp, done, err := openCapturer(env, c.Target, c.Origin)
	if err != nil {
		return err
	}
	defer done()
	st, err := cp.Drain(env.Ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Out, "captured %d changes as %d events in %d transactions\n", st.Changes, st.Events, st.Batches)
	return nil
}

type CaptureReconcileCmd struct {
	Target
	Origin
}

func (c *CaptureReconcileCmd) Run(env *Env) error {
	cp, done, err := openCapturer(env, c.Target, c.Origin)
	if err != nil {
		return err
	}
	defer done()
	st, err := cp.Reconcile(env.Ctx, func(p capture.SnapshotProgress) {
		env.Log.Info("reconcile", "model", p.Model, "rows", p.Rows, "events", p.Events)
	})
	if err != nil {
		return err
	}
	if st.Drained > 0 {
		fmt.Fprintf(env.Out, "captured first the changes waiting in the outbox: %d events\n", st.Drained)
	}
	fmt.Fprintf(env.Out, "reconcile: %d rows new to the network (created), %d rows that differ from it (written): %d events\n",
		st.Created, st.Changed, st.Events)
	if st.Deleted > 0 {
		fmt.Fprintf(env.Out, "%d rows of records the network deleted are still here: the projector removes them (ghsync conflicts lists fields edited meanwhile)\n", st.Deleted)
	}
	if st.Restored > 0 {
		fmt.Fprintf(env.Out, "%d rows the network knows are gone here: not deleted network-wide; the projector writes them again (delete them again in Tryton if that was meant)\n", st.Restored)
	}
	if st.Pending > 0 {
		fmt.Fprintf(env.Out, "%d changes made meanwhile wait in the outbox: the next ghsync sync (or capture drain) captures them\n", st.Pending)
	}
	return nil
}

func openCapturer(env *Env, t Target, o Origin) (*capture.Capturer, func(), error) {
	return openOnLedger(env, func(store ledger.Store, reg *models.Registry) (*capture.Capturer, func(), error) {
		// Past what this instance's cycles vouched for (site.ResumeClock).
		clock := clocks.NewClock(nil, clocks.DefaultMaxOffset)
		if err := site.ResumeClock(env.Ctx, clock, o.ID, env.Ledger); err != nil {
			return nil, nil, err
		}
		cp, err := capture.Open(env.Ctx, t.Target, store, reg, capture.Options{Origin: o.ID, Logger: env.Log, Clock: clock})
		if err != nil {
			return nil, nil, err
		}
		return cp, func() { cp.Close() }, nil
	})
}

// abbreviate lists up to n names and counts the rest.
func abbreviate(names []string, n int) string {
	if len(names) <= n {
		return fmt.Sprint(names)
	}
	return fmt.Sprintf("%v and %d more", names[:n], len(names)-n)
}
