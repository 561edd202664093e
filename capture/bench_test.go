package capture_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ghsync/ghsync/capture"
	"github.com/ghsync/ghsync/internal/pgbench"
	"github.com/ghsync/ghsync/ledger/postgres"
	"github.com/ghsync/ghsync/models"
)

// Capture benchmarks (see docs/capture-benchmarks.md). Run:
//
//	go test -run '^$' -bench 'CaptureVsLogicalReplication|TriggerOverhead' -benchtime 1x -timeout 60m ./capture
//
// Both start clusters of their own (pgbench.NewCluster: PostgreSQL's
// default durability, fsync, synchronous_commit and full_page_writes on),
// whatever GHSYNC_TEST_PG names. GHSYNC_BENCH_CHANGES sets the number of
// row changes of BenchmarkCaptureVsLogicalReplication (default 1,000,000:
// half inserts, half updates), GHSYNC_BENCH_WORKLOAD its workload (parties,
// the default, or patients: see partyWork), GHSYNC_BENCH_WRITES the number
// of writes of each kind and side of BenchmarkTriggerOverhead (default
// 4,000).

// benchTxRows is how many row changes one transaction of the workload
// makes.
const benchTxRows = 1000

var (
	benchGiven = []string{"Ana", "Carlos", "Dalia", "Errol", "Fiona", "Garfield", "Hyacinth", "Ivan", "Janet", "Kemar"}
	benchLast  = []string{"Brown", "Campbell", "Reid", "Smith", "Williams", "Clarke", "Grant", "Morgan"}
)

// envInt reads a positive integer from the environment, else def.
func envInt(tb testing.TB, name string, def int) int {
	tb.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		tb.Fatalf("%s=%q is not a positive integer", name, s)
	}
	return n
}

// partyWork is the party-shaped workload: parties inserted (code, name,
// lastname, dob, gender, active; create_uid 1), then each updated once, in
// a random order, to a different lastname (write_uid 1, write_date): one
// synchronised column changed. A fixed seed: the same every time. Party i
// gets id i+1 in a fresh database (the inserts take ids from the sequence
// in order).
//
// With patients, each party is inserted with its patient record in the
// same transaction (gnuhealth_patient: name, biological_sex, active; its
// key borrows the party's code, and its name points at the party), and
// the updates change the patient's general_info instead: the shape of a
// clinic's registrations, whose capture also names each patient's lender
// life and the life of the party it points at. Patient i gets id i+1.
type partyWork struct {
	code, name, lastname, gender []string
	dob                          []time.Time
	updID                        []int32 // the party (or patient) id each update changes
	updLast                      []string
	patients                     bool
}

func newPartyWork(parties int, patients bool) *partyWork {
	rng := rand.New(rand.NewPCG(7, 77))
	w := &partyWork{patients: patients}
	last := make([]int, parties)
	for i := range parties {
		last[i] = rng.IntN(len(benchLast))
		w.code = append(w.code, fmt.Sprintf("P%07d", i))
		w.name = append(w.name, benchGiven[rng.IntN(len(benchGiven))])
		w.lastname = append(w.lastname, benchLast[last[i]])
		w.gender = append(w.gender, []string{"f", "m"}[rng.IntN(2)])
		w.dob = append(w.dob, time.Date(1940+rng.IntN(80), time.Month(1+rng.IntN(12)), 1+rng.IntN(28), 0, 0, 0, 0, time.UTC))
	}
	for _, i := range rng.Perm(parties) {
		last[i] = (last[i] + 1 + rng.IntN(len(benchLast)-1)) % len(benchLast)
		w.updID = append(w.updID, int32(i+1))
		w.updLast = append(w.updLast, benchLast[last[i]])
	}
	return w
}

// inserts is the number of rows the inserts make.
func (w *partyWork) inserts() int {
	if w.patients {
		return 2 * len(w.code)
	}
	return len(w.code)
}

func (w *partyWork) changes() int { return w.inserts() + len(w.updID) }

