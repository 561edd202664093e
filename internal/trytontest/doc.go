// Package trytontest gives tests real Tryton databases: PostgreSQL
// databases that Debian's trytond 6.0 initialised (party, company, country,
// currency and product activated), and a way to change and read them
// through trytond's own ORM, as a Tryton or GNU Health user would.
//
// # Use
//
// The package's tests need pgtest's TestMain (trytontest takes its server
// from pgtest: GHSYNC_TEST_PG or a throwaway cluster):
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
//
// Then, in a test:
//
//	db := trytontest.NewDatabase(t)          // a fresh clone, dropped after the test
//	ids := db.CreateParties(t, trytontest.Party{Name: "Ann",
//		Addresses:         []trytontest.Address{{Street: "1 Main St", City: "Kingston"}},
//		ContactMechanisms: []trytontest.ContactMechanism{{Type: "mobile", Value: "+18765550100"}}})
//	rows := db.SearchParties(t, trytontest.Domain{trytontest.Clause("id", "in", ids)})
//	site2 := db.Clone(t)                     // same ids and party codes: they collide
//	conn, _ := pgx.Connect(ctx, db.URL)      // the engine under test works on db.URL
//
// Any model is reachable through ops run in one transaction (Do, Try):
// Create, Write, Delete, Search, SearchCount, SearchRead, Read, UserCreate,
// Call, CallOn, and Python for a snippet of Python run against the Pool.
// db.As(login) and op.As(login) act as another Tryton user.
//
// # The template
//
// Initialising a database with trytond-admin takes about a minute, so it is
// done once per PostgreSQL server into TemplateName, and every NewDatabase
// is a CREATE DATABASE ... TEMPLATE of it (a fraction of a second). Test
// processes on one server wait for each other through an advisory lock
// while the template is built. It is built under another name and renamed
// when complete, so a killed build leaves no half-made template. Its
// comment records the trytond and module versions; a template of other
// versions is rebuilt.
//
// Because pgtest's throwaway cluster lives only as long as one test
// process, the template is also kept as a pg_dump in a cache directory
// (CacheEnv, by default under os.UserCacheDir), keyed by those versions and
// the server's major version: a later process restores it in about a
// second instead of running trytond-admin again.
//
// Hazard: the template is marked IS_TEMPLATE and does not allow
// connections, so that nobody connected to it makes cloning fail. To drop
// it by hand: ALTER DATABASE ghsync_tryton_template_v1 IS_TEMPLATE false;
// DROP DATABASE ghsync_tryton_template_v1.
//
// # The trytond process
//
// The first request on a database starts one Python process (Debian's
// /usr/bin/python3 running the embedded driver.py) that loads the
// database's Pool (about a second) and then serves every request on that
// database (a few milliseconds each plus the work), until the test ends.
// Each request is one transaction, committed at its end or rolled back
// when an op raises; Tryton's exceptions come back as *Error with the
// Python traceback. Between requests the process holds no connection to
// the database, so Clone and SQL-level checks are not disturbed, and like
// a running Tryton server it sees rows that Go code wrote by SQL.
//
// Hazard: as in trytond's ORM used from Python, access rights and record
// rules are not checked unless the context has "_check_access": true.
package trytontest
