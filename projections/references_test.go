package projections_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/ghsync/ghsync/fixtures"
	"github.com/ghsync/ghsync/internal/pgtest"
	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/ledger/ledgertest"
	"github.com/ghsync/ghsync/models"
	"github.com/ghsync/ghsync/projections"
)

// TestForeignKeysWithoutRowChecks: whether the target checks each row's
// foreign keys (RowTriggers, or a role that may not skip them) or the
// projector skips the checks and locks what its rows reference, a
// projected delete fires ON DELETE actions on rows ghsync does not know,
// a trigger enabled ALWAYS sees projected writes, and a reference to a
// row deleted locally fails the batch with foreign_key_violation, leaving
// what is stored as it was.
func TestForeignKeysWithoutRowChecks(t *testing.T) {
	for _, tc := range []struct {
		name        string
		rowTriggers bool
	}{{"superuser skips row checks", false}, {"superuser with RowTriggers", true}} {
		t.Run(tc.name, func(t *testing.T) {
			reg := clinicRegistry(t)
			checkForeignKeys(t, reg, pgTarget(t, reg), tc.rowTriggers, !tc.rowTriggers)
		})
	}
	t.Run("role that may not set session_replication_role", func(t *testing.T) {
		reg := clinicRegistry(t)
		target, _ := ownRole(t, reg)
		checkForeignKeys(t, reg, target, false, false)
	})
	t.Run("role granted SET on session_replication_role", func(t *testing.T) {
		reg := clinicRegistry(t)
		target, admin := ownRole(t, reg)
		if v := serverVersion(t, admin); v < 150000 {
			t.Skipf("GRANT SET ON PARAMETER needs PostgreSQL 15; the server is %d", v)
		}
		role := roleOf(t, target)
		execAdmin(t, admin, `GRANT SET ON PARAMETER session_replication_role TO `+role)
		t.Cleanup(func() { execAdmin(t, admin, `REVOKE SET ON PARAMETER session_replication_role FROM `+role) })
		checkForeignKeys(t, reg, target, false, true)
	})
}

