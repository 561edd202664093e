package postgres_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/ghsync/ghsync/internal/pgtest"
	"github.com/ghsync/ghsync/ledger/postgres"
)

// planNode is the part of EXPLAIN (FORMAT JSON) a plan test reads.
type planNode struct {
	NodeType string     `json:"Node Type"`
	Rows     float64    `json:"Plan Rows"`
	Plans    []planNode `json:"Plans"`
}

// TestPageReadPlan: a page read is planned as one index scan of at most a
// page, whatever the statistics say. On a new database, whose tables
// were never analysed (autovacuum off, a restored dump, or just not yet),
// the planner took the one-row head table for 2,200 rows and planned a
// page as 2,200 copies, materialised and JIT-compiled: a 1M-event
// ledger read at a twentieth of its speed (readPageSQL).
func TestPageReadPlan(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	s, err := postgres.Open(ctx, url, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close() // the schema is what this test needs
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	const page = 1000
	explain := func(after int64, models []string, origins []int16) planNode {
		t.Helper()
		var out []byte
		if err := conn.QueryRow(ctx, `EXPLAIN (FORMAT JSON) `+postgres.ReadPageSQL, after, models, origins, page).Scan(&out); err != nil {
			t.Fatalf("explain the page read: %v", err)
		}
		var plans []struct{ Plan planNode }
		if err := json.Unmarshal(out, &plans); err != nil || len(plans) != 1 {
			t.Fatalf("explain output %s: %v", out, err)
		}
		return plans[0].Plan
	}
	for _, tc := range []struct {
		name    string
		models  []string
		origins []int16
	}{
		{"all", []string{}, []int16{}},
		{"by model", []string{"party.party"}, []int16{}},
		{"by origin", []string{}, []int16{3}},
	} {
		plan := explain(0, tc.models, tc.origins)
		var walk func(n planNode, depth int)
		var shape []string
		walk = func(n planNode, depth int) {
			shape = append(shape, strings.Repeat("  ", depth)+n.NodeType)
			if n.NodeType == "Materialize" {
				t.Errorf("%s: the page read materialises a join:\n%s", tc.name, strings.Join(shape, "\n"))
			}
			for _, c := range n.Plans {
				walk(c, depth+1)
			}
		}
		walk(plan, 0)
		if plan.Rows > page {
			t.Errorf("%s: the planner expects %.0f rows from a page read of %d", tc.name, plan.Rows, page)
		}
	}
}
