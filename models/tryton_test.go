package models_test

import (
	"context"
	"database/sql"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ghsync/ghsync/internal/pgtest"
	"github.com/ghsync/ghsync/models"
)

// TestCheckRealTryton checks the catalogue against a database that a real
// Tryton 6.0 server (Debian's tryton-server with party, company, country,
// currency and product) initialised: Tryton's own models and fields must
// match exactly, and the GNU Health modules (not packaged by Debian) must be
// reported as not activated, model by model.
func TestCheckRealTryton(t *testing.T) {
	admin, err := exec.LookPath("trytond-admin")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("trytond-admin not found: .ci/run must install tryton-server and tryton-modules-{party,company,country,currency,product}")
		}
		t.Skip("trytond-admin not installed (apt-get install tryton-server tryton-modules-party tryton-modules-company tryton-modules-country tryton-modules-currency tryton-modules-product); CI runs this test")
	}
	dbURL := pgtest.NewDatabase(t)
	u, _ := url.Parse(dbURL)
	name := strings.TrimPrefix(u.Path, "/")
	server := *u
	server.Scheme, server.Path, server.RawQuery = "postgresql", "/", ""
	dir := t.TempDir()
	conf := filepath.Join(dir, "trytond.conf")
	os.WriteFile(conf, []byte("[database]\nuri = "+server.String()+"\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "pass"), []byte("admin\n"), 0o600)
	cmd := exec.Command(admin, "-c", conf, "-d", name, "-u", "party", "company", "country", "currency", "product",
		"--activate-dependencies", "--email", "admin@example.org")
	cmd.Env = append(os.Environ(), "TRYTONPASSFILE="+filepath.Join(dir, "pass"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("trytond-admin: %v\n%s", err, out)
	}
	db, err := sql.Open("pgx", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rep, err := models.Check(context.Background(), db, models.Postgres, models.GNUHealth())
	if err != nil {
		t.Fatal(err)
	}
	tryton := map[string]bool{"party": true, "country": true, "company": true, "product": true}
	for _, mc := range rep.Models {
		for _, f := range mc.Findings {
			switch {
			case tryton[mc.Module] && f.Problem == models.ModuleNotInstalled:
				// Fields that GNU Health's modules add to Tryton's models.
			case tryton[mc.Module] && f.Severity != models.Info:
				t.Errorf("%s (Tryton's own model) against real Tryton: %s %s: %s", mc.Model, f.Problem, f.Field, f.Message)
			case !tryton[mc.Module] && f.Problem != models.ModelNotInstalled:
				t.Errorf("%s: %s, want model-not-installed (GNU Health is not installed)", mc.Model, f.Problem)
			}
		}
	}
	if len(rep.Find("party.party", models.ModuleNotInstalled)) == 0 || len(rep.Find("gnuhealth.patient", models.ModelNotInstalled)) != 1 {
		t.Errorf("missing GNU Health modules not reported:\n%s", rep.Text())
	}
}
