package trytontest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

const (
	// TemplateName is the database, one per PostgreSQL server, that real
	// trytond initialised and that NewDatabase clones. Change its version
	// suffix whenever what goes into it changes.
	TemplateName = "ghsync_tryton_template_v1"

	// buildName is where the template is built before it is renamed to
	// TemplateName, so that a killed build never leaves a half-made
	// template behind (the next build drops it first).
	buildName = TemplateName + "_build"

	// AdminLogin, AdminPassword and AdminEmail are those of the Tryton
	// administrator of every database.
	AdminLogin    = "admin"
	AdminPassword = "admin"
	AdminEmail    = "admin@example.org"

	// CacheEnv names the environment variable holding the directory of the
	// dump cache ("off" disables it). By default it is
	// $XDG_CACHE_HOME/ghsync/trytontest (os.UserCacheDir).
	CacheEnv = "GHSYNC_TRYTON_CACHE"

	// lockKey is the PostgreSQL advisory lock (on the admin URL's database)
	// held while the template is built or replaced.
	lockKey int64 = 0x6768_7379_6e63_7474 // "ghsynctt"

	// buildTimeout bounds waiting for the lock plus building the template.
	buildTimeout = 15 * time.Minute
)

// fingerprint describes what the template holds. It is stored as the
// template's comment (COMMENT ON DATABASE) and names the dump cache: a
// template with another fingerprint (other trytond or module versions) is
// rebuilt.
func fingerprint(v versions) string {
	return fmt.Sprintf("ghsync trytontest %s: %s; activated with dependencies; admin %s/%s <%s>",
		TemplateName, v, AdminLogin, AdminPassword, AdminEmail)
}

var (
	// templateMu serialises template checks within the process.
	templateMu sync.Mutex
	// templateReady holds the admin URLs whose template this process has
	// found or built.
	templateReady = map[string]bool{}
)

// ensureTemplate makes sure the server at admin has TemplateName with the
// current fingerprint: it is found there, else restored from the dump cache
// (about a second), else built with trytond-admin (about a minute) and
// dumped to the cache. Test processes on the same server wait for each
// other through an advisory lock.
func ensureTemplate(logf func(string, ...any), admin string, v versions) error {
	templateMu.Lock()
	defer templateMu.Unlock()
	if templateReady[admin] {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return fmt.Errorf("connect to the test server: %w", err)
	}
	defer conn.Close(context.Background())

	fp := fingerprint(v)
	exists, ok, err := templateState(ctx, conn, fp)
	if err != nil {
		return err
	}
	if !ok {
		var got bool
		if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", lockKey).Scan(&got); err != nil {
			return fmt.Errorf("take the template lock: %w", err)
		}
		if !got {
			logf("trytontest: waiting for another test process to build %s", TemplateName)
			if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", lockKey); err != nil {
				return fmt.Errorf("wait for the template lock: %w", err)
			}
		}
		defer conn.Exec(context.Background(), "SELECT pg_advisory_unlock($1)", lockKey)
		if exists, ok, err = templateState(ctx, conn, fp); err != nil {
			return err
		}
	}
	if !ok {
		if err := buildTemplate(ctx, logf, conn, admin, fp, exists); err != nil {
			return err
		}
	}
	templateReady[admin] = true
	return nil
}

// templateState reports whether TemplateName exists and whether it has the
// fingerprint fp.
func templateState(ctx context.Context, conn *pgx.Conn, fp string) (exists, ok bool, err error) {
	var comment *string
	err = conn.QueryRow(ctx, "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1",
		TemplateName).Scan(&comment)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, false, nil
	}
	if err != nil {
		return false, false, fmt.Errorf("look for %s: %w", TemplateName, err)
	}
	return true, comment != nil && *comment == fp, nil
}

