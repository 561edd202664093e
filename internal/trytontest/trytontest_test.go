package trytontest_test

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ghsync/ghsync/internal/pgtest"
	"github.com/ghsync/ghsync/internal/trytontest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// queryInt runs an SQL query returning one integer on the database at url.
func queryInt(t *testing.T, url, query string, args ...any) int {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// TestNewDatabase runs first (the other tests are parallel): the template
// is built or restored once, and later databases are cheap clones.
func TestNewDatabase(t *testing.T) {
	begin := time.Now()
	db1 := trytontest.NewDatabase(t)
	first := time.Since(begin)
	begin = time.Now()
	db2 := trytontest.NewDatabase(t)
	second := time.Since(begin)
	t.Logf("first NewDatabase (template found, restored or built, then cloned): %v; second (clone only): %v", first, second)
	if second > 5*time.Second {
		t.Errorf("second NewDatabase took %v, want a clone of the template (well under 5 s)", second)
	}
	if db1.Name == db2.Name || !strings.HasSuffix(db1.URL, "/"+db1.Name) && !strings.Contains(db1.URL, "/"+db1.Name+"?") {
		t.Errorf("got names %s and %s, URL %s", db1.Name, db2.Name, db1.URL)
	}
	conf, err := os.ReadFile(db1.Conf)
	if err != nil || !strings.Contains(string(conf), "uri = postgresql://") {
		t.Errorf("Conf %s: %q, %v", db1.Conf, conf, err)
	}

	// The template is on the server, complete, and nobody may connect to it.
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgtest.ServerURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var isTemplate, allowConn bool
	var comment string
	err = conn.QueryRow(ctx, "SELECT datistemplate, datallowconn, shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1",
		trytontest.TemplateName).Scan(&isTemplate, &allowConn, &comment)
	if err != nil || !isTemplate || allowConn || !strings.Contains(comment, "trytond 6.") {
		t.Errorf("template %s: datistemplate %v, datallowconn %v, comment %q, %v", trytontest.TemplateName, isTemplate, allowConn, comment, err)
	}

	// What trytond-admin made: the modules activated, the administrator.
	n := queryInt(t, db1.URL, "SELECT count(*) FROM ir_module WHERE state = 'activated' AND name = ANY($1)", trytontest.Modules)
	if n != len(trytontest.Modules) {
		t.Errorf("got %d of %v activated, want all", n, trytontest.Modules)
	}
	if n := queryInt(t, db1.URL, "SELECT count(*) FROM res_user WHERE login = 'admin' AND email = 'admin@example.org' AND password_hash IS NOT NULL"); n != 1 {
		t.Errorf("got %d admin users with email admin@example.org and a password, want 1", n)
	}

	// One request: the first starts the process and loads the Pool.
	for i := range 3 {
		begin = time.Now()
		got := trytontest.Decode[string](t, db1.Run(t, "result = pool.get('res.user')(Transaction().user).login", nil))
		t.Logf("Run %d: %v", i+1, time.Since(begin))
		if got != "admin" {
			t.Errorf("Run as user %q, want admin", got)
		}
	}
}

func TestDB_CreateAndSearchParties(t *testing.T) {
	t.Parallel()
	db := trytontest.NewDatabase(t)
	ids := db.CreateParties(t,
		trytontest.Party{
			Name: "Ann Lee",
			Addresses: []trytontest.Address{
				{Street: "1 Hope Road\nApt 2", City: "Kingston", PostalCode: "KGN6"},
				{Street: "9 Bay St", City: "Montego Bay"},
			},
			ContactMechanisms: []trytontest.ContactMechanism{
				{Type: "mobile", Value: "+18765550100"},
				{Type: "email", Value: "ann@example.org"},
			},
		},
		trytontest.Party{Name: "Bob", Code: "B-7", Inactive: true},
	)
	if len(ids) != 2 {
		t.Fatalf("got ids %v, want 2", ids)
	}
	rows := db.SearchParties(t, trytontest.Domain{trytontest.Clause("id", "in", ids)})
	if len(rows) != 2 {
		t.Fatalf("got %d parties, want 2: %+v", len(rows), rows)
	}
	ann, bob := rows[0], rows[1]
	if ann.ID != ids[0] || ann.Name != "Ann Lee" || !ann.Active || ann.Code != "1" || ann.CreateUID != 1 || ann.WriteUID != 0 {
		t.Errorf("got %+v, want id %d, Ann Lee, active, code 1 from the sequence, created by admin (1)", ann, ids[0])
	}
	if len(ann.Addresses) != 2 || ann.Addresses[0].Street != "1 Hope Road\nApt 2" || ann.Addresses[0].City != "Kingston" ||
		ann.Addresses[0].PostalCode != "KGN6" || ann.Addresses[1].City != "Montego Bay" || !ann.Addresses[1].Active {
		t.Errorf("got addresses %+v", ann.Addresses)
	}
	if len(ann.ContactMechanisms) != 2 {
		t.Fatalf("got contact mechanisms %+v, want 2", ann.ContactMechanisms)
	}
	mobile, email := ann.ContactMechanisms[0], ann.ContactMechanisms[1]
	if mobile.Type != "mobile" || mobile.ValueCompact != "+18765550100" || email.Type != "email" || email.Value != "ann@example.org" {
		t.Errorf("got contact mechanisms %+v", ann.ContactMechanisms)
	}
	t.Logf("trytond stored mobile +18765550100 as value %q, value_compact %q", mobile.Value, mobile.ValueCompact)
	if bob.Name != "Bob" || bob.Code != "B-7" || bob.Active || len(bob.Addresses) != 0 || len(bob.ContactMechanisms) != 0 {
		t.Errorf("got %+v, want inactive Bob B-7 without addresses", bob)
	}
	if got := db.SearchParties(t, trytontest.Domain{trytontest.Clause("id", "in", ids), trytontest.Clause("active", "=", true)}); len(got) != 1 {
		t.Errorf("got %d active parties, want 1", len(got))
	}
}

func TestDB_Clone(t *testing.T) {
	t.Parallel()
	site1 := trytontest.NewDatabase(t)
	other := trytontest.NewDatabase(t)
	site1.CreateParties(t, trytontest.Party{Name: "Before"})
	site2 := site1.Clone(t)

	a := site1.CreateParties(t, trytontest.Party{Name: "Only on site 1"})
	b := site2.CreateParties(t, trytontest.Party{Name: "Only on site 2"})
	if got := site2.SearchParties(t, trytontest.Domain{trytontest.Clause("name", "=", "Only on site 1")}); len(got) != 0 {
		t.Errorf("a party created on site 1 after cloning is on site 2: %+v", got)
	}
	if got := other.SearchParties(t, nil); len(got) != 0 {
		t.Errorf("another NewDatabase has parties: %+v", got)
	}
	if got := site2.SearchParties(t, trytontest.Domain{trytontest.Clause("name", "=", "Before")}); len(got) != 1 {
		t.Errorf("the clone lacks the party created before cloning: %+v", got)
	}
	// Two sites from one template: same ids, same codes, different people.
	p1, p2 := site1.ReadParty(t, a[0]), site2.ReadParty(t, b[0])
	if p1.ID != p2.ID || p1.Code != p2.Code || p1.Name == p2.Name {
		t.Errorf("got %+v and %+v, want the same id and code for different parties", p1, p2)
	}
}

func TestDB_WriteParty(t *testing.T) {
	t.Parallel()
	db := trytontest.NewDatabase(t)
	id := db.CreateParties(t, trytontest.Party{Name: "Old", Addresses: []trytontest.Address{{City: "Kingston"}}})[0]
	addr := db.ReadParty(t, id).Addresses[0].ID
	db.WriteParty(t, id, trytontest.Values{
		"name":   "New",
		"active": false,
		"addresses": []any{
			trytontest.ActionWrite([]int{addr}, trytontest.Values{"city": "Spanish Town"}),
			trytontest.ActionCreate(trytontest.Values{"street": "2 King St", "city": "Ocho Rios"}),
		},
		"contact_mechanisms": []any{trytontest.ActionCreate(trytontest.Values{"type": "phone", "value": "+18765550199"})},
	})
	got := db.ReadParty(t, id)
	if got.Name != "New" || got.Active || got.WriteUID != 1 || len(got.Addresses) != 2 || len(got.ContactMechanisms) != 1 {
		t.Fatalf("got %+v, want New, inactive, written by admin, 2 addresses, 1 contact mechanism", got)
	}
	cities := []string{got.Addresses[0].City, got.Addresses[1].City}
	slices.Sort(cities)
	if cities[0] != "Ocho Rios" || cities[1] != "Spanish Town" {
		t.Errorf("got cities %v", cities)
	}
	if n := queryInt(t, db.URL, "SELECT count(*) FROM party_party WHERE id = $1 AND name = 'New' AND NOT active AND write_date IS NOT NULL", id); n != 1 {
		t.Errorf("SQL sees %d rows written, want 1", n)
	}
}

func TestDB_DeleteParties(t *testing.T) {
	t.Parallel()
	db := trytontest.NewDatabase(t)
	ids := db.CreateParties(t,
		trytontest.Party{Name: "Gone", Addresses: []trytontest.Address{{City: "A"}, {City: "B"}},
			ContactMechanisms: []trytontest.ContactMechanism{{Type: "email", Value: "gone@example.org"}}},
		trytontest.Party{Name: "Kept", Addresses: []trytontest.Address{{City: "C"}}})
	if n := queryInt(t, db.URL, "SELECT count(*) FROM party_address WHERE party = $1", ids[0]); n != 2 {
		t.Fatalf("got %d addresses before the delete, want 2", n)
	}
	db.DeleteParties(t, ids[0])
	for _, q := range []string{
		"SELECT count(*) FROM party_party WHERE id = $1",
		"SELECT count(*) FROM party_address WHERE party = $1",
		"SELECT count(*) FROM party_contact_mechanism WHERE party = $1",
	} {
		if n := queryInt(t, db.URL, q, ids[0]); n != 0 {
			t.Errorf("%s: got %d after deleting the party, want 0", q, n)
		}
	}
	if n := queryInt(t, db.URL, "SELECT count(*) FROM party_address WHERE party = $1", ids[1]); n != 1 {
		t.Errorf("the other party has %d addresses, want 1", n)
	}
}

func TestDB_As(t *testing.T) {
	t.Parallel()
	db := trytontest.NewDatabase(t)
	uid := db.CreateUser(t, "clerk", "Clerk")
	if uid <= 1 {
		t.Fatalf("got user id %d, want a new user", uid)
	}
	id := db.As("clerk").CreateParties(t, trytontest.Party{Name: "By clerk", Addresses: []trytontest.Address{{City: "X"}}})[0]
	if n := queryInt(t, db.URL, "SELECT create_uid FROM party_party WHERE id = $1", id); n != uid {
		t.Errorf("party create_uid %d, want the clerk's %d", n, uid)
	}
	if n := queryInt(t, db.URL, "SELECT create_uid FROM party_address WHERE party = $1", id); n != uid {
		t.Errorf("address create_uid %d, want the clerk's %d", n, uid)
	}
	// An op as another user, within a request as admin.
	db.Do(t, trytontest.Write("party.party", []int{id}, trytontest.Values{"name": "Renamed"}).As("clerk"),
		trytontest.Create("party.party", trytontest.Values{"name": "By admin", "addresses": []any{}}))
	if n := queryInt(t, db.URL, "SELECT write_uid FROM party_party WHERE id = $1", id); n != uid {
		t.Errorf("write_uid %d, want the clerk's %d", n, uid)
	}
	if n := queryInt(t, db.URL, "SELECT create_uid FROM party_party WHERE name = 'By admin'"); n != 1 {
		t.Errorf("create_uid %d, want admin's 1", n)
	}
	if _, err := db.As("nobody").Try(trytontest.Search("party.party", nil)); err == nil || !strings.Contains(err.Error(), "nobody") {
		t.Errorf("acting as an unknown login: got %v, want an error naming it", err)
	}
}

func TestDB_Errors(t *testing.T) {
	t.Parallel()
	db := trytontest.NewDatabase(t)
	db.CreateParties(t, trytontest.Party{Name: "First", Code: "DUP"})
	_, err := db.Try(
		trytontest.Create("party.party", trytontest.Values{"name": "Rolled back", "code": "OK"}),
		trytontest.Create("party.party", trytontest.Values{"name": "Second", "code": "DUP"}),
	)
	var terr *trytontest.Error
	if !errors.As(err, &terr) {
		t.Fatalf("got %v, want a *trytontest.Error", err)
	}
	if terr.Op != 1 || terr.Request.Model != "party.party" || !strings.Contains(terr.Traceback, "Traceback") || terr.Type == "" {
		t.Errorf("got op %d (%v), type %q, traceback %q", terr.Op, terr.Request, terr.Type, terr.Traceback)
	}
	t.Logf("duplicate code: %s: %s", terr.Type, terr.Message)
	// The whole request was rolled back, and the process still serves.
	if got := db.SearchParties(t, trytontest.Domain{trytontest.Clause("code", "=", "OK")}); len(got) != 0 {
		t.Errorf("the first op of the failed request was committed: %+v", got)
	}
	if _, err := db.Try(trytontest.Op{Op: "no_such_op"}); err == nil || !strings.Contains(err.Error(), "unknown op") {
		t.Errorf("unknown op: got %v", err)
	}
	if _, err := db.Try(trytontest.Python("raise RuntimeError('boom')", nil)); err == nil || !strings.Contains(err.Error(), "RuntimeError: boom") {
		t.Errorf("snippet raising: got %v", err)
	}
}

func TestDB_GenericOps(t *testing.T) {
	t.Parallel()
	db := trytontest.NewDatabase(t)

	// A row written by SQL, as a sync engine would, is seen by trytond.
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, db.URL)
	if err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(ctx, "INSERT INTO party_party (name, code, active, create_uid, create_date) VALUES ('By SQL', 'S-1', true, 0, now() at time zone 'UTC')")
	conn.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}

	res := db.Do(t,
		trytontest.SearchCount("party.party", trytontest.Domain{trytontest.Clause("code", "=", "S-1")}),
		trytontest.Create("party.party", trytontest.Values{"name": "Zed", "addresses": []any{}},
			trytontest.Values{"name": "Amy", "addresses": []any{}}),
		trytontest.SearchRead("party.party", nil, "name").OrderBy("name", "DESC").Limited(0, 2),
		trytontest.Call("party.party", "search_count", []any{}),
		trytontest.Python("result = {'n': len(pool.get('party.party').search([])), 'x': args['x']}", map[string]any{"x": 7}),
	)
	if n := trytontest.Decode[int](t, res[0]); n != 1 {
		t.Errorf("trytond sees %d parties with code S-1, want 1", n)
	}
	rows := trytontest.Decode[[]struct {
		ID   int    `json:"id"`
		Name string `json:"name"`
	}](t, res[2])
	if len(rows) != 2 || rows[0].Name != "Zed" || rows[1].Name != "By SQL" {
		t.Errorf("search_read ordered by name DESC, limit 2: got %+v", rows)
	}
	if n := trytontest.Decode[int](t, res[3]); n != 3 {
		t.Errorf("search_count: got %d, want 3", n)
	}
	got := trytontest.Decode[map[string]int](t, res[4])
	if got["n"] != 3 || got["x"] != 7 {
		t.Errorf("python: got %v", got)
	}
	dates := trytontest.Decode[[]map[string]any](t, db.Do(t, trytontest.Read("party.party", trytontest.Decode[[]int](t, res[1]), "create_date"))[0])
	if s, _ := dates[0]["create_date"].(string); len(s) < len("2006-01-02T15:04:05") {
		t.Errorf("create_date read as %v, want an ISO 8601 string", dates[0]["create_date"])
	}
}
