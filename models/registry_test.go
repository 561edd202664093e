package models

import (
	"errors"
	"strings"
	"testing"

	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/merge"
)

func TestType_StringParse(t *testing.T) {
	for ty := Char; ty < typeEnd; ty++ {
		got, err := ParseType(ty.String())
		if err != nil || got != ty {
			t.Errorf("ParseType(%q) = %v, %v; want %v", ty.String(), got, err, ty)
		}
	}
	if got, err := ParseType("Many2One"); err != nil || got != Many2One {
		t.Errorf("ParseType(Many2One) = %v, %v", got, err)
	}
	if _, err := ParseType("one2many"); err == nil {
		t.Error("ParseType(one2many) succeeded; One2Many is never a catalogue field")
	}
	for k := UniqueKey; k < kindEnd; k++ {
		if got, err := ParseKind(k.String()); err != nil || got != k {
			t.Errorf("ParseKind(%q) = %v, %v", k.String(), got, err)
		}
	}
}

func TestType_ValueKind(t *testing.T) {
	want := map[Type]ledger.Kind{
		Char: ledger.KindString, Text: ledger.KindString, Selection: ledger.KindString, Reference: ledger.KindString,
		Time: ledger.KindString, Integer: ledger.KindInt, BigInteger: ledger.KindInt, Float: ledger.KindDecimal,
		Numeric: ledger.KindDecimal, Boolean: ledger.KindBool, Date: ledger.KindDate, DateTime: ledger.KindDateTime,
		Timestamp: ledger.KindDateTime, Binary: ledger.KindBytes, Many2One: ledger.KindRef, Many2Many: ledger.KindRefSet,
	}
	for ty := Char; ty < typeEnd; ty++ {
		if got := ty.ValueKind(); got != want[ty] {
			t.Errorf("%s.ValueKind() = %s, want %s", ty, got, want[ty])
		}
	}
	f := F("code", Char).Required().Field()
	if f.Accepts(ledger.Null()) || !f.Accepts(ledger.String("x")) || f.Accepts(ledger.Int(1)) {
		t.Error("a required Char accepts null or an int, or refuses a string")
	}
	if o := F("dob", Date).Field(); !o.Accepts(ledger.Null()) {
		t.Error("an optional field refuses null")
	}
}

func TestModel_KeyOf(t *testing.T) {
	m := Define("gnuhealth.hospital.ward", "health", Key("institution", "name"))
	if got, want := m.KeyOf("HC/1", "Ward A"), ledger.JoinKey("HC/1", "Ward A"); got != want {
		t.Errorf("KeyOf = %q, want %q", got, want)
	}
	if got := m.KeyOf("P-1"); got != "P-1" {
		t.Errorf("KeyOf one part = %q, want the part itself", got)
	}
}

func TestDefine(t *testing.T) {
	m := Define("party.party", "party", Key("code"),
		F("code", Char).Required(),
		F("active", Boolean),
		M2O("replaced_by", "party.party"),
		Ext("health",
			M2O("du", "gnuhealth.du").Required(),
			F("federation_account", Char).Rule(merge.FirstWins),
			Skip("internal_user", "target res.user is instance-local"),
		),
		DefaultRule(merge.LastWriterWins),
	)
	if m.Table != "party_party" || m.Kind != UniqueKey || !m.Active {
		t.Fatalf("Define: table %s kind %s active %v", m.Table, m.Kind, m.Active)
	}
	du, _ := m.Field("du")
	if du.Module != "health" || du.OnDelete != Restrict || du.Column != "du" {
		t.Errorf("du: module %s on delete %s column %s; want health, RESTRICT (required), du", du.Module, du.OnDelete, du.Column)
	}
	rb, _ := m.Field("replaced_by")
	if rb.OnDelete != SetNull || rb.Module != "party" {
		t.Errorf("replaced_by: on delete %s module %s", rb.OnDelete, rb.Module)
	}
	if m.Rule("federation_account") != merge.FirstWins || m.Rule("code") != merge.LastWriterWins {
		t.Error("rules: federation_account must be first-wins, code the default")
	}
	if m.NotSynced["internal_user"] == "" {
		t.Error("Skip did not record internal_user")
	}
}

