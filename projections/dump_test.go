package projections_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/ledger/ledgertest"
	"github.com/ghsync/ghsync/models"
)

// everyTypeRegistry has a field of every column type the projector writes.
func everyTypeRegistry(tb testing.TB) *models.Registry {
	tb.Helper()
	reg, err := models.NewRegistry(
		models.Define("party.category", "party", models.Key("name"),
			models.F("name", models.Char).Required(),
		),
		models.Define("party.party", "party", models.Key("code"),
			models.F("code", models.Char).Required(),
			models.F("name", models.Char),
			models.F("note", models.Text),
			models.F("gender", models.Selection),
			models.F("beds", models.Integer),
			models.F("big", models.BigInteger),
			models.F("ratio", models.Float),
			models.F("weight", models.Numeric),
			models.F("deceased", models.Boolean),
			models.F("dob", models.Date),
			models.F("seen", models.DateTime),
			models.F("stamp", models.Timestamp),
			models.F("opens", models.Time),
			models.F("photo", models.Binary),
			models.M2O("parent", "party.party"),
			models.M2M("categories", "party.category", "party_category_rel", "party", "category"),
		),
	)
	if err != nil {
		tb.Fatalf("registry: %v", err)
	}
	return reg
}

// TestDumpSameOnBothBackends: the same events projected into PostgreSQL
// and SQLite dump byte for byte the same, NULLs, empty values and
// awkward numbers included, and NULL reads as null whatever the type.
func TestDumpSameOnBothBackends(t *testing.T) {
	reg := everyTypeRegistry(t)
	o := ledgertest.NewOrigin(3)
	dec := func(s string) ledger.Value {
		v, err := ledger.Decimal(s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	day, err := ledger.Date(time.Date(1984, 2, 29, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	old, err := ledger.Date(time.Date(99, 1, 5, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	cats, err := ledger.RefSet(ledger.Ref{Model: "party.category", Key: "vip"})
	if err != nil {
		t.Fatal(err)
	}
	str, null := ledger.String, ledger.Null()
	evs := []*ledger.Event{
		o.Event(t, "party.category", "vip", ledger.OpCreate, map[string]ledger.Value{"name": str("vip")}),
		// Nothing but the key: every other column NULL.
		o.Event(t, "party.party", "NULLS", ledger.OpCreate, map[string]ledger.Value{"code": str("NULLS")}),
		// Explicit nulls, as a capture of an emptied field sends them.
		o.Event(t, "party.party", "EXPLICIT", ledger.OpCreate, map[string]ledger.Value{"code": str("EXPLICIT"),
			"name": null, "note": null, "gender": null, "beds": null, "big": null, "ratio": null, "weight": null,
			"deceased": null, "dob": null, "seen": null, "stamp": null, "opens": null, "photo": null, "parent": null}),
		// Empty, not NULL.
		o.Event(t, "party.party", "EMPTY", ledger.OpCreate, map[string]ledger.Value{"code": str("EMPTY"),
			"name": str(""), "note": str(""), "photo": ledger.Bytes([]byte{}), "deceased": ledger.Bool(false),
			"beds": ledger.Int(0), "ratio": dec("0"), "weight": dec("0")}),
		o.Event(t, "party.party", "FULL", ledger.OpCreate, map[string]ledger.Value{"code": str("FULL"),
			"name": str("Ann \"Nan\" Smith\n"), "note": str("line one\nline two"), "gender": str("f"),
			"beds": ledger.Int(-7), "big": ledger.Int(1 << 53), "deceased": ledger.Bool(true),
			"ratio":  dec("0.30000000000000004"), // 17 digits: a REAL cast to text keeps 15
			"weight": dec("12.50"),
			"dob":    day, "seen": when(t, time.Date(2024, 3, 1, 8, 30, 15, 0, time.UTC)),
			"stamp": when(t, time.Date(2024, 3, 1, 8, 30, 15, 123456000, time.UTC)),
			"opens": str("08:30"), "photo": ledger.Bytes([]byte{0, 1, 0xfe, 'x'}),
			"parent": ref(t, "party.party", "EMPTY"), "categories": cats}),
		o.Event(t, "party.party", "BIG", ledger.OpCreate, map[string]ledger.Value{"code": str("BIG"),
			"ratio":  dec("100000000000000000000"), // printed with an exponent by both backends
			"weight": dec("1234567.5"), "dob": old, "opens": str("23:59:59.5"), "deceased": ledger.Bool(false)}),
		o.Event(t, "party.party", "SMALL", ledger.OpCreate, map[string]ledger.Value{"code": str("SMALL"),
			"ratio": dec("-0.00001"), "weight": dec("-3"), "seen": when(t, time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC))}),
	}
	store := memLedger(t)
	if _, err := store.Append(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	pg := project(t, openProjector(t, pgTarget(t, reg), store, reg, 3))
	lite := project(t, openProjector(t, sqliteTarget(t, reg), store, reg, 3))
	if len(pg.rejected) > 0 || len(pg.parked) > 0 {
		t.Fatalf("rejected %v, parked %v", pg.rejected, pg.parked)
	}
	if lite.dump != pg.dump {
		t.Fatalf("the SQLite target dumps differently from the PostgreSQL one\n%s\nPostgreSQL:\n%s", firstDiff(lite.dump, pg.dump), pg.dump)
	}
	if lite.hash != pg.hash {
		t.Fatalf("equal dumps, different hashes %s and %s", lite.hash, pg.hash)
	}
	lines := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(pg.dump), "\n") {
		if rest, ok := strings.CutPrefix(l, `party.party "`); ok {
			code, _, _ := strings.Cut(rest, `"`)
			lines[code] = l
		}
	}
	for _, code := range []string{"NULLS", "EXPLICIT"} {
		for _, f := range []string{"name", "note", "gender", "beds", "big", "ratio", "weight", "deceased", "dob", "seen", "stamp", "opens", "photo", "parent"} {
			if !strings.Contains(lines[code], " "+f+"=null") {
				t.Errorf("%s: %s is NULL but does not dump as null:\n%s", code, f, lines[code])
			}
		}
	}
	for code, want := range map[string][]string{
		"EMPTY": {`name=""`, `note=""`, `photo=""`, `deceased="0"`, `beds="0"`, `ratio=0 `, `weight=0 `},
		"FULL": {`photo="0001fe78"`, `deceased="1"`, `ratio=0.30000000000000004 `, `weight=12.5 `, `dob=1984-02-29 `,
			`seen=2024-03-01T08:30:15.000000Z`, `stamp=2024-03-01T08:30:15.123456Z`, `opens="08:30:00"`, `big="9007199254740992"`,
			`parent=→"EMPTY"`, `categories={"vip"}`},
		"BIG":   {`ratio=100000000000000000000 `, `weight=1234567.5 `, `dob=0099-01-05 `, `opens="23:59:59.5"`},
		"SMALL": {`ratio=-0.00001 `, `weight=-3 `, `seen=0001-01-01T00:00:00.000000Z`},
	} {
		for _, w := range want {
			if !strings.Contains(lines[code], w) {
				t.Errorf("%s: dump lacks %s:\n%s", code, w, lines[code])
			}
		}
	}
}
