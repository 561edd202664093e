package capture

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/models"
)

// rowSeeds are row images as the triggers write them, and near misses.
var rowSeeds = []string{
	``, `null`, `{}`, ` { } `,
	`{"id": 7, "code": "P-1", "name": "Ana \"Nan\" O\u2019Neil", "active": true, "dob": null}`,
	`{"amount": -12.50e+3, "zero": 0, "frac": 0.25, "photo": "\\x89504e47", "dt": "2026-11-30T11:05:52.40864"}`,
	`{"extra": {"a": [1, {"b": "}"}], "c": null}, "list": [], "obj": {}}`,
	`{"k\u00e9y": 1, "dup": 1, "dup": 2}`, `{"s": "", "t": "tab\there", "u": "café", "q": "a\\b"}`,
	`{"a": 01}`, `{"a": 1.}`, `{"a": .5}`, `{"a": -}`, `{"a": 1e}`, `{"a": tru}`, `{"a": "x` + "\x01" + `"}`,
	`{"a": 1,}`, `{"a" 1}`, `{"a": 1} x`, `[1, 2]`, `"x"`, `{"a": {"b": 1}`, `{"a": [1, 2}]}`, `{"a": "\q"}`, `{"a": "\u12"}`,
}

// TestParseRowMatchesEncodingJSON: the hand-written scanner accepts and
// yields exactly what json.Unmarshal into a row does, on the seeds.
func TestParseRowMatchesEncodingJSON(t *testing.T) {
	for _, s := range rowSeeds {
		checkParseRow(t, []byte(s))
	}
}

// FuzzParseRow holds parseRow to json.Unmarshal on any input:
//
//	go test -fuzz FuzzParseRow ./capture
func FuzzParseRow(f *testing.F) {
	for _, s := range rowSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(checkParseRow)
}

func checkParseRow(t *testing.T, in []byte) {
	got, err := parseRow(in)
	var want row
	var wantErr error
	if len(in) > 0 {
		wantErr = json.Unmarshal(in, &want)
	}
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("parseRow(%q): error %v, encoding/json: %v", in, err, wantErr)
	}
	if err != nil {
		return
	}
	if len(got) != len(want) || (got == nil) != (want == nil) {
		t.Fatalf("parseRow(%q) = %v, encoding/json %v", in, got, want)
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || !bytes.Equal(g, v) {
			t.Fatalf("parseRow(%q)[%q] = %q, encoding/json %q", in, k, g, v)
		}
		checkUnquote(t, v)
	}
}

// checkUnquote holds unquote to json.Unmarshal for a JSON value.
func checkUnquote(t *testing.T, v json.RawMessage) {
	if len(v) == 0 || v[0] != '"' {
		return
	}
	got, err := unquote(v)
	var want string
	wantErr := json.Unmarshal(v, &want)
	if (err != nil) != (wantErr != nil) || got != want {
		t.Fatalf("unquote(%q) = %q, %v; encoding/json %q, %v", v, got, err, want, wantErr)
	}
}

// TestFieldsReportsFirstBadField: fields walks a row image in map order,
// but a bad value is reported for the first bad field in the model's
// order, the same every time.
func TestFieldsReportsFirstBadField(t *testing.T) {
	m, ok := models.GNUHealth().Lookup("party.party")
	if !ok {
		t.Fatal("no party.party")
	}
	img := row{"name": json.RawMessage(`"Ana"`), "active": json.RawMessage(`"maybe"`), "dob": json.RawMessage(`"not a date"`),
		"gender": json.RawMessage(`"f"`), "code": json.RawMessage(`"P-1"`)}
	var want string
	for _, f := range m.Fields {
		if f.Column == "active" || f.Column == "dob" {
			want = "field " + f.Name + ": "
			break
		}
	}
	b := &batch{}
	for range 50 {
		_, _, _, err := b.fields(t.Context(), m, img, false)
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Fatalf("fields: %v, want an error starting %q", err, want)
		}
	}
	img["active"], img["dob"] = json.RawMessage(`true`), json.RawMessage(`"1970-01-02"`)
	got, _, _, err := b.fields(t.Context(), m, img, false)
	if err != nil || len(got) != len(img) || got["active"].String() != ledger.Bool(true).String() {
		t.Fatalf("fields of a good image: %v, %v", got, err)
	}
}
