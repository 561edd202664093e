//go:build unix

package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

const (
	// dirPattern names the temporary directory of a throwaway cluster.
	dirPattern = "ghsync-pgtest-"

	// readyTimeout bounds the wait for a started server to accept connections.
	readyTimeout = 30 * time.Second

	// stopTimeout bounds the wait for a fast shutdown before the server is killed.
	stopTimeout = 20 * time.Second

	// staleAge is how old an unlocked directory of a throwaway cluster must
	// be before a later run removes it.
	staleAge = 2 * time.Minute
)

// baseSettings are those of every throwaway cluster: reachable on
// 127.0.0.1 only, many connections.
var baseSettings = []string{
	"listen_addresses=127.0.0.1",
	"max_connections=200",
	"shared_buffers=128MB",
}

// testSettings tune the shared throwaway cluster (ServerURL) for tests:
// durability is not wanted. NewCluster leaves durability at PostgreSQL's
// defaults unless its caller passes these.
var testSettings = []string{
	"fsync=off",
	"synchronous_commit=off",
	"full_page_writes=off",
}

// throwaway is a PostgreSQL cluster started for one test process.
type throwaway struct {
	url      string
	dir      string // temporary directory holding everything below
	logPath  string
	port     int
	settings []string      // -c settings after baseSettings; later ones win
	cmd      *exec.Cmd     // the postmaster
	exited   chan struct{} // closed when cmd has been waited for
	lock     *os.File      // the directory, flock-ed while the cluster lives

	startup time.Duration // from looking for the binaries to accepting connections
}

// binaries are the PostgreSQL programs a throwaway cluster needs.
type binaries struct {
	initdb, postgres string
}

// errPortTaken reports that another process took the chosen port first.
var errPortTaken = errors.New("port taken")

// startThrowaway starts the shared throwaway cluster (tuned for tests) and
// waits until it accepts connections.
func startThrowaway() (*throwaway, error) {
	return startCluster(testSettings,
		fmt.Sprintf("pgtest: %s is not set and a throwaway PostgreSQL cluster could not be started: ", envURL), fixHint)
}

// startCluster starts a throwaway cluster with baseSettings and then
// settings (a later setting of the same name wins), and waits until it
// accepts connections. Errors start with why and end with hint.
func startCluster(settings []string, why, hint string) (_ *throwaway, err error) {
	begin := time.Now()
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%s"+format+"\n%s", append(append([]any{why}, args...), hint)...)
	}

	bins, tried, ok := findBinaries()
	if !ok {
		return nil, fail("no PostgreSQL server binaries (initdb and postgres) found; looked in: %s", strings.Join(tried, ", "))
	}

	cred, err := unprivilegedCredential()
	if err != nil {
		return nil, fail("%v", err)
	}

	base := tempBase(cred != nil)
	sweepStale(base)
	dir, err := os.MkdirTemp(base, dirPattern)
	if err != nil {
		return nil, fail("creating a temporary directory: %v", err)
	}
	c := &throwaway{dir: dir, logPath: filepath.Join(dir, "postgres.log"), settings: settings}
	defer func() {
		if err != nil {
			c.stop()
		}
	}()
	// The lock tells later runs' sweepStale the directory is in use; the
	// postmaster inherits it, so it is held until both are gone.
	if c.lock, err = os.Open(dir); err != nil {
		return nil, fail("opening %s: %v", dir, err)
	}
	if err := syscall.Flock(int(c.lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return nil, fail("locking %s: %v", dir, err)
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, fail("handing %s to uid %d: %v", dir, cred.Uid, err)
		}
	}

	dataDir := filepath.Join(dir, "data")
	initdb := exec.Command(bins.initdb, "-D", dataDir, "-A", "trust", "-U", "postgres",
		"--no-sync", "-E", "UTF8", "--locale=C")
	initdb.Dir = dir
	initdb.Env = childEnv()
	initdb.SysProcAttr = procAttr(cred, syscall.SIGKILL)
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fail("%s: %v%s\n%s", strings.Join(initdb.Args, " "), err, asUser(cred), tail(out, 30))
	}

	for attempt := 1; ; attempt++ {
		err = c.startServer(bins.postgres, dataDir, cred)
		if err == nil {
			break
		}
		if errors.Is(err, errPortTaken) && attempt < 5 {
			continue
		}
		logTail, _ := os.ReadFile(c.logPath)
		return nil, fail("%v%s\ntail of the server log:\n%s", err, asUser(cred), tail(logTail, 30))
	}
	c.startup = time.Since(begin)
	return c, nil
}

