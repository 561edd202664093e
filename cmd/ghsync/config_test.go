package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
)

func writeConf(t *testing.T, dir, text string) string {
	t.Helper()
	path := filepath.Join(dir, "ghsync.conf")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestConfigRelativePaths: a configuration file's relative paths are
// relative to its folder, whatever directory ghsync runs in.
func TestConfigRelativePaths(t *testing.T) {
	db := generated(t)
	dir := filepath.Dir(db)
	elsewhere := t.TempDir()
	t.Chdir(elsewhere)
	for _, ledger := range []string{"sqlite:ledger.db", "ledger.db", "sqlite:" + db} {
		conf := writeConf(t, dir, "ledger = "+ledger+"\n")
		code, out, stderr := ghsync(t, "--config", conf, "verify")
		if code != 0 || !strings.Contains(out, db+": 360 events") {
			t.Errorf("ledger = %s, run from another folder: exit %d\n%s%s", ledger, code, out, stderr)
		}
	}
	// The same through GHSYNC_CONFIG, with the file named relatively.
	conf := writeConf(t, dir, "ledger = sqlite:ledger.db\n")
	rel, err := filepath.Rel(elsewhere, conf)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("GHSYNC_CONFIG", rel)
	if code, out, stderr := ghsync(t, "verify"); code != 0 || !strings.Contains(out, db) {
		t.Errorf("GHSYNC_CONFIG=%s: exit %d\n%s%s", rel, code, out, stderr)
	}
	if _, err := os.Stat(filepath.Join(elsewhere, "ledger.db")); err == nil {
		t.Error("a ledger was created in the working directory")
	}
}

func TestResolvePath(t *testing.T) {
	dir := t.TempDir()
	pub := filepath.Join(dir, "central.pub")
	os.WriteFile(pub, []byte("ed25519:x\n"), 0o644)
	for _, tc := range []struct {
		key, value, want string
	}{
		{"ledger", "sqlite:l.db", "sqlite:" + dir + "/l.db"},
		{"ledger", "sqlite://l.db", "sqlite:" + dir + "/l.db"},
		{"ledger", "sqlite:///var/l.db", "sqlite:/var/l.db"},
		{"ledger", "sub/l.db", dir + "/sub/l.db"},
		{"ledger", "/var/l.db", "/var/l.db"},
		{"ledger", "postgres://u@h/db?sslmode=disable", "postgres://u@h/db?sslmode=disable"},
		{"target", "sqlite:t.db", "sqlite:" + dir + "/t.db"},
		{"target", "postgresql://h/db", "postgresql://h/db"},
		{"target", "t.db", "t.db"}, // not a target; left for the command to refuse as given
		{"db", "sqlite:../t.db", "sqlite:" + filepath.Dir(dir) + "/t.db"},
		{"key", "clinic.key", dir + "/clinic.key"},
		{"out", "-", "-"},
		{"tls-cert", "/etc/ssl/c.pem", "/etc/ssl/c.pem"},
		{"trust", "0=central.pub, ed25519:AAAA,12=missing.pub", "0=" + pub + ",ed25519:AAAA,12=missing.pub"},
		{"trust", "central.pub", pub},
		{"central", "http://h:7420", "http://h:7420"},
		{"id", "12", "12"},
	} {
		if got := resolvePath(configPaths[tc.key], tc.value, dir); got != tc.want {
			t.Errorf("%s = %s in %s: got %s, want %s", tc.key, tc.value, dir, got, tc.want)
		}
	}
}

// TestConfigPathKeys keeps configPaths in step with the flags: every key
// it lists is a flag, and every flag naming a file or a SQLite database is
// listed (else a relative path in a configuration file would silently
// depend on the working directory).
func TestConfigPathKeys(t *testing.T) {
	var cli CLI
	parser, err := newParser(&cli, io.Discard, io.Discard, func(int) {})
	if err != nil {
		t.Fatal(err)
	}
	keys := configKeys(parser.Model)
	for k := range configPaths {
		if !strings.Contains(" "+strings.Join(keys, " ")+" ", " "+k+" ") {
			t.Errorf("configPaths lists %s, which no command has", k)
		}
	}
	var walk func(n *kong.Node)
	walk = func(n *kong.Node) {
		for _, f := range n.Flags {
			names := f.PlaceHolder + " " + f.Help
			if (strings.Contains(names, "FILE") || strings.Contains(names, "sqlite:PATH") || strings.Contains(strings.ToLower(f.Help), "folder")) && configPaths[f.Name] == 0 && f.Name != "config" {
				t.Errorf("--%s names a file (%q) but configPaths does not list it", f.Name, f.PlaceHolder)
			}
		}
		for _, c := range n.Children {
			walk(c)
		}
	}
	walk(parser.Model.Node)
}

func TestConfigRefused(t *testing.T) {
	t.Chdir(t.TempDir())
	dir := t.TempDir()
	for _, tc := range []struct {
		text string
		want []string
	}{
		{"ledgr = sqlite:x.db\n", []string{"line 1", `unknown key "ledgr"`, "did you mean ledger?"}},
		{"# site\nfrobnicate = 1\n", []string{"line 2", `unknown key "frobnicate"`, "known keys:", "ledger", "log-level", "target", "token"}},
		{"[ghsync]\nledger\n", []string{"line 2: want key = value", `"ledger"`}},
		{"[ghsync\nledger = x.db\n", []string{"line 1: want [section]"}},
		{"ledger = a.db\nlog_level = warn\nLedger = b.db\n", []string{"line 3: ledger is already set on line 1"}},
		{"config = other.conf\n", []string{`unknown key "config"`}},
	} {
		conf := writeConf(t, dir, tc.text)
		code, out, stderr := ghsync(t, "--config", conf, "verify")
		for _, want := range append(tc.want, "config "+conf+" ") {
			if code != 2 || !strings.Contains(stderr, want) {
				t.Errorf("config %q: exit %d, want an error saying %q; got\n%s%s", tc.text, code, want, out, stderr)
			}
		}
	}
	if _, err := os.Stat("ghsync.db"); err == nil {
		t.Error("a refused configuration still opened the default ledger")
	}
}

// A value its flag cannot take is refused naming the file and the line,
// as an unknown key is; keys of other commands are not read, so not
// checked.
func TestConfigBadValues(t *testing.T) {
	t.Chdir(t.TempDir())
	dir := t.TempDir()
	for _, tc := range []struct {
		text string
		args []string
		want string
	}{
		{"ledger = x.db\nid = abc\n", []string{"sync"}, `line 2: id = abc: expected a valid 16 bit uint but got "abc"`},
		{"id = 600\n", []string{"sync"}, "line 1: id = 600: --id 600: a synchronisation id outside 0..511"},
		{"id = abc\n", []string{"import", "x.bundle"}, `line 1: id = abc: expected a valid 64 bit int but got "abc"`},
		{"[ghsync]\nlog_level = loud\n", []string{"verify"}, `line 2: log-level = loud: want one of "trace", "debug", "info", "warn", "error", not "loud"`},
		{"skew = sometimes\n", []string{"import", "x.bundle"}, `line 1: skew = sometimes: want one of "", "bound", "hold", not "sometimes"`},
		{"wait = 5 minutes\n", []string{"pull"}, `line 1: wait = 5 minutes: expected duration but got "5 minutes"`},
		{"origin = 1,x\n", []string{"log"}, `line 1: origin = 1,x: `},
	} {
		conf := writeConf(t, dir, tc.text)
		code, out, stderr := ghsync(t, append([]string{"--config", conf}, tc.args...)...)
		if code != 2 || !strings.Contains(stderr, "config "+conf+" "+tc.want) {
			t.Errorf("config %q, %v: exit %d, want 2 and an error saying %q; got\n%s%s", tc.text, tc.args, code, "config "+conf+" "+tc.want, out, stderr)
		}
	}
	conf := writeConf(t, dir, "id = abc\n")
	if code, out, stderr := ghsync(t, "--config", conf, "keygen", "--out", filepath.Join(dir, "k")); code != 0 {
		t.Errorf("a command without --id read the file's id: exit %d\n%s%s", code, out, stderr)
	}
	if _, err := os.Stat("ghsync.db"); err == nil {
		t.Error("a refused configuration still opened the default ledger")
	}
}

// TestConfigSectionsAndPrecedence: other programs' sections are skipped;
// the command line, then the environment, come before the file.
func TestConfigSectionsAndPrecedence(t *testing.T) {
	db := generated(t)
	other := filepath.Join(filepath.Dir(generated(t)), "ledger.db") // another ledger
	conf := writeConf(t, t.TempDir(), "[database]\nuri = postgres://x\nledger = sqlite:nowhere.db\n[GHSync]\nledger = sqlite:"+db+"\n[other]\npath = /x\n")
	if code, out, stderr := ghsync(t, "--config", conf, "verify"); code != 0 || !strings.Contains(out, db) {
		t.Fatalf("a shared file: exit %d\n%s%s", code, out, stderr)
	}
	t.Setenv("GHSYNC_LEDGER", "sqlite:"+other)
	if code, out, stderr := ghsync(t, "--config", conf, "verify"); code != 0 || !strings.Contains(out, other) {
		t.Fatalf("GHSYNC_LEDGER must win over the file: exit %d\n%s%s", code, out, stderr)
	}
	if code, out, stderr := ghsync(t, "--config", conf, "verify", "--ledger", db); code != 0 || !strings.Contains(out, db) {
		t.Fatalf("--ledger must win over the environment: exit %d\n%s%s", code, out, stderr)
	}
}

// TestSystemConfig: the system-wide file is read like --config's, and a
// --config file wins over it.
func TestSystemConfig(t *testing.T) {
	db := generated(t)
	dir := filepath.Dir(db)
	t.Chdir(t.TempDir())
	defer func(old string) { systemConfig = old }(systemConfig)
	systemConfig = filepath.Join(dir, "system.conf")
	os.WriteFile(systemConfig, []byte("ledger = sqlite:ledger.db\n"), 0o600)
	if code, out, stderr := ghsync(t, "verify"); code != 0 || !strings.Contains(out, db) {
		t.Fatalf("verify with the system file: exit %d\n%s%s", code, out, stderr)
	}
	mine := filepath.Dir(generated(t)) // holds ledger.db
	conf := writeConf(t, mine, "ledger = sqlite:ledger.db\n")
	if code, out, stderr := ghsync(t, "--config", conf, "verify"); code != 0 || !strings.Contains(out, filepath.Join(mine, "ledger.db")) {
		t.Fatalf("--config must win over the system file: exit %d\n%s%s", code, out, stderr)
	}
	os.WriteFile(systemConfig, []byte("ledger = sqlite:ledger.db\nlog-levle = warn\n"), 0o600)
	if code, _, stderr := ghsync(t, "verify"); code != 2 || !strings.Contains(stderr, systemConfig+" line 2") || !strings.Contains(stderr, "did you mean log-level?") {
		t.Fatalf("a typo in the system file: exit %d\n%s", code, stderr)
	}
}

// TestHelp: bare ghsync and "ghsync help" print the whole usage, "ghsync
// help CMD" a command's, and --help still works (and runs nothing).
func TestHelp(t *testing.T) {
	t.Chdir(t.TempDir())
	code, full, stderr := ghsync(t, "--help")
	if code != 0 || !strings.HasPrefix(full, "Usage: ghsync <command>") {
		t.Fatalf("--help: exit %d\n%s%s", code, full, stderr)
	}
	// Every command, however deep, is listed.
	var cli CLI
	parser, err := newParser(&cli, io.Discard, io.Discard, func(int) {})
	if err != nil {
		t.Fatal(err)
	}
	var walk func(n *kong.Node)
	walk = func(n *kong.Node) {
		if len(n.Children) == 0 && !strings.Contains(full, "  "+n.Path()+" ") {
			t.Errorf("--help does not list %q", n.Path())
		}
		for _, c := range n.Children {
			walk(c)
		}
	}
	for _, c := range parser.Model.Children {
		walk(c)
	}
	if code, out, stderr := ghsync(t); code != 2 || out != full || stderr != "" {
		t.Errorf("bare ghsync: exit %d, want 2 and the --help text; got\n%s%s", code, out, stderr)
	}
	if code, out, stderr := ghsync(t, "help"); code != 0 || out != full {
		t.Errorf("ghsync help: exit %d, want the --help text; got\n%s%s", code, out, stderr)
	}
	_, sub, _ := ghsync(t, "central", "satellite", "add", "--help")
	if code, out, stderr := ghsync(t, "help", "central", "satellite", "add"); code != 0 || out != sub || !strings.Contains(out, "--scope=") {
		t.Errorf("ghsync help central satellite add: exit %d\n%s%s", code, out, stderr)
	}
	if code, out, _ := ghsync(t, "central"); code != 2 || !strings.HasPrefix(out, "Usage: ghsync central <command>") || !strings.Contains(out, "central held release") {
		t.Errorf("ghsync central: exit %d, want central's usage; got\n%s", code, out)
	}
	if code, out, stderr := ghsync(t, "help", "frobnicate"); code != 2 || stderr != "ghsync: help frobnicate: no such command (unexpected argument frobnicate); ghsync help lists the commands\n" {
		t.Errorf("ghsync help frobnicate: exit %d\n%s%s", code, out, stderr)
	}
	if code, out, _ := ghsync(t, "verify", "--help"); code != 0 || !strings.HasPrefix(out, "Usage: ghsync verify") || strings.Contains(out, "verify: OK") {
		t.Errorf("verify --help: exit %d\n%s", code, out)
	}
	if _, err := os.Stat("ghsync.db"); err == nil {
		t.Error("verify --help ran verify")
	}
}

// A file's key = clinic.key is export's signing key; it must not become
// the record key of conflicts --key or new --key, which pick a record for
// one run.
func TestConfigKeyIsNotARecordKey(t *testing.T) {
	conf := writeConf(t, t.TempDir(), "key = clinic.key\n")
	parse := func(args ...string) *CLI {
		t.Helper()
		var cli CLI
		parser, err := newParser(&cli, io.Discard, io.Discard, func(int) {})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := parser.Parse(append([]string{"--config", conf}, args...)); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return &cli
	}
	if cli := parse("export", "--id", "1"); cli.Export.Key != filepath.Join(filepath.Dir(conf), "clinic.key") {
		t.Errorf("export's --key from the file: %q", cli.Export.Key)
	}
	if cli := parse("conflicts", "--target", "sqlite:x.db"); cli.Conflicts.Key != "" {
		t.Errorf("conflicts --key took the file's signing key: %q", cli.Conflicts.Key)
	}
	if cli := parse("new", "--id", "1", "--patient", "P1"); cli.New.Key != "" {
		t.Errorf("new --key took the file's signing key: %q", cli.New.Key)
	}
}

// A relative path that exists only from the working directory (how a file
// was read before paths were relative to its folder) is refused, so a
// service does not start an empty ledger beside its configuration.
func TestConfigRelativePathMoved(t *testing.T) {
	db := generated(t)
	t.Chdir(filepath.Dir(db))
	conf := writeConf(t, t.TempDir(), "ledger = sqlite:ledger.db\n")
	code, _, stderr := ghsync(t, "--config", conf, "verify")
	if code != 2 || !strings.Contains(stderr, "line 1: ledger = sqlite:ledger.db: relative paths in a configuration file are read from the file's folder") ||
		!strings.Contains(stderr, db+" does: write that absolute path") {
		t.Fatalf("a path that moved: exit %d\n%s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(conf), "ledger.db")); err == nil {
		t.Fatal("an empty ledger was created beside the configuration file")
	}
}
