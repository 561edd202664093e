package site_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ghsync/ghsync/capture"
	"github.com/ghsync/ghsync/central"
	"github.com/ghsync/ghsync/clocks"
	"github.com/ghsync/ghsync/internal/pgtest"
	"github.com/ghsync/ghsync/internal/schematest"
	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/ledger/postgres"
	"github.com/ghsync/ghsync/models"
	"github.com/ghsync/ghsync/site"
	"github.com/ghsync/ghsync/wire"
)

func TestMain(m *testing.M) {
	runChild()
	os.Exit(pgtest.Main(m))
}

func seedOf(t *testing.T) uint64 {
	seed := rand.Uint64()
	if s := os.Getenv("GHSYNC_TEST_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed=%d (rerun: GHSYNC_TEST_SEED=%d go test -run '%s' ./site/)", seed, seed, t.Name())
	return seed
}

// node is one GNU Health instance on real PostgreSQL: a Tryton-shaped
// database with capture installed and the ledger inside it.
type node struct {
	t     testing.TB
	id    uint16
	url   string
	db    *sql.DB
	store ledger.Store
	site  *site.Site
	wall  *clocks.Corrected // the machine's clock, skewable
	n     int               // parties made here
	// central and token are how the site was opened, to open it again.
	central, token string
}

func newNode(t testing.TB, id uint16, skew time.Duration) *node {
	t.Helper()
	reg := models.GNUHealth()
	n := &node{t: t, id: id, url: schematest.NewPostgres(t, reg), wall: clocks.NewCorrected(nil, skew)}
	var err error
	if n.db, err = sql.Open("pgx", n.url); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.db.Close() })
	if _, err := capture.Install(context.Background(), n.url, reg); err != nil {
		t.Fatal(err)
	}
	if n.store, err = postgres.Open(context.Background(), n.url, postgres.Options{PollInterval: 100 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.store.Close() })
	return n
}

// open starts the node's site (after central exists, for a satellite).
func (n *node) open(centralURL, token string, seq *ledger.Sequencer, hc *http.Client, report func(context.Context, clocks.Timestamp, uint64) (clocks.Timestamp, error)) {
	n.t.Helper()
	n.central, n.token = centralURL, token
	s, err := site.Open(context.Background(), site.Config{Origin: n.id, Target: n.url, Store: n.store, StoreLocation: n.url,
		Central: centralURL, Token: token, HTTPClient: hc, Wall: n.wall, Sequencer: seq, ReportStable: report,
		Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: os.Stderr, Name: "node" + strconv.Itoa(int(n.id))})})
	if err != nil {
		n.t.Fatalf("open node %d: %v", n.id, err)
	}
	n.site = s
	n.t.Cleanup(s.Close)
}

func (n *node) exec(q string, args ...any) {
	n.t.Helper()
	if _, err := n.db.Exec(q, args...); err != nil {
		n.t.Fatalf("node %d: %s: %v", n.id, q, err)
	}
}

