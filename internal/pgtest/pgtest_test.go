package pgtest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

// childEnvVar marks a run of this test binary started by one of its own
// tests; its value says which check the child makes.
const childEnvVar = "GHSYNC_PGTEST_CHILD"

var dbNameRE = regexp.MustCompile(`^ghsync_test_[0-9a-f]{16}$`)

func connect(t *testing.T, rawURL string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, rawURL)
	if err != nil {
		t.Fatalf("connecting to %s: %v", rawURL, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func dbName(t *testing.T, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatalf("parsing %q: %v", rawURL, err)
	}
	return strings.TrimPrefix(u.Path, "/")
}

func databaseExists(t *testing.T, name string) bool {
	t.Helper()
	var n int
	err := connect(t, ServerURL(t)).QueryRow(context.Background(),
		"SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n)
	if err != nil {
		t.Fatalf("looking up database %s: %v", name, err)
	}
	return n == 1
}

func TestServerURL(t *testing.T) {
	t.Parallel()
	raw := ServerURL(t)
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("ServerURL = %q, not a postgres:// URL (%v)", raw, err)
	}
	if env := strings.TrimSpace(os.Getenv(envURL)); env != "" && raw != env {
		t.Errorf("ServerURL = %q, want %s = %q", raw, envURL, env)
	}
	var db string
	if err := connect(t, raw).QueryRow(context.Background(), "SELECT current_database()").Scan(&db); err != nil {
		t.Fatal(err)
	}
	if db != "postgres" {
		t.Errorf("ServerURL connects to database %q, want postgres", db)
	}
}

func TestNewDatabaseIsUsable(t *testing.T) {
	t.Parallel()
	dbURL := NewDatabase(t)
	name := dbName(t, dbURL)
	if !dbNameRE.MatchString(name) {
		t.Errorf("database name %q does not match %s", name, dbNameRE)
	}
	conn := connect(t, dbURL)
	ctx := context.Background()
	var current, encoding string
	if err := conn.QueryRow(ctx, "SELECT current_database(), pg_encoding_to_char(encoding) FROM pg_database WHERE datname = current_database()").
		Scan(&current, &encoding); err != nil {
		t.Fatal(err)
	}
	if current != name {
		t.Errorf("connected to database %q, want %q", current, name)
	}
	if encoding != "UTF8" {
		t.Errorf("database encoding %s, want UTF8", encoding)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE patient (id serial PRIMARY KEY, name text NOT NULL)"); err != nil {
		t.Fatalf("creating a table: %v", err)
	}
	if _, err := conn.Exec(ctx, "INSERT INTO patient (name) VALUES ($1), ($2)", "Ana Betz", "José Núñez"); err != nil {
		t.Fatalf("inserting: %v", err)
	}
	var got string
	if err := conn.QueryRow(ctx, "SELECT name FROM patient WHERE id = 2").Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != "José Núñez" {
		t.Errorf("read back %q, want %q", got, "José Núñez")
	}
}

func TestNewDatabaseNamesDiffer(t *testing.T) {
	t.Parallel()
	a, b := dbName(t, NewDatabase(t)), dbName(t, NewDatabase(t))
	if a == b {
		t.Fatalf("two NewDatabase calls both gave %q", a)
	}
	if !databaseExists(t, a) || !databaseExists(t, b) {
		t.Fatalf("databases %s and %s should both exist", a, b)
	}
}

func TestNewDatabaseDroppedAfterTest(t *testing.T) {
	t.Parallel()
	var name string
	var conn *pgx.Conn
	t.Run("use", func(t *testing.T) {
		dbURL := NewDatabase(t)
		name = dbName(t, dbURL)
		if !databaseExists(t, name) {
			t.Fatalf("database %s does not exist after NewDatabase", name)
		}
		// A connection left open must not stop the drop (WITH (FORCE)).
		var err error
		if conn, err = pgx.Connect(context.Background(), dbURL); err != nil {
			t.Fatal(err)
		}
	})
	if conn != nil {
		defer conn.Close(context.Background())
	}
	if name == "" {
		t.Fatal("subtest created no database")
	}
	if databaseExists(t, name) {
		t.Errorf("database %s still exists after its test ended", name)
	}
}

func TestNewDatabaseKeepsQuery(t *testing.T) {
	t.Parallel()
	u, err := url.Parse(NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	admin, err := url.Parse(ServerURL(t))
	if err != nil {
		t.Fatal(err)
	}
	if u.Host != admin.Host || u.User.String() != admin.User.String() || u.RawQuery != admin.RawQuery {
		t.Errorf("NewDatabase URL %s differs from the server URL %s in more than the database", u.Redacted(), admin.Redacted())
	}
}

// runChild runs this test binary again, running only the test named run,
// with the environment env (childEnvVar and envURL set as given, the rest
// inherited). It returns the child's output and whether it passed.
func runChild(t *testing.T, run string, env map[string]string) (string, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+run+"$", "-test.v", "-test.count=1", "-test.timeout=2m")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, envURL+"=") && !strings.HasPrefix(kv, childEnvVar+"=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("%s did not finish in time:\n%s", strings.Join(cmd.Args, " "), out)
	}
	return string(out), err == nil
}

