package main

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ghsync/ghsync/bundle"
	"github.com/ghsync/ghsync/central"
	"github.com/ghsync/ghsync/internal/pgtest"
	"github.com/ghsync/ghsync/ledger/ledgertest"
	"github.com/ghsync/ghsync/ledger/sqlite"
)

// keygen makes a key pair in a temporary folder and returns the private
// key's path and the printed public key.
func keygen(t *testing.T) (string, string) {
	t.Helper()
	key := filepath.Join(t.TempDir(), "bundle.key")
	code, out, stderr := ghsync(t, "keygen", "--out", key)
	if code != 0 {
		t.Fatalf("keygen: exit %d: %s", code, stderr)
	}
	pub, _, _ := strings.Cut(out, "\n")
	if !strings.HasPrefix(pub, "ed25519:") {
		t.Fatalf("keygen printed %q", out)
	}
	return key, pub
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	code, out, stderr := ghsync(t, args...)
	if code != 0 {
		t.Fatalf("ghsync %s: exit %d\n%s%s", strings.Join(args, " "), code, out, stderr)
	}
	return out
}

// refused runs a command that must fail saying each of want, and returns its stderr.
func refused(t *testing.T, want []string, args ...string) string {
	t.Helper()
	code, out, stderr := ghsync(t, args...)
	if code == 0 {
		t.Fatalf("ghsync %s succeeded:\n%s", strings.Join(args, " "), out)
	}
	for _, w := range want {
		if !strings.Contains(out+stderr, w) {
			t.Fatalf("ghsync %s: exit %d, want an error saying %q; got\n%s%s", strings.Join(args, " "), code, w, out, stderr)
		}
	}
	return stderr
}

func logJSON(t *testing.T, ledger string, extra ...string) string {
	t.Helper()
	return mustRun(t, append([]string{"log", "--ledger", ledger, "--json"}, extra...)...)
}

func TestKeygen(t *testing.T) {
	key, pub := keygen(t)
	fi, err := os.Stat(key)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("private key file: %v %v", fi.Mode(), err)
	}
	data, _ := os.ReadFile(key)
	if !strings.HasPrefix(string(data), "-----BEGIN PRIVATE KEY-----") {
		t.Fatalf("private key file holds %q", data)
	}
	if data, _ := os.ReadFile(key + ".pub"); strings.TrimSpace(string(data)) != pub {
		t.Fatalf("%s.pub holds %q, keygen printed %q", key, data, pub)
	}
	refused(t, []string{"exists", "--force"}, "keygen", "--out", key)
	if code, out, _ := ghsync(t, "keygen", "--out", key, "--force"); code != 0 || strings.HasPrefix(out, pub) {
		t.Fatalf("keygen --force: exit %d, %q", code, out)
	}
}

// Export a generated ledger, import it into an empty one: the same log,
// byte for byte; a second import changes nothing.
func TestExportImport(t *testing.T) {
	src := "sqlite:" + generated(t) // origins 0, 1, 2: 120 events each
	key, pub := keygen(t)
	file := filepath.Join(t.TempDir(), "clinic.bundle")
	out := mustRun(t, "export", "--ledger", src, "--id", "2", "--key", key, "--out", file)
	for _, w := range []string{"exported 360 events (from the start, all origins, all models) of instance 2", "origin   1: 120 events, seq 1..120", "signed by " + pub, "continues with --since 360"} {
		if !strings.Contains(out, w) {
			t.Fatalf("export output lacks %q:\n%s", w, out)
		}
	}
	if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o600 {
		t.Fatalf("bundle mode %v, want 0600 (it holds patient data)", fi.Mode())
	}
	if m, _ := filepath.Glob(filepath.Join(filepath.Dir(file), ".*tmp")); len(m) != 0 {
		t.Fatalf("temporary files left: %v", m)
	}

	dst := "sqlite:" + filepath.Join(t.TempDir(), "central.db")
	out = mustRun(t, "import", "--ledger", dst, "--trust", key+".pub", file)
	for _, w := range []string{"bundle " + file + ": format 2, exported by instance 2", "signed by a trusted key " + pub, "origin   2: 120 events, seq 1..120", "360 events: 360 new, 0 duplicates (ledger head 360)"} {
		if !strings.Contains(out, w) {
			t.Fatalf("import output lacks %q:\n%s", w, out)
		}
	}
	if logJSON(t, src) != logJSON(t, dst) {
		t.Fatal("the imported ledger's log differs from the exported one's")
	}
	if out := mustRun(t, "verify", "--ledger", dst, "--complete", "0,1,2"); !strings.Contains(out, "verify: OK") {
		t.Fatalf("verify after import:\n%s", out)
	}
	// Twice: nothing new. The key given as text this time.
	out = mustRun(t, "import", "--ledger", dst, "--trust", pub, file)
	if !strings.Contains(out, "360 events: 0 new, 360 duplicates (ledger head 360)") {
		t.Fatalf("second import:\n%s", out)
	}
}

