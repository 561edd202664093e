package models

import (
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"

	"github.com/ghsync/ghsync/internal/pgtest"
)

// plainNumberValues are key values around the rule's edges.
var plainNumberValues = []string{
	"1", "0042", "123456789012345678901234567890",
	"", " 1", "1 ", "1\n", "A-1", "1-A", "1.5", "-1", "+1", "١٢", "P1", "uuid-1234",
}

// TestPlainNumberRuleOneDefinition: Check's SQL (both dialects) and the
// capturer's CheckNetworkKey flag exactly the same party codes.
func TestPlainNumberRuleOneDefinition(t *testing.T) {
	party, ok := GNUHealth().Lookup("party.party")
	if !ok {
		t.Fatal("no party.party")
	}
	for _, dialect := range []string{SQLite, Postgres} {
		t.Run(dialect, func(t *testing.T) {
			var db *sql.DB
			var err error
			if dialect == Postgres {
				db, err = sql.Open("pgx", pgtest.NewDatabase(t))
			} else {
				db, err = sql.Open("sqlite", filepath.Join(t.TempDir(), "rule.db"))
			}
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if _, err := db.Exec(`CREATE TABLE v (code VARCHAR)`); err != nil {
				t.Fatal(err)
			}
			q := `SELECT count(*) FROM v WHERE ` + plainNumberSQL(quote("code"), dialect)
			for _, s := range plainNumberValues {
				if _, err := db.Exec(`DELETE FROM v`); err != nil {
					t.Fatal(err)
				}
				ins := `INSERT INTO v VALUES (?)`
				if dialect == Postgres {
					ins = `INSERT INTO v VALUES ($1)`
				}
				if _, err := db.Exec(ins, s); err != nil {
					t.Fatal(err)
				}
				var n int
				if err := db.QueryRow(q).Scan(&n); err != nil {
					t.Fatal(err)
				}
				refused := party.CheckNetworkKey(s) != nil
				if (n == 1) != refused || refused != isPlainNumber(s) {
					t.Errorf("%q: SQL flags %v, CheckNetworkKey refuses %v, isPlainNumber %v", s, n == 1, refused, isPlainNumber(s))
				}
			}
		})
	}
}

func TestCheckNetworkKey(t *testing.T) {
	reg := GNUHealth()
	for _, c := range []struct {
		model  string
		parts  []string
		refuse bool
	}{
		{"party.party", []string{"1"}, true},
		{"party.party", []string{"A-1"}, false},
		{"party.party", []string{"0f3c9a2e-1b7d-4c55-9e0a-5d2f8c1b7a66-Ana"}, false},
		{"gnuhealth.pol", []string{"17"}, true},                // a clinic's own page of life
		{"country.country", []string{"388"}, false},            // reference data: one shared record
		{"gnuhealth.pathology", []string{"123"}, false},        // central-wins: the same everywhere
		{"gnuhealth.hospital.ward", []string{"1", "2"}, false}, // composite: judged by Check's duplicates
	} {
		m, ok := reg.Lookup(c.model)
		if !ok {
			t.Fatalf("no %s", c.model)
		}
		err := m.CheckNetworkKey(c.parts...)
		if (err != nil) != c.refuse {
			t.Errorf("%s %q: %v, want refused=%v", c.model, c.parts, err, c.refuse)
			continue
		}
		if err == nil {
			continue
		}
		if !errors.Is(err, ErrKeyNotNetworkUnique) {
			t.Errorf("%s: %v does not match ErrKeyNotNetworkUnique", c.model, err)
		}
		for _, want := range []string{`"` + c.parts[0] + `"`, "plain number", "prefix", "identify " + c.model + " by UUID"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: %q lacks %q", c.model, err, want)
			}
		}
	}
	uuidParty, err := reg.WithUUIDIdentity("party.party", "company.company", "gnuhealth.patient", "gnuhealth.healthprofessional", "gnuhealth.hp_specialty")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := uuidParty.Lookup("party.party")
	if err := m.CheckNetworkKey("1"); err != nil {
		t.Errorf("party.party identified by UUID: %v, want no refusal", err)
	}
}
