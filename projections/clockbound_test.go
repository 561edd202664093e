package projections_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/ghsync/ghsync/clocks"
	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/ledger/ledgertest"
)

// TestClockBound: a satellite whose clock ran a year ahead writes a field
// that an honest satellite writes later in real time. Without a bound the
// skewed write wins for a year; with central's bound it loses, whether
// the bound reaches the projector before the skewed events (a satellite
// pulling from central) or after them (the skewed satellite itself), and
// both orders end in identical tables.
func TestClockBound(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	central, honest, skewed := ledgertest.NewOrigin(0), ledgertest.NewOrigin(1), ledgertest.NewOrigin(2)
	create := central.Event(t, "party.party", "P-1", ledger.OpCreate, map[string]ledger.Value{
		"code": ledger.String("P-1"), "name": ledger.String("Ana"), "active": ledger.Bool(true)})
	create.HLC = clocks.New(now.UnixMilli(), 0)
	reseal(t, create, ledger.Hash{})

	future := skewed.Event(t, "party.party", "P-1", ledger.OpWrite, map[string]ledger.Value{"name": ledger.String("Ana (skewed)")})
	future.HLC = clocks.New(now.Add(365*24*time.Hour).UnixMilli(), 0)
	future.Base = map[string]clocks.Timestamp{"name": create.HLC}
	reseal(t, future, ledger.Hash{})

	bound := ledger.ClockBound{Origin: 2, FromSeq: 1, ToSeq: 1, Bound: clocks.New(now.Add(time.Minute).UnixMilli(), 0)}.Event()
	central.ResumeAt(ledger.OriginHead{Seq: create.OriginSeq, Hash: create.Hash, MaxHLC: create.HLC})
	bound, err := central.Make(bound.Model, bound.Key, bound.Op, bound.Fields)
	if err != nil {
		t.Fatal(err)
	}

	later := honest.Event(t, "party.party", "P-1", ledger.OpWrite, map[string]ledger.Value{"name": ledger.String("Ana (honest)")})
	later.HLC = clocks.New(now.Add(time.Hour).UnixMilli(), 0)
	later.Base = map[string]clocks.Timestamp{"name": create.HLC}
	reseal(t, later, ledger.Hash{})

	orders := map[string][]*ledger.Event{
		"bound first (a satellite pulling from central)": {create, bound, future, later},
		"bound after (the skewed satellite itself)":      {create, future, later, bound},
		"no bound (the hazard)":                          {create, future, later},
	}
	reg := clinicRegistry(t)
	var dumps []string
	for name, evs := range orders {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			target := pgTarget(t, reg)
			store := memLedger(t)
			for _, e := range evs { // one by one, so the projector meets them in this order
				if _, err := store.Append(ctx, []*ledger.Event{e}); err != nil {
					t.Fatal(err)
				}
			}
			p := openProjector(t, target, store, reg, 2)
			if _, err := p.CatchUp(ctx); err != nil {
				t.Fatal(err)
			}
			db, err := sql.Open("pgx", target)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			want := "Ana (honest)"
			if len(evs) == 3 {
				want = "Ana (skewed)" // a year ahead, it would win for a year
			}
			var got string
			if err := db.QueryRow(`SELECT name FROM party_party WHERE code = 'P-1'`).Scan(&got); err != nil || got != want {
				t.Fatalf("name = %q (%v), want %q", got, err, want)
			}
			if len(evs) == 3 {
				return
			}
			var b strings.Builder
			if _, err := p.Dump(ctx, &b); err != nil {
				t.Fatal(err)
			}
			dumps = append(dumps, b.String())
			rejected, err := p.Rejected(ctx)
			if err != nil || len(rejected) != 0 {
				t.Fatalf("rejected %v %v", rejected, err)
			}
		})
	}
	if len(dumps) == 2 && dumps[0] != dumps[1] {
		t.Fatalf("the two orders end differently:\n%s\n---\n%s", dumps[0], dumps[1])
	}
}

func reseal(t *testing.T, e *ledger.Event, prev ledger.Hash) {
	t.Helper()
	if err := e.Seal(prev); err != nil {
		t.Fatal(err)
	}
}
