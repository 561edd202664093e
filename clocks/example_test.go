package clocks_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/ghsync/ghsync/clocks"
)

// Two nodes whose wall clocks disagree by 3 ms exchange a change and a reply;
// the HLC orders the reply after the change although the replying node's
// wall clock is behind.
func Example() {
	clinicWall := clocks.NewManual(time.Date(2026, 11, 30, 4, 44, 36, 123e6, time.UTC))
	hospitalWall := clocks.NewManual(time.Date(2026, 11, 30, 4, 44, 36, 120e6, time.UTC))
	clinic := clocks.NewClock(clinicWall, clocks.DefaultMaxOffset)
	hospital := clocks.NewClock(hospitalWall, clocks.DefaultMaxOffset)

	change := clinic.Now()
	fmt.Println("clinic sends      ", change)

	received, _ := hospital.Observe(change)
	fmt.Println("hospital receives ", received)
	reply := hospital.Now()
	fmt.Println("hospital replies  ", reply)

	clinicWall.Advance(time.Millisecond)
	received, _ = clinic.Observe(reply)
	fmt.Println("clinic receives   ", received)

	// A peer an hour ahead is refused, and the hospital's clock is unchanged.
	future := clocks.New(hospitalWall.Now().Add(time.Hour).UnixMilli(), 0)
	state, err := hospital.Observe(future)
	fmt.Println("hospital stays at ", state, errors.Is(err, clocks.ErrUntrustworthyRemote))
	fmt.Println(err)

	// Output:
	// clinic sends       2026-11-30T04:44:36.123Z/0
	// hospital receives  2026-11-30T04:44:36.123Z/1
	// hospital replies   2026-11-30T04:44:36.123Z/2
	// clinic receives    2026-11-30T04:44:36.124Z/0
	// hospital stays at  2026-11-30T04:44:36.123Z/2 true
	// clocks: untrustworthy remote: timestamp 2026-11-30T05:44:36.120Z/0 is 1h0m0s ahead of local wall clock 2026-11-30T04:44:36.120Z (max offset 5m0s)
}
