package pgtest

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestNewDatabaseFrom: the template is built once per key; each database
// starts as its copy and is its own afterwards; a failed build fails
// every test that asks for it, saying why, and leaves no database.
func TestNewDatabaseFrom(t *testing.T) {
	ctx := context.Background()
	var builds atomic.Int32
	build := func(ctx context.Context, url string) error {
		builds.Add(1)
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, `CREATE TABLE t (v text); INSERT INTO t VALUES ('from the template')`)
		return err
	}
	a, b := NewDatabaseFrom(t, "test-copies", build), NewDatabaseFrom(t, "test-copies", build)
	if n := builds.Load(); n != 1 {
		t.Fatalf("the template was built %d times, want once", n)
	}
	if !dbNameRE.MatchString(dbName(t, a)) || dbName(t, a) == dbName(t, b) {
		t.Fatalf("databases %s and %s: want two distinct names like %s", dbName(t, a), dbName(t, b), dbNameRE)
	}
	if _, err := connect(t, a).Exec(ctx, `INSERT INTO t VALUES ('a only')`); err != nil {
		t.Fatal(err)
	}
	for url, want := range map[string]string{a: "a only,from the template", b: "from the template"} {
		var got string
		if err := connect(t, url).QueryRow(ctx, `SELECT string_agg(v, ',' ORDER BY v) FROM t`).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s holds %q, want %q", dbName(t, url), got, want)
		}
	}

	var before int
	count := `SELECT count(*) FROM pg_database WHERE datname LIKE 'ghsync\_test\_tmpl\_%'`
	if err := connect(t, ServerURL(t)).QueryRow(ctx, count).Scan(&before); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		r := &recorder{TB: t}
		done := make(chan struct{})
		go func() { // Fatal ends the goroutine, as it would end a test
			defer close(done)
			NewDatabaseFrom(r, "test-broken", func(context.Context, string) error { return errors.New("no tables today") })
		}()
		<-done
		if !strings.Contains(r.msg, "no tables today") || !strings.Contains(r.msg, "test-broken") {
			t.Errorf("a failed build reported %q, want its key and error", r.msg)
		}
	}
	var after int
	if err := connect(t, ServerURL(t)).QueryRow(ctx, count).Scan(&after); err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Errorf("a failed build left %d template databases", after-before)
	}
}

// recorder is a testing.TB whose Fatal records the message and ends the
// goroutine.
type recorder struct {
	testing.TB
	msg string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatal(args ...any) {
	for _, a := range args {
		if err, ok := a.(error); ok {
			r.msg += err.Error()
		}
	}
	runtime.Goexit()
}
