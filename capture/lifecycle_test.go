package capture_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ghsync/ghsync/capture"
	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/models"
	"github.com/ghsync/ghsync/projections"
)

// TestKeyChangeMovesIdentity: changing a party's code is a move of its
// identity, not a delete plus an unrelated create. At the site that made
// it and at a site that receives it, the row keeps its id and the address
// still points at it; a late reference to the old code follows the alias.
func TestKeyChangeMovesIdentity(t *testing.T) {
	forEachLayout(t, func(t *testing.T, lay layout) {
		a, b := newSite(t, lay, 1), newSite(t, lay, 2)
		party := a.insert("party_party", 1, map[string]any{"code": "A-1", "name": "Ana", "active": true})
		a.insert("party_address", 1, map[string]any{"party": party, "city": "Ocho Rios", "active": true})
		a.drain()
		b.receive(a)
		b.project()
		idB := b.int(`SELECT id FROM party_party WHERE code = 'A-1'`)

		a.update("party_party", party, 1, map[string]any{"code": "A-0001"})
		evs := a.drain()
		if len(evs) != 2 || evs[0].Op != ledger.OpCreate || evs[0].Key != "A-0001" || evs[1].Op != ledger.OpDelete || evs[1].Key != "A-1" {
			t.Fatalf("key change captured as %v, want create A-0001 then delete A-1", evs)
		}
		if from, ok := evs[0].Fields[models.RenamedFrom].AsRef(); !ok || from.Key != "A-1" {
			t.Fatalf("create of the new key does not name the old one: %v", evs[0].Fields)
		}
		if evs[0].Fields["name"].String() != ledger.String("Ana").String() {
			t.Fatalf("the moved record lost its fields: %v", evs[0].Fields)
		}
		// Later changes at a use the new identity.
		a.update("party_party", party, 1, map[string]any{"name": "Ana M."})
		if evs := a.drain(); len(evs) != 1 || evs[0].Key != "A-0001" {
			t.Fatalf("write after the move captured as %v, want a write to A-0001", evs)
		}
		a.project()
		b.receive(a)
		b.project()
		for _, s := range []*site{a, b} {
			id := s.int(`SELECT id FROM party_party WHERE code = 'A-0001'`)
			if s == b && id != idB {
				t.Fatalf("origin %d: the moved party got id %d, had %d: identity was not kept", s.origin, id, idB)
			}
			if n := s.int(`SELECT count(*) FROM party_party`); n != 1 {
				t.Fatalf("origin %d has %d parties, want 1", s.origin, n)
			}
			if n := s.int(s.q(`SELECT count(*) FROM party_address WHERE party = ?`), id); n != 1 {
				t.Fatalf("origin %d: the address no longer points at the moved party", s.origin)
			}
		}
		// b, not yet aware of the move when it made it, adds an address
		// to the old code: it lands on the moved party.
		old := ledgerEvent(t, 3, "party.address", "late-address", ledger.OpCreate, map[string]ledger.Value{
			"party": ref(t, "party.party", "A-1"), "city": ledger.String("Negril"), "active": ledger.Bool(true)})
		if _, err := b.store.Append(ctx(t), []*ledger.Event{old}); err != nil {
			t.Fatal(err)
		}
		b.project()
		if n := b.int(b.q(`SELECT count(*) FROM party_address WHERE party = ?`), idB); n != 2 {
			t.Fatalf("a reference to the old code did not follow the move (%d addresses on the party)", n)
		}
	})
}

func ledgerEvent(t *testing.T, origin uint16, model, key string, op ledger.Op, fields map[string]ledger.Value) *ledger.Event {
	t.Helper()
	e := &ledger.Event{Model: model, Key: key, Op: op, Fields: fields, Origin: origin, OriginSeq: 1, HLC: 1 << 40}
	e.ID = [16]byte{byte(origin), 1, 2, 3, 4, 5, 0x70, 7, 0x80, 9, 10, 11, 12, 13, 14, 15}
	if err := e.Seal(ledger.Hash{}); err != nil {
		t.Fatal(err)
	}
	return e
}

