package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"time"

	"github.com/ghsync/ghsync/clocks"
	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/merge"
)

// LogCmd prints events: the auditor's view of a ledger.
type LogCmd struct {
	Model  []string `help:"Only these models (repeat or comma-separate), e.g. gnuhealth.patient." sep:","`
	Stream string   `help:"Only one record's history, by stream name (<model>-<key>, as log prints it: the key percent-encoded, a space as %20)."`
	Origin []uint16 `help:"Only events from these synchronisation ids (0 = central)." sep:","`
	After  uint64   `help:"Start after this ledger position." default:"0"`
	User   string   `help:"Only events made by this Tryton login."`
	Since  string   `help:"Only events stamped at or after this time (RFC 3339, e.g. 2026-11-30T08:00:00Z, or a date, 2026-11-30, meaning its start in UTC)." placeholder:"TIME"`
	Until  string   `help:"Only events stamped before this time (as --since)." placeholder:"TIME"`
	Limit  int      `help:"Print at most this many events (0 = all)." default:"0"`
	Follow bool     `short:"f" help:"Keep printing new events as they are appended (until interrupted)."`
	JSON   bool     `name:"json" help:"One JSON object per line, with typed values, for tools."`
}

func (c *LogCmd) Run(env *Env) error {
	match, err := c.matcher()
	if err != nil {
		return err
	}
	store, err := openLedger(env.Ctx, env.Ledger)
	if err != nil {
		return err
	}
	defer store.Close()
	print := func(r ledger.Record) error {
		if c.JSON {
			return writeJSON(env.Out, r)
		}
		return writeHuman(env.Out, r)
	}
	f := ledger.Filter{Models: c.Model, Origins: c.Origin}
	if c.Stream != "" {
		st, err := ledger.ParseStream(c.Stream)
		if err != nil {
			return err
		}
		return c.readStream(env, store, st, func(e *ledger.Event) bool { return f.Match(e) && match(e) }, print)
	}
	n := 0
	if c.Follow {
		for r, err := range store.Subscribe(env.Ctx, c.After, f) {
			if err != nil {
				if env.Ctx.Err() != nil {
					return nil // interrupted: a normal end for --follow
				}
				return err
			}
			if !match(r.Event) {
				continue
			}
			if err := print(r); err != nil {
				return err
			}
			if n++; c.Limit > 0 && n >= c.Limit {
				return nil
			}
		}
		return nil
	}
	for after := c.After; ; {
		page, err := store.ReadAll(env.Ctx, after, ledger.DefaultPageSize, f)
		if err != nil || len(page) == 0 {
			return err
		}
		for _, r := range page {
			if !match(r.Event) {
				continue
			}
			if err := print(r); err != nil {
				return err
			}
			if n++; c.Limit > 0 && n >= c.Limit {
				return nil
			}
		}
		after = page[len(page)-1].Position
	}
}

// matcher is the filter on what the store does not index: the user and
// the time an event was stamped (its clock's wall part, UTC).
func (c *LogCmd) matcher() (func(*ledger.Event) bool, error) {
	parse := func(flag, v string) (time.Time, error) {
		if v == "" {
			return time.Time{}, nil
		}
		for _, layout := range []string{time.RFC3339Nano, time.DateOnly} {
			if t, err := time.Parse(layout, v); err == nil {
				return t, nil
			}
		}
		return time.Time{}, usageError{fmt.Errorf("--%s %q: want an RFC 3339 time such as 2026-11-30T08:00:00Z, or a date such as 2026-11-30", flag, v)}
	}
	since, err := parse("since", c.Since)
	if err != nil {
		return nil, err
	}
	until, err := parse("until", c.Until)
	if err != nil {
		return nil, err
	}
	return func(e *ledger.Event) bool {
		at := e.HLC.WallMillis()
		return (c.User == "" || e.User == c.User) &&
			(since.IsZero() || at >= since.UnixMilli()) &&
			(until.IsZero() || at < until.UnixMilli())
	}, nil
}

func (c *LogCmd) readStream(env *Env, store ledger.Store, st ledger.Stream, keep func(*ledger.Event) bool, print func(ledger.Record) error) error {
	n := 0
	for after := c.After; ; {
		page, err := store.ReadStream(env.Ctx, st, after, ledger.DefaultPageSize)
		if err != nil || len(page) == 0 {
			return err
		}
		for _, r := range page {
			after = r.Position
			if !keep(r.Event) {
				continue
			}
			if err := print(r); err != nil {
				return err
			}
			if n++; c.Limit > 0 && n >= c.Limit {
				return nil
			}
		}
	}
}

func writeHuman(w io.Writer, r ledger.Record) error {
	e := r.Event
	if _, err := fmt.Fprintf(w, "#%d  %s  origin %d seq %d  %s %s  user=%s tx=%d\n",
		r.Position, e.HLC, e.Origin, e.OriginSeq, e.Op, e.Stream(), e.User, e.Tx); err != nil {
		return err
	}
	names := slices.Sorted(maps.Keys(e.Fields))
	width := 0
	for _, n := range names {
		width = max(width, len(n))
	}
	for _, n := range names {
		replaces := ""
		if b := e.Base[n]; !b.IsZero() {
			replaces = "   (replaces value of " + b.String() + ")"
		}
		if saw, ok := e.Fields[n].AsInt(); ok && n == merge.Revives {
			replaces = "   (a new life of the record, after its delete of " + clocks.Timestamp(saw).String() + ")"
		}
		if saw, ok := e.Fields[n].AsInt(); ok && n == merge.Saw {
			replaces = "   (made on the life after the record's delete of " + clocks.Timestamp(saw).String() + ")"
		}
		if l, ok := e.Fields[n].AsInt(); ok && n == merge.Lender {
			replaces = "   (made for the life its key's lender began after its delete of " + clocks.Timestamp(l).String() + ")"
		}
		if _, err := fmt.Fprintf(w, "      %-*s = %s%s\n", width, n, e.Fields[n], replaces); err != nil {
			return err
		}
	}
	return nil
}

// jsonEvent is the --json form of a record; field names are stable.
type jsonEvent struct {
	Position  uint64                  `json:"position"`
	ID        string                  `json:"id"`
	Origin    uint16                  `json:"origin"`
	OriginSeq uint64                  `json:"origin_seq"`
	HLC       string                  `json:"hlc"`
	Model     string                  `json:"model"`
	Key       string                  `json:"key"`
	Stream    string                  `json:"stream"`
	Op        string                  `json:"op"`
	User      string                  `json:"user"`
	Tx        uint64                  `json:"tx"`
	Fields    map[string]ledger.Value `json:"fields,omitempty"`
	Base      map[string]string       `json:"base,omitempty"`
	Hash      string                  `json:"hash"`
	PrevHash  string                  `json:"prev_hash"`
}

func writeJSON(w io.Writer, r ledger.Record) error {
	e := r.Event
	j := jsonEvent{
		Position: r.Position, ID: e.ID.String(), Origin: e.Origin, OriginSeq: e.OriginSeq, HLC: e.HLC.String(),
		Model: e.Model, Key: e.Key, Stream: e.Stream().String(), Op: e.Op.String(), User: e.User, Tx: e.Tx,
		Fields: e.Fields, Hash: e.Hash.String(), PrevHash: e.PrevHash.String(),
	}
	for n, b := range e.Base {
		if !b.IsZero() {
			if j.Base == nil {
				j.Base = map[string]string{}
			}
			j.Base[n] = b.String()
		}
	}
	return json.NewEncoder(w).Encode(j)
}
