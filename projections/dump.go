package projections

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/models"
)

// Dump writes the synchronised tables in a canonical form: no local ids,
// no audit columns, references as network keys, rows sorted by key, values
// normalised per type. Two instances whose contents agree write identical
// bytes, whatever their local ids and backends. It returns the SHA-256 of
// what it wrote.
func (p *Projector) Dump(ctx context.Context, w io.Writer) (string, error) {
	tx, err := p.d.begin(ctx)
	if err != nil {
		return "", err
	}
	defer tx.rollback(ctx)
	if p.d.name() == "postgres" {
		if err := tx.exec(ctx, dumpSettings); err != nil {
			return "", fmt.Errorf("dump: %w", err)
		}
	}
	keys := map[string]map[int64]string{} // model → local id → network key
	rows, err := tx.query(ctx, `SELECT model, key, local_id FROM `+p.d.schemaPrefix()+`records WHERE local_id IS NOT NULL`)
	if err != nil {
		return "", fmt.Errorf("dump: read id map: %w", err)
	}
	for rows.Next() {
		var m, k string
		var id int64
		if err := rows.Scan(&m, &k, &id); err != nil {
			rows.Close()
			return "", err
		}
		if keys[m] == nil {
			keys[m] = map[int64]string{}
		}
		keys[m][id] = k
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return "", err
	}
	keyOf := func(model string, id int64) string {
		if k, ok := keys[model][id]; ok {
			return strconv.Quote(k)
		}
		return fmt.Sprintf("<local %s %d>", model, id) // a row ghsync did not project
	}
	h := sha256.New()
	out := io.MultiWriter(w, h)
	for _, m := range sortedModels(p.reg) {
		lines, err := p.dumpModel(ctx, tx, m, keyOf)
		if err != nil {
			return "", fmt.Errorf("dump %s: %w", m.Name, err)
		}
		for _, l := range lines {
			if _, err := io.WriteString(out, l); err != nil {
				return "", err
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func sortedModels(reg *models.Registry) []*models.Model {
	ms := slices.Clone(reg.Models())
	slices.SortFunc(ms, func(a, b *models.Model) int { return strings.Compare(a.Name, b.Name) })
	return ms
}

func (p *Projector) dumpModel(ctx context.Context, tx dtx, m *models.Model, keyOf func(string, int64) string) ([]string, error) {
	var cols []string
	var fields []*models.Field
	if !p.hasTable(m.Table) {
		return nil, nil // the module is not activated here
	}
	for i := range m.Fields {
		f := &m.Fields[i]
		if f.Type == models.Many2Many || !p.hasField(m, f) {
			continue
		}
		fields = append(fields, f)
		cols = append(cols, p.d.text(quoteIdent(f.Column), f.Type))
	}
	links, err := p.dumpRelations(ctx, tx, m, keyOf)
	if err != nil {
		return nil, err
	}
	rows, err := tx.query(ctx, `SELECT id, `+strings.Join(cols, ", ")+` FROM `+quoteIdent(m.Table))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var id int64
		vals := make([]*string, len(fields))
		dest := []any{&id}
		for i := range vals {
			dest = append(dest, &vals[i])
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		var b strings.Builder
		b.WriteString(m.Name + " " + keyOf(m.Name, id))
		for i, f := range fields {
			b.WriteString(" " + f.Name + "=" + normalise(vals[i], f, keyOf))
		}
		for _, f := range m.Fields {
			if f.Type == models.Many2Many && p.hasField(m, &f) {
				b.WriteString(" " + f.Name + "={" + strings.Join(links[f.Name][id], ",") + "}")
			}
		}
		lines = append(lines, b.String()+"\n")
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	slices.Sort(lines)
	return lines, nil
}

// dumpRelations reads Many2Many links as sorted target keys per origin id.
func (p *Projector) dumpRelations(ctx context.Context, tx dtx, m *models.Model, keyOf func(string, int64) string) (map[string]map[int64][]string, error) {
	out := map[string]map[int64][]string{}
	for _, f := range m.Fields {
		if f.Type != models.Many2Many || !p.hasField(m, &f) {
			continue
		}
		rows, err := tx.query(ctx, `SELECT `+quoteIdent(f.Relation.OriginColumn)+`, `+quoteIdent(f.Relation.TargetColumn)+` FROM `+quoteIdent(f.Relation.Table))
		if err != nil {
			return nil, err
		}
		byOrigin := map[int64][]string{}
		for rows.Next() {
			var o, t int64
			if err := rows.Scan(&o, &t); err != nil {
				rows.Close()
				return nil, err
			}
			byOrigin[o] = append(byOrigin[o], keyOf(f.Target, t))
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
		for _, ks := range byOrigin {
			slices.Sort(ks)
		}
		out[f.Name] = byOrigin
	}
	return out, nil
}

// normalise renders a column's text so both backends agree: NULL is null
// whatever the type, numbers are plain canonical decimals, dates and
// times ISO.
func normalise(s *string, f *models.Field, keyOf func(string, int64) string) string {
	if s == nil {
		return "null"
	}
	v := *s
	switch f.Type {
	case models.Many2One:
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return "<bad id " + v + ">"
		}
		return "→" + keyOf(f.Target, id)
	case models.Numeric, models.Float:
		if c, ok := canonicalNumber(v); ok {
			return c
		}
	case models.Date:
		if len(v) >= 10 {
			return v[:10]
		}
	case models.DateTime, models.Timestamp:
		for _, layout := range []string{"2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999",
			"2006-01-02T15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999-07"} {
			if t, err := time.Parse(layout, v); err == nil {
				return t.UTC().Format("2006-01-02T15:04:05.000000Z")
			}
		}
	case models.Time:
		for _, layout := range []string{"15:04:05.999999999", "15:04"} {
			if t, err := time.Parse(layout, v); err == nil {
				return strconv.Quote(t.Format("15:04:05.999999"))
			}
		}
	}
	return strconv.Quote(v)
}

// canonicalNumber renders a number as a canonical plain decimal. The text
// may be a float's with an exponent (PostgreSQL's double precision, a
// SQLite REAL as the driver reads it); a float is written with the
// fewest digits that read back as it.
func canonicalNumber(v string) (string, bool) {
	if d, err := ledger.Decimal(v); err == nil {
		c, _ := d.AsDecimal()
		return c, true
	}
	x, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsInf(x, 0) || math.IsNaN(x) {
		return "", false
	}
	plain := strconv.FormatFloat(x, 'f', -1, 64)
	if d, err := ledger.Decimal(plain); err == nil {
		c, _ := d.AsDecimal()
		return c, true
	}
	return plain, true // more digits than a ledger decimal holds
}