// buildTemplate builds the template into buildName, from the dump cache if
// it can, and renames it to TemplateName, replacing an old one if there is.
// The caller holds the advisory lock.
func buildTemplate(ctx context.Context, logf func(string, ...any), conn *pgx.Conn, admin, fp string, replace bool) error {
	begin := time.Now()
	major := serverMajor(conn)
	recreate := func() error {
		if err := dropDatabase(ctx, conn, buildName); err != nil {
			return fmt.Errorf("drop %s: %w", buildName, err)
		}
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident(buildName)+" TEMPLATE template0 ENCODING 'UTF8'"); err != nil {
			return fmt.Errorf("create %s: %w", buildName, err)
		}
		return nil
	}
	if err := recreate(); err != nil {
		return err
	}
	buildURL := withDatabase(admin, buildName)
	tools, toolsErr := findTools(major)
	cache := cachePath(fp, major)

	restored := false
	if cache != "" && toolsErr == nil {
		if _, err := os.Stat(cache); err == nil {
			if err := tools.restore(ctx, buildURL, cache); err != nil {
				logf("trytontest: restoring %s from the cache %s failed, building it instead: %v", TemplateName, cache, err)
				os.Remove(cache)
				if err := recreate(); err != nil {
					return err
				}
			} else {
				restored = true
				logf("trytontest: restored %s from the cache %s in %v", TemplateName, cache, time.Since(begin).Round(time.Millisecond))
			}
		}
	}
	if !restored {
		logf("trytontest: initialising %s with trytond-admin (about a minute, once per PostgreSQL server or dump cache)", TemplateName)
		if err := runAdmin(ctx, admin, buildName); err != nil {
			return err
		}
		logf("trytontest: trytond-admin initialised %s in %v", TemplateName, time.Since(begin).Round(time.Millisecond))
		switch {
		case cache == "":
			logf("trytontest: %s=off: not caching the template", CacheEnv)
		case toolsErr != nil:
			logf("trytontest: not caching the template: %v", toolsErr)
		default:
			if err := tools.dump(ctx, buildURL, cache); err != nil {
				logf("trytontest: not caching the template: %v", err)
			} else {
				logf("trytontest: cached the template as %s (remove it to rebuild; %s=off disables the cache)", cache, CacheEnv)
			}
		}
	}

	if replace {
		logf("trytontest: replacing %s, which another version of Tryton or of this package made", TemplateName)
		if _, err := conn.Exec(ctx, "ALTER DATABASE "+ident(TemplateName)+" IS_TEMPLATE false"); err != nil {
			return fmt.Errorf("unmark the old %s: %w", TemplateName, err)
		}
		if err := dropDatabase(ctx, conn, TemplateName); err != nil {
			return fmt.Errorf("drop the old %s: %w", TemplateName, err)
		}
	}
	// Renaming is the last step: TemplateName exists only when complete.
	for _, sql := range []string{
		"COMMENT ON DATABASE " + ident(buildName) + " IS " + literal(fp),
		// No connections: cloning fails while anyone is connected to
		// the template.
		"ALTER DATABASE " + ident(buildName) + " IS_TEMPLATE true ALLOW_CONNECTIONS false",
		"ALTER DATABASE " + ident(buildName) + " RENAME TO " + ident(TemplateName),
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			return fmt.Errorf("%s: %w", sql, err)
		}
	}
	return nil
}

// runAdmin initialises the database name with trytond-admin: Modules and
// their dependencies activated, the administrator's password and email set.
func runAdmin(ctx context.Context, admin, name string) error {
	dir, err := os.MkdirTemp("", "ghsync-trytontest-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	conf, err := writeConf(dir, admin)
	if err != nil {
		return err
	}
	pass := filepath.Join(dir, "password")
	if err := os.WriteFile(pass, []byte(AdminPassword+"\n"), 0o600); err != nil {
		return err
	}
	path, err := exec.LookPath("trytond-admin")
	if err != nil {
		return fmt.Errorf("%w\n%s", err, InstallHint)
	}
	args := []string{path, "-c", conf, "-d", name, "-u"}
	args = append(args, Modules...)
	args = append(args, "--activate-dependencies", "--email", AdminEmail)
	cmd := exec.CommandContext(ctx, PythonPath, args...)
	cmd.Env = append(pythonEnv(), "TRYTONPASSFILE="+pass)
	cmd.Dir = dir
	cmd.SysProcAttr = childAttr()
	// Run from a fresh goroutine: the parent-death signal fires when the
	// forking thread ends, and only a thread locked by the caller would end.
	type result struct {
		out []byte
		err error
	}
	done := make(chan result)
	go func() {
		out, err := cmd.CombinedOutput()
		done <- result{out, err}
	}()
	r := <-done
	out, err := r.out, r.err
	if err != nil {
		return fmt.Errorf("trytond-admin %s: %v\n%s", strings.Join(args[1:], " "), err, tail(out, 40))
	}
	return nil
}

// writeConf writes dir/trytond.conf pointing trytond at the server of
// admin, and returns its path.
func writeConf(dir, admin string) (string, error) {
	uri, err := trytonURI(admin)
	if err != nil {
		return "", err
	}
	conf := filepath.Join(dir, "trytond.conf")
	text := "[database]\nuri = " + uri + "\npath = " + filepath.Join(dir, "filestore") + "\n"
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		return "", err
	}
	return conf, nil
}

