package ledger

import (
	"errors"
	"fmt"
	"strings"
)

// maxDecimalDigits bounds a decimal's digits; PostgreSQL's numeric allows
// 131072 before and 16383 after the point, far beyond any clinical value.
const maxDecimalDigits = 1000

// canonicalDecimal checks plain decimal notation ([-+]digits[.digits]) and
// returns its canonical form. Exponents, NaN and infinities are refused:
// Tryton's Numeric fields hold none of them.
func canonicalDecimal(s string) (string, error) {
	neg := false
	if s != "" && (s[0] == '-' || s[0] == '+') {
		neg = s[0] == '-'
		s = s[1:]
	}
	intPart, frac, hasPoint := strings.Cut(s, ".")
	if intPart == "" && frac == "" || !allDigits(intPart) || !allDigits(frac) || hasPoint && frac == "" && intPart == "" {
		return "", errors.New("ledger: decimal is not in plain notation [-]digits[.digits]")
	}
	if len(intPart)+len(frac) > maxDecimalDigits {
		return "", fmt.Errorf("ledger: decimal has more than %d digits", maxDecimalDigits)
	}
	intPart = strings.TrimLeft(intPart, "0")
	frac = strings.TrimRight(frac, "0")
	if intPart == "" {
		intPart = "0"
	}
	var b strings.Builder
	if neg && (intPart != "0" || frac != "") {
		b.WriteByte('-')
	}
	b.WriteString(intPart)
	if frac != "" {
		b.WriteByte('.')
		b.WriteString(frac)
	}
	return b.String(), nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// compareDecimal orders two canonical decimals numerically.
func compareDecimal(a, b string) int {
	an, bn := strings.HasPrefix(a, "-"), strings.HasPrefix(b, "-")
	if an != bn {
		if an {
			return -1
		}
		return 1
	}
	c := compareMagnitude(strings.TrimPrefix(a, "-"), strings.TrimPrefix(b, "-"))
	if an {
		return -c
	}
	return c
}

func compareMagnitude(a, b string) int {
	ai, af, _ := strings.Cut(a, ".")
	bi, bf, _ := strings.Cut(b, ".")
	if len(ai) != len(bi) {
		return cmpInt(int64(len(ai)), int64(len(bi)))
	}
	if c := strings.Compare(ai, bi); c != 0 {
		return c
	}
	// Pad the shorter fraction with zeros so a bytewise compare is numeric.
	for len(af) < len(bf) {
		af += "0"
	}
	for len(bf) < len(af) {
		bf += "0"
	}
	return strings.Compare(af, bf)
}