// TestStatusAndUninstall: status shows the outbox depth and the oldest
// change; uninstall refuses while changes wait, then removes every trace
// and leaves Tryton's tables as they were.
func TestStatusAndUninstall(t *testing.T) {
	forEachLayout(t, func(t *testing.T, lay layout) {
		s := newSite(t, lay, 4)
		s.insert("party_party", 1, map[string]any{"code": "U-1", "name": "Una", "active": true})
		s.insert("party_party", 1, map[string]any{"code": "U-2", "name": "Dos", "active": true})
		st, err := capture.Inspect(ctx(t), s.target)
		if err != nil {
			t.Fatal(err)
		}
		if st.Pending != 2 || st.Oldest.IsZero() || st.Triggers != st.WantTriggers || len(st.Tables) == 0 || st.InstallID == "" {
			t.Fatalf("status %+v: want 2 pending, an oldest time, all triggers", st)
		}
		s.cap.Close()
		err = capture.Uninstall(ctx(t), s.target, false)
		if err == nil || !strings.Contains(err.Error(), "2 changes") {
			t.Fatalf("uninstall with 2 pending changes: %v, want a refusal naming them", err)
		}
		s.open(capture.Options{})
		s.drain()
		s.cap.Close()
		if err := capture.Uninstall(ctx(t), s.target, false); err != nil {
			t.Fatal(err)
		}
		if _, err := capture.Inspect(ctx(t), s.target); !errors.Is(err, capture.ErrNotInstalled) {
			t.Fatalf("status after uninstall: %v, want ErrNotInstalled", err)
		}
		traces := `SELECT count(*) FROM sqlite_master WHERE (name LIKE 'ghsync_capture%' AND name != 'ghsync_capture_off') OR name IN ('ghsync_outbox', 'ghsync_handoff')`
		if lay.dialect == models.Postgres {
			traces = `SELECT (SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'ghsync_capture%')
				+ (SELECT count(*) FROM pg_proc WHERE proname LIKE 'capture_%' AND pronamespace = 'ghsync'::regnamespace)
				+ (SELECT count(*) FROM pg_class WHERE relname IN ('outbox', 'handoff', 'capture_meta', 'capture_tables') AND relnamespace = 'ghsync'::regnamespace)`
		}
		if n := s.int(traces); n != 0 {
			t.Fatalf("%d capture objects left after uninstall", n)
		}
		// Tryton keeps working, uncaptured.
		s.insert("party_party", 1, map[string]any{"code": "U-3", "name": "Tres", "active": true})
		if n := s.int(`SELECT count(*) FROM party_party`); n != 3 {
			t.Fatalf("party_party has %d rows, want 3", n)
		}
	})
}

