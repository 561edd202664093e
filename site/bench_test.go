package site_test

import (
	"context"
	"database/sql"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ghsync/ghsync/central"
	"github.com/ghsync/ghsync/clocks"
	"github.com/ghsync/ghsync/fixtures"
	"github.com/ghsync/ghsync/internal/pgbench"
	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/ledger/postgres"
	"github.com/ghsync/ghsync/models"
	"github.com/ghsync/ghsync/projections"
	"github.com/ghsync/ghsync/satellite"
	"github.com/ghsync/ghsync/site"
	"github.com/ghsync/ghsync/wire"
)

// BenchmarkCatchUpAfterOffline: a satellite that missed N events of a busy
// network (four instances' clinic activity: registrations, appointments,
// evaluations, edits, cancellations) pulls them from central over
// loopback HTTP and projects them into its GNU Health tables. In the same
// run, on the same durable cluster, the anchor: PostgreSQL logical
// replication catching up the same row changes (the projection of the
// same ledger into a publisher, replayed into a subscriber).
//
//	GHSYNC_BENCH_EVENTS=1000000 go test -run '^$' -bench CatchUpAfterOffline -benchtime 1x -timeout 60m ./site
func BenchmarkCatchUpAfterOffline(b *testing.B) {
	n := 200_000
	if s := os.Getenv("GHSYNC_BENCH_EVENTS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	ctx := context.Background()
	reg := models.GNUHealth()
	c := pgbench.NewCluster(b)
	b.Logf("cluster: %s", c.Settings)

	// Central's ledger: four instances' activity.
	centralDB, centralURL := c.Database(b, "central", reg)
	cstore, err := postgres.Open(ctx, centralURL, postgres.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer cstore.Close()
	var clinics []*fixtures.Clinic
	for origin := uint16(0); origin < 4; origin++ {
		seq, err := ledger.Resume(ctx, cstore, origin, clocks.NewClock(nil, clocks.DefaultMaxOffset))
		if err != nil {
			b.Fatal(err)
		}
		clinics = append(clinics, fixtures.NewClinic(origin, seq, 42))
	}
	if err := fixtures.Fill(ctx, cstore, clinics, n/4, 2000); err != nil {
		b.Fatal(err)
	}
	head, _ := cstore.Head(ctx)

	// The anchor: the same row changes, replicated.
	var tables []string
	for _, m := range reg.Models() {
		tables = append(tables, m.Table)
		for _, f := range m.Fields {
			if f.Relation != nil {
				tables = append(tables, f.Relation.Table)
			}
		}
	}
	rep := c.Replication(b, reg, tables...)
	// As an administrator who followed ghsync models check, unless
	// GHSYNC_BENCH_AS_SHIPPED is set: the indexes it recommends, on the
	// satellite and the anchor's subscriber alike.
	indexed := os.Getenv("GHSYNC_BENCH_AS_SHIPPED") == ""
	if indexed {
		b.Logf("anchor subscriber: %d recommended indexes created", createRecommendedIndexes(b, rep.SubURL, reg))
	}
	pub, err := projections.Open(ctx, rep.PubURL, cstore, reg, projections.Options{Name: "anchor-publisher"})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := pub.CatchUp(ctx); err != nil {
		b.Fatal(err)
	}
	pub.Close()
	if _, err := rep.Pub.Exec(ctx, `INSERT INTO party_party (code, name, active) VALUES ('ZZ-END', 'end of the anchor', true)`); err != nil {
		b.Fatal(err)
	}
	var rowChanges int64
	if err := rep.Pub.QueryRow(ctx, `SELECT sum(n_tup_ins + n_tup_upd + n_tup_del) FROM pg_stat_user_tables WHERE schemaname = 'public'`).Scan(&rowChanges); err != nil {
		b.Fatal(err)
	}
	var parties int
	rep.Pub.QueryRow(ctx, `SELECT count(*) FROM party_party`).Scan(&parties)
	anchor := rep.CatchUp(b, nil, pgbench.RowShows(`SELECT count(*) FROM party_party WHERE code = 'ZZ-END'`, "1"))
	rep.Finish(b, parties)
	anchorRate := float64(rowChanges) / anchor.Wall.Seconds()

	// ghsync: central serves, the satellite pulls and projects.
	creg, err := central.OpenRegistry(ctx, centralURL)
	if err != nil {
		b.Fatal(err)
	}
	defer creg.Close()
	tok, hash, _ := central.NewToken()
	if err := creg.AddSatellite(ctx, central.Satellite{ID: 9, Name: "offline clinic", Scope: wire.ScopeAll, TokenHash: hash, Created: time.Now()}); err != nil {
		b.Fatal(err)
	}
	srv, err := central.New(central.Config{Store: cstore, Registry: creg, Logger: hclog.NewNullLogger()})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	ts := httptest.NewServer(srv)
	defer ts.Close()
	satDB, satURL := c.Database(b, "satellite", reg)
	if indexed {
		b.Logf("satellite: %d recommended indexes created", createRecommendedIndexes(b, satURL, reg))
	}
	sstore, err := postgres.Open(ctx, satURL, postgres.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer sstore.Close()
	var last satellite.Progress // the pull's, as it goes
	var pullEnd time.Time
	sat, err := site.Open(ctx, site.Config{Origin: 9, Target: satURL, Store: sstore, StoreLocation: satURL, Registry: reg,
		Central: ts.URL, Token: tok, Progress: func(p satellite.Progress) {
			if p.Op == "pull" {
				last, pullEnd = p, time.Now()
			}
		}})
	if err != nil {
		b.Fatal(err)
	}
	defer sat.Close()
	c.Checkpoint(b)
	os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) // reset the peak RSS (Linux)
	meter := c.Meter(b, true, nil, centralDB, satDB)
	b.ResetTimer()
	start := time.Now()
	rp, err := sat.Sync(ctx)
	if err != nil {
		b.Fatal(err)
	}
	took := time.Since(start)
	b.StopTimer()
	meter.Stop(b)
	if uint64(rp.Pulled) != head || uint64(rp.Projected) != head || uint64(last.Events) != head {
		b.Fatalf("pulled %d (progress: %d) and projected %d events, central holds %d", rp.Pulled, last.Events, rp.Projected, head)
	}
	pulled := pullEnd.Sub(start) // the projection overlaps it
	rate := float64(head) / took.Seconds()
	b.ReportMetric(rate, "events/s")
	b.ReportMetric(float64(head)/pulled.Seconds(), "pull-events/s")
	b.ReportMetric(float64(last.Bytes)/float64(head), "wire-bytes/event")
	b.ReportMetric(anchorRate, "anchor-rows/s")
	b.ReportMetric(rate/anchorRate, "ratio")
	b.ReportMetric(float64(peakRSS())/(1<<20), "peak-RSS-MiB")
	b.Logf("%d events (%d anchor row changes): ghsync %v (the pull done after %v, the projection running alongside; %v, central's in both), %.0f events/s; anchor %v, %.0f rows/s; ratio %.2f; %.0f wire bytes/event; peak RSS %d MiB; recommended indexes: %v",
		head, rowChanges, took.Round(time.Millisecond), pulled.Round(time.Millisecond), meter,
		rate, anchor.Wall.Round(time.Millisecond), anchorRate, rate/anchorRate, float64(last.Bytes)/float64(head), peakRSS()>>20, indexed)
}

// peakRSS is this process's peak resident set (VmHWM), in bytes; 0 where
// /proc is not.
func peakRSS() int64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// createRecommendedIndexes makes the indexes ghsync models check
// recommends in the database at url, and returns how many.
func createRecommendedIndexes(b *testing.B, url string, reg *models.Registry) int {
	b.Helper()
	db, err := sql.Open("pgx", url)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	r, err := models.Check(context.Background(), db, models.Postgres, reg)
	if err != nil {
		b.Fatal(err)
	}
	n, err := models.CreateIndexes(context.Background(), db, r)
	if err != nil {
		b.Fatal(err)
	}
	return n
}
