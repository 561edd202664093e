package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/models"
	"github.com/ghsync/ghsync/projections"
)

// errProblemsListed makes the exit status 1 after a listing of problems.
var errProblemsListed = errors.New("problems listed")

// Target names the Tryton database the projector keeps up to date.
type Target struct {
	Target string `help:"The GNU Health (Tryton) database: a postgres:// URL or sqlite:PATH." required:"" aliases:"db" env:"GHSYNC_TARGET"`
}

func (t Target) open(env *Env) (*projections.Projector, func(), error) {
	return openOnLedger(env, func(store ledger.Store, reg *models.Registry) (*projections.Projector, func(), error) {
		p, err := projections.Open(env.Ctx, t.Target, store, reg, projections.Options{Logger: env.Log})
		if errors.Is(err, projections.ErrNoTables) {
			return nil, nil, fmt.Errorf("--target %s: %w; point --target at the GNU Health database, or run ghsync schema --target %s to create empty GNU Health tables (ghsync models check --db %s shows what is missing)",
				redact(t.Target), err, redact(t.Target), redact(t.Target))
		}
		if err != nil {
			return nil, nil, err
		}
		return p, p.Close, nil
	})
}

// ProjectCmd applies the ledger to a Tryton database.
type ProjectCmd struct {
	Target
	Follow bool `short:"f" help:"Keep applying new events as they are appended (until interrupted), as a service would."`
}

func (c *ProjectCmd) Run(env *Env) error {
	p, done, err := c.open(env)
	if err != nil {
		return err
	}
	defer done()
	if c.Follow {
		env.Log.Info("projecting", "target", redact(c.Target.Target))
		return c.otherLedger(env, p.Run(env.Ctx))
	}
	st, err := p.CatchUp(env.Ctx)
	if err != nil {
		return c.otherLedger(env, err)
	}
	fmt.Fprintf(env.Out, "applied %s in %s; %s reflects the ledger through position %d\n",
		count(st.Events, "event", "events"), count(st.Batches, "transaction", "transactions"), redact(c.Target.Target), st.Checkpoint)
	if st.Rejected > 0 {
		fmt.Fprintf(env.Out, "%s set aside: see ghsync rejected\n", count(st.Rejected, "event was", "events were"))
	}
	parked, err := p.ParkedRecords(env.Ctx)
	if err != nil {
		return err
	}
	if parked > 0 {
		fmt.Fprintf(env.Out, "%s parked, not written to %s (waiting for a record %s, a required value, or a table the target lacks): see ghsync parked\n",
			count(parked, "record is", "records are"), pick(parked, "its table", "their tables"), pick(parked, "it references", "they reference"))
	}
	return nil
}

// otherLedger says what to do when the target was built from another
// ledger than --ledger.
func (c *ProjectCmd) otherLedger(env *Env, err error) error {
	if !errors.Is(err, projections.ErrOtherLedger) {
		return err
	}
	return fmt.Errorf("--ledger %s, --target %s: %w; give --ledger the ledger the target was built from (ghsync rebuild would replace what ghsync wrote in the target with this ledger's records)",
		redact(env.Ledger), redact(c.Target.Target), err)
}

// RebuildCmd replays the whole ledger into the target.
type RebuildCmd struct{ Target }

func (c *RebuildCmd) Run(env *Env) error {
	p, done, err := c.open(env)
	if err != nil {
		return err
	}
	defer done()
	st, err := p.Rebuild(env.Ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Out, "rebuilt from %s (through position %d)\n", count(st.Events, "event", "events"), st.Checkpoint)
	return nil
}

// ParkedCmd lists records waiting for something before their row can be written.
type ParkedCmd struct{ Target }

func (c *ParkedCmd) Run(env *Env) error {
	p, done, err := c.open(env)
	if err != nil {
		return err
	}
	defer done()
	parked, err := p.Parked(env.Ctx)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(env.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "MODEL\tKEY\tWAITS FOR\tREASON\tSINCE POSITION")
	for _, x := range parked {
		fmt.Fprintf(w, "%s\t%s\t%s %s\t%s\t%d\n", x.Model, x.Key, x.WaitsModel, x.WaitsKey, x.Reason, x.Position)
	}
	w.Flush()
	fmt.Fprintf(env.Out, "%d parked\n", len(parked))
	un, err := p.Uncreated(env.Ctx)
	if err != nil || len(un) == 0 {
		return err
	}
	fmt.Fprintf(env.Out, "\n%s written but never created here (no row until %s create arrives; after a satellite's scope widened, pull --from-start fetches it):\n", count(len(un), "record", "records"), pick(len(un), "its", "their"))
	w = tabwriter.NewWriter(env.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "MODEL\tKEY\tWRITES")
	for _, x := range un {
		fmt.Fprintf(w, "%s\t%s\t%d\n", x.Model, x.Key, x.Writes)
	}
	return w.Flush()
}

// StatesCmd reports the merge states' size, and the largest, so an
// administrator sees whether compaction keeps them small.
type StatesCmd struct {
	Target
	Top int `help:"How many of the largest states to list." default:"10"`
}