func checkForeignKeys(t *testing.T, reg *models.Registry, target string, rowTriggers, wantSkip bool) {
	ctx := context.Background()
	o := ledgertest.NewOrigin(3)
	str := ledger.String
	store := memLedger(t)
	appendEvents := func(evs ...*ledger.Event) {
		t.Helper()
		if _, err := store.Append(ctx, evs); err != nil {
			t.Fatal(err)
		}
	}
	appendEvents(
		o.Event(t, "party.party", "P1", ledger.OpCreate, map[string]ledger.Value{"code": str("P1"), "name": str("Imani")}),
		o.Event(t, "gnuhealth.patient", "P1", ledger.OpCreate, map[string]ledger.Value{"name": ref(t, "party.party", "P1")}),
		o.Event(t, "party.party", "P2", ledger.OpCreate, map[string]ledger.Value{"code": str("P2"), "name": str("Zion")}),
	)
	p, err := projections.Open(ctx, target, store, reg, projections.Options{BatchSize: 10, RowTriggers: rowTriggers})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if got := p.SkipsRowTriggers(); got != wantSkip {
		t.Fatalf("SkipsRowTriggers() = %v, want %v", got, wantSkip)
	}
	if _, err := p.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}

	db, err := sql.Open("pgx", target)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var p1 int64
	if err := db.QueryRow(`SELECT id FROM party_party WHERE code = 'P1'`).Scan(&p1); err != nil {
		t.Fatal(err)
	}
	// Rows of tables ghsync does not synchronise, pointing at P1, and an
	// administrator's trigger made to fire for replicated writes too.
	for _, q := range []string{
		`CREATE TABLE local_note (id serial PRIMARY KEY, party integer REFERENCES party_party ON DELETE CASCADE)`,
		`CREATE TABLE local_flag (id serial PRIMARY KEY, party integer REFERENCES party_party ON DELETE SET NULL)`,
		fmt.Sprintf(`INSERT INTO local_note (party) VALUES (%d)`, p1),
		fmt.Sprintf(`INSERT INTO local_flag (party) VALUES (%d)`, p1),
		`CREATE TABLE seen (party integer)`,
		`CREATE FUNCTION note_write() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO seen VALUES (NEW.id); RETURN NULL; END $$`,
		`CREATE TRIGGER note_write AFTER INSERT OR UPDATE ON party_party FOR EACH ROW EXECUTE FUNCTION note_write()`,
		`ALTER TABLE party_party ENABLE ALWAYS TRIGGER note_write`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}

	appendEvents(o.Event(t, "party.party", "P1", ledger.OpWrite, map[string]ledger.Value{"lastname": str("Morgan")}))
	if _, err := p.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	appendEvents(
		o.Event(t, "gnuhealth.patient", "P1", ledger.OpDelete, nil),
		o.Event(t, "party.party", "P1", ledger.OpDelete, nil),
	)
	if _, err := p.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	var parties, notes, flagged, flags, seen int
	if err := db.QueryRow(`SELECT (SELECT count(*) FROM party_party WHERE code = 'P1'), (SELECT count(*) FROM local_note),
		(SELECT count(party) FROM local_flag), (SELECT count(*) FROM local_flag), (SELECT count(*) FROM seen WHERE party = $1)`, p1).
		Scan(&parties, &notes, &flagged, &flags, &seen); err != nil {
		t.Fatal(err)
	}
	if parties != 0 || notes != 0 || flagged != 0 || flags != 1 {
		t.Fatalf("after projecting P1's delete: %d P1 rows, %d notes (ON DELETE CASCADE), %d of %d flags still pointing at it (ON DELETE SET NULL); want 0, 0, 0 of 1",
			parties, notes, flagged, flags)
	}
	if seen != 1 {
		t.Fatalf("a trigger enabled ALWAYS saw %d projected writes of P1, want 1", seen)
	}

	// A Tryton user deletes P2 and the capturer has not drained it: a
	// patient arriving for P2 must not point at the missing row.
	if _, err := db.Exec(`DELETE FROM party_party WHERE code = 'P2'`); err != nil {
		t.Fatal(err)
	}
	before, err := p.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	appendEvents(o.Event(t, "gnuhealth.patient", "P2", ledger.OpCreate, map[string]ledger.Value{"name": ref(t, "party.party", "P2")}))
	_, err = p.CatchUp(ctx)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "23503" {
		t.Fatalf("projecting a reference to a row deleted locally: %v, want a foreign_key_violation", err)
	}
	after, err := p.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var patients int
	if err := db.QueryRow(`SELECT count(*) FROM gnuhealth_patient`).Scan(&patients); err != nil {
		t.Fatal(err)
	}
	if after != before || patients != 0 {
		t.Fatalf("the failed batch left a mark: checkpoint %d → %d, %d patient rows", before, after, patients)
	}
}

// ownRole returns the URL of a database owned by a login role without
// superuser rights, holding reg's Tryton schema made by that role (as a
// site's Tryton user makes it), and the server's admin URL.
func ownRole(t *testing.T, reg *models.Registry) (target, admin string) {
	target = pgtest.NewOwnedDatabase(t)
	db, err := sql.Open("pgx", target)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := fixtures.CreateTrytonSchema(context.Background(), db, reg, models.Postgres); err != nil {
		t.Fatal(err)
	}
	return target, pgtest.ServerURL(t)
}

func roleOf(t *testing.T, target string) string {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	return u.User.Username()
}

func adminConn(t *testing.T, admin string) *pgx.Conn {
	conn, err := pgx.Connect(context.Background(), admin)
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

func execAdmin(t *testing.T, admin, q string) {
	conn := adminConn(t, admin)
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func serverVersion(t *testing.T, admin string) int {
	conn := adminConn(t, admin)
	defer conn.Close(context.Background())
	var v int
	if err := conn.QueryRow(context.Background(), `SELECT current_setting('server_version_num')::int`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}
