// Package sqltext writes the small pieces of SQL text ghsync builds
// itself, once for every package that talks to both PostgreSQL and
// SQLite: placeholders, quoted identifiers and literals.
package sqltext

import (
	"strconv"
	"strings"
)

// Dollarize rewrites '?' placeholders as $1, $2... for PostgreSQL, so a
// statement can be written once for both databases. ghsync's statements
// never hold a literal '?'.
func Dollarize(q string) string {
	if !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

// Ident quotes a table or column name taken from the registry or a catalogue.
func Ident(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// Literal quotes a string literal, for DDL that takes no parameters
// (trigger bodies).
func Literal(s string) string { return `'` + strings.ReplaceAll(s, `'`, `''`) + `'` }

// Placeholders is n '?' placeholders separated by commas.
func Placeholders(n int) string { return strings.TrimSuffix(strings.Repeat("?, ", n), ", ") }
