package capture_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ghsync/ghsync/capture"
	"github.com/ghsync/ghsync/fixtures"
	"github.com/ghsync/ghsync/internal/pgtest"
	"github.com/ghsync/ghsync/internal/schematest"
	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/ledger/postgres"
	"github.com/ghsync/ghsync/ledger/sqlite"
	"github.com/ghsync/ghsync/models"
	"github.com/ghsync/ghsync/projections"
)

func TestMain(m *testing.M) {
	runCrashChild()
	pgtest.Main(m)
}

// layout is where a site keeps its Tryton tables and its ledger.
type layout struct {
	name    string
	dialect string
	sameDB  bool // the ledger lives in the Tryton database
}

var layouts = []layout{
	{"postgres/ledger-inside", models.Postgres, true},
	{"postgres/ledger-apart", models.Postgres, false},
	{"sqlite/ledger-inside", models.SQLite, true},
	{"sqlite/ledger-apart", models.SQLite, false},
}

// site is one GNU Health instance: a Tryton-shaped database with capture
// installed, its ledger, a capturer and a projector.
type site struct {
	t       testing.TB
	origin  uint16
	lay     layout
	target  string
	ledger  string
	db      *sql.DB
	reg     *models.Registry
	store   ledger.Store
	cap     *capture.Capturer
	proj    *projections.Projector
	drained uint64 // ledger position read back by drain()
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return c
}

func newSite(t testing.TB, lay layout, origin uint16) *site {
	t.Helper()
	return newSiteOf(t, lay, origin, models.GNUHealth())
}

// newSiteOf is newSite with the models of reg.
func newSiteOf(t testing.TB, lay layout, origin uint16, reg *models.Registry) *site {
	t.Helper()
	s := &site{t: t, origin: origin, lay: lay, reg: reg}
	dir := t.TempDir()
	driver := "sqlite"
	if lay.dialect == models.Postgres {
		s.target, driver = schematest.NewPostgres(t, reg), "pgx" // the tables made
	} else {
		s.target = "sqlite:" + filepath.Join(dir, "tryton.db")
	}
	s.ledger = "sqlite:" + filepath.Join(dir, "ledger.db")
	if lay.sameDB {
		s.ledger = s.target
	}
	dsn := s.target
	if driver == "sqlite" {
		dsn = strings.TrimPrefix(s.target, "sqlite:") + "?_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)"
	}
	var err error
	if s.db, err = sql.Open(driver, dsn); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.db.Close() })
	if lay.dialect == models.SQLite {
		if err := fixtures.CreateTrytonSchema(ctx(t), s.db, s.reg, lay.dialect); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := capture.Install(ctx(t), s.target, s.reg); err != nil {
		t.Fatalf("install capture: %v", err)
	}
	s.store = openLedger(t, s.ledger)
	s.open(capture.Options{})
	return s
}

