package site_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ghsync/ghsync/capture"
	"github.com/ghsync/ghsync/internal/pgtest"
	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/ledger/postgres"
	"github.com/ghsync/ghsync/satellite"
)

// backup copies the node's database (GNU Health tables, capture and
// ledger: the ledger lives inside it) as a nightly backup would, and
// returns the copy's URL; the node goes on on its own database.
func (n *node) backup() string {
	n.t.Helper()
	n.shut()
	copy := cloneDB(n.t, n.url)
	n.reopen(n.url)
	return copy
}

// shut closes everything the node holds open on its database.
func (n *node) shut() {
	n.site.Close()
	n.store.Close()
	n.db.Close()
}

// reopen opens the node on the database at u (its own, or a restored
// copy), linked to central as before.
func (n *node) reopen(u string) {
	n.t.Helper()
	n.url = u
	var err error
	if n.db, err = sql.Open("pgx", u); err != nil {
		n.t.Fatal(err)
	}
	if n.store, err = postgres.Open(context.Background(), u, postgres.Options{PollInterval: 100 * time.Millisecond}); err != nil {
		n.t.Fatal(err)
	}
	n.open(n.central, n.token, nil, nil, nil)
}

// cloneDB makes a new database from src (CREATE DATABASE ... TEMPLATE),
// dropped when t ends. Nobody may be connected to src.
func cloneDB(t testing.TB, src string) string {
	t.Helper()
	su, err := url.Parse(src)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := sql.Open("pgx", pgtest.ServerURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var b [6]byte
	rand.Read(b[:])
	name := "ghsync_restore_" + hex.EncodeToString(b[:])
	from := strings.TrimPrefix(su.Path, "/")
	for try := 0; ; try++ {
		// Closed connections leave the server a moment later.
		_, err = admin.Exec(fmt.Sprintf(`CREATE DATABASE %q TEMPLATE %q`, name, from))
		if err == nil || try == 50 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("clone %s: %v", from, err)
	}
	t.Cleanup(func() {
		admin, err := sql.Open("pgx", pgtest.ServerURL(t))
		if err == nil {
			_, err = admin.Exec(fmt.Sprintf(`DROP DATABASE IF EXISTS %q WITH (FORCE)`, name))
			admin.Close()
		}
		if err != nil {
			t.Logf("drop %s: %v", name, err)
		}
	})
	cu := *su
	cu.Path = "/" + name
	return cu.String()
}

// ownHead is what the node's ledger holds of its own origin.
func (n *node) ownHead() ledger.OriginHead {
	n.t.Helper()
	h, err := ledger.HeadOf(context.Background(), n.store, n.id)
	if err != nil {
		n.t.Fatal(err)
	}
	return h
}

// A clinic's server dies and is restored from a backup older than what
// it pushed since. The restored instance's push refuses, saying so, and
// drains nothing; its next sync fetches its own events back from central
// before capturing, so the restored GNU Health database gets back the
// changes made since the backup, and a change made after the restore
// goes out as the next seq. Restored again from the same backup, an
// instance that captured before reaching central (capture drain) is
// refused by sync with nothing captured, pushed or stored.
func TestRestoredSatelliteSyncRecovers(t *testing.T) {
	ctx := context.Background()
	nw := newNetwork(t, 1, nil, nil, nil)
	sat := nw.sats[0]
	party := `INSERT INTO party_party (code, name, active, create_uid, create_date) VALUES ($1, $2, true, 1, now())`
	for i := range 5 {
		sat.exec(party, fmt.Sprintf("B-%d", i), "Before the backup")
	}
	if err := sat.sync(); err != nil {
		t.Fatal(err)
	}
	backup := sat.backup()
	for i := range 5 {
		sat.exec(party, fmt.Sprintf("A-%d", i), "After the backup")
	}
	sat.exec(`UPDATE party_party SET name = 'Renamed after the backup', write_uid = 1, write_date = now() WHERE code = 'B-0'`)
	if err := sat.sync(); err != nil {
		t.Fatal(err)
	}
	hw := sat.ownHead()
	sat.shut() // the server dies

	// Restored, then drained before central is reached: diverged.
	sat.reopen(cloneDB(t, backup))
	kept := sat.ownHead()
	if kept.Seq >= hw.Seq || kept.Seq == 0 {
		t.Fatalf("the backup holds seq %d of %d", kept.Seq, hw.Seq)
	}
	sat.exec(party, "D-1", "Captured before central was reached")
	if st, err := sat.site.Capturer().Drain(ctx); err != nil || st.Events != 1 {
		t.Fatalf("drain: %+v %v", st, err)
	}
	sat.exec(party, "D-2", "Waiting in the outbox")
	before := fmt.Sprint(sat.ownHead())
	atCentral, _ := nw.central.store.Origins(ctx)
	_, err := sat.site.Sync(ctx)
	if !errors.Is(err, satellite.ErrDiverged) || !strings.Contains(err.Error(), fmt.Sprintf("from seq %d", kept.Seq+1)) {
		t.Fatalf("sync of a diverged ledger: %v", err)
	}
	if got := fmt.Sprint(sat.ownHead()); got != before {
		t.Fatalf("the refused sync changed the ledger: %s, was %s", got, before)
	}
	if st, err := capture.Inspect(ctx, sat.url); err != nil || st.Pending != 1 {
		t.Fatalf("the refused sync drained the outbox: %+v %v", st, err)
	}
	if got, _ := nw.central.store.Origins(ctx); fmt.Sprint(got) != fmt.Sprint(atCentral) {
		t.Fatalf("the refused sync changed central: %v, was %v", got, atCentral)
	}
	sat.shut()

	// Restored again from the same backup, and done right.
	sat.reopen(cloneDB(t, backup))
	sat.exec(party, "N-1", "Made after the restore")
	if _, _, err := sat.site.Push(ctx); !errors.Is(err, satellite.ErrBehindCentral) ||
		!strings.Contains(err.Error(), fmt.Sprintf("ends at seq %d of origin 1, but central holds this origin's events up to seq %d", kept.Seq, hw.Seq)) {
		t.Fatalf("push from the restored ledger: %v", err)
	}
	if st, err := capture.Inspect(ctx, sat.url); err != nil || st.Pending != 1 {
		t.Fatalf("the refused push drained the outbox: %+v %v", st, err)
	}
	r, err := sat.site.Sync(ctx)
	if err != nil || r.Recovered != int(hw.Seq-kept.Seq) || r.Captured != 1 || r.Pushed != 1 {
		t.Fatalf("sync of the restored ledger: %+v %v", r, err)
	}
	if got := sat.ownHead(); got.Seq != hw.Seq+1 {
		t.Fatalf("after the sync the ledger holds origin 1 through seq %d, want %d", got.Seq, hw.Seq+1)
	}
	if n := sat.count(`SELECT count(*) FROM party_party WHERE code LIKE 'A-%'`); n != 5 {
		t.Fatalf("the restored database shows %d of the 5 parties made after the backup", n)
	}
	if n := sat.count(`SELECT count(*) FROM party_party WHERE code = 'B-0' AND name = 'Renamed after the backup'`); n != 1 {
		t.Fatal("the restored database does not show the rename made after the backup")
	}
	nw.quiesce()
	nw.check()
	if n := nw.central.count(`SELECT count(*) FROM party_party WHERE code = 'N-1'`); n != 1 {
		t.Fatal("the change made after the restore did not reach central")
	}
}