func (n *node) ids(q string) []int64 {
	n.t.Helper()
	rows, err := n.db.Query(q)
	if err != nil {
		n.t.Fatal(err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var id int64
		rows.Scan(&id)
		out = append(out, id)
	}
	return out
}

// work makes k random changes as Tryton would: register parties with an
// address, rename parties (any the node holds, whoever made them), add
// and remove addresses, and now and then delete a party (its addresses go
// with it).
func (n *node) work(rng *rand.Rand, k int) {
	now := n.wall.Now().UTC().Format("2006-01-02 15:04:05")
	for range k {
		parties := n.ids(`SELECT id FROM party_party ORDER BY id`)
		switch r := rng.IntN(10); {
		case r < 3 || len(parties) == 0:
			n.n++
			var id int64
			if err := n.db.QueryRow(`INSERT INTO party_party (code, name, active, create_uid, create_date) VALUES ($1, $2, true, 1, $3) RETURNING id`,
				fmt.Sprintf("S%d-%d", n.id, n.n), fmt.Sprintf("Person %d of %d", n.n, n.id), now).Scan(&id); err != nil {
				n.t.Fatal(err)
			}
			n.exec(`INSERT INTO party_address (party, city, active, create_uid, create_date) VALUES ($1, $2, true, 1, $3)`, id, "Town "+strconv.Itoa(rng.IntN(14)), now)
		case r < 7:
			n.exec(`UPDATE party_party SET name = $1, write_uid = 1, write_date = $2 WHERE id = $3`,
				fmt.Sprintf("Renamed %d at %d", rng.IntN(1000), n.id), now, parties[rng.IntN(len(parties))])
		case r < 8:
			n.exec(`INSERT INTO party_address (party, street, active, create_uid, create_date) VALUES ($1, $2, true, 1, $3)`,
				parties[rng.IntN(len(parties))], fmt.Sprintf("%d Main St", rng.IntN(100)), now)
		case r < 9:
			if addrs := n.ids(`SELECT id FROM party_address`); len(addrs) > 0 {
				n.exec(`DELETE FROM party_address WHERE id = $1`, addrs[rng.IntN(len(addrs))])
			}
		default:
			n.exec(`DELETE FROM party_party WHERE id = $1`, parties[rng.IntN(len(parties))])
		}
	}
}

// sync runs one cycle; central unreachable (a fault) is tolerated.
func (n *node) sync() error {
	n.t.Helper()
	_, err := n.site.Sync(context.Background())
	return err
}

// network is central and its satellites.
type network struct {
	t       *testing.T
	central *node
	srv     *central.Server
	reg     central.Registry
	ts      *httptest.Server
	sats    []*node
}

// newNetwork starts central and n satellites; skews[i] is satellite i's
// clock error. via, when set, puts something (a faulty proxy) between the
// satellites and central and returns the URL they use.
func newNetwork(t *testing.T, n int, skews []time.Duration, via func(target string) string, hc *http.Client) *network {
	t.Helper()
	ctx := context.Background()
	nw := &network{t: t, central: newNode(t, 0, 0)}
	reg, err := central.OpenRegistry(ctx, nw.central.url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	nw.reg = reg
	seq, err := ledger.Resume(ctx, nw.central.store, 0, clocks.NewClock(nil, clocks.DefaultMaxOffset))
	if err != nil {
		t.Fatal(err)
	}
	if nw.srv, err = central.New(central.Config{Store: nw.central.store, Registry: reg, Sequencer: seq, Projects: true, FrontierEvery: -1,
		Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Error, Output: os.Stderr, Name: "central"})}); err != nil {
		t.Fatal(err)
	}
	nw.ts = httptest.NewServer(nw.srv)
	t.Cleanup(func() { nw.ts.Close(); nw.srv.Close() })
	nw.central.open("", "", seq, nil, nw.srv.ReportOwn)
	url := nw.ts.URL
	if via != nil {
		url = via(nw.ts.URL)
	}
	for i := range n {
		id := uint16(i + 1)
		var skew time.Duration
		if i < len(skews) {
			skew = skews[i]
		}
		s := newNode(t, id, skew)
		tok, hash, err := central.NewToken()
		if err != nil {
			t.Fatal(err)
		}
		if err := reg.AddSatellite(ctx, central.Satellite{ID: id, Name: "clinic " + strconv.Itoa(int(id)), Scope: wire.ScopeAll, TokenHash: hash, Created: time.Now()}); err != nil {
			t.Fatal(err)
		}
		s.open(url, tok, nil, hc, nil)
		nw.sats = append(nw.sats, s)
	}
	return nw
}

func (nw *network) all() []*node { return append([]*node{nw.central}, nw.sats...) }

// quiesce syncs everyone until nothing moves: central first and last, so
// what one satellite pushed reaches the others.
func (nw *network) quiesce() {
	nw.t.Helper()
	for round := 0; round < 40; round++ {
		for _, n := range nw.all() {
			n.sync() // faults are retried by the next round
		}
		if nw.converged() {
			for _, n := range nw.all() {
				if err := n.sync(); err != nil {
					nw.t.Logf("node %d: %v", n.id, err)
				}
			}
			if nw.converged() {
				return
			}
		}
	}
	nw.t.Fatal("the network did not quiesce in 40 rounds")
}

