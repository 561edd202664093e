package site_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/ghsync/ghsync/merge"
)

// TestBusyRecordIsCompacted: a party renamed again and again at central
// and two satellites, the satellites offline now and then (so renames
// cross: conflicts), keeps a small merge state everywhere once the
// instances have reported their cycles to central (the last write and the
// one it replaced, give or take the writes still unsettled), and every instance
// still shows the same tables and stores the same conflicts, which are
// those a replay of the whole ledger without compaction finds.
func TestBusyRecordIsCompacted(t *testing.T) {
	rng := rand.New(rand.NewPCG(seedOf(t), 2))
	nw := newNetwork(t, 2, nil, nil, nil)
	nw.central.exec(`INSERT INTO party_party (code, name, active, create_uid, create_date) VALUES ('BUSY', 'Ward clerk', true, 1, now())`)
	nw.quiesce()
	renames := 1
	for round := range 15 {
		for _, n := range nw.all() {
			for i := range 2 {
				n.exec(`UPDATE party_party SET name = $1, write_uid = 1, write_date = now() WHERE code = 'BUSY'`,
					fmt.Sprintf("Clerk %d.%d at %d", round, i, n.id))
				renames++
			}
		}
		for _, i := range rng.Perm(len(nw.all())) {
			if n := nw.all()[i]; n.id == 0 || rng.IntN(4) > 0 {
				if err := n.sync(); err != nil {
					t.Fatalf("round %d node %d: %v", round, n.id, err)
				}
			}
		}
	}
	nw.quiesce()
	// States are compacted as they are saved: one more rename, made once
	// every instance has reported the ones before, is saved everywhere
	// with a frontier past all of them.
	nw.central.exec(`UPDATE party_party SET name = 'Clerk, last', write_uid = 1, write_date = now() WHERE code = 'BUSY'`)
	renames++
	nw.quiesce()
	nw.check()

	ctx := context.Background()
	for _, n := range nw.all() {
		n.compacted("BUSY", renames)
	}

	// A replay of the whole ledger (rebuild does not compact while it
	// replays) stores the conflicts the incremental, compacting
	// projection stored.
	p := nw.central.site.Projector()
	before, err := p.Conflicts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(before) == 0 {
		t.Fatal("the crossing renames made no conflict: the test checks less than it should")
	}
	if _, err := p.Rebuild(ctx); err != nil {
		t.Fatal(err)
	}
	after, err := p.Conflicts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("conflicts stored while compacting:\n%v\nafter a full replay:\n%v", before, after)
	}
	t.Logf("%d conflicts, the same after a full replay", len(before))
}

// compacted asserts that the node recorded a stability frontier and keeps
// few of the renames of party code in its merge state.
func (n *node) compacted(code string, renames int) {
	n.t.Helper()
	p := n.site.Projector()
	if p.Frontier() == 0 {
		n.t.Fatalf("node %d recorded no stability frontier", n.id)
	}
	var raw []byte
	if err := n.db.QueryRow(`SELECT state FROM ghsync.records WHERE model = 'party.party' AND key = $1`, code).Scan(&raw); err != nil {
		n.t.Fatal(err)
	}
	st, err := merge.UnmarshalState(raw)
	if err != nil {
		n.t.Fatal(err)
	}
	kept := len(st.Fields["name"])
	n.t.Logf("node %d: frontier %s; the party's state keeps %d of %d writes of its name (%d bytes)", n.id, p.Frontier(), kept, renames, len(raw))
	if kept > 5 {
		n.t.Fatalf("node %d keeps %d of %d writes: not compacted", n.id, kept, renames)
	}
}