// trytonURI turns a postgres:// URL into trytond's [database] uri: scheme
// postgresql, no database (trytond appends the name it opens).
func trytonURI(admin string) (string, error) {
	u, err := url.Parse(admin)
	if err != nil {
		return "", fmt.Errorf("parse the server URL: %w", err)
	}
	u.Scheme, u.Path, u.RawPath = "postgresql", "/", ""
	if q := u.Query(); q.Has("dbname") || q.Has("database") {
		q.Del("dbname")
		q.Del("database")
		u.RawQuery = q.Encode()
	}
	return u.String(), nil
}

// withDatabase returns the admin URL with its database replaced by name.
func withDatabase(admin, name string) string {
	u, err := url.Parse(admin)
	if err != nil {
		return admin
	}
	u.Path, u.RawPath = "/"+name, ""
	if q := u.Query(); q.Has("dbname") || q.Has("database") {
		q.Del("dbname")
		q.Del("database")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// cachePath returns the file of the dump cache for fingerprint fp on a
// server of the major version, or "" if the cache is disabled.
func cachePath(fp string, major int) string {
	dir := os.Getenv(CacheEnv)
	if dir == "off" {
		return ""
	}
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return ""
		}
		dir = filepath.Join(base, "ghsync", "trytontest")
	}
	sum := sha256.Sum256([]byte(fp))
	return filepath.Join(dir, fmt.Sprintf("%s-pg%d-%x.dump", TemplateName, major, sum[:6]))
}

// tools are pg_dump and pg_restore of the server's major version.
type tools struct {
	dumpPath, restorePath string
}

// findTools looks for pg_dump and pg_restore of the major version in
// /usr/lib/postgresql/<major>/bin, pg_config --bindir and the PATH.
func findTools(major int) (tools, error) {
	var dirs []string
	if major > 0 {
		dirs = append(dirs, fmt.Sprintf("/usr/lib/postgresql/%d/bin", major))
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		dirs = append(dirs, strings.TrimSpace(string(out)))
	}
	if p, err := exec.LookPath("pg_dump"); err == nil {
		dirs = append(dirs, filepath.Dir(p))
	}
	for _, dir := range dirs {
		t := tools{filepath.Join(dir, "pg_dump"), filepath.Join(dir, "pg_restore")}
		if _, err := os.Stat(t.restorePath); err != nil {
			continue
		}
		out, err := exec.Command(t.dumpPath, "--version").Output()
		if err == nil && toolMajor(string(out)) == major {
			return t, nil
		}
	}
	return tools{}, fmt.Errorf("no pg_dump and pg_restore of PostgreSQL %d found (looked in %s)", major, strings.Join(dirs, ", "))
}

// toolMajor reads the major version from "pg_dump (PostgreSQL) 15.2 ...".
func toolMajor(version string) int {
	_, rest, ok := strings.Cut(version, "(PostgreSQL) ")
	if !ok {
		return 0
	}
	end := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
	if end >= 0 {
		rest = rest[:end]
	}
	n, _ := strconv.Atoi(rest)
	return n
}

// dump writes the database at dbURL to file (custom format) atomically.
func (t tools) dump(ctx context.Context, dbURL, file string) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	tmp := file + ".tmp" + strconv.Itoa(os.Getpid())
	defer os.Remove(tmp)
	cmd := exec.CommandContext(ctx, t.dumpPath, "--format=custom", "--no-owner", "--no-privileges", "--file", tmp, "--dbname", dbURL)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pg_dump: %v\n%s", err, tail(out, 20))
	}
	return os.Rename(tmp, file)
}

// restore loads file into the empty database at dbURL.
func (t tools) restore(ctx context.Context, dbURL, file string) error {
	cmd := exec.CommandContext(ctx, t.restorePath, "--no-owner", "--no-privileges", "--exit-on-error", "--dbname", dbURL, file)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pg_restore: %v\n%s", err, tail(out, 20))
	}
	return nil
}