// tables are the tables the workload changes.
func (w *partyWork) tables() []string {
	if w.patients {
		return []string{"party_party", "gnuhealth_patient"}
	}
	return []string{"party_party"}
}

// lastUpdate is a query and its arguments that show the workload's last
// update once a database holds it.
func (w *partyWork) lastUpdate() (query, want string, args int32) {
	last := len(w.updID) - 1
	if w.patients {
		return `SELECT coalesce(general_info, '') FROM gnuhealth_patient WHERE id = $1`, w.updLast[last], w.updID[last]
	}
	return `SELECT lastname FROM party_party WHERE id = $1`, w.updLast[last], w.updID[last]
}

// Load styles: one statement per row, in a pipelined batch (as an
// application, Tryton's ORM, writes), or one statement per transaction
// (unnest of arrays, as a data migration or an import writes).
const (
	styleRows = "rows"
	styleSet  = "set"
)

// tx makes one transaction of the workload on conn: the inserts of
// parties [lo, hi), or (update) the updates [lo, hi), and commits it.
func (w *partyWork) tx(ctx context.Context, conn *pgx.Conn, style string, update bool, lo, hi int) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	now := time.Now().UTC()
	switch {
	case style == styleRows && !update:
		var batch pgx.Batch
		for i := lo; i < hi; i++ {
			batch.Queue(`INSERT INTO party_party (code, name, lastname, dob, gender, active, create_uid, create_date)
				VALUES ($1, $2, $3, $4, $5, true, 1, $6)`, w.code[i], w.name[i], w.lastname[i], w.dob[i], w.gender[i], now)
			if w.patients {
				batch.Queue(`INSERT INTO gnuhealth_patient (name, biological_sex, active, create_uid, create_date)
					VALUES ($1, $2, true, 1, $3)`, i+1, w.gender[i], now)
			}
		}
		err = tx.SendBatch(ctx, &batch).Close()
	case style == styleRows && update:
		var batch pgx.Batch
		for i := lo; i < hi; i++ {
			if w.patients {
				batch.Queue(`UPDATE gnuhealth_patient SET general_info = $1, write_uid = 1, write_date = $2 WHERE id = $3`, w.updLast[i], now, w.updID[i])
			} else {
				batch.Queue(`UPDATE party_party SET lastname = $1, write_uid = 1, write_date = $2 WHERE id = $3`, w.updLast[i], now, w.updID[i])
			}
		}
		err = tx.SendBatch(ctx, &batch).Close()
	case style == styleSet && !update:
		_, err = tx.Exec(ctx, `INSERT INTO party_party (code, name, lastname, dob, gender, active, create_uid, create_date)
			SELECT c, n, l, d, g, true, 1, $6 FROM unnest($1::text[], $2::text[], $3::text[], $4::date[], $5::text[]) AS u(c, n, l, d, g)`,
			w.code[lo:hi], w.name[lo:hi], w.lastname[lo:hi], w.dob[lo:hi], w.gender[lo:hi], now)
		if err == nil && w.patients {
			_, err = tx.Exec(ctx, `INSERT INTO gnuhealth_patient (name, biological_sex, active, create_uid, create_date)
				SELECT lo + n, g, true, 1, $3 FROM unnest($2::text[]) WITH ORDINALITY AS u(g, n), (SELECT $1::int AS lo) l`,
				lo, w.gender[lo:hi], now)
		}
	case style == styleSet && update && w.patients:
		_, err = tx.Exec(ctx, `UPDATE gnuhealth_patient p SET general_info = u.l, write_uid = 1, write_date = $3
			FROM unnest($1::int[], $2::text[]) AS u(id, l) WHERE p.id = u.id`, w.updID[lo:hi], w.updLast[lo:hi], now)
	case style == styleSet && update:
		_, err = tx.Exec(ctx, `UPDATE party_party p SET lastname = u.l, write_uid = 1, write_date = $3
			FROM unnest($1::int[], $2::text[]) AS u(id, l) WHERE p.id = u.id`, w.updID[lo:hi], w.updLast[lo:hi], now)
	default:
		return fmt.Errorf("unknown load style %q", style)
	}
	if err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// loadTimes are the wall-clock times a load took on each side: [0] the
