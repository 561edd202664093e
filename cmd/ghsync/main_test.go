package main

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"
)

// ghsync runs the CLI in-process and returns its exit code and output.
func ghsync(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	dir := t.TempDir()
	out, _ := os.Create(filepath.Join(dir, "stdout"))
	errf, _ := os.Create(filepath.Join(dir, "stderr"))
	defer out.Close()
	defer errf.Close()
	code := run(args, out, errf)
	o, _ := os.ReadFile(out.Name())
	e, _ := os.ReadFile(errf.Name())
	return code, string(o), string(e)
}

func generated(t *testing.T) string {
	t.Helper()
	db := filepath.Join(t.TempDir(), "ledger.db")
	if code, _, stderr := ghsync(t, "generate", "--ledger", "sqlite:"+db, "--clinics", "2", "--events", "120", "--batch", "50"); code != 0 {
		t.Fatalf("generate exited %d: %s", code, stderr)
	}
	return db
}

func TestGenerateLogVerify(t *testing.T) {
	db := generated(t)
	code, out, _ := ghsync(t, "verify", "--ledger", "sqlite:"+db)
	if code != 0 || !strings.Contains(out, "verify: OK") || !strings.Contains(out, "origin   2: 120 events, seq 1..120, chain intact") {
		t.Fatalf("verify of a fresh ledger: exit %d\n%s", code, out)
	}
	code, out, _ = ghsync(t, "log", "--ledger", db, "--limit", "5", "--origin", "1", "--json")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 5 {
		t.Fatalf("log --json --limit 5: exit %d, %d lines", code, len(lines))
	}
	var first struct {
		Origin uint16         `json:"origin"`
		Op     string         `json:"op"`
		Stream string         `json:"stream"`
		Fields map[string]any `json:"fields"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil || first.Origin != 1 || first.Op != "create" {
		t.Fatalf("first JSON line %s: %+v, %v", lines[0], first, err)
	}
	// The stream name printed is the handle for one record's history.
	code, out, _ = ghsync(t, "log", "--ledger", db, "--stream", first.Stream)
	if code != 0 || !strings.Contains(out, first.Stream) || strings.Count(out, "\n#") != strings.Count(out, first.Stream)-1 {
		t.Fatalf("log --stream %s: exit %d\n%s", first.Stream, code, out)
	}
}

func TestVerifyDetectsFlippedByte(t *testing.T) {
	db := generated(t)
	raw, err := sql.Open("sqlite", db)
	if err != nil {
		t.Fatal(err)
	}
	var payload []byte
	if err := raw.QueryRow(`SELECT payload FROM ghsync_events WHERE position = 77`).Scan(&payload); err != nil {
		t.Fatal(err)
	}
	payload[40] ^= 0x01
	if _, err := raw.Exec(`UPDATE ghsync_events SET payload = ? WHERE position = 77`, payload); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	code, out, _ := ghsync(t, "verify", "--ledger", db)
	if code != 1 || !strings.Contains(out, "CORRUPT") || !strings.Contains(out, "(position 77)") || !strings.Contains(out, "verify: FAILED") {
		t.Fatalf("verify after flipping a byte at position 77: exit %d\n%s", code, out)
	}
}

func TestVerifyCompleteOrigin(t *testing.T) {
	db := generated(t)
	raw, _ := sql.Open("sqlite", db)
	// Remove one event and fix the bookkeeping, as a satellite that never
	// received it would look: partial, not broken, unless declared complete.
	if _, err := raw.Exec(`DELETE FROM ghsync_events WHERE origin = 2 AND origin_seq = 60;
		UPDATE ghsync_origins SET count = count - 1 WHERE origin = 2;`); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	code, out, _ := ghsync(t, "verify", "--ledger", db)
	if code != 1 || !strings.Contains(out, "HOLE") {
		t.Fatalf("a position hole must fail verify: exit %d\n%s", code, out)
	}
	if !strings.Contains(out, "119 of seq 1..120 held, 1 missing") {
		t.Fatalf("origin 2 not reported as missing one event:\n%s", out)
	}
}

func TestConfigFileAndEnv(t *testing.T) {
	db := generated(t)
	conf := filepath.Join(t.TempDir(), "ghsync.conf")
	os.WriteFile(conf, []byte("# site settings\n[ghsync]\nledger = sqlite:"+db+"\nlog_level = warn\n"), 0o644)
	if code, out, stderr := ghsync(t, "--config", conf, "verify"); code != 0 || !strings.Contains(out, db) {
		t.Fatalf("verify with --config: exit %d\n%s%s", code, out, stderr)
	}
	t.Setenv("GHSYNC_LEDGER", "sqlite:"+db)
	if code, out, _ := ghsync(t, "log", "--limit", "1"); code != 0 || !strings.HasPrefix(out, "#1 ") {
		t.Fatalf("log with GHSYNC_LEDGER: exit %d\n%s", code, out)
	}
}

func TestBadInput(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"log", "--ledger", "mysql://x"}, "unknown scheme"},
		{[]string{"log", "--ledger", "sqlite:"}, "names no file"},
		{[]string{"log", "--ledger", "sqlite:" + emptyLedger(t), "--stream", "Bad-x"}, "must start with a lowercase letter"},
		{[]string{"generate", "--ledger", "sqlite:" + filepath.Join(t.TempDir(), "l.db"), "--clinics", "600"}, "0..511 clinics"},
		{[]string{"frobnicate"}, "unexpected argument"},
	} {
		code, out, stderr := ghsync(t, tc.args...)
		if code == 0 || !strings.Contains(out+stderr, tc.want) {
			t.Errorf("ghsync %s: exit %d, want an error saying %q; got\n%s%s", strings.Join(tc.args, " "), code, tc.want, out, stderr)
		}
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := ghsync(t, "version")
	if code != 0 || !bytes.Contains([]byte(out), []byte("event format 1")) {
		t.Fatalf("version: %d %q", code, out)
	}
}

// TestDemo runs the README's first command: it must converge, show the
// conflicts it staged, and leave instances the other commands can open.
func TestDemo(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "demo")
	code, out, stderr := ghsync(t, "demo", "--dir", dir, "--events", "120", "--log-level", "warn")
	if code != 0 {
		t.Fatalf("demo: exit %d\n%s%s", code, out, stderr)
	}
	if strings.Contains(out, "DIFFERENT") || strings.Count(out, "identical") != 8 {
		t.Fatalf("demo did not show four identical instances twice:\n%s", out)
	}
	for _, want := range []string{"conflicts found (every instance lists the same): 4", "record deleted", "concurrent write", "== party.party-"} {
		if !strings.Contains(out, want) {
			t.Fatalf("demo output lacks %q:\n%s", want, out)
		}
	}
	conf := filepath.Join(dir, "clinic-2.conf")
	if code, out, _ := ghsync(t, "--config", conf, "conflicts"); code != 0 || !strings.Contains(out, "4 conflicts") {
		t.Fatalf("conflicts at clinic-2: exit %d\n%s", code, out)
	}
	// --json gives both events' ids, which log --json names too.
	code, out, _ = ghsync(t, "--config", conf, "conflicts", "--json")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var c conflictJSON
	if code != 0 || len(lines) != 4 || json.Unmarshal([]byte(lines[0]), &c) != nil || c.LoserEvent == "" || c.WinnerEvent == "" {
		t.Fatalf("conflicts --json at clinic-2: exit %d\n%s", code, out)
	}
	if _, logged, _ := ghsync(t, "--config", conf, "log", "--json"); !strings.Contains(logged, `"id":"`+c.LoserEvent+`"`) || !strings.Contains(logged, `"id":"`+c.WinnerEvent+`"`) {
		t.Fatalf("log --json does not hold conflict events %s and %s", c.LoserEvent, c.WinnerEvent)
	}
	// A history reads alike at every instance: merge order, not positions.
	position := regexp.MustCompile(`(?m)^#\d+ `)
	var told []string
	for _, inst := range []string{"clinic-1", "clinic-2", "clinic-3"} {
		code, out, stderr := ghsync(t, "--config", filepath.Join(dir, inst+".conf"), "history", "--patient", "JM003777777")
		if code != 0 {
			t.Fatalf("history at %s: exit %d\n%s", inst, code, stderr)
		}
		told = append(told, position.ReplaceAllString(out, "#N "))
	}
	if told[0] != told[1] || told[1] != told[2] {
		t.Fatalf("history of one patient differs between instances:\n%s\n---\n%s\n---\n%s", told[0], told[1], told[2])
	}
	// Every instance reported its last cycle: the states are compacted.
	if code, out, _ := ghsync(t, "--config", conf, "states", "--top", "3"); code != 0 || !strings.Contains(out, "compacted up to") || strings.Count(out, "\n") != 5 {
		t.Fatalf("states at clinic-2: exit %d\n%s", code, out)
	}
	if code, out, _ := ghsync(t, "--config", filepath.Join(dir, "central.conf"), "verify"); code != 0 {
		t.Fatalf("verify central: exit %d\n%s", code, out)
	}
	if code, _, _ := ghsync(t, "demo", "--dir", dir); code == 0 {
		t.Fatal("a second demo into the same folder was not refused")
	}
}

// TestDemoOptions: options the story cannot be told with are refused
// before anything is written; with the fewest events and more clinics
// than three, the narration names the clinics that acted, and every
// command suggested at the end works.
func TestDemoOptions(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--satellites", "2"}, "--satellites 2: want 3..20"},
		{[]string{"--satellites", "21"}, "--satellites 21: want 3..20"},
		{[]string{"--events", "0"}, "--events 0: want at least 3"},
		{[]string{"--events=-5"}, "--events -5: want at least 3"},
	} {
		dir := filepath.Join(t.TempDir(), "demo")
		code, out, stderr := ghsync(t, append([]string{"demo", "--dir", dir, "--log-format", "text"}, tc.args...)...)
		if code != 1 || !strings.Contains(stderr, tc.want) || out != "" {
			t.Errorf("demo %s: exit %d, want an error saying %q; got\n%s%s", strings.Join(tc.args, " "), code, tc.want, out, stderr)
		}
		if _, err := os.Stat(dir); err == nil {
			t.Errorf("demo %s created %s", strings.Join(tc.args, " "), dir)
		}
	}

	// A relative --dir, as in the README.
	top := t.TempDir()
	t.Chdir(top)
	code, out, stderr := ghsync(t, "demo", "--dir", "demo", "--satellites", "4", "--events", "3", "--log-level", "warn")
	if code != 0 {
		t.Fatalf("demo --satellites 4 --events 3: exit %d\n%s%s", code, out, stderr)
	}
	for _, want := range []string{"clinic-3 deletes a phone number", "conflicts found (every instance lists the same): 4", "by clinic-3"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "each folder file") {
		t.Errorf("the closing text is still garbled:\n%s", out)
	}
	suggested := 0
	for _, line := range strings.Split(out, "\n") {
		args, ok := strings.CutPrefix(line, "  ghsync ")
		if !ok {
			continue
		}
		suggested++
		if code, out, stderr := ghsync(t, strings.Fields(args)...); code != 0 {
			t.Errorf("suggested command ghsync %s: exit %d\n%s%s", args, code, out, stderr)
		}
	}
	if suggested != 5 {
		t.Errorf("%d commands suggested, want 5:\n%s", suggested, out)
	}
	// From inside the folder, as an administrator exploring it would.
	t.Chdir("demo")
	if code, out, stderr := ghsync(t, "--config", "central.conf", "verify"); code != 0 || !strings.Contains(out, filepath.Join(top, "demo", "central.db")) {
		t.Errorf("cd demo && ghsync --config central.conf verify: exit %d\n%s%s", code, out, stderr)
	}
}

// TestTuneGC: the binary raises GOGC to gcPercent, unless GOGC is set,
// which it leaves to the runtime.
func TestTuneGC(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	for _, tc := range []struct {
		env  map[string]string
		want int
	}{
		{map[string]string{}, gcPercent},
		{map[string]string{"GOGC": "50"}, 100}, // the runtime read it at start; not ours to change
		{map[string]string{"GOGC": "off"}, 100},
	} {
		debug.SetGCPercent(100)
		tuneGC(func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok })
		if got := debug.SetGCPercent(100); got != tc.want {
			t.Errorf("env %v: GC percent %d, want %d", tc.env, got, tc.want)
		}
	}
}
