package projections_test

import (
	"database/sql"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/ledger/ledgertest"
	"github.com/ghsync/ghsync/models"
	"github.com/ghsync/ghsync/projections"
)

// TestTwoProjectorsOneTarget: two projectors catching up on one target at
// once (ghsync project beside ghsync run, say) must give every record one
// row. Appointments have no unique key in their table, so nothing but the
// projectors' own coordination stops a second insert of the same record:
// one without a row in ghsync.records, which capture would later send to
// the whole network as a new record.
func TestTwoProjectorsOneTarget(t *testing.T) {
	reg := clinicRegistry(t)
	for _, c := range []struct {
		name       string
		sqlite     bool
		noPipeline bool
		batch, n   int
	}{
		{name: "postgres batch by batch", noPipeline: true, batch: 2000, n: 500},
		{name: "postgres pipelined, one batch", batch: 2000, n: 500},
		{name: "postgres pipelined, small batches", batch: 50, n: 3000},
		{name: "sqlite", sqlite: true, batch: 50, n: 1000},
	} {
		t.Run(c.name, func(t *testing.T) {
			store := memLedger(t)
			o := ledgertest.NewOrigin(9)
			evs := make([]*ledger.Event, c.n)
			for i := range evs {
				evs[i] = o.Event(t, "gnuhealth.appointment", uuid.NewString(), ledger.OpCreate,
					map[string]ledger.Value{"state": ledger.String("confirmed")})
			}
			if _, err := store.Append(t.Context(), evs); err != nil {
				t.Fatal(err)
			}
			target := pgTarget
			if c.sqlite {
				target = sqliteTarget
			}
			url := target(t, reg)
			opts := projections.Options{BatchSize: c.batch, NoPipeline: c.noPipeline}
			ps := catchUpTogether(t, url, store, reg, opts, opts)
			for i, p := range ps {
				if cp, err := p.Checkpoint(t.Context()); err != nil || cp != uint64(c.n) {
					t.Errorf("projector %d: checkpoint %d, %v; want %d", i, cp, err, c.n)
				}
			}
			rows, mapped := appointmentRows(t, url)
			if rows != c.n || mapped != c.n {
				t.Errorf("%d appointment rows, %d records with a local id, for %d records", rows, mapped, c.n)
			}
			noOrphans(t, url, reg)
		})
	}
}

// TestTwoProjectorsClinicWorkload: the same with a clinic's mixed work
// (references, parked records, deletes, conflicts, keyed models), one
// projector pipelined and the other batch by batch: the target ends as
// one projector alone leaves it.
func TestTwoProjectorsClinicWorkload(t *testing.T) {
	reg, store := clinicLedger(t)
	for _, target := range []func(testing.TB, *models.Registry) string{pgTarget, sqliteTarget} {
		want := project(t, openProjector(t, target(t, reg), store, reg, 9))
		url := target(t, reg)
		ps := catchUpTogether(t, url, store, reg, projections.Options{BatchSize: 9}, projections.Options{BatchSize: 13, NoPipeline: true})
		sameOutcome(t, url[:strings.Index(url, ":")]+", two projectors", observe(t, ps[0]), want)
		noOrphans(t, url, reg)
	}
}

// catchUpTogether opens a projector for each of opts on target and runs
// their catch-ups at once; each must succeed.
func catchUpTogether(t *testing.T, target string, store ledger.Store, reg *models.Registry, opts ...projections.Options) []*projections.Projector {
	t.Helper()
	ps := make([]*projections.Projector, len(opts))
	for i, o := range opts {
		p, err := projections.Open(t.Context(), target, store, reg, o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		ps[i] = p
	}
	var wg sync.WaitGroup
	errs := make([]error, len(ps))
	for i, p := range ps {
		wg.Go(func() { _, errs[i] = p.CatchUp(t.Context()) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("projector %d: %v", i, err)
		}
	}
	return ps
}

// appointmentRows counts the appointment table's rows and the records
// that have one.
func appointmentRows(t *testing.T, target string) (rows, mapped int) {
	t.Helper()
	db, prefix := openTarget(t, target)
	if err := db.QueryRow(`SELECT count(*) FROM gnuhealth_appointment`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`SELECT count(*) FROM ` + prefix + `records WHERE model = 'gnuhealth.appointment' AND local_id IS NOT NULL`).Scan(&mapped); err != nil {
		t.Fatal(err)
	}
	return rows, mapped
}

// noOrphans checks that every row of every synchronised table is some
// record's: the target holds no other rows than the projector's.
func noOrphans(t *testing.T, target string, reg *models.Registry) {
	t.Helper()
	db, prefix := openTarget(t, target)
	for _, m := range reg.Models() {
		var n int
		q := `SELECT count(*) FROM ` + m.Table + ` t WHERE NOT EXISTS (SELECT 1 FROM ` + prefix + `records r WHERE r.model = ? AND r.local_id = t.id)`
		if strings.HasPrefix(target, "postgres") {
			q = strings.Replace(q, "?", "$1", 1)
		}
		if err := db.QueryRow(q, m.Name).Scan(&n); err != nil {
			t.Fatalf("%s: %v", m.Table, err)
		}
		if n > 0 {
			t.Errorf("%s: %d rows no record has (projected twice)", m.Table, n)
		}
	}
}

// openTarget opens a target's database directly, with the prefix of the
// projector's tables there.
func openTarget(t *testing.T, target string) (*sql.DB, string) {
	t.Helper()
	driver, dsn, prefix := "pgx", target, "ghsync."
	if path, ok := strings.CutPrefix(target, "sqlite:"); ok {
		driver, dsn, prefix = "sqlite", path, "ghsync_"
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, prefix
}