// base is a small valid registry the rejection cases alter.
func base() []*Model {
	return []*Model{
		Define("party.party", "party", Key("code"), F("code", Char).Required(), F("name", Char)),
		Define("gnuhealth.institution", "health", Key("code"),
			F("code", Char).Required(), M2O("name", "party.party").Required()),
		Define("gnuhealth.hospital.ward", "health", Key("institution", "name"),
			F("name", Char).Required(), M2O("institution", "gnuhealth.institution").Required()),
		Define("gnuhealth.appointment", "health", ByUUID, M2O("institution", "gnuhealth.institution")),
	}
}

func TestNewRegistry_Valid(t *testing.T) {
	r, err := NewRegistry(base()...)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range r.Models() {
		names = append(names, m.Name)
	}
	want := "gnuhealth.appointment party.party gnuhealth.institution gnuhealth.hospital.ward"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("order %s, want %s", got, want)
	}
	if m, ok := r.ByTable("gnuhealth_hospital_ward"); !ok || m.Name != "gnuhealth.hospital.ward" {
		t.Error("ByTable(gnuhealth_hospital_ward) failed")
	}
	if _, ok := r.Lookup("res.user"); ok {
		t.Error("Lookup found an unregistered model")
	}
}

func TestNewRegistry_Rejects(t *testing.T) {
	cases := []struct {
		name  string
		alter func([]*Model) []*Model
		want  string
	}{
		{"duplicate model", func(ms []*Model) []*Model { return append(ms, Define("party.party", "party", ByUUID)) }, "registered twice"},
		{"duplicate table", func(ms []*Model) []*Model {
			m := Define("party.other", "party", ByUUID)
			m.Table = "party_party"
			return append(ms, m)
		}, "already party.party"},
		{"unregistered target", func(ms []*Model) []*Model {
			return append(ms, Define("gnuhealth.patient", "health", ByUUID, M2O("user", "res.user")))
		}, "targets res.user, which is not registered"},
		{"shared column", func(ms []*Model) []*Model {
			m := Define("x.y", "x", ByUUID, F("a", Char), F("b", Char))
			m.Fields[1].Column = "a"
			return append(ms, m)
		}, "fields a and b share column a"},
		{"audit column", func(ms []*Model) []*Model {
			return append(ms, Define("x.y", "x", ByUUID, F("write_date", Timestamp)))
		}, "audit column"},
		{"missing key field", func(ms []*Model) []*Model {
			return append(ms, Define("x.y", "x", Key("code"), F("name", Char)))
		}, "key field code is not a synchronised field"},
		{"unkeyable key", func(ms []*Model) []*Model {
			return append(ms, Define("x.y", "x", Key("photo"), F("photo", Binary)))
		}, "cannot be part of a key"},
		{"key part to a UUID model", func(ms []*Model) []*Model {
			return append(ms, Define("x.y", "x", Key("appointment", "code"),
				M2O("appointment", "gnuhealth.appointment").Required(), F("code", Char)))
		}, "has no natural key"},
		{"union on a scalar", func(ms []*Model) []*Model {
			return append(ms, Define("x.y", "x", ByUUID, F("n", Integer).Rule(merge.Union)))
		}, "needs a Many2Many"},
		{"invalid rule", func(ms []*Model) []*Model {
			return append(ms, Define("x.y", "x", ByUUID, F("n", Integer).Rule(merge.Rule(99))))
		}, "invalid rule"},
		{"required cycle", func(ms []*Model) []*Model {
			return append(ms,
				Define("a.a", "x", ByUUID, M2O("b", "b.b").Required()),
				Define("b.b", "x", ByUUID, M2O("a", "a.a").Required()))
		}, "form a cycle among a.a, b.b"},
		{"key cycle", func(ms []*Model) []*Model {
			return append(ms,
				Define("a.a", "x", Key("b"), M2O("b", "b.b")),
				Define("b.b", "x", Key("a"), M2O("a", "a.a")))
		}, "borrows from itself"},
		{"active without field", func(ms []*Model) []*Model {
			m := Define("x.y", "x", ByUUID)
			m.Active = true
			return append(ms, m)
		}, "Active is true"},
		{"skipped and synced", func(ms []*Model) []*Model {
			return append(ms, Define("x.y", "x", ByUUID, F("n", Integer), Skip("n", "why")))
		}, "both synchronised and in NotSynced"},
		{"skip without reason", func(ms []*Model) []*Model {
			return append(ms, Define("x.y", "x", ByUUID, Skip("n", " ")))
		}, "has no reason"},
		{"literal: unique key of two fields", func(ms []*Model) []*Model {
			return append(ms, &Model{Name: "x.y", Table: "x_y", Module: "x", Kind: UniqueKey, Key: []string{"a", "b"},
				Fields: []Field{{Name: "a", Column: "a", Type: Char}, {Name: "b", Column: "b", Type: Char}}})
		}, "a unique key has one field, not 2"},
		{"literal: many2many without relation", func(ms []*Model) []*Model {
			return append(ms, &Model{Name: "x.y", Table: "x_y", Module: "x", Kind: UUIDKey,
				Fields: []Field{{Name: "tags", Type: Many2Many, Target: "party.party"}}})
		}, "needs a relation table"},
		{"literal: column differs", func(ms []*Model) []*Model {
			return append(ms, &Model{Name: "x.y", Table: "x_y", Module: "x", Kind: UUIDKey,
				Fields: []Field{{Name: "a", Column: "b", Type: Char}}})
		}, `has column "b"`},
		{"literal: no kind", func(ms []*Model) []*Model {
			return append(ms, &Model{Name: "x.y", Table: "x_y", Module: "x"})
		}, "invalid sync kind"},
		{"literal: bad on delete", func(ms []*Model) []*Model {
			return append(ms, &Model{Name: "x.y", Table: "x_y", Module: "x", Kind: UUIDKey,
				Fields: []Field{{Name: "p", Column: "p", Type: Many2One, Target: "party.party", OnDelete: "NO ACTION"}}})
		}, "ON DELETE"},
		{"literal: rule not in policy", func(ms []*Model) []*Model {
			return append(ms, &Model{Name: "x.y", Table: "x_y", Module: "x", Kind: UUIDKey,
				Fields: []Field{{Name: "a", Column: "a", Type: Char, Rule: merge.FirstWins, HasRule: true}}})
		}, "Policy.Fields says otherwise"},
		{"literal: union default", func(ms []*Model) []*Model {
			return append(ms, &Model{Name: "x.y", Table: "x_y", Module: "x", Kind: UUIDKey, Policy: merge.Policy{Default: merge.Union}})
		}, "default rule union"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := NewRegistry(c.alter(base())...)
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrInvalidRegistry) {
				t.Errorf("error %v is not ErrInvalidRegistry", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not say %q", err, c.want)
			}
		})
	}
}

