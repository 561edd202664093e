package projections_test

import (
	"context"
	"testing"

	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/ledger/ledgertest"
	"github.com/ghsync/ghsync/models"
)

// A record written before its create arrived has no row; Uncreated lists
// it until the create comes, then it is an ordinary row.
func TestUncreatedListed(t *testing.T) {
	reg := clinicRegistry(t)
	for name, target := range map[string]func(testing.TB, *models.Registry) string{"sqlite": sqliteTarget, "postgres": pgTarget} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			store := memLedger(t)
			p := openProjector(t, target(t, reg), store, reg, 0)
			o := ledgertest.NewOrigin(2)
			create := o.Event(t, "party.party", "P-1", ledger.OpCreate, map[string]ledger.Value{"code": ledger.String("P-1"), "name": ledger.String("Ann")})
			write := o.Event(t, "party.party", "P-1", ledger.OpWrite, map[string]ledger.Value{"name": ledger.String("Anne")})
			deleted := o.Event(t, "party.party", "P-2", ledger.OpDelete, nil)
			// Another origin's ledger order: the write (and a delete of a
			// record never created) first, as a satellite outside the
			// record's scope would see them.
			other := []*ledger.Event{write, deleted}
			if _, err := store.Append(ctx, other); err != nil {
				t.Fatal(err)
			}
			if _, err := p.CatchUp(ctx); err != nil {
				t.Fatal(err)
			}
			un, err := p.Uncreated(ctx)
			if err != nil || len(un) != 1 || un[0].Model != "party.party" || un[0].Key != "P-1" || un[0].Writes != 1 {
				t.Fatalf("uncreated after the write alone: %+v, %v", un, err)
			}
			if _, err := store.Append(ctx, []*ledger.Event{create}); err != nil {
				t.Fatal(err)
			}
			if _, err := p.CatchUp(ctx); err != nil {
				t.Fatal(err)
			}
			if un, err := p.Uncreated(ctx); err != nil || len(un) != 0 {
				t.Fatalf("uncreated after the create: %+v, %v", un, err)
			}
		})
	}
}
