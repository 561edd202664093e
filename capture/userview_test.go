package capture_test

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
)

// TestProjectionKeepsWhatUsersSaved: at a site where only its own users
// work, the projector must never change a row they saved, however
// captures and projections interleave with their edits (the projector
// lagging behind, or stopped, for a while). A random sequence of
// registrations, corrections of names and codes (including back to a
// code left earlier), deletes and re-registrations under a code that was
// deleted, with drains and projections at random points between them;
// at the end the parties are what the users left, and a second site
// that receives the ledger holds the same.
func TestProjectionKeepsWhatUsersSaved(t *testing.T) {
	// Seeds that found bugs, each on one layout in turn: the first lost
	// a user's row to the projector's replay of an own rename (the id
	// moved to the key the row had left), the others lost rows to creates
	// that named no unprojected delete (deletes.go), on every layout.
	// GHSYNC_TEST_SEED: see seededRuns.
	runs := seededRuns(t, 9909869323997196877, 4716725730060902608, 525000099131776894, 480069547834563093)
	for _, r := range runs {
		seed, lay := r.seed, r.lay
		t.Run(fmt.Sprintf("%s/seed=%d", lay.name, seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 0))
			a, b := newSite(t, lay, 1), newSite(t, lay, 2)
			rows := map[int64][2]string{} // id → code, name: what the users see
			free := func() string {       // a code no row has now (at most 5 of 6 are taken)
				for {
					c := fmt.Sprintf("P-%d", rng.IntN(6))
					taken := false
					for _, r := range rows {
						taken = taken || r[0] == c
					}
					if !taken {
						return c
					}
				}
			}
			anyRow := func() int64 { // in id order: the same choice for a seed
				ids := slices.Sorted(maps.Keys(rows))
				return ids[rng.IntN(len(ids))]
			}
			var log []string
			defer func() {
				if t.Failed() {
					t.Logf("seed %d (rerun: GHSYNC_TEST_SEED=%d go test -run TestProjectionKeepsWhatUsersSaved ./capture/), steps: %v", seed, seed, log)
				}
			}()
			for step := range 60 {
				switch op := rng.IntN(10); {
				case op < 3 && len(rows) < 5:
					code, name := free(), fmt.Sprintf("N%d", step)
					id := a.insert("party_party", 1, map[string]any{"code": code, "name": name, "active": true})
					rows[id] = [2]string{code, name}
					log = append(log, fmt.Sprintf("insert %d %s %s", id, code, name))
				case op == 3 && len(rows) > 0:
					id, name := anyRow(), fmt.Sprintf("N%d", step)
					a.update("party_party", id, 1, map[string]any{"name": name})
					rows[id] = [2]string{rows[id][0], name}
					log = append(log, fmt.Sprintf("rename %d %s", id, name))
				case op == 4 && len(rows) > 0:
					id, code := anyRow(), free()
					a.update("party_party", id, 1, map[string]any{"code": code})
					rows[id] = [2]string{code, rows[id][1]}
					log = append(log, fmt.Sprintf("recode %d %s", id, code))
				case op == 5 && len(rows) > 0:
					id := anyRow()
					a.exec(a.q(`DELETE FROM party_party WHERE id = ?`), id)
					delete(rows, id)
					log = append(log, fmt.Sprintf("delete %d", id))
				case op == 6 || op == 7:
					a.drain()
					log = append(log, "drain")
				case op >= 8:
					a.drain()
					a.project()
					log = append(log, "drain+project")
					if got, want := a.rowsByID(), fmt.Sprint(rows); got != want {
						t.Fatalf("after step %d's projection the rows (id: code, name) are %s, the users left %s", step, got, want)
					}
				}
			}
			a.drain()
			a.project()
			want := map[string]string{}
			for _, r := range rows {
				want[r[0]] = r[1]
			}
			for _, s := range []*site{a, b} {
				if s == b {
					b.receive(a)
					b.project()
				}
				got := map[string]string{}
				rs, err := s.db.QueryContext(ctx(t), `SELECT code, name FROM party_party`)
				if err != nil {
					t.Fatal(err)
				}
				for rs.Next() {
					var code, name string
					if err := rs.Scan(&code, &name); err != nil {
						t.Fatal(err)
					}
					got[code] = name
				}
				rs.Close()
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("seed %d, origin %d: parties %v, the users left %v", seed, s.origin, got, want)
				}
				if s == a {
					for id, r := range rows {
						if n := a.int(a.q(`SELECT count(*) FROM party_party WHERE id = ? AND code = ?`), id, r[0]); n != 1 {
							t.Fatalf("seed %d: the row the users saved as %d (%s) is gone or moved", seed, id, r[0])
						}
					}
				}
			}
		})
	}
}

// rowsByID prints party_party as id → [code name], as rows are kept.
func (s *site) rowsByID() string {
	s.t.Helper()
	got := map[int64][2]string{}
	rs, err := s.db.QueryContext(ctx(s.t), `SELECT id, code, name FROM party_party`)
	if err != nil {
		s.t.Fatal(err)
	}
	defer rs.Close()
	for rs.Next() {
		var id int64
		var code, name string
		if err := rs.Scan(&id, &code, &name); err != nil {
			s.t.Fatal(err)
		}
		got[id] = [2]string{code, name}
	}
	return fmt.Sprint(got)
}

// seededRun is one run of a property test: a seed, on a layout.
type seededRun struct {
	seed uint64
	lay  layout
}

// seededRuns gives each fixed seed one layout in turn, so every seed
// that once found a bug runs in CI at the cost of one layout.
// GHSYNC_TEST_SEED=N runs seed N on every layout instead, and
// GHSYNC_TEST_SEED=random a new seed (printed on failure).
func seededRuns(t *testing.T, fixed ...uint64) []seededRun {
	t.Helper()
	if s := os.Getenv("GHSYNC_TEST_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if s == "random" {
			seed, err = rand.Uint64(), nil
		}
		if err != nil {
			t.Fatalf("GHSYNC_TEST_SEED=%q: %v", s, err)
		}
		var runs []seededRun
		for _, lay := range layouts {
			runs = append(runs, seededRun{seed, lay})
		}
		return runs
	}
	var runs []seededRun
	for i, seed := range fixed {
		runs = append(runs, seededRun{seed, layouts[i%len(layouts)]})
	}
	return runs
}
