package projections

import (
	"context"
	"fmt"

	"github.com/ghsync/ghsync/models"
)

// Real installations differ by module: a plain Tryton has party_party
// without GNU Health's columns and no gnuhealth_* tables at all. The
// projector writes only the columns the target has, and keeps records of
// models whose table is missing as merge state only (listed as parked),
// so activating the module and rebuilding materialises them.

// loadColumns reads which tables and columns of the registry's models the
// target has.
func (p *Projector) loadColumns(ctx context.Context, tx dtx) error {
	p.columns = map[string]map[string]bool{}
	add := func(table, col string) {
		if p.columns[table] == nil {
			p.columns[table] = map[string]bool{}
		}
		p.columns[table][col] = true
	}
	if p.d.name() == "postgres" {
		rows, err := tx.query(ctx, `SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema()`)
		if err != nil {
			return fmt.Errorf("read target columns: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var t, c string
			if err := rows.Scan(&t, &c); err != nil {
				return err
			}
			add(t, c)
		}
		return rows.Err()
	}
	tables := map[string]bool{}
	for _, m := range p.reg.Models() {
		tables[m.Table] = true
		for _, f := range m.Fields {
			if f.Relation != nil {
				tables[f.Relation.Table] = true
			}
		}
	}
	for t := range tables {
		rows, err := tx.query(ctx, `SELECT name FROM pragma_table_info(?)`, t)
		if err != nil {
			return fmt.Errorf("read columns of %s: %w", t, err)
		}
		for rows.Next() {
			var c string
			if err := rows.Scan(&c); err != nil {
				rows.Close()
				return err
			}
			add(t, c)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	return nil
}

// hasTable reports whether the target has table.
func (p *Projector) hasTable(table string) bool { return len(p.columns[table]) > 0 }

// hasField reports whether the target stores field f of model m: its
// column, or for a Many2Many its relation table.
func (p *Projector) hasField(m *models.Model, f *models.Field) bool {
	if f.Type == models.Many2Many {
		return f.Relation != nil && p.hasTable(f.Relation.Table)
	}
	return p.columns[m.Table][f.Column]
}
