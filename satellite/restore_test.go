package satellite_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/ledger/ledgertest"
	"github.com/ghsync/ghsync/satellite"
	"github.com/ghsync/ghsync/wire"
)

// restored pushes 150 events of origin 7 from a satellite, then gives it
// a ledger holding only the first kept of them, as a restore from an
// older backup does, and returns the satellite (dialled on that ledger)
// and the origin's event maker resumed at the copy's head.
func restored(t *testing.T, h *hub, pg bool, kept int) (*site, *ledgertest.Origin) {
	t.Helper()
	ctx := context.Background()
	s := h.dial(t, 7, wire.ScopeAll, pg)
	o := origin(7)
	evs := o.Patients(t, ledgertest.Rand(t), 150)
	appendAll(t, s.store, evs)
	if st, err := s.c.Push(ctx); err != nil || st.HighWater != 150 {
		t.Fatalf("push: %+v %v", st, err)
	}
	store, loc := open(t, pg)
	appendAll(t, store, evs[:kept])
	s.store, s.loc, s.cfg.Store, s.cfg.StateLocation = store, loc, store, loc
	s.cfg.PullLimit = 20
	s.redial(t)
	mk := origin(7)
	head, err := ledger.HeadOf(ctx, store, 7)
	if err != nil {
		t.Fatal(err)
	}
	mk.ResumeAt(head)
	return s, mk
}

// ownHistory is every event of origin in s, encoded, in origin_seq order.
func ownHistory(t *testing.T, s ledger.Store, origin uint16) [][]byte {
	t.Helper()
	var out [][]byte
	for after := uint64(0); ; {
		recs, err := s.ReadOrigin(context.Background(), origin, after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			return out
		}
		for _, r := range recs {
			b, err := r.Encoded()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, b)
			after = r.Event.OriginSeq
		}
	}
}

// stored is what a store holds, to check a refusal changed nothing.
func stored(t *testing.T, s ledger.Store) string {
	t.Helper()
	ctx := context.Background()
	head, err := s.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	heads, err := s.Origins(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprint(head, heads)
}

// A satellite restored from an older copy of its ledger is told so by
// push, loudly, with nothing sent or changed; Recover fetches its own
// events back, after which its ledger holds central's history of its
// origin byte for byte and new events continue at 151 and push fine.
func TestRestoredSatelliteRecovers(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			ctx := context.Background()
			h := newHub(t, pg, time.Now)
			s, mk := restored(t, h, pg, 100)
			before, atCentral := stored(t, s.store), stored(t, h.store)

			st, err := s.c.Push(ctx)
			var oe *satellite.OwnHistoryError
			if !errors.Is(err, satellite.ErrBehindCentral) || errors.Is(err, satellite.ErrDiverged) || !errors.As(err, &oe) || st.Requests != 0 {
				t.Fatalf("push from the restored ledger: %+v %v", st, err)
			}
			for _, want := range []string{"ends at seq 100 of origin 7", "up to seq 150", "restored from an older copy", "ghsync recover", "seqs 101..150"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("the refusal does not say %q: %v", want, err)
				}
			}
			if err := s.c.CheckOwn(ctx); !errors.Is(err, satellite.ErrBehindCentral) {
				t.Fatalf("CheckOwn: %v", err)
			}
			if got := stored(t, s.store); got != before {
				t.Fatalf("the refused push changed the satellite's ledger: %s, was %s", got, before)
			}
			if got := stored(t, h.store); got != atCentral {
				t.Fatalf("the refused push changed central's ledger: %s, was %s", got, atCentral)
			}

			// A recovery cut short (the second page of 20) keeps what it
			// appended, and says the ledger is still behind.
			var owns atomic.Int32
			h.mu.Lock()
			h.cut = func(r *http.Request) int {
				if r.URL.Path == wire.PathOwn && owns.Add(1) == 2 {
					return 100
				}
				return -1
			}
			h.mu.Unlock()
			rs, err := s.c.Recover(ctx)
			if !errors.Is(err, satellite.ErrBehindCentral) || !errors.Is(err, satellite.ErrConnectionLost) || rs.Events != 20 || rs.Through != 120 ||
				!strings.Contains(err.Error(), "ends at seq 120 of origin 7") {
				t.Fatalf("recover cut on its second page: %+v %v", rs, err)
			}
			h.mu.Lock()
			h.cut = nil
			h.mu.Unlock()
			if err := s.c.CheckOwn(ctx); !errors.Is(err, satellite.ErrBehindCentral) {
				t.Fatalf("CheckOwn after a cut recovery: %v", err)
			}

			rs, err = s.c.Recover(ctx)
			if err != nil || rs.From != 120 || rs.Through != 150 || rs.Events != 30 || rs.Requests != 2 {
				t.Fatalf("recover: %+v %v", rs, err)
			}
			mine, theirs := ownHistory(t, s.store, 7), ownHistory(t, h.store, 7)
			if len(mine) != 150 || len(theirs) != 150 {
				t.Fatalf("after recovery the satellite holds %d events of its origin, central %d; want 150", len(mine), len(theirs))
			}
			for i := range mine {
				if !bytes.Equal(mine[i], theirs[i]) {
					t.Fatalf("seq %d differs from central's after recovery", i+1)
				}
			}
			if rep, err := ledger.Verify(ctx, s.store); err != nil || !rep.OK() {
				t.Fatalf("verify after recovery: %+v %v", rep, err)
			}
			if err := s.c.CheckOwn(ctx); err != nil {
				t.Fatalf("CheckOwn after recovery: %v", err)
			}
			if rs, err := s.c.Recover(ctx); err != nil || rs.Events != 0 || rs.Through != 150 {
				t.Fatalf("recover again: %+v %v", rs, err)
			}

			// The sequencer continues from the ledger: 151, and it pushes.
			head, _ := ledger.HeadOf(ctx, s.store, 7)
			mk.ResumeAt(head)
			next := mk.Patients(t, ledgertest.Rand(t), 10)
			if next[0].OriginSeq != 151 {
				t.Fatalf("the next event is seq %d, want 151", next[0].OriginSeq)
			}
			appendAll(t, s.store, next)
			if st, err := s.c.Push(ctx); err != nil || st.Accepted != 10 || st.HighWater != 160 {
				t.Fatalf("push after recovery: %+v %v", st, err)
			}
		})
	}
}