// startServer starts the postmaster on a free port and waits until it
// accepts connections.
func (c *throwaway) startServer(postgres, dataDir string, cred *syscall.Credential) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	// A Unix socket path may not exceed 107 bytes; without one, TCP suffices.
	sockDir := c.dir
	if len(sockDir)+len("/.s.PGSQL.65535.lock") > 100 {
		sockDir = ""
	}
	args := []string{"-D", dataDir, "-p", strconv.Itoa(port), "-k", sockDir}
	for _, s := range append(slices.Clip(baseSettings), c.settings...) {
		args = append(args, "-c", s)
	}
	logFile, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close() // the server has its own descriptor
	fmt.Fprintf(logFile, "pgtest: %s %s\n", postgres, strings.Join(args, " "))

	cmd := exec.Command(postgres, args...)
	cmd.Dir = c.dir
	cmd.Env = childEnv()
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.ExtraFiles = []*os.File{c.lock}
	cmd.SysProcAttr = procAttr(cred, syscall.SIGQUIT) // SIGQUIT: immediate shutdown
	// Start from a fresh goroutine: the parent-death signal fires when the
	// forking thread ends, and only a thread locked by the caller would end.
	started := make(chan error)
	go func() { started <- cmd.Start() }()
	if err := <-started; err != nil {
		return fmt.Errorf("starting %s: %v", postgres, err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	c.cmd, c.exited, c.port = cmd, exited, port
	c.url = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)

	deadline := time.Now().Add(readyTimeout)
	var lastErr error
	for {
		select {
		case <-exited:
			c.cmd = nil
			logTail, _ := os.ReadFile(c.logPath)
			if bytes.Contains(logTail, []byte("Address already in use")) {
				return errPortTaken
			}
			return fmt.Errorf("%s exited: %v", postgres, cmd.ProcessState)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, c.url)
		cancel()
		if err == nil {
			conn.Close(context.Background())
			return nil
		}
		lastErr = err
		if time.Now().After(deadline) {
			return fmt.Errorf("the server (%s) did not accept connections within %v: %v", strings.Join(cmd.Args, " "), readyTimeout, lastErr)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// stop shuts the server down (fast shutdown, then SIGKILL) and removes the
// cluster's directory.
func (c *throwaway) stop() error {
	var errs []error
	if c.cmd != nil {
		c.cmd.Process.Signal(syscall.SIGINT) // fast shutdown
		select {
		case <-c.exited:
		case <-time.After(stopTimeout):
			errs = append(errs, fmt.Errorf("the server (pid %d) did not shut down within %v; killed it", c.cmd.Process.Pid, stopTimeout))
			c.cmd.Process.Kill()
			select {
			case <-c.exited:
			case <-time.After(5 * time.Second):
				errs = append(errs, fmt.Errorf("the server (pid %d) survived SIGKILL", c.cmd.Process.Pid))
			}
		}
		c.cmd = nil
	}
	if c.lock != nil {
		c.lock.Close()
		c.lock = nil
	}
	if err := os.RemoveAll(c.dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// logTail returns the last n lines of the server's log.
func (c *throwaway) logTail(n int) string {
	out, err := os.ReadFile(c.logPath)
	if err != nil {
		return fmt.Sprintf("(reading %s: %v)", c.logPath, err)
	}
	return tail(out, n)
}

// serverPID returns the postmaster's process id, or 0.
func (c *throwaway) serverPID() int {
	if c == nil || c.cmd == nil {
		return 0
	}
	return c.cmd.Process.Pid
}

// processAlive reports whether the process pid exists.
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// findBinaries looks for initdb and postgres: in pg_config --bindir, in the
// newest /usr/lib/postgresql/*/bin (Debian, Ubuntu) or /usr/pgsql-*/bin (RHEL),
// then in PATH. It returns the places it looked.
func findBinaries() (binaries, []string, bool) {
	var tried []string
	inDir := func(dir string) (binaries, bool) {
		tried = append(tried, dir)
		b := binaries{filepath.Join(dir, "initdb"), filepath.Join(dir, "postgres")}
		return b, isExecutable(b.initdb) && isExecutable(b.postgres)
	}
	if pgConfig, err := exec.LookPath("pg_config"); err == nil {
		if out, err := exec.Command(pgConfig, "--bindir").Output(); err == nil {
			b, ok := inDir(strings.TrimSpace(string(out)))
			if ok {
				return b, tried, true
			}
			tried[len(tried)-1] += " (from pg_config --bindir)"
		}
	} else {
		tried = append(tried, "pg_config --bindir (no pg_config in PATH)")
	}
	for _, pattern := range []string{"/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin"} {
		dirs, _ := filepath.Glob(pattern)
		sort.Slice(dirs, func(i, j int) bool { return versionLess(dirs[j], dirs[i]) })
		if len(dirs) == 0 {
			tried = append(tried, pattern)
		}
		for _, dir := range dirs {
			if b, ok := inDir(dir); ok {
				return b, tried, true
			}
		}
	}
	tried = append(tried, "PATH")
	initdb, err1 := exec.LookPath("initdb")
	postgres, err2 := exec.LookPath("postgres")
	if err1 == nil && err2 == nil {
		return binaries{initdb, postgres}, tried, true
	}
	return binaries{}, tried, false
}

// versionLess orders directories like /usr/lib/postgresql/9.6/bin and
// /usr/lib/postgresql/15/bin by the version in them.
func versionLess(a, b string) bool {
	va, vb := versionOf(a), versionOf(b)
	for i := 0; i < len(va) && i < len(vb); i++ {
		if va[i] != vb[i] {
			return va[i] < vb[i]
		}
	}
	return len(va) < len(vb)
}

func versionOf(dir string) []int {
	name := filepath.Base(filepath.Dir(dir)) // "15", "9.6", "pgsql-16"
	name = strings.TrimPrefix(name, "pgsql-")
	var v []int
	for _, part := range strings.Split(name, ".") {
		n, err := strconv.Atoi(part)
		if err != nil {
			break
		}
		v = append(v, n)
	}
	return v
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// unprivilegedCredential returns, when running as root, the credential of
// the user to run PostgreSQL as, which refuses to run as root: "postgres" if
// it exists, else "nobody". It returns nil when not running as root.
func unprivilegedCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil || uid == 0 {
			continue
		}
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
	}
	return nil, errors.New(`running as root, which PostgreSQL refuses, and neither user "postgres" nor "nobody" exists to run it as`)
}

// asUser describes who ran a PostgreSQL program, for error messages.
func asUser(cred *syscall.Credential) string {
	if cred == nil {
		return ""
	}
	return fmt.Sprintf(" (run as uid %d, gid %d, since PostgreSQL refuses to run as root)", cred.Uid, cred.Gid)
}

// tempBase returns the directory to create the cluster's directory in. An
// unprivileged user must be able to reach it when PostgreSQL runs as one.
func tempBase(unprivileged bool) string {
	base := os.TempDir()
	if !unprivileged {
		return base
	}
	for p := base; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return "/tmp"
		}
		if p == filepath.Dir(p) {
			return base
		}
	}
}

// sweepStale removes the directories of throwaway clusters whose test
// process and server are both gone (killed before Main could clean up):
// those no longer locked, and not just created.
func sweepStale(base string) {
	dirs, _ := filepath.Glob(filepath.Join(base, dirPattern+"*"))
	for _, dir := range dirs {
		fi, err := os.Lstat(dir)
		if err != nil || !fi.IsDir() || time.Since(fi.ModTime()) < staleAge {
			continue
		}
		f, err := os.Open(dir)
		if err != nil {
			continue
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			os.RemoveAll(dir)
		}
		f.Close()
	}
}

// childEnv is the environment of initdb and postgres: the test's, without
// libpq's PG* variables, in the C locale so messages are predictable.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "LC_") || strings.HasPrefix(kv, "LANG=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "LC_ALL=C", "LANG=C")
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tail returns the last n lines of out.
func tail(out []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{"..."}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}
