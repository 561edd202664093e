package ledgertest

import (
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
)

// Rand returns a random source seeded from GHSYNC_TEST_SEED, or at random,
// and logs the seed with the command that replays a failing run.
func Rand(tb testing.TB) *rand.Rand {
	tb.Helper()
	seed := rand.Uint64()
	if s := os.Getenv("GHSYNC_TEST_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			tb.Fatalf("GHSYNC_TEST_SEED=%q is not an unsigned integer", s)
		}
		seed = v
	}
	tb.Logf("seed=%d (rerun: GHSYNC_TEST_SEED=%d go test -run '%s')", seed, seed, tb.Name())
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}
