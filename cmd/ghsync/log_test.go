package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ghsync/ghsync/clocks"
	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/merge"
)

// A stream name typed with the key as is gets the name to type instead.
func TestLogStreamNeedsEncodedKey(t *testing.T) {
	db := "sqlite:" + generated(t)
	code, out, stderr := ghsync(t, "log", "--ledger", db, "--stream", "party.party-CODE WITH SPACE")
	want := `must be percent-encoded as %20 (the key after the first '-' is percent-encoded, as log prints it: write \"party.party-CODE%20WITH%20SPACE\")`
	if code == 0 || !strings.Contains(out+stderr, want) {
		t.Fatalf("log --stream with a space: exit %d, want %s in\n%s%s", code, want, out, stderr)
	}
}

// log --user, --since and --until keep the events an auditor asks about:
// by the Tryton login and by the time they were stamped; --limit counts
// what is printed.
func TestLogByUserAndTime(t *testing.T) {
	db := "sqlite:" + generated(t)
	type logLine struct {
		Position uint64 `json:"position"`
		User     string `json:"user"`
		HLC      string `json:"hlc"`
	}
	events := func(args ...string) []logLine {
		t.Helper()
		code, out, stderr := ghsync(t, append([]string{"log", "--ledger", db, "--json"}, args...)...)
		if code != 0 {
			t.Fatalf("log %v: exit %d\n%s", args, code, stderr)
		}
		var evs []logLine
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if line == "" {
				continue
			}
			var e logLine
			if err := json.Unmarshal([]byte(line), &e); err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			evs = append(evs, e)
		}
		return evs
	}
	all := events()
	stamp := func(e logLine) time.Time {
		ts, err := clocks.Parse(e.HLC)
		if err != nil {
			t.Fatal(err)
		}
		return time.UnixMilli(ts.WallMillis()).UTC()
	}
	user := all[len(all)/2].User
	from, to := stamp(all[len(all)/4]), stamp(all[3*len(all)/4])
	want := 0
	for _, e := range all {
		if at := stamp(e); e.User == user && !at.Before(from) && at.Before(to) {
			want++
		}
	}
	got := events("--user", user, "--since", from.Format(time.RFC3339Nano), "--until", to.Format(time.RFC3339Nano))
	if want == 0 || len(got) != want {
		t.Fatalf("log --user %s --since %s --until %s: %d events, want %d", user, from, to, len(got), want)
	}
	for _, e := range got {
		if at := stamp(e); e.User != user || at.Before(from) || !at.Before(to) {
			t.Fatalf("event #%d (user %s at %s) is outside the filter", e.Position, e.User, at)
		}
	}
	if got := events("--user", user, "--limit", "2"); len(got) != 2 || got[0].User != user || got[1].User != user {
		t.Fatalf("log --user --limit 2: %+v", got)
	}
	refused(t, []string{`--since "yesterday": want an RFC 3339 time`}, "log", "--ledger", db, "--since", "yesterday")
}

// A revival, and a change of a revived record, print the delete their
// writer saw as a clock, not a bare integer.
func TestLogShowsRevival(t *testing.T) {
	deleted := clocks.New(time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC).UnixMilli(), 0)
	for _, tt := range []struct {
		op    ledger.Op
		field string
		says  string
	}{
		{ledger.OpCreate, merge.Revives, "(a new life of the record, after its delete of "},
		{ledger.OpDelete, merge.Saw, "(made on the life after the record's delete of "},
	} {
		e := &ledger.Event{Model: "party.party", Key: "A-1", Op: tt.op, HLC: deleted + 10,
			Fields: map[string]ledger.Value{tt.field: ledger.Int(int64(deleted))}}
		var out strings.Builder
		if err := writeHuman(&out, ledger.Record{Position: 3, Event: e}); err != nil {
			t.Fatal(err)
		}
		if want := tt.says + deleted.String() + ")"; !strings.Contains(out.String(), want) {
			t.Fatalf("log prints\n%s\nwant %q", out.String(), want)
		}
	}
}