// database without capture, [1] the one with; inserts, then updates.
type loadTimes struct{ ins, upd [2]time.Duration }

// loadInterleaved makes the whole workload on two databases, plain
// (no capture) and captured (capture installed), a transaction on one,
// then the same on the other, alternating which goes first, so that
// whatever else the machine does falls on both alike. Only each
// transaction, from BEGIN to the end of its COMMIT, is timed.
func loadInterleaved(tb testing.TB, w *partyWork, style string, plain, captured *pgx.Conn) loadTimes {
	tb.Helper()
	ctx := context.Background()
	conns := [2]*pgx.Conn{plain, captured}
	var lt loadTimes
	k := 0
	for _, update := range []bool{false, true} {
		n := len(w.code)
		if update {
			n = len(w.updID)
		}
		for lo := 0; lo < n; lo += benchTxRows {
			hi := min(lo+benchTxRows, n)
			for j := range 2 {
				side := j ^ (k & 1)
				start := time.Now()
				if err := w.tx(ctx, conns[side], style, update, lo, hi); err != nil {
					tb.Fatalf("load (%s, update %v, side %d) %d..%d: %v", style, update, side, lo, hi, err)
				}
				if update {
					lt.upd[side] += time.Since(start)
				} else {
					lt.ins[side] += time.Since(start)
				}
			}
			k++
		}
	}
	return lt
}

// loadOnly makes the whole workload on one database, timed likewise.
func loadOnly(tb testing.TB, w *partyWork, style string, conn *pgx.Conn) (ins, upd time.Duration) {
	tb.Helper()
	ctx := context.Background()
	for _, update := range []bool{false, true} {
		n := len(w.code)
		if update {
			n = len(w.updID)
		}
		for lo := 0; lo < n; lo += benchTxRows {
			hi := min(lo+benchTxRows, n)
			start := time.Now()
			if err := w.tx(ctx, conn, style, update, lo, hi); err != nil {
				tb.Fatalf("load (%s, update %v) %d..%d: %v", style, update, lo, hi, err)
			}
			if update {
				upd += time.Since(start)
			} else {
				ins += time.Since(start)
			}
		}
	}
	return ins, upd
}

// benchDB is a database of the benchmark cluster with the Tryton schema
// of reg, and, if captured, capture installed, a PostgreSQL ledger in the
// same database and a capturer draining into it (origin 1).
type benchDB struct {
	name, url string
	conn      *pgx.Conn
	store     *postgres.Store
	cap       *capture.Capturer
}

func newBenchDB(tb testing.TB, c *pgbench.Cluster, prefix string, reg *models.Registry, captured bool) *benchDB {
	tb.Helper()
	ctx := context.Background()
	d := &benchDB{}
	d.name, d.url = c.Database(tb, prefix, reg)
	if captured {
		if _, err := capture.Install(ctx, d.url, reg); err != nil {
			tb.Fatalf("install capture: %v", err)
		}
		var err error
		if d.store, err = postgres.Open(ctx, d.url, postgres.Options{}); err != nil {
			tb.Fatal(err)
		}
		if d.cap, err = capture.Open(ctx, d.url, d.store, reg, capture.Options{Origin: 1}); err != nil {
			tb.Fatalf("open capturer: %v", err)
		}
		if !d.cap.SameDatabase() {
			tb.Fatal("the capturer does not see its ledger as the same database")
		}
	}
	var err error
	if d.conn, err = pgx.Connect(ctx, d.url); err != nil {
		tb.Fatal(err)
	}
	return d
}

func (d *benchDB) count(tb testing.TB, q string) int64 {
	tb.Helper()
	var n int64
	if err := d.conn.QueryRow(context.Background(), q).Scan(&n); err != nil {
		tb.Fatalf("%s: %v", q, err)
	}
	return n
}

// close closes the database's connections and drops it.
func (d *benchDB) close(tb testing.TB, c *pgbench.Cluster) {
	tb.Helper()
	d.conn.Close(context.Background())
	if d.cap != nil {
		d.cap.Close()
		d.store.Close()
	}
	c.Drop(tb, d.name)
}