func openLedger(t testing.TB, loc string) ledger.Store {
	t.Helper()
	var st ledger.Store
	var err error
	if path, ok := strings.CutPrefix(loc, "sqlite:"); ok {
		st, err = sqlite.Open(ctx(t), path, sqlite.Options{})
	} else {
		st, err = postgres.Open(ctx(t), loc, postgres.Options{})
	}
	if err != nil {
		t.Fatalf("open ledger %s: %v", loc, err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// open (re)opens the capturer.
func (s *site) open(opts capture.Options) {
	s.t.Helper()
	if s.cap != nil {
		s.cap.Close()
	}
	opts.Origin = s.origin
	c, err := capture.Open(ctx(s.t), s.target, s.store, s.reg, opts)
	if err != nil {
		s.t.Fatalf("open capturer: %v", err)
	}
	if c.SameDatabase() != s.lay.sameDB {
		s.t.Fatalf("capturer sees the ledger as same-database=%v, want %v", c.SameDatabase(), s.lay.sameDB)
	}
	s.cap = c
	s.t.Cleanup(func() { c.Close() })
}

// exec runs SQL on the Tryton database ('?' placeholders on both).
func (s *site) exec(q string, args ...any) {
	s.t.Helper()
	if _, err := s.db.ExecContext(ctx(s.t), s.q(q), args...); err != nil {
		s.t.Fatalf("%s: %v", q, err)
	}
}

func (s *site) q(q string) string {
	if s.lay.dialect != models.Postgres {
		return q
	}
	var b strings.Builder
	n := 0
	for _, c := range q {
		if c == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

func (s *site) int(q string, args ...any) int64 {
	s.t.Helper()
	var n int64
	if err := s.db.QueryRowContext(ctx(s.t), s.q(q), args...).Scan(&n); err != nil {
		s.t.Fatalf("%s: %v", q, err)
	}
	return n
}

// insert adds a row as Tryton would (id from the sequence, audit columns)
// and returns its id.
func (s *site) insert(table string, uid int64, cols map[string]any) int64 {
	s.t.Helper()
	names := []string{"create_uid", "create_date"}
	args := []any{uid, time.Now().UTC().Format("2006-01-02 15:04:05.000000")}
	for k, v := range cols {
		names = append(names, k)
		args = append(args, v)
	}
	marks := strings.TrimSuffix(strings.Repeat("?, ", len(names)), ", ")
	q := fmt.Sprintf(`INSERT INTO %s (%s) VALUES (%s) RETURNING id`, table, strings.Join(names, ", "), marks)
	var id int64
	if err := s.db.QueryRowContext(ctx(s.t), s.q(q), args...).Scan(&id); err != nil {
		s.t.Fatalf("insert into %s: %v", table, err)
	}
	return id
}

// update writes columns of a row as Tryton would (write_uid, write_date).
func (s *site) update(table string, id, uid int64, cols map[string]any) {
	s.t.Helper()
	sets := []string{"write_uid = ?", "write_date = ?"}
	args := []any{uid, time.Now().UTC().Format("2006-01-02 15:04:05.000000")}
	for k, v := range cols {
		sets = append(sets, k+" = ?")
		args = append(args, v)
	}
	args = append(args, id)
	s.exec(fmt.Sprintf(`UPDATE %s SET %s WHERE id = ?`, table, strings.Join(sets, ", ")), args...)
}

// drain captures the outbox and returns the events it appended (this
// site's own, not what it received meanwhile).
func (s *site) drain() []*ledger.Event {
	s.t.Helper()
	if _, err := s.cap.Drain(ctx(s.t)); err != nil {
		s.t.Fatalf("drain: %v", err)
	}
	var own []*ledger.Event
	for _, e := range s.since() {
		if e.Origin == s.origin {
			own = append(own, e)
		}
	}
	return own
}

// since returns the events appended after the last call.
func (s *site) since() []*ledger.Event {
	s.t.Helper()
	var out []*ledger.Event
	for {
		recs, err := s.store.ReadAll(ctx(s.t), s.drained, 1000, ledger.Filter{})
		if err != nil {
			s.t.Fatal(err)
		}
		if len(recs) == 0 {
			return out
		}
		for _, r := range recs {
			out = append(out, r.Event)
		}
		s.drained = recs[len(recs)-1].Position
	}
}

// project applies the site's ledger to its own tables.
func (s *site) project() {
	s.t.Helper()
	if s.proj == nil {
		p, err := projections.Open(ctx(s.t), s.target, s.store, s.reg, projections.Options{})
		if err != nil {
			s.t.Fatalf("open projector: %v", err)
		}
		s.proj = p
		s.t.Cleanup(p.Close)
	}
	if _, err := s.proj.CatchUp(ctx(s.t)); err != nil {
		s.t.Fatalf("origin %d: project: %v", s.origin, err)
	}
}

// receive appends what another site's ledger holds (a push or pull).
func (s *site) receive(from *site) {
	s.t.Helper()
	after := uint64(0)
	for {
		recs, err := from.store.ReadAll(ctx(s.t), after, 1000, ledger.Filter{})
		if err != nil {
			s.t.Fatal(err)
		}
		if len(recs) == 0 {
			return
		}
		evs := make([]*ledger.Event, len(recs))
		for i, r := range recs {
			evs[i] = r.Event
		}
		if _, err := s.store.Append(ctx(s.t), evs); err != nil {
			s.t.Fatalf("receive from origin %d: %v", from.origin, err)
		}
		after = recs[len(recs)-1].Position
	}
}

func (s *site) outbox() int64 {
	prefix := "ghsync_"
	if s.lay.dialect == models.Postgres {
		prefix = "ghsync."
	}
	return s.int(`SELECT count(*) FROM ` + prefix + `outbox`)
}

func forEachLayout(t *testing.T, fn func(t *testing.T, lay layout)) {
	for _, lay := range layouts {
		t.Run(lay.name, func(t *testing.T) { fn(t, lay) })
	}
}

// allEvents reads the site's whole ledger.
func (s *site) allEvents() []*ledger.Event {
	s.t.Helper()
	var out []*ledger.Event
	after := uint64(0)
	for {
		recs, err := s.store.ReadAll(ctx(s.t), after, 1000, ledger.Filter{})
		if err != nil {
			s.t.Fatal(err)
		}
		if len(recs) == 0 {
			return out
		}
		for _, r := range recs {
			out = append(out, r.Event)
		}
		after = recs[len(recs)-1].Position
	}
}
