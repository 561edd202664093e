package main

import (
	"fmt"
	"io"
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

// Origin is this instance's synchronisation_id. A pointer, because 0 is
// central's id and "not given" must differ from it: the id may then come
// from trytond.conf.
type Origin struct {
	ID *uint16 `name:"id" help:"This instance's synchronisation_id (0 = central, 1..511 = satellites); default: [synchronisation] id of --trytond-conf." env:"GHSYNC_ID" placeholder:"ID"`
}

// CaptureTarget is the GNU Health database capture works in: --target,
// or the [database] uri of the instance's trytond.conf, as sync and run
// find it.
type CaptureTarget struct {
	Target      string `help:"The GNU Health (Tryton) database: a postgres:// URL or sqlite:PATH; default: [database] uri of --trytond-conf." aliases:"db" env:"GHSYNC_TARGET"`
	TrytondConf string `name:"trytond-conf" help:"The instance's trytond.conf: [database] uri (and [synchronisation] database), and [synchronisation] id for drain and snapshot." placeholder:"FILE" env:"GHSYNC_TRYTOND_CONF"`
}

// resolve fills what the flags left unset from trytond.conf: the database
// and, when o is not nil, the synchronisation id. op names the command in
// errors.
func (c *CaptureTarget) resolve(op string, o *Origin) error {
	tc := &trytondConf{ID: -1}
	if c.TrytondConf != "" {
		var err error
		if tc, err = readTrytondConf(c.TrytondConf); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
	}
	if c.Target == "" {
		c.Target = tc.Database
	}
	if c.Target == "" {
		return fmt.Errorf("%s: no database: give --target (or --db), or --trytond-conf with a [database] uri", op)
	}
	if o == nil || o.ID != nil {
		return nil
	}
	if tc.ID < 0 {
		return fmt.Errorf("%s: no synchronisation id: give --id (0 = central, 1..%d = satellites), or --trytond-conf with a [synchronisation] id", op, ledger.MaxOrigin)
	}
	id := uint16(tc.ID)
	o.ID = &id
	return nil
}

type CaptureInstallCmd struct{ CaptureTarget }

func (c *CaptureInstallCmd) Run(env *Env) error {
	if err := c.resolve("capture install", nil); err != nil {
		return err
	}
	reg, err := env.registry()
	if err != nil {
		return err
	}
	// Two different people must never be merged because their local
	// counters agree: keys that are not network-unique are refused first.
	db, dialect, err := openTryton(c.Target)
	if err != nil {
		return err
	}
	check, err := models.Check(env.Ctx, db, dialect, reg)
	db.Close()
	if err != nil {
		return fmt.Errorf("check %s: %w", redact(c.Target), err)
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
		return fmt.Errorf("capture install: %s keys that are not network-unique (above); give %s sequences an instance prefix in Tryton, or identify them by UUID (--uuid-identity), then install again",
			count(len(refused), "model has", "models have"), pick(len(refused), "its", "their"))
	}
	rep, err := capture.Install(env.Ctx, c.Target, reg)
	if err != nil {
		return err
	}
	rels := 0
	for _, t := range rep.Tables {
		if t.Field != "" {
			rels++
		}
	}
	fmt.Fprintf(env.Out, "capture installed in %s: %s (%d of them %s) %s\n",
		redact(c.Target), count(len(rep.Tables), "table", "tables"), rels, pick(rels, "a Many2Many relation", "Many2Many relations"),
		pick(len(rep.Tables), "records its changes", "record their changes"))
	if len(rep.Missing) > 0 {
		fmt.Fprintf(env.Out, "%s no table here (module not activated), nothing of %s is captured: %s\n",
			count(len(rep.Missing), "registered model has", "registered models have"), pick(len(rep.Missing), "its", "theirs"), abbreviate(rep.Missing, 6))
	}
	switch {
	case len(rep.Reconcile) > 0:
		fmt.Fprintf(env.Out, "the network already knows rows of %s, and edits made there while capture was not recording are in no event:\n"+
			"run ghsync capture reconcile --db %s --id N now; until it completes, sync, run and project do not project (they would overwrite those edits)\n",
			abbreviate(rep.Reconcile, 6), redact(c.Target))
	case rep.Rows:
		fmt.Fprintf(env.Out, "rows already in the database are not events yet: run ghsync capture reconcile --db %s --id N once\n", redact(c.Target))
	}
	return nil
}

type CaptureUninstallCmd struct {
	CaptureTarget
	Force bool `help:"Uninstall even though changes still wait in the outbox (they are lost)."`
}

func (c *CaptureUninstallCmd) Run(env *Env) error {
	if err := c.resolve("capture uninstall", nil); err != nil {
		return err
	}
	if err := capture.Uninstall(env.Ctx, c.Target, c.Force); err != nil {
		return err
	}
	fmt.Fprintf(env.Out, "capture removed from %s\n", redact(c.Target))
	fmt.Fprintf(env.Out, "edits made in it from now on are not recorded, and projecting (sync, run, project) may overwrite them: capture install, then capture reconcile, before the next sync\n")
	return nil
}

type CaptureStatusCmd struct{ CaptureTarget }

func (c *CaptureStatusCmd) Run(env *Env) error {
	if err := c.resolve("capture status", nil); err != nil {
		return err
	}
	st, err := capture.Inspect(env.Ctx, c.Target)
	if err != nil {
		return err
	}
	w := env.Out
	fmt.Fprintf(w, "capture installed in %s (schema version %d, since %s, install %s)\n",
		redact(c.Target), st.Version, st.InstalledAt.Format(time.RFC3339), st.InstallID)
	fmt.Fprintf(w, "tables:   %d captured, %d of %d triggers present\n", len(st.Tables), st.Triggers, st.WantTriggers)
	if st.Triggers < st.WantTriggers {
		fmt.Fprintf(w, "          some triggers are missing or disabled, and edits are not recorded: run ghsync capture install again, then capture reconcile\n")
	}
	if len(st.Outdated) > 0 {
		fmt.Fprintf(w, "          columns changed since install in %s: run ghsync capture install again\n", strings.Join(st.Outdated, ", "))
	}
	fmt.Fprintf(w, "outbox:   %s waiting", count(st.Pending, "change", "changes"))
	if st.Pending > 0 {
		fmt.Fprintf(w, ", oldest made %s (%s ago)", st.Oldest.Format(time.RFC3339), time.Since(st.Oldest).Round(time.Second))
	}
	fmt.Fprintln(w)
	if st.HandedOff > 0 {
		fmt.Fprintf(w, "hand-off: %s not yet confirmed in the ledger (the next drain appends %s)\n", count(st.HandedOff, "stamped event", "stamped events"), pick(st.HandedOff, "it", "them"))
	}
	printHeld(w, st.Held)
	if st.ReconcileDue {
		fmt.Fprintf(w, "reconcile: due (edits made while capture was not recording are not events yet): projection waits for ghsync capture reconcile\n")
	}
	return nil
}

// heldShown is how many held rows capture status lists one by one.
const heldShown = 50

// printHeld lists the rows capture holds back: each stays in this
// database, uncaptured, until it can have a network identity.
func printHeld(w io.Writer, held []capture.HeldRow) {
	if len(held) == 0 {
		return
	}
	fmt.Fprintf(w, "held:     %s not captured: they cannot have a network identity yet (the next drain captures each once it can)\n", count(len(held), "record", "records"))
	for i, h := range held {
		if i == heldShown {
			fmt.Fprintf(w, "          ... and %d more\n", len(held)-heldShown)
			break
		}
		what := "whole record"
		if h.Fields != nil {
			what = "fields " + strings.Join(h.Fields, ", ")
		}
		key := ""
		if h.Key != "" {
			key = fmt.Sprintf(" key %q", h.Key)
		}
		fmt.Fprintf(w, "          %s id %d%s (%s, since %s): %s\n", h.Model, h.LocalID, key, what, h.At.Format(time.RFC3339), h.Reason)
	}
}

type CaptureDrainCmd struct {
	CaptureTarget
	Origin
}

func (c *CaptureDrainCmd) Run(env *Env) error {
	if err := c.resolve("capture drain", &c.Origin); err != nil {
		return err
	}
	cp, done, err := openCapturer(env, c.CaptureTarget, *c.ID)
	if err != nil {
		return err
	}
	defer done()
	st, err := cp.Drain(env.Ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Out, "captured %s as %s in %s\n", count(st.Changes, "change", "changes"), count(st.Events, "event", "events"), count(st.Batches, "transaction", "transactions"))
	if st.Held > 0 {
		fmt.Fprintf(env.Out, "%s held back, not captured: they cannot have a network identity yet (ghsync capture status lists them)\n", count(st.Held, "record", "records"))
	}
	return nil
}

type CaptureReconcileCmd struct {
	CaptureTarget
	Origin
}

func (c *CaptureReconcileCmd) Run(env *Env) error {
	if err := c.resolve("capture reconcile", &c.Origin); err != nil {
		return err
	}
	cp, done, err := openCapturer(env, c.CaptureTarget, *c.ID)
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
		fmt.Fprintf(env.Out, "captured first the changes waiting in the outbox: %s\n", count(st.Drained, "event", "events"))
	}
	fmt.Fprintf(env.Out, "reconcile: %s new to the network (created), %s differing from it (written): %s\n",
		count(st.Created, "row", "rows"), count(st.Changed, "row", "rows"), count(st.Events, "event", "events"))
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

// openCapturer opens capture in t's database for origin (resolved).
func openCapturer(env *Env, t CaptureTarget, origin uint16) (*capture.Capturer, func(), error) {
	return openOnLedger(env, func(store ledger.Store, reg *models.Registry) (*capture.Capturer, func(), error) {
		// Past what this instance's cycles vouched for (site.ResumeClock).
		clock := clocks.NewClock(nil, clocks.DefaultMaxOffset)
		if err := site.ResumeClock(env.Ctx, clock, origin, env.Ledger); err != nil {
			return nil, nil, err
		}
		cp, err := capture.Open(env.Ctx, t.Target, store, reg, capture.Options{Origin: origin, Logger: env.Log, Clock: clock})
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