func TestExportFiltersAndStdout(t *testing.T) {
	src := "sqlite:" + generated(t)
	key, _ := keygen(t)
	dir := t.TempDir()
	// To standard output, the default.
	code, bundleBytes, stderr := ghsync(t, "export", "--ledger", src, "--id", "0", "--key", key, "--since", "100", "--origin", "1,2")
	if code != 0 || !strings.HasPrefix(bundleBytes, "GHSYNCB1") {
		t.Fatalf("export to stdout: exit %d: %s", code, stderr)
	}
	file := filepath.Join(dir, "since100.bundle")
	os.WriteFile(file, []byte(bundleBytes), 0o600)
	dst := "sqlite:" + filepath.Join(dir, "dst.db")
	out := mustRun(t, "import", "--ledger", dst, "--trust", key+".pub", file)
	want := strings.Count(logJSON(t, src, "--after", "100", "--origin", "1,2"), "\n")
	if got := strings.Count(logJSON(t, dst), "\n"); got != want || want == 0 || !strings.Contains(out, "after position 100, origins 1,2, all models") {
		t.Fatalf("imported %d events, want %d:\n%s", got, want, out)
	}

	// Since a time, one model.
	first := logJSON(t, src, "--after", "200", "--limit", "1")
	hlc := first[strings.Index(first, `"hlc":"`)+7:]
	hlc = hlc[:strings.Index(hlc, `"`)]
	wall, _, _ := strings.Cut(hlc, "/") // an HLC prints as its wall time, a slash and its logical counter
	file = filepath.Join(dir, "sincetime.bundle")
	out = mustRun(t, "export", "--ledger", src, "--id", "0", "--key", key, "--since", wall, "--model", "gnuhealth.patient", "--out", file)
	if !strings.Contains(out, "since ") || !strings.Contains(out, "models gnuhealth.patient") {
		t.Fatalf("export --since TIME:\n%s", out)
	}
	dst = "sqlite:" + filepath.Join(dir, "dst2.db")
	mustRun(t, "import", "--ledger", dst, "--trust", key+".pub", file)
	for _, line := range strings.Split(strings.TrimSpace(logJSON(t, dst)), "\n") {
		if !strings.Contains(line, `"model":"gnuhealth.patient"`) {
			t.Fatalf("an event of another model was exported: %s", line)
		}
	}
}

