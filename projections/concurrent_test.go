package projections_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/hashicorp/go-hclog"

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

// TestRebuildBesideProjector: a rebuild empties the target and replays
// the ledger, giving rows their old ids; a projector writing meanwhile
// would give the records it reaches first new ids (or, interleaved, a
// second row). While a rebuild is under way, or after one was stopped,
// other projectors refuse (ErrRebuilding); running the rebuild again
// finishes it with the old ids.
func TestRebuildBesideProjector(t *testing.T) {
	reg, store := clinicLedger(t)
	for _, target := range []func(testing.TB, *models.Registry) string{pgTarget, sqliteTarget} {
		url := target(t, reg)
		name := url[:strings.Index(url, ":")]
		a := openProjector(t, url, store, reg, 9)
		want := project(t, a)
		ids := localIDs(t, url)

		// A rebuild stopped after a few batches leaves the target marked.
		ctx, stop := context.WithCancel(t.Context())
		stopped, err := projections.Open(ctx, url, store, reg, projections.Options{BatchSize: 9,
			Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: &cancelAfter{line: "batch applied", n: 3, cancel: stop}})})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := stopped.Rebuild(ctx); err == nil {
			t.Fatalf("%s: the stopped rebuild finished", name)
		}
		stopped.Close()
		if _, err := a.CatchUp(t.Context()); !errors.Is(err, projections.ErrRebuilding) {
			t.Fatalf("%s: catch up after a stopped rebuild: %v, want ErrRebuilding", name, err)
		}
		if _, err := openProjector(t, url, store, reg, 9).Rebuild(t.Context()); err != nil {
			t.Fatalf("%s: rebuild again: %v", name, err)
		}
		sameOutcome(t, name+", rebuilt after a stopped rebuild", project(t, a), want)
		sameIDs(t, name+", rebuilt after a stopped rebuild", localIDs(t, url), ids)

		// A projector catching up over and over while a rebuild runs.
		done := make(chan error, 1)
		go func() {
			p, err := projections.Open(t.Context(), url, store, reg, projections.Options{BatchSize: 9})
			if err == nil {
				_, err = p.Rebuild(t.Context())
				p.Close()
			}
			done <- err
		}()
		refused := 0
		for running := true; running; {
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("%s: rebuild beside a projector: %v", name, err)
				}
				running = false
			default:
			}
			switch _, err := a.CatchUp(t.Context()); {
			case errors.Is(err, projections.ErrRebuilding):
				refused++
			case err != nil:
				t.Fatalf("%s: catch up beside a rebuild: %v", name, err)
			}
		}
		t.Logf("%s: %d catch-ups refused during the rebuild", name, refused)
		sameOutcome(t, name+", rebuilt beside a projector", project(t, a), want)
		sameIDs(t, name+", rebuilt beside a projector", localIDs(t, url), ids)
		noOrphans(t, url, reg)
	}
}

// cancelAfter cancels once n log lines have said line.
type cancelAfter struct {
	line   string
	n      int
	cancel func()
}

func (c *cancelAfter) Write(b []byte) (int, error) {
	if strings.Contains(string(b), c.line) {
		if c.n--; c.n == 0 {
			c.cancel()
		}
	}
	return len(b), nil
}

// localIDs maps each record with a row ("model key") to its local id.
func localIDs(t *testing.T, target string) map[string]int64 {
	t.Helper()
	db, prefix := openTarget(t, target)
	rows, err := db.Query(`SELECT model, key, local_id FROM ` + prefix + `records WHERE local_id IS NOT NULL`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var model, key string
		var id int64
		if err := rows.Scan(&model, &key, &id); err != nil {
			t.Fatal(err)
		}
		out[model+" "+key] = id
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// sameIDs checks that every record kept its local id.
func sameIDs(t *testing.T, name string, got, want map[string]int64) {
	t.Helper()
	moved := 0
	for k, id := range want {
		if got[k] != id {
			if moved++; moved <= 3 {
				t.Errorf("%s: %s has local id %d, had %d", name, k, got[k], id)
			}
		}
	}
	if moved > 3 || len(got) != len(want) {
		t.Errorf("%s: %d of %d records changed local id; %d records have one, had %d", name, moved, len(want), len(got), len(want))
	}
}
