package main

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"

	"github.com/ghsync/ghsync/internal/pgtest"
	"github.com/ghsync/ghsync/ledger/sqlite"
)

// emptyLedger makes a SQLite ledger with no events and returns its path.
func emptyLedger(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "empty.db")
	s, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	return path
}

func exists(t *testing.T, path string) bool {
	t.Helper()
	_, err := os.Stat(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return err == nil
}

// A command that only reads refuses a ledger file that does not exist,
// and leaves it uncreated; a command that writes creates it.
func TestReadOnlyCommandsRefuseMissingLedger(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "nosuch.db")
	target := "sqlite:" + filepath.Join(dir, "tryton.db")
	for _, args := range [][]string{
		{"verify"}, {"log"}, {"history", "party.party", "JM-1"},
		{"export", "--id", "0", "--unsigned", "--out", filepath.Join(dir, "x.bundle")},
		{"project", "--target", target}, {"rebuild", "--target", target}, {"parked", "--target", target},
		{"states", "--target", target}, {"conflicts", "--target", target}, {"rejected", "--target", target},
		{"dump", "--target", target},
		{"push", "--id", "1", "--central", "http://127.0.0.1:1", "--token", "t"},
		{"central", "satellite", "list"}, {"central", "satellite", "remove", "3"}, {"central", "held"},
	} {
		code, out, stderr := ghsync(t, append(args, "--ledger", "sqlite:"+missing)...)
		if code == 0 || !strings.Contains(stderr, "no ledger at "+missing+": the file does not exist") {
			t.Errorf("%s on a missing ledger: exit %d\n%s%s", args[0], code, out, stderr)
		}
		if exists(t, missing) {
			t.Fatalf("%s created %s", strings.Join(args, " "), missing)
		}
	}
	for _, args := range [][]string{
		{"generate", "--clinics", "0", "--events", "5"},
		{"central", "satellite", "add", "1", "--name", "Clinic"},
	} {
		path := filepath.Join(t.TempDir(), "new.db")
		if code, out, stderr := ghsync(t, append(args, "--ledger", "sqlite:"+path)...); code != 0 || !exists(t, path) {
			t.Errorf("%s on a new ledger: exit %d\n%s%s", args[0], code, out, stderr)
		}
	}
	if code, out, stderr := ghsync(t, "verify", "--ledger", "sqlite:"+emptyLedger(t)); code != 0 || !strings.Contains(out, "0 events") {
		t.Errorf("verify of an existing empty ledger: exit %d\n%s%s", code, out, stderr)
	}
}