func TestImportRefusesBadBundles(t *testing.T) {
	src := "sqlite:" + generated(t)
	key, _ := keygen(t)
	other, _ := keygen(t)
	dir := t.TempDir()
	good := filepath.Join(dir, "good.bundle")
	mustRun(t, "export", "--ledger", src, "--id", "0", "--key", key, "--out", good)
	unsigned := filepath.Join(dir, "unsigned.bundle")
	mustRun(t, "export", "--ledger", src, "--id", "0", "--unsigned", "--out", unsigned)
	data, _ := os.ReadFile(good)
	truncated := filepath.Join(dir, "truncated.bundle")
	os.WriteFile(truncated, data[:len(data)/2], 0o600)
	flipped := filepath.Join(dir, "flipped.bundle")
	d := []byte(string(data))
	d[len(d)/3] ^= 0x04
	os.WriteFile(flipped, d, 0o600)
	newer := filepath.Join(dir, "newer.bundle")
	d = []byte(string(data))
	d[9] = byte(bundle.Version + 1)
	os.WriteFile(newer, d, 0o600)

	dst := "sqlite:" + filepath.Join(dir, "dst.db")
	trust := "--trust=" + key + ".pub"
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{unsigned, trust}, []string{"unsigned.bundle", "not signed", "--insecure-skip-signature", "nothing was appended"}},
		{[]string{good, "--trust", other + ".pub"}, []string{"good.bundle", "not among the 1 trusted key"}},
		{[]string{good}, []string{"good.bundle", "not among the 0 trusted key"}},
		{[]string{truncated, trust}, []string{"truncated.bundle", "truncated", "byte offset"}},
		{[]string{flipped, trust}, []string{"flipped.bundle", "checksum does not match", "first inconsistency found: ", "event "}},
		{[]string{newer, trust}, []string{"newer.bundle", fmt.Sprintf("format version %d", bundle.Version+1), "upgrade ghsync"}},
		{[]string{good, flipped, trust}, []string{"flipped.bundle", "nothing was appended"}}, // the good one first: still nothing
		{[]string{filepath.Join(dir, "missing.bundle"), trust}, []string{"missing.bundle", "no such file"}},
		{[]string{good, "--trust", "ed25519:nonsense"}, []string{"--trust ed25519:nonsense", "not an Ed25519 public key"}},
		{[]string{good, "--trust", "3=" + filepath.Join(dir, "clinic3.pub")}, []string{"clinic3.pub: no such file, and not a public key"}},
	} {
		refused(t, c.want, append([]string{"import", "--ledger", dst}, c.args...)...)
		// Nothing appended: not even an empty ledger is left behind.
		if _, err := os.Stat(strings.TrimPrefix(dst, "sqlite:")); err == nil {
			t.Fatalf("import %v left a ledger:\n%s", c.args, logJSON(t, dst))
		}
	}
	out := mustRun(t, "import", "--ledger", dst, "--insecure-skip-signature", unsigned)
	if !strings.Contains(out, "unsigned (accepted: --insecure-skip-signature)") || !strings.Contains(out, "360 new") {
		t.Fatalf("import --insecure-skip-signature:\n%s", out)
	}
}

func TestExportBadFlags(t *testing.T) {
	src := "sqlite:" + generated(t)
	key, _ := keygen(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"export", "--ledger", src}, "missing flags: --id"},
		{[]string{"export", "--ledger", src, "--id", "0"}, "give --key FILE"},
		{[]string{"export", "--ledger", src, "--id", "0", "--key", key, "--unsigned"}, "exclude each other"},
		{[]string{"export", "--ledger", src, "--id", "600", "--unsigned"}, "outside 0..511"},
		{[]string{"export", "--ledger", src, "--id", "0", "--unsigned", "--since", "yesterday"}, "RFC 3339"},
		{[]string{"export", "--ledger", src, "--id", "0", "--unsigned", "--since", "999999"}, "past this ledger's head 360"},
		{[]string{"export", "--ledger", src, "--id", "0", "--key", strings.TrimPrefix(src, "sqlite:")}, "not a PEM PRIVATE KEY"},
		{[]string{"export", "--ledger", src, "--id", "0", "--unsigned", "--model", "Bad"}, "model"},
		{[]string{"export", "--ledger", src, "--id", "0", "--unsigned", "--out", "/nonexistent/usb/x.bundle"}, "export --out /nonexistent/usb/x.bundle: the folder /nonexistent/usb does not exist"},
		{[]string{"import", "--ledger", src}, "expected \"<file> ...\""},
	} {
		refused(t, []string{c.want}, c.args...)
	}
}

