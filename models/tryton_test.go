package models_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"

	"github.com/ghsync/ghsync/internal/trytontest"
	"github.com/ghsync/ghsync/models"
)

// TestCheckRealTryton checks the catalogue against a database that a real
// Tryton 6.0 server (Debian's tryton-server with party, company, country,
// currency and product) initialised: Tryton's own models and fields must
// match exactly, the GNU Health modules (not packaged by Debian) must be
// reported as not activated, model by model, and party codes, which plain
// Tryton numbers from an unprefixed sequence, must be refused as a network
// key until an administrator gives the sequence a prefix through Tryton
// (or identifies parties by UUID).
func TestCheckRealTryton(t *testing.T) {
	tdb := trytontest.NewDatabase(t)
	db, err := sql.Open("pgx", tdb.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	checkReal := func(reg *models.Registry) *models.CheckReport {
		t.Helper()
		rep, err := models.Check(context.Background(), db, models.Postgres, reg)
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	tryton := map[string]bool{"party": true, "country": true, "company": true, "product": true}
	// trytonFindings lists the findings about Tryton's own models that are
	// not GNU Health's missing fields; it fails the test on a GNU Health
	// model finding other than model-not-installed.
	trytonFindings := func(rep *models.CheckReport) []string {
		t.Helper()
		var out []string
		for _, mc := range rep.Models {
			for _, f := range mc.Findings {
				switch {
				case tryton[mc.Module] && f.Problem == models.ModuleNotInstalled:
					// Fields that GNU Health's modules add to Tryton's models.
				case tryton[mc.Module] && f.Severity != models.Info:
					out = append(out, mc.Model+" "+string(f.Problem)+" "+f.Field+" "+f.Severity.String())
				case !tryton[mc.Module] && f.Problem != models.ModelNotInstalled:
					t.Errorf("%s: %s, want model-not-installed (GNU Health is not installed)", mc.Model, f.Problem)
				}
			}
		}
		return out
	}
	expectTryton := func(rep *models.CheckReport, want ...string) {
		t.Helper()
		got := trytonFindings(rep)
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("findings about Tryton's own models:\n  %s\nwant:\n  %s\nreport:\n%s", strings.Join(got, "\n  "), strings.Join(want, "\n  "), rep.Text())
		}
	}

	// A fresh plain Tryton: no party yet, but its codes will be "1", "2"...
	rep := checkReal(models.GNUHealth())
	expectTryton(rep, "party.party key-not-network-unique code error")
	if len(rep.Find("party.party", models.ModuleNotInstalled)) == 0 || len(rep.Find("gnuhealth.patient", models.ModelNotInstalled)) != 1 {
		t.Errorf("missing GNU Health modules not reported:\n%s", rep.Text())
	}
	if f := rep.Find("party.party", models.KeyNotNetworkUnique); len(f) != 1 || !strings.Contains(f[0].Message, `sequence "Party" (ir_sequence id 1)`) {
		t.Fatalf("the unprefixed party sequence: %+v", f)
	}

	// The administrator's first way out: identify parties by UUID.
	byUUID, err := models.GNUHealth().WithUUIDIdentity(uuidParty...)
	if err != nil {
		t.Fatal(err)
	}
	expectTryton(checkReal(byUUID))

	// The other: an instance prefix on the sequence, set through trytond.
	tdb.Run(t, `
Configuration = pool.get('party.configuration')
Sequence = pool.get('ir.sequence')
Sequence.write([Configuration(1).party_sequence], {'prefix': 'A-'})
`, nil)
	expectTryton(checkReal(models.GNUHealth()))
	ids := tdb.CreateParties(t, trytontest.Party{Name: "Ann"})
	if p := tdb.ReadParty(t, ids[0]); p.Code != "A-1" {
		t.Fatalf("Tryton numbered the party %q, want A-1", p.Code)
	}
	expectTryton(checkReal(models.GNUHealth()))

	// A code typed as a plain number is refused whatever the sequence.
	tdb.CreateParties(t, trytontest.Party{Name: "Bob", Code: "7"})
	expectTryton(checkReal(models.GNUHealth()), "party.party sequence-keys  error")
}