// A restored satellite that captured changes before reaching central
// holds other events than central under the same seqs: push, CheckOwn
// and Recover refuse, naming the first differing seq and both hashes,
// and change nothing here or at central. Whether the local history ends
// before, at or after central's high-water mark.
func TestDivergedSatelliteRefused(t *testing.T) {
	for _, c := range []struct {
		name  string
		pg    bool
		extra int // events captured after the restore
	}{
		{"sqlite/behind", false, 20},
		{"sqlite/level", false, 50},
		{"postgres/ahead", true, 60},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			h := newHub(t, c.pg, time.Now)
			s, mk := restored(t, h, c.pg, 100)
			mk.Wall.Set(time.Now())
			appendAll(t, s.store, mk.Patients(t, ledgertest.Rand(t), c.extra))
			local, _ := ledger.HeadOf(ctx, s.store, 7)
			theirs := ownHistory(t, h.store, 7)
			wantCentral := ledger.HashOf(theirs[100]).String()
			wantLocal := ownHistory(t, s.store, 7)[100]
			before, atCentral := stored(t, s.store), stored(t, h.store)

			for name, call := range map[string]func() error{
				"push":     func() error { _, err := s.c.Push(ctx); return err },
				"checkown": func() error { return s.c.CheckOwn(ctx) },
				"recover":  func() error { _, err := s.c.Recover(ctx); return err },
			} {
				err := call()
				var oe *satellite.OwnHistoryError
				if !errors.Is(err, satellite.ErrDiverged) || errors.Is(err, satellite.ErrBehindCentral) || !errors.As(err, &oe) {
					t.Fatalf("%s: %v", name, err)
				}
				if oe.FirstDiff != 101 || oe.CentralHash != wantCentral || oe.LocalHash != ledger.HashOf(wantLocal).String() || oe.Local != local.Seq || oe.HighWater != 150 {
					t.Fatalf("%s: %+v", name, oe)
				}
				for _, want := range []string{"from seq 101 (here " + oe.LocalHash[:12] + ", at central " + wantCentral[:12] + ")",
					fmt.Sprintf("ends at seq %d", local.Seq), "up to seq 150", "another satellite uses synchronisation id 7", "ARCHITECTURE.md"} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("%s: the refusal does not say %q: %v", name, want, err)
					}
				}
				if got := stored(t, s.store); got != before {
					t.Fatalf("%s changed the satellite's ledger: %s, was %s", name, got, before)
				}
				if got := stored(t, h.store); got != atCentral {
					t.Fatalf("%s changed central's ledger: %s, was %s", name, got, atCentral)
				}
			}
		})
	}
}