// TestThrowawayCluster runs this test binary again with GHSYNC_TEST_PG unset:
// the child starts a throwaway cluster, uses it and stops it in Main. Then
// the server must be gone and its directory removed.
func TestThrowawayCluster(t *testing.T) {
	if os.Getenv(childEnvVar) == "throwaway" {
		checkThrowaway(t)
		return
	}
	t.Parallel()
	out, ok := runChild(t, "TestThrowawayCluster", map[string]string{childEnvVar: "throwaway"})
	if !ok || !strings.Contains(out, "--- PASS: TestThrowawayCluster") {
		t.Fatalf("the throwaway-cluster run failed:\n%s", out)
	}
	var pid int
	var dir string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if rest, found := strings.CutPrefix(line, "pgtest-child: "); found {
			t.Log(rest)
			fmt.Sscanf(rest, "cluster pid=%d dir=%s", &pid, &dir)
		}
	}
	if pid == 0 || dir == "" {
		t.Fatalf("the child did not report its cluster:\n%s", out)
	}
	if processAlive(pid) {
		t.Errorf("the child's server (pid %d) still runs after the child ended", pid)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the child's cluster directory %s is still there (%v)", dir, err)
	}
}

// checkThrowaway runs in the child of TestThrowawayCluster.
func checkThrowaway(t *testing.T) {
	if v := os.Getenv(envURL); v != "" {
		t.Fatalf("%s=%q in the child, want it unset", envURL, v)
	}
	begin := time.Now()
	raw := ServerURL(t)
	firstCall := time.Since(begin)
	clusterMu.Lock()
	c := cluster
	clusterMu.Unlock()
	if c == nil {
		t.Fatal("ServerURL started no throwaway cluster")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Hostname() != "127.0.0.1" || u.Port() != strconv.Itoa(c.port) || u.Path != "/postgres" {
		t.Errorf("ServerURL = %q, want postgres://...@127.0.0.1:%d/postgres (%v)", raw, c.port, err)
	}
	if again := ServerURL(t); again != raw {
		t.Errorf("second ServerURL = %q, want the same cluster %q", again, raw)
	}

	conn := connect(t, raw)
	ctx := context.Background()
	for setting, want := range map[string]string{"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off", "max_connections": "200"} {
		var got string
		if err := conn.QueryRow(ctx, "SELECT current_setting($1)", setting).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s = %s, want %s", setting, got, want)
		}
	}
	var version string
	if err := conn.QueryRow(ctx, "SHOW server_version").Scan(&version); err != nil {
		t.Fatal(err)
	}

	// Time CREATE DATABASE, the cost every test using NewDatabase pays.
	const n = 5
	var times []string
	for range n {
		start := time.Now()
		dbURL := NewDatabase(t)
		times = append(times, time.Since(start).Round(time.Millisecond).String())
		var one int
		if err := connect(t, dbURL).QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
			t.Fatal(err)
		}
	}
	fmt.Printf("pgtest-child: PostgreSQL %s cluster started in %v (first ServerURL call %v); NewDatabase took %s\n",
		version, c.startup.Round(time.Millisecond), firstCall.Round(time.Millisecond), strings.Join(times, ", "))
	fmt.Printf("pgtest-child: cluster pid=%d dir=%s\n", c.serverPID(), c.dir)
}

// TestUnreachableServerFails runs this test binary again with GHSYNC_TEST_PG
// naming a port no server listens on: the child's test must fail, not skip,
// and say how to fix it.
func TestUnreachableServerFails(t *testing.T) {
	if os.Getenv(childEnvVar) == "unreachable" {
		ServerURL(t) // must fail the test
		t.Error("ServerURL returned for an unreachable server")
		return
	}
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	bad := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres", port)
	out, ok := runChild(t, "TestUnreachableServerFails", map[string]string{childEnvVar: "unreachable", envURL: bad})
	if ok {
		t.Fatalf("the run with %s=%s passed, want a failure:\n%s", envURL, bad, out)
	}
	for _, want := range []string{"--- FAIL: TestUnreachableServerFails", "does not answer", envURL + "=" + bad, "To fix:"} {
		if !strings.Contains(out, want) {
			t.Errorf("the failing run's output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "--- SKIP") {
		t.Errorf("the run skipped a test:\n%s", out)
	}
}

// TestNewCluster starts a cluster of its own with extra settings: they
// apply, durability stays on, it is not the shared server, and it is gone
// with its directory once the test that started it ends.
func TestNewCluster(t *testing.T) {
	t.Parallel()
	var admin string
	var pid int
	t.Run("use", func(t *testing.T) {
		admin = NewCluster(t, "wal_level=logical", "max_wal_senders=7", "shared_buffers=64MB")
		if shared := ServerURL(t); admin == shared {
			t.Fatalf("NewCluster returned the shared server's URL %s", admin)
		}
		u, err := url.Parse(admin)
		if err != nil || u.Hostname() != "127.0.0.1" || u.Path != "/postgres" || u.User.Username() != "postgres" {
			t.Fatalf("NewCluster = %q, want postgres://postgres@127.0.0.1:PORT/postgres (%v)", admin, err)
		}
		conn := connect(t, admin)
		ctx := context.Background()
		for setting, want := range map[string]string{
			"wal_level": "logical", "max_wal_senders": "7", "shared_buffers": "64MB", // the caller's, the last one winning
			"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on", "max_connections": "200",
		} {
			var got string
			if err := conn.QueryRow(ctx, "SELECT current_setting($1)", setting).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("%s = %s, want %s", setting, got, want)
			}
		}
		if err := conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
			t.Fatal(err)
		}
	})
	if admin == "" || pid == 0 {
		t.Fatal("the subtest made no cluster")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if conn, err := pgx.Connect(ctx, admin); err == nil {
		conn.Close(context.Background())
		t.Errorf("the cluster at %s still answers after its test ended", admin)
	}
	if processAlive(pid) {
		t.Errorf("a backend (pid %d) of the cluster still runs after its test ended", pid)
	}
}