// overhead is how much longer with took than without, in %.
func overhead(with, without time.Duration) float64 {
	return (with.Seconds()/without.Seconds() - 1) * 100
}

// BenchmarkCaptureVsLogicalReplication measures, on one durable throwaway
// cluster (fsync, synchronous_commit and full_page_writes on;
// wal_level=logical), the same party-shaped row changes — GHSYNC_BENCH_CHANGES
// of them (default 1,000,000): inserts of half as many parties, then one
// update of each (lastname), in transactions of benchTxRows rows:
//
//   - load: the changes made on a database with capture installed and on
//     one without, transaction by transaction in turn, one statement per
//     row (style rows) and, on two more databases, one statement per
//     transaction (style set): rows/s and the triggers' overhead in %;
//   - anchor: PostgreSQL's logical replication applying the changes from a
//     publisher database to a subscriber database (pgbench.Replication):
//     rows/s;
//   - capture: Drain turning the captured database's outbox (the style
//     rows load) into events of a PostgreSQL ledger in the same database:
//     events/s, and x_anchor, its rate over the anchor's.
//
// Only the drain counts as the op's time. A CHECKPOINT precedes the
// anchor and the drain. The anchor's publisher is loaded after the other
// loads and after its slot was made, so its walsender decodes its own
// changes only.
func BenchmarkCaptureVsLogicalReplication(b *testing.B) {
	n := envInt(b, "GHSYNC_BENCH_CHANGES", 1_000_000)
	var patients bool
	switch wl := os.Getenv("GHSYNC_BENCH_WORKLOAD"); wl {
	case "", "parties":
	case "patients":
		patients = true
	default:
		b.Fatalf("GHSYNC_BENCH_WORKLOAD=%q: want parties or patients", wl)
	}
	parties := max(1, n/2)
	if patients {
		parties = max(1, n/3)
	}
	w := newPartyWork(parties, patients)
	n = w.changes()
	reg := models.GNUHealth()
	c := pgbench.NewCluster(b)
	b.Logf("cluster: %s", c.Settings)
	b.StopTimer()
	ctx := context.Background()

	var drainWall, drainCPU, drainOwn, drainServer, anchorWall, anchorCPU time.Duration
	loads := map[string]loadTimes{} // style → sum over ops
	add := func(style string, lt loadTimes) {
		s := loads[style]
		for i := range 2 {
			s.ins[i] += lt.ins[i]
			s.upd[i] += lt.upd[i]
		}
		loads[style] = s
	}
	for range b.N {
		// Load: style rows into the database the drain will read, style
		// set into two more, dropped after.
		plain := newBenchDB(b, c, "plain", reg, false)
		captured := newBenchDB(b, c, "capture", reg, true)
		lt := loadInterleaved(b, w, styleRows, plain.conn, captured.conn)
		add(styleRows, lt)
		b.Logf("load, one statement a row: inserts %v without capture, %v with (%+.1f%%); updates %v without, %v with (%+.1f%%)",
			lt.ins[0].Round(time.Millisecond), lt.ins[1].Round(time.Millisecond), overhead(lt.ins[1], lt.ins[0]),
			lt.upd[0].Round(time.Millisecond), lt.upd[1].Round(time.Millisecond), overhead(lt.upd[1], lt.upd[0]))
		plain.close(b, c)
		setPlain := newBenchDB(b, c, "setplain", reg, false)
		setCaptured := newBenchDB(b, c, "setcapture", reg, true)
		lt = loadInterleaved(b, w, styleSet, setPlain.conn, setCaptured.conn)
		add(styleSet, lt)
		b.Logf("load, one statement a transaction: inserts %v without capture, %v with (%+.1f%%); updates %v without, %v with (%+.1f%%)",
			lt.ins[0].Round(time.Millisecond), lt.ins[1].Round(time.Millisecond), overhead(lt.ins[1], lt.ins[0]),
			lt.upd[0].Round(time.Millisecond), lt.upd[1].Round(time.Millisecond), overhead(lt.upd[1], lt.upd[0]))
		if got := setCaptured.count(b, `SELECT count(*) FROM ghsync.outbox`); got != int64(n) {
			b.Fatalf("the set-style load left %d outbox rows, want %d", got, n)
		}
		setPlain.close(b, c)
		setCaptured.close(b, c)
		if got := captured.count(b, `SELECT count(*) FROM ghsync.outbox`); got != int64(n) {
			b.Fatalf("the load left %d outbox rows, want %d", got, n)
		}
		if got := captured.count(b, `SELECT count(*) FROM party_party WHERE id BETWEEN 1 AND `+strconv.Itoa(parties)); got != int64(parties) {
			b.Fatalf("the captured database holds %d parties with ids 1..%d, want all", got, parties)
		}

		// Anchor: the same changes on a publisher, then replicated.
		r := c.Replication(b, reg, w.tables()...)
		ins, upd := loadOnly(b, w, styleRows, r.Pub)
		b.Logf("anchor: publisher load %v (inserts %v, updates %v); %d row changes, %.1f MiB of WAL behind the slot",
			(ins + upd).Round(time.Millisecond), ins.Round(time.Millisecond), upd.Round(time.Millisecond), n, float64(r.PendingWAL(b))/(1<<20))
		res := r.CatchUp(b, nil, pgbench.RowShows(w.lastUpdate()))
		anchorPatients := patientDigest(b, r.Sub)
		anchorDigest := r.Finish(b, parties)
		anchorWall += res.Wall
		anchorCPU += res.CPU

		// Capture: drain the outbox into the ledger.
		c.Checkpoint(b)
		meter := c.Meter(b, true, nil, captured.name)
		b.StartTimer()
		start := time.Now()
		st, err := captured.cap.Drain(ctx)
		d := time.Since(start)
		b.StopTimer()
		cpu := meter.Stop(b)
		if err != nil {
			b.Fatalf("drain: %v", err)
		}
		b.Logf("capture: %d changes, %d events in %d batches: %v (%.0f events/s); %v",
			st.Changes, st.Events, st.Batches, d.Round(time.Millisecond), float64(st.Events)/d.Seconds(), meter)
		if st.Changes != n || st.Events != n {
			b.Fatalf("drain read %d changes and appended %d events, want %d of each", st.Changes, st.Events, n)
		}
		if left, events := captured.count(b, `SELECT count(*) FROM ghsync.outbox`), captured.count(b, `SELECT count(*) FROM ghsync.events`); left != 0 || events != int64(n) {
			b.Fatalf("after the drain: %d outbox rows, %d events; want 0, %d", left, events, n)
		}
		if rows, digest := pgbench.PartyDigest(b, captured.url); rows != parties || digest != anchorDigest {
			b.Fatalf("the captured database holds %d parties (digest %s), the anchor's subscriber %d (%s)", rows, digest, parties, anchorDigest)
		}
		if got := patientDigest(b, captured.conn); got != anchorPatients {
			b.Fatalf("the captured database's patients (%s) differ from the anchor's subscriber's (%s)", got, anchorPatients)
		}
		drainWall += d
		drainCPU += cpu
		drainOwn += meter.OwnUsed
		drainServer += meter.ServerUsed
		captured.close(b, c)
	}

	total := float64(b.N * n)
	rate := total / drainWall.Seconds()
	anchorRate := total / anchorWall.Seconds()
	b.ReportMetric(rate, "events/s")
	b.ReportMetric(anchorRate, "anchor_rows/s")
	b.ReportMetric(rate/anchorRate, "x_anchor")
	b.ReportMetric(drainCPU.Seconds()/total*1e6, "cpu_µs/event")
	b.ReportMetric(drainOwn.Seconds()/total*1e6, "cpu_own_µs/event")
	b.ReportMetric(drainServer.Seconds()/total*1e6, "cpu_server_µs/event")
	b.ReportMetric(anchorCPU.Seconds()/total*1e6, "anchor_cpu_µs/row")
	b.ReportMetric(anchorCPU.Seconds()/drainCPU.Seconds(), "x_anchor_cpu")
	for _, style := range []string{styleRows, styleSet} {
		lt := loads[style]
		ins, upd := float64(b.N*w.inserts()), float64(b.N*len(w.updID))
		b.ReportMetric(ins/lt.ins[0].Seconds(), "load_"+style+"_ins_plain_rows/s")
		b.ReportMetric(ins/lt.ins[1].Seconds(), "load_"+style+"_ins_capture_rows/s")
		b.ReportMetric(overhead(lt.ins[1], lt.ins[0]), "load_"+style+"_ins_overhead_%")
		b.ReportMetric(upd/lt.upd[0].Seconds(), "load_"+style+"_upd_plain_rows/s")
		b.ReportMetric(upd/lt.upd[1].Seconds(), "load_"+style+"_upd_capture_rows/s")
		b.ReportMetric(overhead(lt.upd[1], lt.upd[0]), "load_"+style+"_upd_overhead_%")
	}
}