func (c *StatesCmd) Run(env *Env) error {
	p, done, err := c.open(env)
	if err != nil {
		return err
	}
	defer done()
	rep, err := p.States(env.Ctx, c.Top)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Out, "merge states: %s, %.1f KiB", count(rep.Records, "record", "records"), float64(rep.Bytes)/1024)
	if rep.Frontier == 0 {
		fmt.Fprintln(env.Out, "; no stability frontier yet: nothing is compacted (every instance must complete a sync cycle first)")
	} else {
		fmt.Fprintf(env.Out, "; compacted up to %s\n", rep.Frontier)
	}
	if len(rep.Largest) == 0 {
		return nil
	}
	w := tabwriter.NewWriter(env.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "MODEL\tKEY\tBYTES\tWRITES KEPT")
	for _, x := range rep.Largest {
		fmt.Fprintf(w, "%s\t%s\t%d\t%d\n", x.Model, x.Key, x.Bytes, x.Writes)
	}
	return w.Flush()
}

// ConflictsCmd lists the writes that lost to another.
type ConflictsCmd struct {
	Target
	Model string `help:"Only this model." noconfig:""`
	Key   string `help:"Only this record (with --model)." noconfig:""`
	JSON  bool   `name:"json" help:"One JSON object per line, with both events' ids (as log --json prints them), for tools."`
}

// conflictJSON is a conflict as conflicts --json prints it.
type conflictJSON struct {
	Model        string          `json:"model"`
	Key          string          `json:"key"`
	Field        string          `json:"field"`
	Reason       string          `json:"reason"`
	LoserEvent   string          `json:"loser_event"`
	LoserOrigin  uint16          `json:"loser_origin"`
	LoserHLC     string          `json:"loser_hlc"`
	LoserValue   json.RawMessage `json:"loser_value"`
	WinnerEvent  string          `json:"winner_event"`
	WinnerOrigin uint16          `json:"winner_origin"`
	WinnerHLC    string          `json:"winner_hlc"`
	WinnerValue  json.RawMessage `json:"winner_value"`
}

func (c *ConflictsCmd) Run(env *Env) error {
	if c.Key != "" && c.Model == "" {
		return usageError{errors.New("conflicts --key: give --model too (keys are per model)")}
	}
	p, done, err := c.open(env)
	if err != nil {
		return err
	}
	defer done()
	all, err := p.Conflicts(env.Ctx)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(env.Out, 0, 4, 2, ' ', 0)
	if !c.JSON {
		fmt.Fprintln(w, "MODEL\tKEY\tFIELD\tREASON\tLOST (origin, hlc, value)\tWON (origin, hlc, value)")
	}
	n := 0
	enc := json.NewEncoder(env.Out)
	for _, x := range all {
		if c.Model != "" && x.Model != c.Model || c.Key != "" && x.Key != c.Key {
			continue
		}
		n++
		if c.JSON {
			if err := enc.Encode(conflictJSON{x.Model, x.Key, x.Field, x.Reason, x.LoserEvent, x.LoserOrigin, x.LoserHLC, rawJSON(x.LoserValue),
				x.WinnerEvent, x.WinnerOrigin, x.WinnerHLC, rawJSON(x.WinnerValue)}); err != nil {
				return err
			}
			continue
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d %s %s\t%d %s %s\n", x.Model, x.Key, x.Field, x.Reason,
			x.LoserOrigin, x.LoserHLC, x.LoserValue, x.WinnerOrigin, x.WinnerHLC, x.WinnerValue)
	}
	if c.JSON {
		return nil
	}
	w.Flush()
	fmt.Fprintln(env.Out, count(n, "conflict", "conflicts"))
	return nil
}

// rawJSON passes a stored JSON value through; one that is not JSON
// (never written so) becomes a string rather than breaking the line.
func rawJSON(v string) json.RawMessage {
	if json.Valid([]byte(v)) {
		return json.RawMessage(v)
	}
	b, _ := json.Marshal(v)
	return b
}

// RejectedCmd lists events the projector set aside.
type RejectedCmd struct{ Target }

func (c *RejectedCmd) Run(env *Env) error {
	p, done, err := c.open(env)
	if err != nil {
		return err
	}
	defer done()
	rej, err := p.Rejected(env.Ctx)
	if err != nil {
		return err
	}
	for _, r := range rej {
		fmt.Fprintf(env.Out, "position %d: %s\n", r.Position, r.Error())
	}
	fmt.Fprintf(env.Out, "%d rejected\n", len(rej))
	if len(rej) > 0 {
		return errProblemsListed
	}
	return nil
}

// DumpCmd prints the synchronised tables in canonical form, so two
// instances can be compared by a hash.
type DumpCmd struct {
	Target
	HashOnly bool `help:"Print only the SHA-256 of the dump."`
}

func (c *DumpCmd) Run(env *Env) error {
	p, done, err := c.open(env)
	if err != nil {
		return err
	}
	defer done()
	out := env.Out
	if c.HashOnly {
		out = io.Discard
	}
	sum, err := p.Dump(env.Ctx, out)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Out, "sha256 %s\n", sum)
	return nil
}