// The PostgreSQL backend, and a bundle read from standard input.
func TestExportImportPostgres(t *testing.T) {
	src := "sqlite:" + generated(t)
	key, _ := keygen(t)
	file := filepath.Join(t.TempDir(), "b.bundle")
	mustRun(t, "export", "--ledger", src, "--id", "0", "--key", key, "--out", file)
	url := pgtest.NewDatabase(t)
	in, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	stdin := os.Stdin
	os.Stdin = in
	out := mustRun(t, "import", "--ledger", url, "--trust", key+".pub", "-")
	os.Stdin = stdin
	if !strings.Contains(out, "bundle (standard input)") || !strings.Contains(out, "360 new, 0 duplicates") {
		t.Fatalf("import into PostgreSQL from stdin:\n%s", out)
	}
	if logJSON(t, src) != logJSON(t, url) {
		t.Fatal("the PostgreSQL ledger's log differs from the exported one's")
	}
	// And back out of PostgreSQL: the same bundle content.
	file2 := filepath.Join(t.TempDir(), "b2.bundle")
	mustRun(t, "export", "--ledger", url, "--id", "0", "--key", key, "--out", file2)
	a, _ := os.ReadFile(file)
	b, _ := os.ReadFile(file2)
	// The header's creation time (bytes 16..23) differs; nothing else may.
	if len(a) != len(b) || string(a[:16]) != string(b[:16]) || string(a[24:len(a)-137]) != string(b[24:len(b)-137]) {
		t.Fatal("re-exported events differ")
	}
	out = mustRun(t, "import", "--ledger", url, "--trust", key+".pub", file, file2)
	if !strings.Contains(out, "import: 2 bundles, 720 events: 0 new, 720 duplicates") {
		t.Fatalf("importing both again:\n%s", out)
	}
}

// With --id, import records what central's bundles say about stability
// at a satellite: the positions a complete export covered, contiguously;
// fields of a bundle no trusted key signed are not believed.
func TestImportRecordsStability(t *testing.T) {
	src := "sqlite:" + generated(t) // central's ledger here: 360 events
	key, _ := keygen(t)
	dir := t.TempDir()
	whole, tail := filepath.Join(dir, "whole.bundle"), filepath.Join(dir, "tail.bundle")
	mustRun(t, "export", "--ledger", src, "--id", "0", "--key", key, "--out", whole)
	mustRun(t, "export", "--ledger", src, "--id", "0", "--key", key, "--since", "100", "--out", tail)

	sat := "sqlite:" + filepath.Join(dir, "satellite.db")
	out := mustRun(t, "import", "--ledger", sat, "--id", "3", "--trust", "0="+key+".pub", tail)
	if !strings.Contains(out, "stability fields not recorded") || !strings.Contains(out, "import central's bundle since 0") {
		t.Fatalf("a bundle after a gap:\n%s", out)
	}
	out = mustRun(t, "import", "--ledger", sat, "--id", "3", "--trust", "0="+key+".pub", whole)
	if !strings.Contains(out, "central's ledger is here through position 360") {
		t.Fatalf("a complete bundle from the start:\n%s", out)
	}

	// A trusted key not bound to central lets the events in, not the
	// stability fields; neither does an untrusted one.
	other := "sqlite:" + filepath.Join(dir, "other.db")
	out = mustRun(t, "import", "--ledger", other, "--id", "4", "--trust", "7="+key+".pub", whole)
	if !strings.Contains(out, "360 new") || !strings.Contains(out, "stability fields not recorded: the bundle speaks for instance 0, but its signer") {
		t.Fatalf("a key bound to another instance:\n%s", out)
	}
	out = mustRun(t, "import", "--ledger", other, "--id", "4", "--insecure-skip-signature", whole)
	if !strings.Contains(out, "stability fields not recorded: the bundle is signed by an untrusted key") {
		t.Fatalf("an untrusted bundle:\n%s", out)
	}
	refused(t, []string{"instance 600 outside 0..511"}, "import", "--ledger", other, "--trust", "600="+key+".pub", whole)
	refused(t, []string{"--id 600 outside 0..511"}, "import", "--ledger", other, "--id", "600", "--insecure-skip-signature", whole)
}

