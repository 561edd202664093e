package main

import (
	"bufio"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
)

// trytondConf is what ghsync takes from an instance's trytond.conf, so
// administrators configure a site once, where they already do: the
// [synchronisation] section of the 2014 engine (id, url or uri, database)
// and Tryton's own [database] uri.
type trytondConf struct {
	ID       int    // -1 when absent
	Central  string // [synchronisation] url (or uri)
	Token    string // [synchronisation] token
	Database string // a postgres:// URL of the instance's database, or ""
}

// readTrytondConf parses the INI-style file Tryton reads (sections,
// "key = value" or "key: value", '#' and ';' comments).
func readTrytondConf(path string) (*trytondConf, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseTrytondConf(f, path)
}

func parseTrytondConf(r io.Reader, name string) (*trytondConf, error) {
	vals := map[string]string{} // "section.key"
	section := ""
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if line[0] == '[' {
			if !strings.HasSuffix(line, "]") {
				return nil, fmt.Errorf("%s line %d: section header %q has no closing ]", name, n, line)
			}
			section = strings.ToLower(strings.TrimSpace(line[1 : len(line)-1]))
			continue
		}
		i := strings.IndexAny(line, "=:")
		if i < 0 {
			return nil, fmt.Errorf("%s line %d: want key = value, got %q", name, n, line)
		}
		vals[section+"."+strings.ToLower(strings.TrimSpace(line[:i]))] = strings.TrimSpace(line[i+1:])
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	c := &trytondConf{ID: -1, Token: vals["synchronisation.token"]}
	if s, ok := vals["synchronisation.id"]; ok {
		id, err := strconv.Atoi(s)
		if err != nil || id < 0 || id > 511 {
			return nil, fmt.Errorf("%s: [synchronisation] id = %q: want an integer 0..511 (0 is central)", name, s)
		}
		c.ID = id
	}
	c.Central = vals["synchronisation.url"]
	if c.Central == "" {
		c.Central = vals["synchronisation.uri"]
	}
	if uri := vals["database.uri"]; uri != "" {
		u, err := url.Parse(uri)
		if err != nil {
			return nil, fmt.Errorf("%s: [database] uri: %w", name, err)
		}
		switch u.Scheme {
		case "postgresql", "postgres":
			// Tryton names the database per request; the URI names the
			// server. ghsync needs one database: [synchronisation] database.
			db := strings.Trim(u.Path, "/")
			if db == "" {
				db = vals["synchronisation.database"]
			}
			if db == "" {
				return nil, fmt.Errorf("%s: [database] uri names a server but no database; add \"database = NAME\" to the [synchronisation] section", name)
			}
			u.Scheme, u.Path = "postgres", "/"+db
			c.Database = u.String()
		case "sqlite":
			// trytond's sqlite:// keeps databases as files in [database] path.
			dir := vals["database.path"]
			db := vals["synchronisation.database"]
			if dir == "" || db == "" {
				return nil, fmt.Errorf("%s: a sqlite [database] needs path (in [database]) and database (in [synchronisation])", name)
			}
			c.Database = "sqlite:" + strings.TrimSuffix(dir, "/") + "/" + db + ".sqlite"
		default:
			return nil, fmt.Errorf("%s: [database] uri scheme %q is not supported (want postgresql or sqlite)", name, u.Scheme)
		}
	}
	return c, nil
}
