package trytontest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
)

// PythonPath is the interpreter that runs trytond: Debian's, not whatever python3
// comes first on the PATH (pyenv, a virtualenv).
const PythonPath = "/usr/bin/python3"

// Modules are the Tryton modules activated in every database NewDatabase
// makes (with their dependencies, such as ir and res).
var Modules = []string{"party", "company", "country", "currency", "product"}

// InstallHint tells how to get what Available needs.
const InstallHint = "To fix: apt-get install -y tryton-server tryton-modules-party tryton-modules-company " +
	"tryton-modules-country tryton-modules-currency tryton-modules-product " +
	"(Debian's packages; trytond runs under " + PythonPath + ")"

// versions are those of trytond and of each module of Modules, as the
// installed packages report them.
type versions struct {
	Trytond string            `json:"trytond"`
	Modules map[string]string `json:"modules"`
}

// String lists the versions in a stable order, for the template's
// fingerprint.
func (v versions) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "trytond %s", v.Trytond)
	names := make([]string, 0, len(v.Modules))
	for m := range v.Modules {
		names = append(names, m)
	}
	sort.Strings(names)
	for _, m := range names {
		fmt.Fprintf(&b, ", %s %s", m, v.Modules[m])
	}
	return b.String()
}

// probeScript imports trytond and prints its version and those of Modules
// (read from each module's tryton.cfg).
const probeScript = `
import configparser, json, os, sys
import trytond, trytond.modules
base = os.path.dirname(trytond.modules.__file__)
mods = {}
for m in sys.argv[1:]:
    cfg = configparser.ConfigParser()
    if not cfg.read(os.path.join(base, m, 'tryton.cfg')):
        sys.exit('Tryton module %r is not installed (no %s)' % (m, os.path.join(base, m, 'tryton.cfg')))
    mods[m] = cfg.get('tryton', 'version', fallback='?')
print(json.dumps({'trytond': trytond.__version__, 'modules': mods}))
`

var (
	probeOnce sync.Once
	probed    versions
	probeErr  error
)

// Available reports whether this machine can run a real Tryton: nil if
// trytond-admin is on the PATH and Debian's /usr/bin/python3 imports
// trytond with the modules of Modules installed; otherwise an error that
// ends with what to apt-get install. The check runs once per process.
func Available() error {
	_, err := probe()
	return err
}

// probe checks the installation once and returns the versions found.
func probe() (versions, error) {
	probeOnce.Do(func() {
		if _, err := exec.LookPath("trytond-admin"); err != nil {
			probeErr = fmt.Errorf("trytontest: trytond-admin not found on the PATH.\n%s", InstallHint)
			return
		}
		cmd := exec.Command(PythonPath, append([]string{"-c", probeScript}, Modules...)...)
		cmd.Env = pythonEnv()
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			probeErr = fmt.Errorf("trytontest: %s cannot import trytond and its modules: %v\n%s\n%s",
				PythonPath, err, tail(stderr.Bytes(), 10), InstallHint)
			return
		}
		if err := json.Unmarshal(out, &probed); err != nil {
			probeErr = fmt.Errorf("trytontest: reading the versions %s reported (%q): %v", PythonPath, out, err)
		}
	})
	return probed, probeErr
}

// pythonEnv is the environment of every trytond process: the test's, less
// what would make Debian's Python load other code or trytond read other
// settings (trytond takes TRYTOND_<SECTION>__<OPTION> variables as
// configuration), and with DeprecationWarnings silenced.
func pythonEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case name == "PYTHONPATH", name == "PYTHONHOME", name == "PYTHONSTARTUP",
			name == "PYTHONWARNINGS", name == "PYTHONNOUSERSITE",
			name == "TRYTONPASSFILE", strings.HasPrefix(name, "TRYTOND_"):
		default:
			env = append(env, kv)
		}
	}
	return append(env, "PYTHONNOUSERSITE=1", "PYTHONWARNINGS=ignore::DeprecationWarning", "PYTHONIOENCODING=utf-8")
}

// tail returns the last n lines of b.
func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