// A clinic with no link, from the command line: sync without central
// captures, projects and records its report; its signed export carries
// the report, and central's import records it; central's export tells
// the clinic which of central's positions it now holds.
func TestBundleOnlySatelliteCLI(t *testing.T) {
	dir := t.TempDir()
	target := "sqlite:" + filepath.Join(dir, "tryton.db")
	satLedger, cenLedger := "sqlite:"+filepath.Join(dir, "clinic.db"), "sqlite:"+filepath.Join(dir, "central.db")
	mustRun(t, "schema", "--target", target)
	mustRun(t, "capture", "install", "--db", target)
	db, err := sql.Open("sqlite", strings.TrimPrefix(target, "sqlite:"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO party_party (code, name, active) VALUES ('C5-1', 'Ann', 1)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if out := mustRun(t, "sync", "--ledger", satLedger, "--id", "5", "--target", target); !strings.Contains(out, "captured 1 local change,") {
		t.Fatalf("sync without central:\n%s", out)
	}
	refused(t, []string{"a token but no central URL"}, "sync", "--ledger", satLedger, "--id", "5", "--target", target, "--token", "x")

	key, _ := keygen(t)
	b1 := filepath.Join(dir, "clinic.bundle")
	if out := mustRun(t, "export", "--ledger", satLedger, "--id", "5", "--origin", "5", "--key", key, "--out", b1); !strings.Contains(out, "stability report: events stamped through") {
		t.Fatalf("the clinic's export carries no report:\n%s", out)
	}
	mustRun(t, "central", "satellite", "add", "5", "--name", "Clinic without a link", "--ledger", cenLedger)
	if out := mustRun(t, "import", "--ledger", cenLedger, "--id", "0", "--trust", "5="+key+".pub", b1); !strings.Contains(out, "recorded satellite 5's stability report") {
		t.Fatalf("central's import:\n%s", out)
	}
	b2 := filepath.Join(dir, "central.bundle")
	mustRun(t, "export", "--ledger", cenLedger, "--id", "0", "--key", key, "--out", b2)
	if out := mustRun(t, "import", "--ledger", satLedger, "--id", "5", "--trust", "0="+key+".pub", b2); !strings.Contains(out, "central's ledger is here through position 1") {
		t.Fatalf("the clinic's import:\n%s", out)
	}
}

// At central a bundle is admitted as a push is: an import without --id 0
// is refused there, and so are an unregistered clinic's events and events
// brought by a key not bound to their clinic, with nothing appended; a
// registered clinic's events go in once.
func TestImportAtCentralAdmits(t *testing.T) {
	dir := t.TempDir()
	clinic, cen := "sqlite:"+filepath.Join(dir, "clinic.db"), "sqlite:"+filepath.Join(dir, "central.db")
	mustRun(t, "generate", "--ledger", clinic, "--clinics", "1", "--events", "20") // seeded: 22 events of origin 1
	key, _ := keygen(t)
	b := filepath.Join(dir, "clinic1.bundle")
	mustRun(t, "export", "--ledger", clinic, "--id", "1", "--origin", "1", "--key", key, "--out", b)
	mustRun(t, "central", "satellite", "add", "2", "--name", "Another clinic", "--ledger", cen)

	refused(t, []string{"this is central's ledger (satellites are registered in it)", "--id 0"}, "import", "--ledger", cen, "--trust", "1="+key+".pub", b)
	refused(t, []string{"origin 1 from seq 1 is new to this ledger", "no satellite 1 is registered", "nothing was appended"},
		"import", "--ledger", cen, "--id", "0", "--trust", "1="+key+".pub", b)
	mustRun(t, "central", "satellite", "add", "1", "--name", "Clinic", "--ledger", cen)
	refused(t, []string{"is bound to instance [2]: a clinic's key brings its own clinic's events only"},
		"import", "--ledger", cen, "--id", "0", "--trust", "2="+key+".pub", b)
	refused(t, []string{"at central a clinic's key must be bound to the clinic it speaks for: give it as --trust 1=KEY"},
		"import", "--ledger", cen, "--id", "0", "--trust", key+".pub", b)
	if out := mustRun(t, "import", "--ledger", cen, "--id", "0", "--trust", "1="+key+".pub", b); !strings.Contains(out, "22 events: 22 new, 0 duplicates (ledger head 22)") {
		t.Fatalf("central's import of a registered clinic's bundle:\n%s", out)
	}
	if out := mustRun(t, "import", "--ledger", cen, "--id", "0", "--trust", "1="+key+".pub", b); !strings.Contains(out, "22 events: 0 new, 22 duplicates (ledger head 22)") {
		t.Fatalf("the same bundle again:\n%s", out)
	}
}

// A clinic's consecutive bundles, given in order to one import, go in
// together at central (the later continues the earlier, which is not
// appended yet when the later is checked); out of order, or after a
// bundle central cannot take, the command is refused whole, saying which
// bundle to import first, and nothing is appended.
func TestImportConsecutiveBundles(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	clinic, cen := filepath.Join(dir, "clinic.db"), "sqlite:"+filepath.Join(dir, "central.db")
	key, _ := keygen(t)
	o := ledgertest.NewOrigin(3)
	o.Wall.Set(time.Now())
	events := o.Patients(t, ledgertest.Rand(t), 8)
	// export appends events[from:to] to the clinic's ledger and exports them.
	export := func(name string, from, to int) string {
		t.Helper()
		s, err := sqlite.Open(ctx, clinic, sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Append(ctx, events[from:to]); err != nil {
			t.Fatal(err)
		}
		s.Close()
		file := filepath.Join(dir, name)
		mustRun(t, "export", "--ledger", "sqlite:"+clinic, "--id", "3", "--origin", "3", "--since", fmt.Sprint(from), "--key", key, "--out", file)
		return file
	}
	b4, b6, b8 := export("b4.bundle", 0, 4), export("b6.bundle", 4, 6), export("b8.bundle", 6, 8)
	mustRun(t, "central", "satellite", "add", "3", "--name", "Clinic", "--ledger", cen)
	imp := []string{"import", "--ledger", cen, "--id", "0", "--trust", "3=" + key + ".pub"}
	mustRun(t, append(imp, b4)...)
	head := func() string {
		t.Helper()
		out := mustRun(t, "verify", "--ledger", cen)
		h, _, _ := strings.Cut(out, "\n")
		return h
	}
	before := head()

	refused(t, []string{"bundle " + b8, "origin 3 from seq 7 is new to this ledger: central's ledger has origin 3 through seq 4: import first the bundle holding seq 5",
		"(the bundles are checked in the order given)", "nothing was appended"}, append(imp, b8, b6)...)
	if h := head(); h != before {
		t.Fatalf("a refused import changed central's ledger: %s, was %s", h, before)
	}
	out := mustRun(t, append(imp, b6, b8)...)
	if !strings.Contains(out, "import: 2 bundles, 4 events: 4 new, 0 duplicates") {
		t.Fatalf("import of consecutive bundles in order:\n%s", out)
	}
	if out := mustRun(t, "verify", "--ledger", cen, "--complete", "3"); !strings.Contains(out, "origin   3: 8 events, seq 1..8, chain intact") {
		t.Fatalf("verify after the import:\n%s", out)
	}

	// At another central that holds nothing of clinic 3 yet, the first
	// bundle is refused, and with it the whole command.
	other := "sqlite:" + filepath.Join(dir, "other.db")
	mustRun(t, "central", "satellite", "add", "3", "--name", "Clinic", "--ledger", other)
	refused(t, []string{"bundle " + b6, "origin 3 from seq 5 is new to this ledger: central's ledger has origin 3 through seq 0: import first the bundle holding seq 1", "nothing was appended"},
		"import", "--ledger", other, "--id", "0", "--trust", "3="+key+".pub", b6, b8)
	if out := logJSON(t, other); out != "" {
		t.Fatalf("a refused import stored events:\n%s", out)
	}
}

// import --id 0 applies the clock policy serve recorded, unless told
// otherwise; with none recorded, serve's defaults.
func TestImportTakesServesClockPolicy(t *testing.T) {
	ctx := context.Background()
	reg, err := central.OpenRegistry(ctx, "sqlite:"+filepath.Join(t.TempDir(), "central.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	for _, c := range []struct {
		use  centralUse
		want central.ClockPolicy
	}{
		{centralUse{}, central.ClockPolicy{MaxAhead: 5 * time.Minute, Skew: central.SkewBound}},
		{centralUse{Serve: true, Policy: ClockPolicy{MaxAhead: 2 * time.Hour, Skew: "hold"}}, central.ClockPolicy{MaxAhead: 2 * time.Hour, Skew: central.SkewHold}},
		{centralUse{}, central.ClockPolicy{MaxAhead: 2 * time.Hour, Skew: central.SkewHold}},
		{centralUse{Policy: ClockPolicy{Skew: "bound"}}, central.ClockPolicy{MaxAhead: 2 * time.Hour, Skew: central.SkewBound}},
		{centralUse{Policy: ClockPolicy{MaxAhead: time.Minute}}, central.ClockPolicy{MaxAhead: time.Minute, Skew: central.SkewHold}},
	} {
		if got, err := clockPolicy(ctx, reg, c.use); err != nil || got != c.want {
			t.Fatalf("clock policy for %+v: %+v, %v; want %+v", c.use, got, err, c.want)
		}
	}
}
