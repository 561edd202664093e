package satellite_test

import (
	"context"
	"errors"
	"testing"

	"github.com/ghsync/ghsync/satellite"
)

// The bundle state on both stores: coverage grows only contiguously, the
// tables reflect it only once the projector passed it, reports and the
// frontier never move back.
func TestBundleState(t *testing.T) {
	for _, pg := range []bool{false, true} {
		name := "sqlite"
		if pg {
			name = "postgres"
		}
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			_, loc := open(t, pg)
			st, err := satellite.OpenBundleState(ctx, loc)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			step := func(what string, o satellite.Offline, err error, want satellite.Offline) {
				t.Helper()
				if err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				if got, err := st.Load(ctx); err != nil || got != want || o != want {
					t.Fatalf("%s: returned %+v, stored %+v (%v), want %+v", what, o, got, err, want)
				}
			}
			type O = satellite.Offline
			o, err := st.CentralImported(ctx, 0, 40, 45, 7)
			step("first bundle", o, err, O{Covered: 40, CoveredAt: 45, Frontier: 7, FrontierAt: 40})
			if f := o.UsableFrontier(); f != 0 {
				t.Fatalf("frontier %s usable before the tables reflect the bundle", f)
			}
			o, err = st.CycleDone(ctx, 100, 3, 44)
			step("projector short of the bundle", o, err, O{Covered: 40, CoveredAt: 45, Frontier: 7, FrontierAt: 40, ReportHLC: 100, ReportSeq: 3})
			o, err = st.CycleDone(ctx, 120, 5, 45)
			step("projector past it", o, err, O{Covered: 40, CoveredAt: 45, Applied: 40, Frontier: 7, FrontierAt: 40, ReportHLC: 120, ReportSeq: 5})
			if f := o.UsableFrontier(); f != 7 {
				t.Fatalf("usable frontier %s once the bundle is projected, want 7", f)
			}
			o, err = st.CentralImported(ctx, 60, 90, 80, 50)
			if !errors.Is(err, satellite.ErrCoverageGap) {
				t.Fatalf("a bundle after a gap: %v, want ErrCoverageGap", err)
			}
			step("after a gap: nothing, its frontier neither", o, nil, O{Covered: 40, CoveredAt: 45, Applied: 40, Frontier: 7, FrontierAt: 40, ReportHLC: 120, ReportSeq: 5})
			o, err = st.CentralImported(ctx, 30, 60, 82, 9)
			step("overlapping bundle", o, err, O{Covered: 60, CoveredAt: 82, Applied: 40, Frontier: 9, FrontierAt: 60, ReportHLC: 120, ReportSeq: 5})
			if f := o.UsableFrontier(); f != 0 {
				t.Fatalf("the newer frontier %s usable before its bundle is projected", f)
			}
			o, err = st.CentralImported(ctx, 0, 20, 83, 8)
			step("an old bundle again, an older frontier", o, err, O{Covered: 60, CoveredAt: 82, Applied: 40, Frontier: 9, FrontierAt: 60, ReportHLC: 120, ReportSeq: 5})
			o, err = st.CycleDone(ctx, 110, 9, 90)
			step("an older clock reading", o, err, O{Covered: 60, CoveredAt: 82, Applied: 60, Frontier: 9, FrontierAt: 60, ReportHLC: 120, ReportSeq: 5})
		})
	}
}
