package models

import (
	"context"
	"database/sql"
	"fmt"
)

// UnindexedReference notes a synchronised Many2One column that PostgreSQL updates
// or deletes through when its target row is deleted (ON DELETE SET NULL
// or CASCADE) but that no index leads with: every such delete scans the
// whole referring table. GNU Health 4.0 ships several (evaluations'
// appointment and next_evaluation); Tryton pays it on each of its own
// deletes, and a projector catching up thousands of deletes pays it
// thousands of times (measured: 300k clinic events projected in 64 s
// without two such indexes, 28 s with them).
const UnindexedReference Problem = "unindexed-reference"

// checkReferenceIndexes adds an UnindexedReference warning, with the
// statement that fixes it, for every such column of a registered table.
func checkReferenceIndexes(ctx context.Context, db *sql.DB, reg *Registry, rep *CheckReport) error {
	rows, err := db.QueryContext(ctx, `
		SELECT c.conrelid::regclass::text, a.attname, c.confrelid::regclass::text,
		       CASE c.confdeltype WHEN 'n' THEN 'SET NULL' ELSE 'CASCADE' END
		FROM pg_constraint c
		JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
		WHERE c.contype = 'f' AND cardinality(c.conkey) = 1 AND c.confdeltype IN ('n', 'c')
		  AND c.connamespace = current_schema()::regnamespace
		  AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.conrelid AND i.indkey[0] = c.conkey[1])
		ORDER BY 1, 2`)
	if err != nil {
		return fmt.Errorf("read foreign keys: %w", err)
	}
	defer rows.Close()
	byTable := map[string]*ModelCheck{}
	for i := range rep.Models {
		byTable[rep.Models[i].Table] = &rep.Models[i]
	}
	for rows.Next() {
		var table, col, target, action string
		if err := rows.Scan(&table, &col, &target, &action); err != nil {
			return err
		}
		mc, ok := byTable[table]
		m, known := reg.ByTable(table)
		if !ok || !known {
			continue
		}
		// Only references the network deletes through: synchronised
		// Many2Ones to synchronised models (not the audit columns).
		field := ""
		for _, f := range m.Fields {
			if _, synced := reg.Lookup(f.Target); f.Column == col && f.Type == Many2One && synced {
				field = f.Name
			}
		}
		if field == "" {
			continue
		}
		fix := fmt.Sprintf("CREATE INDEX ON %s (%s)", quote(table), quote(col))
		mc.add(Info, UnindexedReference, field,
			"deleting a %s row makes PostgreSQL scan all of %s to %s this column, which no index leads with; catching up many deletes becomes slow: %s",
			target, table, action, fix)
		mc.Findings[len(mc.Findings)-1].Fix = fix
	}
	return rows.Err()
}

// CreateIndexes runs the fixes of a report's UnindexedReference findings,
// one statement each, and returns how many indexes it created. Each
// index is built with a plain CREATE INDEX, which blocks writes to its
// table while it is built: run it when the clinic is quiet.
func CreateIndexes(ctx context.Context, db *sql.DB, r *CheckReport) (int, error) {
	n := 0
	for _, mc := range r.Models {
		for _, f := range mc.Findings {
			if f.Problem != UnindexedReference || f.Fix == "" {
				continue
			}
			if _, err := db.ExecContext(ctx, f.Fix); err != nil {
				return n, fmt.Errorf("%s: %w", f.Fix, err)
			}
			n++
		}
	}
	return n, nil
}
