package capture

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestKeyHoldersFollowKeys: whatever setKey and unkey do to a batch's id
// map, holders lists for each key exactly the rows the map gives it, the
// index keyFree reads instead of walking the map.
func TestKeyHoldersFollowKeys(t *testing.T) {
	const seed = 20261204
	rng := rand.New(rand.NewPCG(seed, seed))
	b := newBatch(&Capturer{})
	for step := range 5000 {
		ref := localRef{[]string{"gnuhealth.patient", "party.party"}[rng.IntN(2)], int64(rng.IntN(40))}
		if rng.IntN(4) == 0 {
			b.unkey(ref)
		} else {
			b.setKey(ref, fmt.Sprintf("K%d", rng.IntN(10)))
		}
		want := map[recKeyOf][]int64{}
		for r, k := range b.keys {
			want[recKeyOf{r.model, k}] = append(want[recKeyOf{r.model, k}], r.id)
		}
		got := map[recKeyOf][]int64{}
		for k, ids := range b.holders {
			got[k] = slices.Sorted(slices.Values(ids))
		}
		for k := range want {
			slices.Sort(want[k])
		}
		if !maps.EqualFunc(got, want, slices.Equal) {
			t.Fatalf("seed %d, step %d: holders %v, want %v (from the id map)", seed, step, got, want)
		}
	}
}
