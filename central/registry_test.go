package central_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ghsync/ghsync/central"
	"github.com/ghsync/ghsync/internal/dbopen"
	"github.com/ghsync/ghsync/internal/pgtest"
	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/wire"
)

func TestRegistrySQLite(t *testing.T) {
	runRegistryContract(t, func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "central.db") })
}

func TestRegistryPostgres(t *testing.T) {
	runRegistryContract(t, func(t *testing.T) string { return pgtest.NewDatabase(t) })
}

// runRegistryContract is the one contract both Registry backends pass.
func runRegistryContract(t *testing.T, location func(t *testing.T) string) {
	ctx := context.Background()
	open := func(t *testing.T, loc string) central.Registry {
		r, err := central.OpenRegistry(ctx, loc)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		return r
	}
	t.Run("Satellites", func(t *testing.T) {
		loc := location(t)
		r := open(t, loc)
		tok, hash, err := central.NewToken()
		if err != nil || len(tok) != len(central.TokenPrefix)+43 || !strings.HasPrefix(tok, central.TokenPrefix) || central.HashToken(tok) != hash {
			t.Fatalf("token %q: %v", tok, err)
		}
		created := time.Date(2026, 11, 30, 8, 0, 0, 123000, time.UTC)
		if err := r.AddSatellite(ctx, central.Satellite{ID: 7, Name: "Kingston", Scope: wire.ScopeLocal, TokenHash: hash, Created: created}); err != nil {
			t.Fatal(err)
		}
		_, other, _ := central.NewToken()
		if err := r.AddSatellite(ctx, central.Satellite{ID: 7, Name: "again", Scope: wire.ScopeAll, TokenHash: other, Created: created}); !errors.Is(err, central.ErrExists) {
			t.Fatalf("adding an active id twice: %v", err)
		}
		if err := r.AddSatellite(ctx, central.Satellite{ID: 0, Name: "central", Scope: wire.ScopeAll, TokenHash: other}); err == nil {
			t.Fatal("satellite id 0 accepted")
		}
		// Reopened: it persisted.
		r2 := open(t, loc)
		s, err := r2.SatelliteByToken(ctx, hash)
		if err != nil || s.ID != 7 || s.Name != "Kingston" || s.Scope != wire.ScopeLocal || !s.Created.Equal(created) || !s.Active() {
			t.Fatalf("by token: %+v %v", s, err)
		}
		if _, err := r2.SatelliteByToken(ctx, other); !errors.Is(err, central.ErrNotFound) {
			t.Fatalf("unknown token: %v", err)
		}
		if err := r2.RevokeSatellite(ctx, 7, created.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if err := r2.RevokeSatellite(ctx, 7, created.Add(time.Hour)); !errors.Is(err, central.ErrNotFound) {
			t.Fatalf("revoking twice: %v", err)
		}
		if s, _ := r2.SatelliteByToken(ctx, hash); s.Active() || !s.Revoked.Equal(created.Add(time.Hour)) {
			t.Fatalf("revoked satellite: %+v", s)
		}
		// A revoked id can be registered again, with a new token.
		if err := r2.AddSatellite(ctx, central.Satellite{ID: 7, Name: "Kingston 2", Scope: wire.ScopeAll, TokenHash: other, Created: created}); err != nil {
			t.Fatal(err)
		}
		if _, err := r2.SatelliteByToken(ctx, hash); !errors.Is(err, central.ErrNotFound) {
			t.Fatalf("the old token still resolves: %v", err)
		}
		all, err := r2.Satellites(ctx)
		if err != nil || len(all) != 1 || all[0].Name != "Kingston 2" || !all[0].Active() {
			t.Fatalf("list: %+v %v", all, err)
		}
	})
	t.Run("ChangeSatellite", func(t *testing.T) {
		// A scope or name changes in place: the token, the registration,
		// the held set and the stability report stay, so the running
		// satellite is neither locked out nor restarted.
		loc := location(t)
		r := open(t, loc)
		_, hash, _ := central.NewToken()
		created := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
		if err := r.AddSatellite(ctx, central.Satellite{ID: 2, Name: "Portland HC", Scope: wire.ScopeLocal, TokenHash: hash, Created: created}); err != nil {
			t.Fatal(err)
		}
		held := []central.HeldStream{{Stream: ledger.Stream{Model: "party.party", Key: "P1"}, Expand: true, Join: 4}}
		if err := r.Hold(ctx, 2, held); err != nil {
			t.Fatal(err)
		}
		report := central.Stability{Origin: 2, HLC: 1 << 40, Applied: 9, Reported: created}
		if err := r.ReportStable(ctx, report); err != nil {
			t.Fatal(err)
		}
		before, after, err := r.ChangeSatellite(ctx, 2, central.SatelliteChange{Scope: wire.ScopeAll})
		if err != nil || before.Scope != wire.ScopeLocal || before.Widened != 0 || after.Scope != wire.ScopeAll || after.Widened != 1 || after.Name != "Portland HC" {
			t.Fatalf("widen: %+v -> %+v, %v", before, after, err)
		}
		s, err := open(t, loc).SatelliteByToken(ctx, hash) // reopened: persisted
		if err != nil || s.Scope != wire.ScopeAll || s.Widened != 1 || !s.Created.Equal(created) || !s.Active() {
			t.Fatalf("the same token after widening: %+v %v", s, err)
		}
		if got, _ := r.HeldAmong(ctx, 2, []ledger.Stream{held[0].Stream}); len(got) != 1 {
			t.Fatal("widening dropped the held set")
		}
		if reps, _ := r.Stabilities(ctx); len(reps) != 1 || reps[0] != report {
			t.Fatalf("widening forgot the stability report: %+v", reps)
		}
		// Narrowing and renaming count no widening; widening again does.
		for _, c := range []struct {
			change  central.SatelliteChange
			scope   string
			name    string
			widened uint64
		}{
			{central.SatelliteChange{Scope: wire.ScopeAll}, wire.ScopeAll, "Portland HC", 1},
			{central.SatelliteChange{Name: "Portland"}, wire.ScopeAll, "Portland", 1},
			{central.SatelliteChange{Scope: wire.ScopeLocal}, wire.ScopeLocal, "Portland", 1},
			{central.SatelliteChange{Scope: wire.ScopeAll, Name: "Portland HC"}, wire.ScopeAll, "Portland HC", 2},
		} {
			_, after, err := r.ChangeSatellite(ctx, 2, c.change)
			if err != nil || after.Scope != c.scope || after.Name != c.name || after.Widened != c.widened || after.TokenHash != hash {
				t.Fatalf("change %+v: %+v, %v", c.change, after, err)
			}
		}
		if _, _, err := r.ChangeSatellite(ctx, 2, central.SatelliteChange{Scope: "everything"}); err == nil {
			t.Fatal("an unknown scope was accepted")
		}
		if _, _, err := r.ChangeSatellite(ctx, 9, central.SatelliteChange{Scope: wire.ScopeAll}); !errors.Is(err, central.ErrNotFound) {
			t.Fatalf("an unknown satellite: %v", err)
		}
		if err := r.RevokeSatellite(ctx, 2, created.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if _, _, err := r.ChangeSatellite(ctx, 2, central.SatelliteChange{Name: "x"}); !errors.Is(err, central.ErrNotFound) {
			t.Fatalf("a revoked satellite: %v", err)
		}
		_, other, _ := central.NewToken()
		if err := r.AddSatellite(ctx, central.Satellite{ID: 3, Name: "new", Scope: wire.ScopeAll, TokenHash: other, Created: created}); err != nil {
			t.Fatal(err)
		}
		if s, _ := r.SatelliteByToken(ctx, other); s.Widened != 0 {
			t.Fatalf("registered with scope all from the start: widened %d", s.Widened)
		}
	})
	t.Run("WidenedByRegisteringAgain", func(t *testing.T) {
		// Registered again over a revoked registration with a wider scope:
		// the instance keeps its ledger and cursor, so that is a widening.
		r := open(t, location(t))
		_, h1, _ := central.NewToken()
		_, h2, _ := central.NewToken()
		if err := r.AddSatellite(ctx, central.Satellite{ID: 4, Name: "a", Scope: wire.ScopeLocal, TokenHash: h1, Created: time.Now()}); err != nil {
			t.Fatal(err)
		}
		if err := r.RevokeSatellite(ctx, 4, time.Now()); err != nil {
			t.Fatal(err)
		}
		if err := r.AddSatellite(ctx, central.Satellite{ID: 4, Name: "a", Scope: wire.ScopeAll, TokenHash: h2, Created: time.Now()}); err != nil {
			t.Fatal(err)
		}
		if s, err := r.SatelliteByToken(ctx, h2); err != nil || s.Widened != 1 {
			t.Fatalf("registered again with scope all: %+v %v", s, err)
		}
	})
	t.Run("Identity", func(t *testing.T) {
		loc := location(t)
		id, err := open(t, loc).Identity(ctx)
		if err != nil || uuid.Validate(id) != nil {
			t.Fatalf("identity %q: %v", id, err)
		}
		if again, err := open(t, loc).Identity(ctx); err != nil || again != id {
			t.Fatalf("reopened: identity %q, %v; want %q", again, err, id)
		}
		if other, _ := open(t, location(t)).Identity(ctx); other == id {
			t.Fatal("two centrals share an identity")
		}
	})
	t.Run("UpgradeSatellites", func(t *testing.T) {
		// A registry made before scope widenings were counted gains the
		// column, its satellites at 0.
		loc := location(t)
		db, dialect, _, err := dbopen.Open(loc)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		create := `CREATE TABLE ghsync_satellites (id INTEGER PRIMARY KEY, name TEXT NOT NULL, scope TEXT NOT NULL,
			token_hash BLOB NOT NULL UNIQUE, created_us INTEGER NOT NULL, revoked_us INTEGER) STRICT`
		if dialect == dbopen.Postgres {
			create = `CREATE SCHEMA ghsync; CREATE TABLE ghsync.satellites (id smallint PRIMARY KEY, name text NOT NULL, scope text NOT NULL,
				token_hash bytea NOT NULL UNIQUE, created_us bigint NOT NULL, revoked_us bigint)`
		}
		if _, err := db.Exec(create); err != nil {
			t.Fatal(err)
		}
		_, hash, _ := central.NewToken()
		insert := `INSERT INTO ghsync_satellites VALUES (5, 'old', 'local', ?, 1, NULL)`
		if dialect == dbopen.Postgres {
			insert = `INSERT INTO ghsync.satellites VALUES (5, 'old', 'local', $1, 1, NULL)`
		}
		if _, err := db.Exec(insert, hash[:]); err != nil {
			t.Fatal(err)
		}
		r := open(t, loc)
		if s, err := r.SatelliteByToken(ctx, hash); err != nil || s.Scope != wire.ScopeLocal || s.Widened != 0 {
			t.Fatalf("after the upgrade: %+v %v", s, err)
		}
		if _, after, err := r.ChangeSatellite(ctx, 5, central.SatelliteChange{Scope: wire.ScopeAll}); err != nil || after.Widened != 1 {
			t.Fatalf("widened after the upgrade: %+v %v", after, err)
		}
	})
	t.Run("HeldSet", func(t *testing.T) {
		r := open(t, location(t))
		var many []central.HeldStream
		var want []ledger.Stream
		for i := range 1000 { // more than one statement's batch
			st := ledger.Stream{Model: "party.party", Key: "P" + uuid.NewString()}
			many = append(many, central.HeldStream{Stream: st, Expand: i%2 == 0, Join: uint64(i + 1)})
			want = append(want, st)
		}
		if err := r.Hold(ctx, 3, many); err != nil {
			t.Fatal(err)
		}
		got, err := r.HeldAmong(ctx, 3, append(slices.Clone(want), ledger.Stream{Model: "party.party", Key: "absent"}))
		if err != nil || len(got) != 1000 {
			t.Fatalf("held among: %d, %v", len(got), err)
		}
		if h := got[want[10]]; !h.Expand || h.Join != 11 {
			t.Fatalf("stream 10: %+v", h)
		}
		if other, _ := r.HeldAmong(ctx, 4, want); len(other) != 0 {
			t.Fatal("another satellite's held set is not empty")
		}
		// Re-holding keeps the join position; expand only turns on.
		if err := r.Hold(ctx, 3, []central.HeldStream{{Stream: want[1], Expand: true, Join: 999}, {Stream: want[2], Expand: false, Join: 999}}); err != nil {
			t.Fatal(err)
		}
		got, _ = r.HeldAmong(ctx, 3, want[:3])
		if h := got[want[1]]; !h.Expand || h.Join != 2 {
			t.Fatalf("re-held stream 1: %+v", h)
		}
		if h := got[want[2]]; !h.Expand || h.Join != 3 {
			t.Fatalf("re-held stream 2: %+v", h)
		}
		joined, err := r.JoinedBetween(ctx, 3, 10, 13)
		if err != nil || len(joined) != 3 || joined[0].Join != 11 || joined[2].Join != 13 {
			t.Fatalf("joined in (10, 13]: %+v %v", joined, err)
		}
		if n, err := r.HeldCount(ctx, 3); err != nil || n != 1000 {
			t.Fatalf("count %d %v", n, err)
		}
	})
	t.Run("HeldEvents", func(t *testing.T) {
		r := open(t, location(t))
		now := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
		ev := func(origin uint16, seq uint64) central.HeldEvent {
			return central.HeldEvent{Origin: origin, Seq: seq, ID: uuid.Must(uuid.NewV7()), Model: "party.party", Key: "k",
				HLC: 77, Payload: []byte{1, 2, byte(seq)}, Reason: "ahead", SkewMillis: 3600000, Received: now}
		}
		n, err := r.KeepEvents(ctx, []central.HeldEvent{ev(2, 5), ev(2, 6), ev(3, 1)})
		if err != nil || n != 3 {
			t.Fatalf("keep: %d %v", n, err)
		}
		if n, err := r.KeepEvents(ctx, []central.HeldEvent{ev(2, 6), ev(2, 7)}); err != nil || n != 1 {
			t.Fatalf("keep again: %d %v", n, err)
		}
		all, err := r.HeldEvents(ctx, -1)
		if err != nil || len(all) != 4 || all[3].Origin != 3 {
			t.Fatalf("all held: %+v %v", all, err)
		}
		two, _ := r.HeldEvents(ctx, 2)
		if len(two) != 3 || two[0].Seq != 5 || two[0].SkewMillis != 3600000 || !two[0].Received.Equal(now) || two[0].Payload[2] != 5 || two[0].HLC != 77 {
			t.Fatalf("origin 2: %+v", two)
		}
		if err := r.ForgetEvents(ctx, 2, 6); err != nil {
			t.Fatal(err)
		}
		if two, _ := r.HeldEvents(ctx, 2); len(two) != 1 || two[0].Seq != 7 {
			t.Fatalf("after forget: %+v", two)
		}
	})
	t.Run("Index", func(t *testing.T) {
		r := open(t, location(t))
		p := func(k string) ledger.Stream { return ledger.Stream{Model: "party.party", Key: k} }
		pat := func(k string) ledger.Stream { return ledger.Stream{Model: "gnuhealth.patient", Key: k} }
		id1, id2 := uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
		edges := []central.Edge{{From: pat("A"), To: p("A")}, {From: pat("B"), To: p("B")}, {From: pat("A"), To: p("A")}}
		if err := r.AddToIndex(ctx, 0, 10, edges, []central.PUID{{Party: "A", Ref: "JM1", HLC: 5, Origin: 1, ID: id1}}); err != nil {
			t.Fatal(err)
		}
		if err := r.AddToIndex(ctx, 0, 20, nil, nil); !errors.Is(err, central.ErrIndexMoved) {
			t.Fatalf("stale index position: %v", err)
		}
		// An older value does not replace a newer one; a newer one does.
		if err := r.AddToIndex(ctx, 10, 20, nil, []central.PUID{{Party: "A", Ref: "OLD", HLC: 4, Origin: 9, ID: id2}, {Party: "B", Ref: "JM1", HLC: 1, Origin: 1, ID: id2}}); err != nil {
			t.Fatal(err)
		}
		if pos, _ := r.IndexPosition(ctx); pos != 20 {
			t.Fatalf("index position %d", pos)
		}
		if got, err := r.PartiesByPUID(ctx, "JM1"); err != nil || !slices.Equal(got, []string{"A", "B"}) {
			t.Fatalf("by PUID: %v %v", got, err)
		}
		if err := r.AddToIndex(ctx, 20, 30, nil, []central.PUID{{Party: "B", Ref: "", HLC: 9, Origin: 1, ID: id1}}); err != nil {
			t.Fatal(err)
		}
		if got, _ := r.PartiesByPUID(ctx, "JM1"); !slices.Equal(got, []string{"A"}) {
			t.Fatalf("after clearing B's ref: %v", got)
		}
		// Every PUID a party ever had still finds it.
		for puid, want := range map[string][]string{"JM1": {"A", "B"}, "OLD": {"A"}, "never": nil} {
			if got, err := r.PartiesOnceByPUID(ctx, puid); err != nil || !slices.Equal(got, want) {
				t.Fatalf("parties that ever had PUID %s: %v, %v; want %v", puid, got, err, want)
			}
		}
		in, err := r.Referrers(ctx, []ledger.Stream{p("A"), p("Z")})
		if err != nil || len(in) != 1 || in[0].From != pat("A") {
			t.Fatalf("referrers: %+v %v", in, err)
		}
		out, err := r.Targets(ctx, []ledger.Stream{pat("A"), pat("B")})
		if err != nil || len(out) != 2 {
			t.Fatalf("targets: %+v %v", out, err)
		}
	})
	t.Run("IndexUpgrade", func(t *testing.T) {
		// A registry from before the index of every PUID ever held is
		// indexed again from the start when opened.
		loc := location(t)
		r := open(t, loc)
		if err := r.AddToIndex(ctx, 0, 10, nil, []central.PUID{{Party: "A", Ref: "JM1", HLC: 5, Origin: 1, ID: uuid.Must(uuid.NewV7())}}); err != nil {
			t.Fatal(err)
		}
		db, dialect, _, err := dbopen.Open(loc)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		table := "ghsync_central_puid_seen"
		if dialect == dbopen.Postgres {
			table = "ghsync.central_puid_seen"
		}
		if _, err := db.Exec(`DROP TABLE ` + table); err != nil {
			t.Fatal(err)
		}
		r = open(t, loc)
		if pos, err := r.IndexPosition(ctx); err != nil || pos != 0 {
			t.Fatalf("index position after the upgrade: %d, %v; want 0", pos, err)
		}
		if err := r.AddToIndex(ctx, 0, 10, nil, nil); err != nil {
			t.Fatal(err)
		}
		if pos, err := open(t, loc).IndexPosition(ctx); err != nil || pos != 10 {
			t.Fatalf("reopened once upgraded: %d, %v; want 10", pos, err)
		}
	})
	t.Run("Stability", func(t *testing.T) {
		loc := location(t)
		r := open(t, loc)
		at := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
		for _, st := range []central.Stability{
			{Origin: 3, HLC: 1 << 40, Applied: 7, Reported: at},
			{Origin: 0, HLC: 1 << 41, Applied: 9, Reported: at},
			{Origin: 3, HLC: 1 << 42, Applied: 8, Reported: at.Add(time.Minute)}, // replaces the first
		} {
			if err := r.ReportStable(ctx, st); err != nil {
				t.Fatal(err)
			}
		}
		if err := r.ReportStable(ctx, central.Stability{Origin: 4, HLC: 1 << 63, Reported: at}); err == nil {
			t.Fatal("an HLC beyond the stored range was accepted")
		}
		got, err := open(t, loc).Stabilities(ctx) // reopened: persisted
		want := []central.Stability{{Origin: 0, HLC: 1 << 41, Applied: 9, Reported: at}, {Origin: 3, HLC: 1 << 42, Applied: 8, Reported: at.Add(time.Minute)}}
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("stability reports %+v %v, want %+v", got, err, want)
		}
		// Raising: each field only grows, and nothing is written when neither does.
		later := at.Add(time.Hour)
		for _, c := range []struct {
			st     central.Stability
			raised bool
			want   central.Stability
		}{
			{central.Stability{Origin: 3, HLC: 1 << 41, Applied: 8, Reported: later}, false, want[1]},
			{central.Stability{Origin: 3, HLC: 1 << 41, Applied: 12, Reported: later}, true, central.Stability{Origin: 3, HLC: 1 << 42, Applied: 12, Reported: later}},
			{central.Stability{Origin: 5, HLC: 1 << 40, Applied: 2, Reported: later}, true, central.Stability{Origin: 5, HLC: 1 << 40, Applied: 2, Reported: later}},
		} {
			raised, err := r.RaiseStable(ctx, c.st)
			if err != nil || raised != c.raised {
				t.Fatalf("raise %+v: %v, %v; want raised %v", c.st, raised, err, c.raised)
			}
			all, err := r.Stabilities(ctx)
			if i := slices.IndexFunc(all, func(s central.Stability) bool { return s.Origin == c.st.Origin }); err != nil || i < 0 || all[i] != c.want {
				t.Fatalf("after raising %+v: %+v, %v; want %+v", c.st, all, err, c.want)
			}
		}
	})
}