// Cycles through optional Many2Ones are fine; the order stays stable.
func TestNewRegistry_OptionalCycle(t *testing.T) {
	r, err := NewRegistry(
		Define("b.b", "x", ByUUID, M2O("a", "a.a")),
		Define("a.a", "x", ByUUID, M2O("b", "b.b"), M2O("self", "a.a")),
	)
	if err != nil {
		t.Fatal(err)
	}
	if ms := r.Models(); ms[0].Name != "a.a" || ms[1].Name != "b.b" {
		t.Errorf("order %s, %s; want name order", ms[0].Name, ms[1].Name)
	}
}

// TestBorrowers: a patient's key is its person's code, so the registry
// names gnuhealth.patient's name among party.party's borrowers, and
// models keyed by UUID borrow nothing.
func TestBorrowers(t *testing.T) {
	reg := GNUHealth()
	found := false
	for _, kp := range reg.Borrowers("party.party") {
		if kp.Model.Kind == UUIDKey || kp.Field.Type != Many2One || kp.Field.Target != "party.party" || kp.Model.Key[kp.Index] != kp.Field.Name {
			t.Errorf("borrower %s.%s (part %d) does not borrow party.party's key", kp.Model.Name, kp.Field.Name, kp.Index)
		}
		found = found || (kp.Model.Name == "gnuhealth.patient" && kp.Field.Name == "name")
	}
	if !found {
		t.Fatalf("gnuhealth.patient's name is not among party.party's borrowers: %v", reg.Borrowers("party.party"))
	}
	for _, m := range reg.Models() {
		if m.Kind == UUIDKey && len(m.BorrowedKeyParts()) != 0 {
			t.Errorf("%s, keyed by UUID, borrows a key", m.Name)
		}
	}
}