// TestSnapshotExistingRows: rows from before capture was installed become
// create events once, references and Many2Many included; a second run
// finds nothing new; changes made after the snapshot are drained as writes.
func TestSnapshotExistingRows(t *testing.T) {
	forEachLayout(t, func(t *testing.T, lay layout) {
		s := newSite(t, lay, 9)
		s.cap.Close()
		if err := capture.Uninstall(ctx(t), s.target, true); err != nil {
			t.Fatal(err)
		}
		var parties []int64
		for i := range 25 {
			id := s.insert("party_party", 1, map[string]any{"code": "OLD-" + string(rune('A'+i)), "name": "Old", "active": true})
			s.insert("party_address", 1, map[string]any{"party": id, "city": "Spanish Town", "active": true})
			parties = append(parties, id)
		}
		if _, err := capture.Install(ctx(t), s.target, s.reg); err != nil {
			t.Fatal(err)
		}
		s.open(capture.Options{BatchSize: 7}) // several chunks per table
		st, err := s.cap.Snapshot(ctx(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		evs := s.drain()
		if st.Events != 50 || len(evs) != 50 {
			t.Fatalf("snapshot made %d events (%d read back), want 50", st.Events, len(evs))
		}
		for _, e := range evs[25:] {
			if r, ok := e.Fields["party"].AsRef(); e.Model != "party.address" || !ok || !strings.HasPrefix(r.Key, "OLD-") {
				t.Fatalf("snapshot event %s: want addresses referencing their parties by code", e)
			}
		}
		if again, err := s.cap.Snapshot(ctx(t), nil); err != nil || again.Events != 0 {
			t.Fatalf("second snapshot: %+v %v, want nothing new", again, err)
		}
		s.update("party_party", parties[3], 1, map[string]any{"name": "Old but renamed"})
		if evs := s.drain(); len(evs) != 1 || evs[0].Op != ledger.OpWrite || evs[0].Key != "OLD-D" {
			t.Fatalf("after the snapshot an edit captured as %v, want one write to OLD-D", evs)
		}
	})
}

// TestColumnsChangedSinceInstall: the update triggers compare the columns
// a table had at install. A column added since is reported by status
// until install runs again, which makes the triggers compare it too; on
// PostgreSQL a compared column dropped since does not break the clinic's
// writes, which are still captured.
func TestColumnsChangedSinceInstall(t *testing.T) {
	forEachLayout(t, func(t *testing.T, lay layout) {
		s := newSite(t, lay, 5)
		id := s.insert("party_party", 1, map[string]any{"code": "C-1", "name": "Cleo", "active": true})
		s.drain()
		outdated := func() []string {
			t.Helper()
			st, err := capture.Inspect(ctx(t), s.target)
			if err != nil {
				t.Fatal(err)
			}
			return st.Outdated
		}
		if got := outdated(); len(got) != 0 {
			t.Fatalf("outdated right after install: %v", got)
		}
		s.exec(`ALTER TABLE party_party ADD COLUMN nickname VARCHAR`)
		s.exec(`ALTER TABLE party_party ADD COLUMN extra JSON`) // no equality operator on PostgreSQL
		if got := outdated(); len(got) != 1 || got[0] != "party_party" {
			t.Fatalf("outdated after adding a column: %v, want [party_party]", got)
		}
		if _, err := capture.Install(ctx(t), s.target, s.reg); err != nil {
			t.Fatal(err)
		}
		if got := outdated(); len(got) != 0 {
			t.Fatalf("outdated after install ran again: %v", got)
		}
		s.update("party_party", id, 1, map[string]any{"nickname": "Cle", "extra": `{"a": 1}`})
		s.update("party_party", id, 1, map[string]any{"extra": `{"a": 2}`})
		s.update("party_party", id, 1, map[string]any{"name": "Cleo B."})
		if n := s.outbox(); n != 3 {
			t.Fatalf("%d outbox rows after three updates of new columns and name, want 3", n)
		}
		evs := s.drain()
		if len(evs) != 1 || evs[0].Fields["name"].String() != ledger.String("Cleo B.").String() {
			t.Fatalf("captured %v, want one write of name (nickname and extra are not synchronised)", evs)
		}
		if lay.dialect != models.Postgres {
			// SQLite refuses to drop a column its triggers read.
			if _, err := s.db.ExecContext(ctx(t), `ALTER TABLE party_party DROP COLUMN nickname`); err == nil {
				t.Fatal("SQLite dropped a column the capture triggers read")
			}
			return
		}
		s.exec(`ALTER TABLE party_party DROP COLUMN nickname`)
		s.update("party_party", id, 1, map[string]any{"name": "Cleo C."})
		evs = s.drain()
		if len(evs) != 1 || evs[0].Op != ledger.OpWrite || len(evs[0].Fields) != 1 || evs[0].Fields["name"].String() != ledger.String("Cleo C.").String() {
			t.Fatalf("after a compared column was dropped, captured %v, want one write of name", evs)
		}
		if got := outdated(); len(got) != 1 {
			t.Fatalf("outdated after dropping a column: %v, want [party_party]", got)
		}
	})
}

// TestOlderInstallAsksForReinstall: a capture schema installed by an older
// ghsync is refused with the command that upgrades it, and install
// upgrades it in place, keeping the changes waiting in the outbox.
func TestOlderInstallAsksForReinstall(t *testing.T) {
	forEachLayout(t, func(t *testing.T, lay layout) {
		s := newSite(t, lay, 6)
		s.insert("party_party", 1, map[string]any{"code": "O-1", "name": "Olga", "active": true})
		s.cap.Close()
		meta := "ghsync_capture_meta"
		if lay.dialect == models.Postgres {
			meta = "ghsync.capture_meta"
		}
		s.exec(`UPDATE ` + meta + ` SET value = '1' WHERE name = 'version'`)
		for what, err := range map[string]error{
			"open": func() error {
				_, err := capture.Open(ctx(t), s.target, s.store, s.reg, capture.Options{Origin: 6})
				return err
			}(),
			"status": func() error { _, err := capture.Inspect(ctx(t), s.target); return err }(),
		} {
			if err == nil || !strings.Contains(err.Error(), "run ghsync capture install again") {
				t.Fatalf("%s on a version 1 install: %v, want a refusal naming the command", what, err)
			}
		}
		if _, err := capture.Install(ctx(t), s.target, s.reg); err != nil {
			t.Fatal(err)
		}
		s.open(capture.Options{})
		if evs := s.drain(); len(evs) != 1 || evs[0].Key != "O-1" {
			t.Fatalf("after the upgrade the waiting change drained as %v, want the create of O-1", evs)
		}
		// Version 3 changed SQLite's triggers only (no function over 100
		// arguments): a version 2 install is refused there, kept on
		// PostgreSQL.
		s.cap.Close()
		s.exec(`UPDATE ` + meta + ` SET value = '2' WHERE name = 'version'`)
		_, err := capture.Inspect(ctx(t), s.target)
		if refused := err != nil && strings.Contains(err.Error(), "run ghsync capture install again"); refused != (lay.dialect == models.SQLite) {
			t.Fatalf("status of a version 2 install on %s: %v", lay.dialect, err)
		}
	})
}

// TestOpenUpgradesVersion1Bookkeeping: a capturer of this version opened
// on a database whose shared tables are still in the version-1 layout (id
// map and merge states apart; no projector has opened it since) upgrades
// them itself, and known records keep their identity.
func TestOpenUpgradesVersion1Bookkeeping(t *testing.T) {
	forEachLayout(t, func(t *testing.T, lay layout) {
		s := newSite(t, lay, 7)
		known := s.insert("party_party", 1, map[string]any{"code": "U-1", "name": "Uma", "active": true})
		s.drain()
		s.insert("party_party", 1, map[string]any{"code": "U-2", "name": "Ugo", "active": true})
		s.cap.Close()
		p, blob := "ghsync_", "BLOB"
		if lay.dialect == models.Postgres {
			p, blob = "ghsync.", "BYTEA"
		}
		s.exec(`CREATE TABLE ` + p + `idmap (model TEXT NOT NULL, key TEXT NOT NULL, local_id BIGINT NOT NULL,
			PRIMARY KEY (model, key), UNIQUE (model, local_id))`)
		s.exec(`CREATE TABLE ` + p + `state (model TEXT NOT NULL, key TEXT NOT NULL, live BOOLEAN NOT NULL, state ` + blob + ` NOT NULL,
			PRIMARY KEY (model, key))`)
		s.exec(`INSERT INTO ` + p + `idmap SELECT model, key, local_id FROM ` + p + `records WHERE local_id IS NOT NULL`)
		s.exec(`DROP TABLE ` + p + `records`)

		s.open(capture.Options{})
		s.update("party_party", known, 1, map[string]any{"name": "Uma B."})
		evs := s.drain()
		if len(evs) != 2 || evs[0].Key != "U-2" || evs[0].Op != ledger.OpCreate || evs[1].Key != "U-1" || evs[1].Op != ledger.OpWrite {
			t.Fatalf("after the upgrade the changes drained as %v, want the create of U-2 and a write to U-1", evs)
		}
		if n := s.int(`SELECT count(*) FROM ` + p + `records WHERE model = 'party.party' AND local_id IS NOT NULL`); n != 2 {
			t.Fatalf("%d parties have a local id after the upgrade, want 2", n)
		}
		if _, err := s.db.ExecContext(ctx(t), `SELECT 1 FROM `+p+`idmap`); err == nil {
			t.Fatalf("the version-1 id map is still there")
		}
	})
}

// TestDrainRefusesWrongInstanceOrLedger: the outbox is drained only as the
// instance it was first drained as, and only into the ledger the target's
// tables were projected from; otherwise the clinic's changes would be
// stranded (under another origin, or in another ledger) with their outbox
// rows gone. Both are refused before anything leaves the outbox.
func TestDrainRefusesWrongInstanceOrLedger(t *testing.T) {
	forEachLayout(t, func(t *testing.T, lay layout) {
		s := newSite(t, lay, 6)
		s.insert("party_party", 1, map[string]any{"code": "W-1", "name": "Wanda", "active": true})
		s.drain()
		s.project()
		s.insert("party_party", 1, map[string]any{"code": "W-2", "name": "Walt", "active": true})
		s.cap.Close()
		s.cap = nil

		_, err := capture.Open(ctx(t), s.target, s.store, s.reg, capture.Options{Origin: 7})
		if err == nil || !strings.Contains(err.Error(), "captured as instance 6, not 7: check --id") {
			t.Fatalf("a capturer opened as instance 7: %v", err)
		}
		other := openLedger(t, "sqlite:"+filepath.Join(t.TempDir(), "typo.db"))
		_, err = capture.Open(ctx(t), s.target, other, s.reg, capture.Options{Origin: 6})
		if !errors.Is(err, projections.ErrOtherLedger) || !strings.Contains(err.Error(), "nothing was drained") {
			t.Fatalf("a capturer on another ledger: %v", err)
		}
		if h, _ := other.Head(ctx(t)); h != 0 || s.outbox() != 1 {
			t.Fatalf("after the refusals: the other ledger's head %d, outbox %d; want 0 and 1", h, s.outbox())
		}
		s.open(capture.Options{})
		if evs := s.drain(); len(evs) != 1 || evs[0].Key != "W-2" || evs[0].Origin != 6 {
			t.Fatalf("the right instance and ledger drained %v", evs)
		}
	})
}
