package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/alecthomas/kong"
)

// systemConfig is read, when it exists, before any --config file; a
// variable so tests need not depend on the machine's /etc.
var systemConfig = "/etc/ghsync/ghsync.conf"

// configFlag names a configuration file (--config or GHSYNC_CONFIG). It is
// a type of its own so that the file is read before flags are resolved,
// knowing its name (for errors) and its folder (for relative paths).
type configFlag string

// BeforeResolve reads the file the flag names and adds its settings, under
// the command line and the environment.
func (configFlag) BeforeResolve(ctx *kong.Context, trace *kong.Path) error {
	path, _ := ctx.FlagValue(trace.Flag).(configFlag)
	if path == "" {
		return nil
	}
	cf, err := readConfig(string(path), ctx.Model)
	if err != nil {
		return err
	}
	ctx.AddResolver(cf)
	return nil
}

// configFile holds the settings of one configuration file, relative paths
// already resolved against the file's folder.
type configFile struct {
	path   string
	values map[string]string // by normalised key
	lines  map[string]int    // where each key is set, for errors
	raw    map[string]string // each value as written, for errors
}

// pathKind says how a setting names files, so that a relative one can be
// resolved against the configuration file's folder.
type pathKind int

const (
	plainPath    pathKind = iota + 1 // a file or folder
	locationPath                     // sqlite:PATH, a bare path, or a URL
	dsnPath                          // sqlite:PATH or a URL
	trustPath                        // comma-separated [ID=]PUBKEY|FILE
)

// configPaths are the settings that name files. A file written for a
// service must not depend on the folder the service starts in, so these
// are resolved against the configuration file's folder, as most tools do;
// TestConfigPathKeys keeps the list in step with the flags.
var configPaths = map[string]pathKind{
	"ledger":       locationPath,
	"target":       dsnPath,
	"db":           dsnPath,
	"key":          plainPath,
	"out":          plainPath,
	"dir":          plainPath,
	"ca-cert":      plainPath,
	"tls-cert":     plainPath,
	"tls-key":      plainPath,
	"trytond-conf": plainPath,
	"trust":        trustPath,
}

// readConfig reads ghsync's configuration file: "key = value" lines, '#'
// or ';' comments. Keys are flag names ('_' and '-' are interchangeable)
// of any command, so one file serves every command of an instance; an
// unknown or repeated key is refused, naming the line. Keys before any
// [section] and in a [ghsync] section are read; other sections belong to
// other programs sharing the file and are skipped.
func readConfig(path string, app *kong.Application) (*configFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	defer f.Close()
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("read config %s: %w", path, err)
	}
	dir := filepath.Dir(abs)
	known := configKeys(app)
	cf := &configFile{path: path, values: map[string]string{}, lines: map[string]int{}, raw: map[string]string{}}
	ours := true
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if line[0] == '[' {
			name, ok := strings.CutSuffix(line[1:], "]")
			if !ok {
				return nil, fmt.Errorf("config %s line %d: want [section], got %q", path, n, line)
			}
			ours = strings.EqualFold(strings.TrimSpace(name), "ghsync")
			continue
		}
		if !ours {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("config %s line %d: want key = value, got %q", path, n, line)
		}
		key := normKey(k)
		if !slices.Contains(known, key) {
			return nil, fmt.Errorf("config %s line %d: unknown key %q%s", path, n, strings.TrimSpace(k), suggestKey(key, known))
		}
		if prev, dup := cf.lines[key]; dup {
			return nil, fmt.Errorf("config %s line %d: %s is already set on line %d", path, n, key, prev)
		}
		cf.lines[key] = n
		v = strings.TrimSpace(v)
		cf.raw[key] = v
		cf.values[key] = resolvePath(configPaths[key], v, dir)
		if err := movedPath(cf.values[key], resolvePath(configPaths[key], v, ".")); err != nil {
			return nil, fmt.Errorf("config %s line %d: %s = %s: %w", path, n, key, v, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read config %s: %w", path, err)
	}
	return cf, nil
}

// Validate is part of kong.Resolver; keys were checked as the file was read.
func (*configFile) Validate(*kong.Application) error { return nil }

// Resolve gives the file's value for flag, by its name or an alias, unless
// the flag's environment variable is set: the environment takes precedence
// over configuration files. Flags tagged noconfig pick one record for one
// run (conflicts --key, new --key): a file's key = clinic.key, meant for
// export's signing key, must not become a record's key. A value the flag
// cannot take is refused naming the file and line, as an unknown key is:
// kong's own message would name only the flag, sending the administrator
// to the command line.
func (cf *configFile) Resolve(_ *kong.Context, _ *kong.Path, flag *kong.Flag) (any, error) {
	if flag.Tag.Has("noconfig") {
		return nil, nil
	}
	for _, env := range flag.Tag.Envs {
		if _, set := os.LookupEnv(env); set {
			return nil, nil
		}
	}
	for _, name := range append([]string{flag.Name}, flag.Aliases...) {
		key := normKey(name)
		if v, ok := cf.values[key]; ok {
			if err := checkValue(flag, v); err != nil {
				return nil, fmt.Errorf("config %s line %d: %s = %s: %w", cf.path, cf.lines[key], key, cf.raw[key], err)
			}
			return v, nil
		}
	}
	return nil, nil
}