// In PostgreSQL a database without the ghsync ledger holds no ledger,
// even when capture made the ghsync schema there: read-only commands
// refuse it and do not create the ledger.
func TestReadOnlyCommandsRefusePostgresWithoutSchema(t *testing.T) {
	url := pgtest.NewDatabase(t)
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	refuse := func() {
		t.Helper()
		for _, args := range [][]string{{"verify"}, {"log"}, {"central", "satellite", "list"}} {
			code, out, stderr := ghsync(t, append(args, "--ledger", url)...)
			if code == 0 || !strings.Contains(stderr, "has no ghsync.events table") {
				t.Errorf("%s on a database without a ledger: exit %d\n%s%s", args[0], code, out, stderr)
			}
		}
		var n int
		if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM pg_tables WHERE schemaname = 'ghsync' AND tablename = 'events'`).Scan(&n); err != nil || n != 0 {
			t.Fatalf("ghsync.events after refusals: %d, %v", n, err)
		}
	}
	refuse()
	// A ghsync schema made by something else (capture, the projector).
	if _, err := conn.Exec(context.Background(), `CREATE SCHEMA ghsync; CREATE TABLE ghsync.outbox (seq bigint)`); err != nil {
		t.Fatal(err)
	}
	refuse()
	if code, _, stderr := ghsync(t, "generate", "--ledger", url, "--clinics", "0", "--events", "5"); code != 0 {
		t.Fatalf("generate: exit %d\n%s", code, stderr)
	}
	if code, out, stderr := ghsync(t, "verify", "--ledger", url); code != 0 || !strings.Contains(out, "verify: OK") {
		t.Fatalf("verify after generate: exit %d\n%s%s", code, out, stderr)
	}
}

// Synchronisation ids are 0..511, 0 being central: every flag and
// argument that takes one says which is out of range.
func TestOriginChecks(t *testing.T) {
	db := "sqlite:" + emptyLedger(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"verify", "--complete", "0,600"}, "--complete 600: a synchronisation id outside 0..511"},
		{[]string{"log", "--origin", "999"}, "--origin 999: a synchronisation id outside 0..511"},
		{[]string{"sync", "--id", "512"}, "--id 512: a synchronisation id outside 0..511"},
		{[]string{"central", "satellite", "remove", "600"}, "<id> 600: a synchronisation id outside 0..511"},
		// add takes satellites only: the range it says is the one it takes.
		{[]string{"central", "satellite", "add", "512", "--name", "x"}, "<id> 512: a satellite's synchronisation id outside 1..511 (0 is central)"},
		{[]string{"central", "satellite", "add", "0", "--name", "x"}, "<id> 0: a satellite's synchronisation id outside 1..511 (0 is central)"},
		{[]string{"push", "--id", "0", "--central", "http://127.0.0.1:1", "--token", "t"}, "push is for satellites, and the synchronisation id is unset or 0, which is central's own"},
		{[]string{"sync", "--id", "0"}, "sync is for satellites"},
	} {
		code, out, stderr := ghsync(t, append(tc.args, "--ledger", db)...)
		if code == 0 || !strings.Contains(stderr, tc.want) {
			t.Errorf("ghsync %s: exit %d, want an error saying %q; got\n%s%s", strings.Join(tc.args, " "), code, tc.want, out, stderr)
		}
	}
	// An id from trytond.conf, or a Run without the parser, is checked too.
	r := Remote{ID: 512}
	if _, err := r.resolve("sync", true); err == nil || !strings.Contains(err.Error(), "--id 512 outside 1..511") {
		t.Errorf("resolve with id 512: %v", err)
	}
}

// generate writes a new ledger only: a second run is refused and leaves
// the ledger as it was.
func TestGenerateRefusesLedgerWithEvents(t *testing.T) {
	db := generated(t)
	code, out, stderr := ghsync(t, "generate", "--ledger", "sqlite:"+db, "--clinics", "2", "--events", "10")
	if code == 0 || !strings.Contains(stderr, "already holds events (head position 360)") {
		t.Fatalf("a second generate: exit %d\n%s%s", code, out, stderr)
	}
	if code, out, _ := ghsync(t, "verify", "--ledger", "sqlite:"+db); code != 0 || !strings.Contains(out, "360 events, head 360") {
		t.Fatalf("the ledger changed:\n%s", out)
	}
	if code, _, stderr := ghsync(t, "generate", "--ledger", "sqlite:"+emptyLedger(t), "--clinics", "0", "--events", "5"); code != 0 {
		t.Fatalf("generate into an empty ledger: exit %d %s", code, stderr)
	}
}

// schema on a database that has the tables names one and says so, in a
// line, on both backends.
func TestSchemaAlreadyThere(t *testing.T) {
	for _, target := range []string{"sqlite:" + filepath.Join(t.TempDir(), "t.db"), pgtest.NewDatabase(t)} {
		if code, _, stderr := ghsync(t, "schema", "--target", target); code != 0 {
			t.Fatalf("schema: exit %d %s", code, stderr)
		}
		code, out, stderr := ghsync(t, "schema", "--target", target)
		if code == 0 || !strings.Contains(stderr, "has table res_user already (78 of the 78 tables schema creates exist): the GNU Health schema is there") ||
			strings.Contains(stderr, "CREATE TABLE") {
			t.Errorf("schema twice on %s: exit %d\n%s%s", target, code, out, stderr)
		}
	}
}

// syncBuffer collects log lines from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// serve refuses a key pair it cannot load or an address it cannot listen
// on before it opens (or creates) the ledger or announces anything, and
// leaves nothing running behind it.
func TestServeFailsBeforeAnnouncing(t *testing.T) {
	for _, tc := range []struct {
		cmd  ServeCmd
		want string
	}{
		{ServeCmd{Listen: freeAddr(t), TLSCert: "nosuch.pem", TLSKey: "nosuch.key"}, "--tls-cert nosuch.pem, --tls-key nosuch.key: open nosuch.pem"},
		{ServeCmd{Listen: "127.0.0.1:99999"}, "--listen 127.0.0.1:99999"},
	} {
		var logs syncBuffer
		path := filepath.Join(t.TempDir(), "central.db")
		env := &Env{Globals: &Globals{Ledger: "sqlite:" + path}, Ctx: context.Background(), Out: &logs,
			Log: hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Debug})}
		cmd := tc.cmd
		cmd.ClockPolicy, cmd.Grace, cmd.Every = ClockPolicy{MaxAhead: time.Minute, Skew: "bound"}, time.Second, time.Second
		err := cmd.Run(env)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("serve: %v, want an error saying %q", err, tc.want)
		}
		time.Sleep(300 * time.Millisecond) // what outlived Run would have logged by now
		if s := logs.String(); s != "" {
			t.Errorf("serve failing with %q logged:\n%s", tc.want, s)
		}
		if exists(t, path) {
			t.Errorf("serve failing with %q created the ledger", tc.want)
		}
	}
}

// A long poll at a central on this machine leaves the clock offset near
// 0: the answer was held, so its round trip's midpoint is not when
// central stamped it.
func TestPullWaitOffset(t *testing.T) {
	dir := t.TempDir()
	centralDB := generatedCentral(t, dir, 5)
	tok := addSatellite(t, centralDB, "1", "all")
	url, _ := serving(t, centralDB)
	sat := "sqlite:" + filepath.Join(dir, "sat.db")
	args := []string{"pull", "--ledger", sat, "--id", "1", "--central", url}
	t.Setenv("GHSYNC_TOKEN", tok)
	if code, out, stderr := ghsync(t, args...); code != 0 {
		t.Fatalf("pull: exit %d\n%s%s", code, out, stderr)
	}
	start := time.Now()
	code, out, stderr := ghsync(t, append(args, "--wait", "2s")...)
	if code != 0 || time.Since(start) < 1500*time.Millisecond {
		t.Fatalf("pull --wait 2s: exit %d after %v\n%s%s", code, time.Since(start), out, stderr)
	}
	m := regexp.MustCompile(`clock offset to central (\S+)\n`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("pull printed no offset:\n%s", out)
	}
	if off, err := time.ParseDuration(m[1]); err != nil || off.Abs() > 300*time.Millisecond {
		t.Fatalf("offset after a 2s long poll on this machine: %s (%v), want about 0", m[1], err)
	}
}
