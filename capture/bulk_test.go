package capture_test

import (
	"context"
	"database/sql"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ghsync/ghsync/capture"
	"github.com/ghsync/ghsync/fixtures"
	"github.com/ghsync/ghsync/internal/pgtest"
	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/ledger/postgres"
	"github.com/ghsync/ghsync/models"
)

// bulkRows is how many parties TestBulkLoadMillionRows loads.
const bulkRows = 1_000_000

// bulkStatements is how many INSERT ... SELECT statements load them.
const bulkStatements = 4

// bulkCode is the code the bulk load gives party n (1-based), as SQL
// makes it: 'B' || lpad(n::text, 7, '0').
func bulkCode(n int) string {
	s := strconv.Itoa(n)
	return "B" + strings.Repeat("0", max(0, 7-len(s))) + s
}

// TestBulkLoadMillionRows is a data migration on a GNU Health database
// with capture installed: 1,000,000 parties inserted by a few
// INSERT ... SELECT generate_series statements in one transaction (the
// statement triggers write one outbox row a party), then drained into a
// PostgreSQL ledger in the same database. Every row must be captured,
// exactly once: 1M creates of party.party whose keys are the inserted
// codes, each once; an empty outbox; an id map entry per party; a ledger
// that verifies. It logs how long each step took.
func TestBulkLoadMillionRows(t *testing.T) {
	t.Parallel() // the package's longest test: it overlaps the random histories
	c, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	reg := models.GNUHealth()
	target := pgtest.NewDatabase(t)
	db, err := sql.Open("pgx", target)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := fixtures.CreateTrytonSchema(c, db, reg, models.Postgres); err != nil {
		t.Fatal(err)
	}
	if _, err := capture.Install(c, target, reg); err != nil {
		t.Fatalf("install capture: %v", err)
	}
	store, err := postgres.Open(c, target, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	const origin = 5
	capt, err := capture.Open(c, target, store, reg, capture.Options{Origin: origin})
	if err != nil {
		t.Fatalf("open capturer: %v", err)
	}
	defer capt.Close()
	if !capt.SameDatabase() {
		t.Fatal("the capturer does not see its ledger as the same database")
	}

	// The migration: a few statements, one transaction, as Tryton's
	// columns would be filled (create_uid, create_date; booleans default
	// false).
	start := time.Now()
	tx, err := db.BeginTx(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	per := bulkRows / bulkStatements
	for lo := 1; lo <= bulkRows; lo += per {
		hi := min(lo+per-1, bulkRows)
		if _, err := tx.ExecContext(c, `INSERT INTO party_party (code, name, lastname, dob, gender, active, is_person, create_uid, create_date)
			SELECT 'B' || lpad(g::text, 7, '0'), 'Name ' || g, (ARRAY['Brown','Campbell','Reid','Smith','Williams','Clarke','Grant','Morgan'])[1 + g % 8],
				date '1940-01-01' + g % 29000, CASE WHEN g % 2 = 0 THEN 'f' ELSE 'm' END, true, true, 1, now() AT TIME ZONE 'UTC'
			FROM generate_series($1::int, $2::int) g`, lo, hi); err != nil {
			t.Fatalf("bulk insert %d..%d: %v", lo, hi, err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	load := time.Since(start)
	var outbox int64
	if err := db.QueryRowContext(c, `SELECT count(*) FROM ghsync.outbox`).Scan(&outbox); err != nil {
		t.Fatal(err)
	}
	if outbox != bulkRows {
		t.Fatalf("the bulk load left %d outbox rows, want %d", outbox, bulkRows)
	}
	t.Logf("load: %d rows in %d statements, one transaction: %v (%.0f rows/s), %d outbox rows",
		bulkRows, bulkStatements, load.Round(time.Millisecond), bulkRows/load.Seconds(), outbox)

	start = time.Now()
	st, err := capt.Drain(c)
	drain := time.Since(start)
	if err != nil {
		t.Fatalf("drain: %v", err)
	}
	t.Logf("drain: %d changes, %d events in %d batches: %v (%.0f events/s)",
		st.Changes, st.Events, st.Batches, drain.Round(time.Millisecond), float64(st.Events)/drain.Seconds())
	if st.Changes != bulkRows || st.Events != bulkRows {
		t.Fatalf("drain read %d changes and appended %d events, want %d and %d", st.Changes, st.Events, bulkRows, bulkRows)
	}

	// Everything captured, once: checked on the database first (outbox,
	// id map, the events' keys against the codes) ...
	start = time.Now()
	var left, events, keys, matched, mapped int64
	if err := db.QueryRowContext(c, `SELECT
		(SELECT count(*) FROM ghsync.outbox),
		(SELECT count(*) FROM ghsync.events),
		(SELECT count(DISTINCT key) FROM ghsync.events WHERE model = 'party.party'),
		(SELECT count(*) FROM ghsync.events e JOIN party_party p ON p.code = e.key WHERE e.model = 'party.party'),
		(SELECT count(*) FROM ghsync.records m JOIN party_party p ON p.id = m.local_id AND p.code = m.key WHERE m.model = 'party.party')`).
		Scan(&left, &events, &keys, &matched, &mapped); err != nil {
		t.Fatal(err)
	}
	if left != 0 || events != bulkRows || keys != bulkRows || matched != bulkRows || mapped != bulkRows {
		t.Fatalf("after the drain: %d outbox rows (want 0), %d events, %d distinct party keys, %d events whose key is a party's code, "+
			"%d id map entries naming their party (want %d of each)", left, events, keys, matched, mapped, bulkRows)
	}
	// ... then on the events themselves, as the ledger returns them.
	seen := make([]bool, bulkRows+1)
	var after, seq uint64
	for {
		recs, err := store.ReadAll(c, after, 10_000, ledger.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			break
		}
		for _, r := range recs {
			e := r.Event
			seq++
			n, err := strconv.Atoi(strings.TrimPrefix(e.Key, "B"))
			if e.Op != ledger.OpCreate || e.Model != "party.party" || e.Origin != origin || e.OriginSeq != seq || e.User != "admin" ||
				err != nil || n < 1 || n > bulkRows || e.Key != bulkCode(n) || seen[n] {
				t.Fatalf("event at position %d: %s (origin %d seq %d, by %q); want a create of a new party B0000001..B%07d, origin %d seq %d, by admin",
					r.Position, e, e.Origin, e.OriginSeq, e.User, bulkRows, origin, seq)
			}
			if got, _ := e.Fields["code"].AsString(); got != e.Key {
				t.Fatalf("event at position %d: code %q, key %q", r.Position, got, e.Key)
			}
			seen[n] = true
		}
		after = recs[len(recs)-1].Position
	}
	if seq != bulkRows {
		t.Fatalf("the ledger holds %d events, want %d", seq, bulkRows)
	}
	rep, err := ledger.Verify(c, store)
	if err != nil || !rep.OK() {
		t.Fatalf("the ledger does not verify: %v %+v", err, rep)
	}
	t.Logf("check: %v (events read back and ledger.Verify)", time.Since(start).Round(time.Millisecond))
}
