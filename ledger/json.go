package ledger

import (
	"encoding/base64"
	"encoding/json"
	"time"
)

// MarshalJSON gives each value a JSON form that keeps its type, for audit
// exports and `ghsync log --json`: null, booleans, strings and integers are
// native; every other kind is an object naming it, e.g.
// {"decimal":"70.5"}, {"date":"1984-02-29"}, {"ref":{"model":..,"key":..}}.
func (v Value) MarshalJSON() ([]byte, error) {
	type ref struct {
		Model string `json:"model"`
		Key   string `json:"key"`
		Saw   uint64 `json:"saw,omitempty"` // the life it means, as an HLC
		// Lender: the life of the target's lender it means, as an HLC
		Lender uint64 `json:"lender,omitempty"`
	}
	var out any
	switch v.kind {
	case KindNull:
		out = nil
	case KindBool:
		out = v.i == 1
	case KindInt:
		out = v.i
	case KindString:
		out = v.s
	case KindDecimal:
		out = map[string]string{"decimal": v.s}
	case KindDate:
		d, _ := v.AsDate()
		out = map[string]string{"date": d.Format(time.DateOnly)}
	case KindDateTime:
		t, _ := v.AsDateTime()
		out = map[string]string{"datetime": t.Format("2006-01-02T15:04:05.999999Z")}
	case KindBytes:
		out = map[string]string{"bytes": base64.StdEncoding.EncodeToString([]byte(v.s))}
	case KindRef:
		r, _ := v.AsRef()
		out = map[string]ref{"ref": {r.Model, r.Key, uint64(r.Saw), uint64(r.Lender)}}
	case KindRefSet:
		refs := make([]ref, len(v.refs))
		for i, r := range v.refs {
			refs[i] = ref{Model: r.Model, Key: r.Key}
		}
		out = map[string][]ref{"refset": refs}
	}
	return json.Marshal(out)
}