// checkValue decodes v as flag would, into a scratch value, and checks it
// as the command line's would be checked: its enum, and the range of a
// synchronisation id.
func checkValue(flag *kong.Flag, v string) error {
	target := reflect.New(flag.Target.Type()).Elem()
	if target.Kind() == reflect.Ptr {
		target.Set(reflect.New(target.Type().Elem()))
	}
	scan := kong.Scan().PushTyped(v, kong.FlagValueToken)
	if err := flag.Mapper.Decode(&kong.DecodeContext{Value: flag.Value, Scan: scan}, target); err != nil {
		return err
	}
	if flag.Enum != "" {
		allowed := flag.EnumMap()
		items := []reflect.Value{reflect.Indirect(target)}
		if t := items[0]; t.Kind() == reflect.Slice {
			items = items[:0]
			for i := range t.Len() {
				items = append(items, t.Index(i))
			}
		}
		for _, it := range items {
			if s := fmt.Sprint(it.Interface()); !allowed[s] {
				var want []string
				for _, e := range flag.EnumSlice() {
					want = append(want, strconv.Quote(e))
				}
				return fmt.Errorf("want one of %s, not %q", strings.Join(want, ", "), s)
			}
		}
	}
	return checkOrigin("--"+flag.Name, target, flag.Tag.Has("satellite"))
}

// configKeys lists the keys a configuration file may set: the flags (and
// their aliases) of every command, except --help and --config.
func configKeys(app *kong.Application) []string {
	var keys []string
	var walk func(n *kong.Node)
	walk = func(n *kong.Node) {
		for _, f := range n.Flags {
			for _, name := range append([]string{f.Name}, f.Aliases...) {
				if name != "help" && name != "config" && !slices.Contains(keys, name) {
					keys = append(keys, name)
				}
			}
		}
		for _, c := range n.Children {
			walk(c)
		}
	}
	walk(app.Node)
	slices.Sort(keys)
	return keys
}

// suggestKey names the known key closest to a misspelt one, or lists them
// all when none is close.
func suggestKey(key string, known []string) string {
	best, dist := "", 3 // at most two edits away
	for _, k := range known {
		if d := editDistance(key, k); d < dist {
			best, dist = k, d
		}
	}
	if best != "" {
		return fmt.Sprintf(" (did you mean %s?)", best)
	}
	return " (known keys: " + strings.Join(known, ", ") + ")"
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			sub := prev[j-1]
			if a[i-1] != b[j-1] {
				sub++
			}
			cur[j] = min(sub, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// resolvePath makes the relative paths a setting of kind names relative
// to dir; other values are returned unchanged.
func resolvePath(kind pathKind, v, dir string) string {
	abs := func(p string) string {
		if p == "" || p == "-" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	switch kind {
	case plainPath:
		return abs(v)
	case locationPath, dsnPath:
		if rest, ok := strings.CutPrefix(v, "sqlite:"); ok {
			if strings.HasPrefix(rest, "file:") || strings.HasPrefix(rest, ":memory:") {
				return v
			}
			return "sqlite:" + abs(strings.TrimPrefix(rest, "//"))
		}
		if kind == locationPath && !strings.Contains(v, "://") {
			return abs(v)
		}
		return v
	case trustPath:
		items := strings.Split(v, ",")
		for i, item := range items {
			item = strings.TrimSpace(item)
			prefix := ""
			if id, rest, ok := strings.Cut(item, "="); ok && id != "" && strings.Trim(id, "0123456789") == "" {
				prefix, item = id+"=", rest
			}
			// A key is a file when one exists there, as --trust reads it.
			if fi, err := os.Stat(abs(item)); item != "" && err == nil && fi.Mode().IsRegular() {
				item = abs(item)
			}
			items[i] = prefix + item
		}
		return strings.Join(items, ",")
	}
	return v
}

// movedPath refuses a relative path that names a file only when read
// against the working directory, as ghsync read configuration files
// before their paths were relative to their own folder: a service would
// otherwise quietly start an empty ledger beside its configuration.
func movedPath(resolved, fromCwd string) error {
	file := func(v string) string { return strings.TrimPrefix(strings.TrimPrefix(v, "sqlite:"), "//") }
	if resolved == fromCwd || strings.Contains(resolved, "://") {
		return nil
	}
	if _, err := os.Stat(file(resolved)); err == nil {
		return nil
	}
	if _, err := os.Stat(file(fromCwd)); err != nil {
		return nil
	}
	abs, _ := filepath.Abs(file(fromCwd))
	return fmt.Errorf("relative paths in a configuration file are read from the file's folder, where %s does not exist; %s does: write that absolute path", file(resolved), abs)
}

func normKey(k string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimSpace(k)), "_", "-")
}
