package projections_test

import (
	"database/sql"
	"strings"
	"testing"

	"github.com/ghsync/ghsync/ledger/ledgertest"
)

// version1 turns a target's bookkeeping back into the version-1 layout:
// merge states and the id map in tables of their own.
func version1(prefix, blob string) []string {
	stmts := []string{
		`CREATE TABLE {s}idmap (model TEXT NOT NULL, key TEXT NOT NULL, local_id BIGINT NOT NULL,
			PRIMARY KEY (model, key), UNIQUE (model, local_id))`,
		`CREATE TABLE {s}state (model TEXT NOT NULL, key TEXT NOT NULL, live BOOLEAN NOT NULL, state ` + blob + ` NOT NULL,
			PRIMARY KEY (model, key))`,
		`INSERT INTO {s}idmap SELECT model, key, local_id FROM {s}records WHERE local_id IS NOT NULL`,
		`INSERT INTO {s}state SELECT model, key, live, state FROM {s}records WHERE state IS NOT NULL`,
		`DROP TABLE {s}records`,
		`UPDATE {s}proj_meta SET value = 1 WHERE name = 'schema_version'`,
	}
	for i, q := range stmts {
		stmts[i] = strings.ReplaceAll(q, "{s}", prefix)
	}
	return stmts
}

// TestUpgradeFromVersion1: a target projected by a version-1 ghsync
// (states and ids apart) is upgraded when opened, keeps every record's
// state and row, and goes on to the same tables as a fresh projection.
func TestUpgradeFromVersion1(t *testing.T) {
	rng := ledgertest.Rand(t)
	reg := clinicRegistry(t)
	w := newWorkload(t, reg, rng, 0, 1, 2)
	w.build(t, 400)
	half := len(w.events) / 2

	fresh := memLedger(t)
	appendAll(t, fresh, w.events, rng)
	want := project(t, openProjector(t, pgTarget(t, reg), fresh, reg, 50))

	for _, tc := range []struct {
		name, driver, prefix, blob string
		target                     func() string
	}{
		{"postgres", "pgx", "ghsync.", "BYTEA", func() string { return pgTarget(t, reg) }},
		{"sqlite", "sqlite", "ghsync_", "BLOB", func() string { return sqliteTarget(t, reg) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := tc.target()
			store := memLedger(t)
			appendAll(t, store, w.events[:half], rng)
			p := openProjector(t, target, store, reg, 50)
			project(t, p)
			p.Close()

			db, err := sql.Open(tc.driver, strings.TrimPrefix(target, "sqlite:"))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			for _, q := range version1(tc.prefix, tc.blob) {
				if _, err := db.Exec(q); err != nil {
					t.Fatalf("make version 1: %v\n%s", err, q)
				}
			}

			appendAll(t, store, w.events[half:], rng)
			sameOutcome(t, "upgraded", project(t, openProjector(t, target, store, reg, 50)), want)
			var version int
			if err := db.QueryRow(`SELECT value FROM ` + tc.prefix + `proj_meta WHERE name = 'schema_version'`).Scan(&version); err != nil {
				t.Fatal(err)
			}
			if version != 2 {
				t.Errorf("schema version after upgrade: %d, want 2", version)
			}
			for _, old := range []string{"state", "idmap"} {
				if _, err := db.Exec(`SELECT 1 FROM ` + tc.prefix + old); err == nil {
					t.Errorf("version 1 table %s%s is still there", tc.prefix, old)
				}
			}
		})
	}
}
