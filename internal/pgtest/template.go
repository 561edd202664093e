package pgtest

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
)

// template is a database built once per test binary for NewDatabaseFrom.
type template struct {
	once  sync.Once
	admin string // the server's admin URL
	ident string // quoted name
	err   error
}

var (
	templatesMu sync.Mutex
	templates   = map[string]*template{}
)

// NewDatabaseFrom is NewDatabase for a database that starts as a copy of a
// template: what many tests set up alike (GNU Health's 75 tables take
// about a second of DDL on a server with fsync on) is built once per test
// binary, and each test pays a CREATE DATABASE ... TEMPLATE instead
// (about a third of that). key names the template within the binary;
// build fills it, given its URL, and must leave no connection open to it
// (PostgreSQL copies only a database nobody is connected to). Templates
// are dropped when Main returns.
func NewDatabaseFrom(tb testing.TB, key string, build func(ctx context.Context, url string) error) string {
	tb.Helper()
	admin := ServerURL(tb)
	templatesMu.Lock()
	t := templates[key]
	if t == nil {
		t = &template{}
		templates[key] = t
	}
	templatesMu.Unlock()
	t.once.Do(func() { t.admin = admin; t.ident, t.err = buildTemplate(admin, key, build) })
	if t.err != nil {
		tb.Fatal(t.err)
	}
	return newDatabase(tb, " TEMPLATE "+t.ident)
}

// buildTemplate creates the template database key and runs build on it.
func buildTemplate(admin, key string, build func(ctx context.Context, url string) error) (string, error) {
	u, err := url.Parse(admin)
	if err != nil {
		return "", fmt.Errorf("pgtest: parsing the server URL %q: %v", admin, err)
	}
	name, err := randomName("tmpl_")
	if err != nil {
		return "", err
	}
	ident := pgx.Identifier{name}.Sanitize()
	ctx, cancel := context.WithTimeout(context.Background(), sqlTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return "", fmt.Errorf("pgtest: connecting to the test server %s: %w", u.Redacted(), err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident+createOptions); err != nil {
		return "", fmt.Errorf("pgtest: creating template database %s for %q: %w", name, key, err)
	}
	if err := build(ctx, databaseURL(u, name)); err != nil {
		if derr := dropDatabase(admin, ident); derr != nil {
			err = fmt.Errorf("%w (and dropping it: %v)", err, derr)
		}
		return "", fmt.Errorf("pgtest: building template database %q: %w", key, err)
	}
	return ident, nil
}

// dropTemplates drops the templates NewDatabaseFrom built.
func dropTemplates() {
	templatesMu.Lock()
	defer templatesMu.Unlock()
	for key, t := range templates {
		if t.ident == "" {
			continue
		}
		if err := dropDatabase(t.admin, t.ident); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: dropping template database %s (%q): %v\n", t.ident, key, err)
		}
	}
	clear(templates)
}
