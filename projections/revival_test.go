package projections_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/ledger/ledgertest"
	"github.com/ghsync/ghsync/merge"
	"github.com/ghsync/ghsync/models"
)

// A party code used again after its party was deleted begins a new life
// of the record (merge.Revives). Where the old life has a row, the new
// life must not inherit it: rows of tables ghsync does not synchronise
// (a clinic's own notes, say) point at the old person and go with the
// old row, by the table's ON DELETE action, as they do when the delete
// and the new registration reach the site in separate batches.
func TestRevivalInOneBatchReplacesTheRow(t *testing.T) {
	reg := clinicRegistry(t)
	for name, target := range map[string]func(testing.TB, *models.Registry) string{"sqlite": sqliteTarget, "postgres": pgTarget} {
		for _, together := range []bool{false, true} {
			label := name + "/separate batches"
			if together {
				label = name + "/one batch"
			}
			t.Run(label, func(t *testing.T) {
				ctx := context.Background()
				url := target(t, reg)
				db, _ := openTarget(t, url)
				if _, err := db.ExecContext(ctx, `CREATE TABLE clinic_note (id integer PRIMARY KEY,
					party integer NOT NULL REFERENCES party_party (id) ON DELETE CASCADE, note text)`); err != nil {
					t.Fatal(err)
				}
				store := memLedger(t)
				p := openProjector(t, url, store, reg, 0)
				a, b := ledgertest.NewOrigin(2), ledgertest.NewOrigin(3)
				appendAndProject := func(evs ...*ledger.Event) {
					t.Helper()
					if _, err := store.Append(ctx, evs); err != nil {
						t.Fatal(err)
					}
					if _, err := p.CatchUp(ctx); err != nil {
						t.Fatal(err)
					}
				}
				// Ann's category has not arrived (her record waits for
				// it); it comes with Bob, who has it too: his row gets
				// the only link.
				vip, err := ledger.RefSet(ledger.Ref{Model: "party.category", Key: "vip"})
				if err != nil {
					t.Fatal(err)
				}
				appendAndProject(a.Event(t, "party.party", "P-1", ledger.OpCreate,
					map[string]ledger.Value{"code": ledger.String("P-1"), "name": ledger.String("Ann"), "categories": vip}))
				var ann int64
				if err := db.QueryRowContext(ctx, `SELECT id FROM party_party WHERE code = 'P-1'`).Scan(&ann); err != nil {
					t.Fatal(err)
				}
				if _, err := db.ExecContext(ctx, fmt.Sprintf(`INSERT INTO clinic_note (id, party, note) VALUES (1, %d, 'allergic to penicillin')`, ann)); err != nil {
					t.Fatal(err)
				}

				// Origin 2 deletes Ann; origin 3, having seen the delete,
				// registers Bob under the code.
				del := a.Event(t, "party.party", "P-1", ledger.OpDelete, nil)
				if _, err := b.Clock.Observe(del.HLC); err != nil {
					t.Fatal(err)
				}
				bob := b.Event(t, "party.party", "P-1", ledger.OpCreate, map[string]ledger.Value{
					"code": ledger.String("P-1"), "name": ledger.String("Bob"), "categories": vip, merge.Revives: ledger.Int(int64(del.HLC))})
				cat := b.Event(t, "party.category", "vip", ledger.OpCreate, map[string]ledger.Value{"name": ledger.String("vip")})
				if together {
					appendAndProject(del, bob, cat)
				} else {
					appendAndProject(del)
					appendAndProject(bob, cat)
				}

				var id int64
				var who string
				if err := db.QueryRowContext(ctx, `SELECT id, name FROM party_party WHERE code = 'P-1'`).Scan(&id, &who); err != nil {
					t.Fatal(err)
				}
				var notes int
				if err := db.QueryRowContext(ctx, `SELECT count(*) FROM clinic_note`).Scan(&notes); err != nil {
					t.Fatal(err)
				}
				var parties, links int
				if err := db.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM party_party), (SELECT count(*) FROM party_category_rel)`).Scan(&parties, &links); err != nil {
					t.Fatal(err)
				}
				if parties != 1 || links != 1 {
					t.Fatalf("%d parties and %d category links, want Bob's row and its link alone", parties, links)
				}
				if who != "Bob" || id == ann || notes != 0 {
					t.Fatalf("after Ann's delete and Bob's registration under her code: party %d %q (Ann's row was %d), %d of Ann's notes left; want Bob in a new row and Ann's note gone with hers",
						id, who, ann, notes)
				}
				if cs, err := p.Conflicts(ctx); err != nil || len(cs) != 0 {
					t.Fatalf("conflicts %v (%v), want none", cs, err)
				}
			})
		}
	}
}
