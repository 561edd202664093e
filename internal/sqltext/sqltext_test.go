package sqltext

import "testing"

func TestSQLText(t *testing.T) {
	cases := []struct{ got, want string }{
		{Dollarize("SELECT a FROM t WHERE b = ? AND c IN (?, ?)"), "SELECT a FROM t WHERE b = $1 AND c IN ($2, $3)"},
		{Dollarize("SELECT 1"), "SELECT 1"},
		{Ident(`party_party`), `"party_party"`},
		{Ident(`we"ird`), `"we""ird"`},
		{Literal("O'Brien"), `'O''Brien'`},
		{Placeholders(3), "?, ?, ?"},
		{Placeholders(0), ""},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}