// converged reports whether every ledger holds the same history of every
// origin and no outbox holds anything.
func (nw *network) converged() bool {
	var want []ledger.OriginHead
	for i, n := range nw.all() {
		heads, err := n.store.Origins(context.Background())
		if err != nil {
			nw.t.Fatal(err)
		}
		st, err := capture.Inspect(context.Background(), n.url)
		if err != nil {
			nw.t.Fatal(err)
		}
		if st.Pending > 0 || st.HandedOff > 0 {
			return false
		}
		for j := range heads {
			heads[j].MaxHLC = 0 // a projection detail, not history
		}
		if i == 0 {
			want = heads
		} else if !slices.Equal(heads, want) {
			return false
		}
	}
	return true
}

// check asserts the end state: every change made anywhere is in every
// ledger once (ledgers verify and hold every origin's whole chain), every
// Tryton database shows the same rows, and every projector reports the
// same conflicts.
func (nw *network) check() {
	nw.t.Helper()
	ctx := context.Background()
	var dumps, conflicts []string
	for _, n := range nw.all() {
		rep, err := ledger.Verify(ctx, n.store)
		if err != nil || !rep.OK() {
			nw.t.Fatalf("node %d ledger: %v %+v", n.id, err, rep)
		}
		for _, o := range rep.Origins {
			if o.Missing > 0 {
				nw.t.Fatalf("node %d lacks %d events of origin %d", n.id, o.Missing, o.Origin)
			}
		}
		var b strings.Builder
		if _, err := n.site.Projector().Dump(ctx, &b); err != nil {
			nw.t.Fatal(err)
		}
		dumps = append(dumps, b.String())
		cs, err := n.site.Projector().Conflicts(ctx)
		if err != nil {
			nw.t.Fatal(err)
		}
		conflicts = append(conflicts, fmt.Sprint(cs))
	}
	for i := 1; i < len(dumps); i++ {
		if dumps[i] != dumps[0] {
			nw.t.Fatalf("node %d's tables differ from central's:\n%s", nw.all()[i].id, diff(dumps[0], dumps[i]))
		}
		if conflicts[i] != conflicts[0] {
			nw.t.Fatalf("node %d reports other conflicts than central:\n%s\n---\n%s", nw.all()[i].id, conflicts[0], conflicts[i])
		}
	}
	if !strings.Contains(dumps[0], "party.party") {
		nw.t.Fatal("the dumps hold no party: the workload did nothing")
	}
	heads, _ := nw.central.store.Origins(ctx)
	nw.t.Logf("converged: %d origins, %d rows, conflicts %d chars; heads %v", len(heads), strings.Count(dumps[0], "\n"), len(conflicts[0]), heads)
}

func diff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out []string
	for _, l := range al {
		if !slices.Contains(bl, l) {
			out = append(out, "- "+l)
		}
	}
	for _, l := range bl {
		if !slices.Contains(al, l) {
			out = append(out, "+ "+l)
		}
	}
	if len(out) > 40 {
		out = append(out[:40], "...")
	}
	return strings.Join(out, "\n")
}

// TestNetworkConverges: central and three satellites on PostgreSQL; each
// round every instance works, some satellites are offline (they keep
// working and capturing), and the ones online sync in a random order.
func TestNetworkConverges(t *testing.T) {
	rng := rand.New(rand.NewPCG(seedOf(t), 1))
	nw := newNetwork(t, 3, nil, nil, nil)
	for round := 0; round < 12; round++ {
		for _, n := range nw.all() {
			n.work(rng, 1+rng.IntN(6))
		}
		order := rng.Perm(len(nw.all()))
		for _, i := range order {
			if n := nw.all()[i]; n.id == 0 || rng.IntN(3) > 0 { // a third of the time offline
				if err := n.sync(); err != nil {
					t.Fatalf("round %d node %d: %v", round, n.id, err)
				}
			}
		}
	}
	nw.quiesce()
	nw.check()
}
