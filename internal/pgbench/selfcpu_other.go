//go:build !unix

package pgbench

import "time"

// SelfCPU is the user + system time this process has used; 0 where
// getrusage is not available.
func SelfCPU() time.Duration { return 0 }