// patientDigest summarises gnuhealth_patient's content by its party's
// code (not ids, not audit columns): the count and an md5.
func patientDigest(tb testing.TB, conn *pgx.Conn) string {
	tb.Helper()
	var n int
	var digest string
	err := conn.QueryRow(context.Background(), `SELECT count(*), coalesce(md5(string_agg(concat_ws('|', p.code, t.biological_sex,
		t.general_info, t.active), ',' ORDER BY p.code)), '') FROM gnuhealth_patient t JOIN party_party p ON p.id = t.name`).Scan(&n, &digest)
	if err != nil {
		tb.Fatalf("digest gnuhealth_patient: %v", err)
	}
	return fmt.Sprintf("%d patients, %s", n, digest)
}

// percentile is the q-quantile (0..1) of sorted durations, nearest rank.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// BenchmarkTriggerOverhead measures the latency a typical single-row Tryton
// write takes with and without the capture triggers, on a durable
// throwaway cluster (fsync, synchronous_commit and full_page_writes on;
// wal_level=replica, as a production server): two databases with the same
// schema and 10,000 parties, one with capture installed (and a PostgreSQL
// ledger in it), one without, each written through one connection:
//
//   - write=update: BEGIN; UPDATE party_party SET name = $1, write_uid = 1,
//     write_date = now() WHERE id = $2 (a random party, a new name);
//     COMMIT;
//   - write=insert: BEGIN; INSERT a party RETURNING id; INSERT an address
//     of it; COMMIT.
//
// The writes go in rounds, a round on one database and then one on the
// other, alternating which goes first; after each round the outbox is
// drained (not timed), as a running capturer would keep it short. Each
// write is timed from BEGIN to the end of its COMMIT. Reported: p50, p99
// and mean of each side, and the added latency in % of p50, p99 and mean.
func BenchmarkTriggerOverhead(b *testing.B) {
	writes := envInt(b, "GHSYNC_BENCH_WRITES", 4000)
	const perRound = 200
	rounds := max(1, (writes+perRound-1)/perRound)
	reg := models.GNUHealth()
	c := pgbench.NewCluster(b, "wal_level=replica")
	b.Logf("cluster: %s", c.Settings)
	ctx := context.Background()
	plain := newBenchDB(b, c, "plain", reg, false)
	captured := newBenchDB(b, c, "capture", reg, true)
	const preload = 10_000
	pw := newPartyWork(preload, false)
	for _, d := range []*benchDB{plain, captured} {
		for lo := 0; lo < preload; lo += benchTxRows {
			if err := pw.tx(ctx, d.conn, styleSet, false, lo, min(lo+benchTxRows, preload)); err != nil {
				b.Fatal(err)
			}
		}
	}
	drain := func() {
		b.Helper()
		if _, err := captured.cap.Drain(ctx); err != nil {
			b.Fatalf("drain: %v", err)
		}
	}
	drain()
	c.Checkpoint(b)
	rng := rand.New(rand.NewPCG(1, 2))
	seq := 0 // the same sequence of values on both sides

	// write makes one write of kind on conn, the i-th of its side.
	write := func(conn *pgx.Conn, kind string, i int, party int32) time.Duration {
		start := time.Now()
		tx, err := conn.Begin(ctx)
		if err != nil {
			b.Fatal(err)
		}
		switch kind {
		case "update":
			_, err = tx.Exec(ctx, `UPDATE party_party SET name = $1, write_uid = 1, write_date = now() WHERE id = $2`, "Name "+strconv.Itoa(i), party)
		case "insert":
			var id int64
			code := "T" + strconv.Itoa(i)
			err = tx.QueryRow(ctx, `INSERT INTO party_party (code, name, lastname, active, is_person, create_uid, create_date)
				VALUES ($1, $2, $3, true, true, 1, now() AT TIME ZONE 'UTC') RETURNING id`, code, "Name "+code, "Brown").Scan(&id)
			if err == nil {
				_, err = tx.Exec(ctx, `INSERT INTO party_address (party, street, city, active, create_uid, create_date)
					VALUES ($1, $2, 'Kingston', true, 1, now() AT TIME ZONE 'UTC')`, id, strconv.Itoa(i)+" King St")
			}
		}
		if err == nil {
			err = tx.Commit(ctx)
		}
		if err != nil {
			b.Fatalf("%s: %v", kind, err)
		}
		return time.Since(start)
	}

	for _, kind := range []string{"update", "insert"} {
		b.Run("write="+kind, func(b *testing.B) {
			var lat [2][]time.Duration // [0] without capture, [1] with
			var ratios []float64       // per round: p50 with / p50 without
			conns := [2]*pgx.Conn{plain.conn, captured.conn}
			for range b.N {
				for r := -1; r < rounds; r++ { // round -1 warms up, not counted
					parties := make([]int32, perRound)
					for i := range parties {
						parties[i] = int32(1 + rng.IntN(preload))
					}
					var round [2][]time.Duration
					for j := range 2 {
						side := j ^ (r & 1)
						for i, p := range parties {
							round[side] = append(round[side], write(conns[side], kind, seq+i, p))
						}
					}
					seq += perRound
					drain()
					if r < 0 {
						continue
					}
					for side := range 2 {
						lat[side] = append(lat[side], round[side]...)
						slices.Sort(round[side])
					}
					ratios = append(ratios, percentile(round[1], 0.5).Seconds()/percentile(round[0], 0.5).Seconds())
				}
			}
			var p50, p99, mean [2]time.Duration
			for side := range 2 {
				slices.Sort(lat[side])
				p50[side], p99[side] = percentile(lat[side], 0.5), percentile(lat[side], 0.99)
				var sum time.Duration
				for _, d := range lat[side] {
					sum += d
				}
				mean[side] = sum / time.Duration(len(lat[side]))
			}
			slices.Sort(ratios)
			b.Logf("%s: %d writes a side in %d rounds; without capture p50 %v p99 %v mean %v; with p50 %v p99 %v mean %v; "+
				"per-round p50 ratio min %.3f median %.3f max %.3f",
				kind, len(lat[0]), len(ratios), p50[0], p99[0], mean[0], p50[1], p99[1], mean[1],
				ratios[0], ratios[len(ratios)/2], ratios[len(ratios)-1])
			ms := func(d time.Duration) float64 { return d.Seconds() * 1e3 }
			b.ReportMetric(ms(p50[0]), "plain_p50_ms")
			b.ReportMetric(ms(p99[0]), "plain_p99_ms")
			b.ReportMetric(ms(p50[1]), "capture_p50_ms")
			b.ReportMetric(ms(p99[1]), "capture_p99_ms")
			b.ReportMetric(overhead(p50[1], p50[0]), "added_p50_%")
			b.ReportMetric(overhead(p99[1], p99[0]), "added_p99_%")
			b.ReportMetric(overhead(mean[1], mean[0]), "added_mean_%")
			b.ReportMetric((ratios[len(ratios)/2]-1)*100, "added_p50_round_median_%")
		})
	}
	plain.close(b, c)
	captured.close(b, c)
}
