package projections_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/ghsync/ghsync/clocks"
	"github.com/ghsync/ghsync/fixtures"
	"github.com/ghsync/ghsync/internal/pgtest"
	"github.com/ghsync/ghsync/internal/schematest"
	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/ledger/sqlite"
	"github.com/ghsync/ghsync/merge"
	"github.com/ghsync/ghsync/models"
	"github.com/ghsync/ghsync/projections"
)

func TestMain(m *testing.M) {
	runCrashChild()
	os.Exit(pgtest.Main(m))
}

// clinicRegistry is a compact slice of GNU Health with every shape the
// projector must handle: a unique key (party code), a key through a
// Many2One (patient → party), a composite key (ward = institution + name),
// UUID models (appointment, evaluation), a Many2Many (party categories,
// an add-wins set), chains party → patient → appointment → evaluation,
// required and optional references, Numeric and DateTime values, and a
// central-wins reference model.
func clinicRegistry(tb testing.TB) *models.Registry {
	tb.Helper()
	reg, err := models.NewRegistry(
		models.Define("party.category", "party", models.Key("name"),
			models.F("name", models.Char).Required(),
			models.F("active", models.Boolean),
			models.DefaultRule(merge.CentralWins),
		),
		models.Define("party.party", "party", models.Key("code"),
			models.F("code", models.Char).Required(),
			models.F("name", models.Char),
			models.F("lastname", models.Char),
			models.F("ref", models.Char),
			models.F("dob", models.Date),
			models.F("gender", models.Selection),
			models.F("active", models.Boolean),
			models.M2M("categories", "party.category", "party_category_rel", "party", "category"),
			models.Skip("internal_user", "target res.user is instance-local"),
		),
		models.Define("gnuhealth.patient", "health", models.Key("name"),
			models.M2O("name", "party.party").Required(),
			models.F("blood_type", models.Selection),
			models.F("critical_info", models.Text),
			models.F("active", models.Boolean),
		),
		models.Define("gnuhealth.institution", "health", models.Key("code"),
			models.M2O("name", "party.party").Required(),
			models.F("code", models.Char).Required(),
			models.F("beds", models.Integer),
		),
		models.Define("gnuhealth.hospital.ward", "health", models.Key("institution", "name"),
			models.F("name", models.Char).Required(),
			models.M2O("institution", "gnuhealth.institution").Required(),
			models.F("number_of_beds", models.Integer),
			models.F("state", models.Selection),
		),
		models.Define("gnuhealth.appointment", "health", models.ByUUID,
			models.M2O("patient", "gnuhealth.patient"),
			models.M2O("institution", "gnuhealth.institution"),
			models.F("appointment_date", models.DateTime),
			models.F("state", models.Selection),
		),
		models.Define("gnuhealth.patient.evaluation", "health", models.ByUUID,
			models.M2O("patient", "gnuhealth.patient").Required(),
			models.M2O("appointment", "gnuhealth.appointment"),
			models.F("evaluation_start", models.DateTime).Required(),
			models.F("weight", models.Numeric),
			models.F("chief_complaint", models.Char),
		),
	)
	if err != nil {
		tb.Fatalf("clinic registry: %v", err)
	}
	return reg
}

// pgTarget makes an empty Tryton-shaped database for reg and returns its
// projection URL.
func pgTarget(tb testing.TB, reg *models.Registry) string {
	tb.Helper()
	return schematest.NewPostgres(tb, reg)
}

func sqliteTarget(tb testing.TB, reg *models.Registry) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "tryton.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	if err := fixtures.CreateTrytonSchema(context.Background(), db, reg, models.SQLite); err != nil {
		tb.Fatal(err)
	}
	return "sqlite:" + path
}

func memLedger(tb testing.TB) ledger.Store {
	tb.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(tb.TempDir(), "ledger.db"), sqlite.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func openProjector(tb testing.TB, target string, store ledger.Store, reg *models.Registry, batch int) *projections.Projector {
	tb.Helper()
	p, err := projections.Open(context.Background(), target, store, reg, projections.Options{BatchSize: batch})
	if err != nil {
		tb.Fatalf("open projector on %s: %v", target, err)
	}
	tb.Cleanup(p.Close)
	return p
}

// frontierBefore is the greatest HLC below every event of evs: a
// stability frontier whose premise holds once the events before evs are
// applied.
func frontierBefore(evs []*ledger.Event) clocks.Timestamp {
	f := evs[0].HLC
	for _, e := range evs {
		f = min(f, e.HLC)
	}
	return f - 1
}
