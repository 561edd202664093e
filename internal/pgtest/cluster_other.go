//go:build !unix

package pgtest

import (
	"fmt"
	"runtime"
	"time"
)

// throwaway would be a PostgreSQL cluster started for one test process; only
// Unix systems can start one.
type throwaway struct {
	url     string
	dir     string
	port    int
	startup time.Duration
}

func startThrowaway() (*throwaway, error) {
	return nil, fmt.Errorf("pgtest: %s is not set, and pgtest cannot start a throwaway PostgreSQL cluster on %s.\n"+
		"To fix: set %s=postgres://user@host:port/postgres", envURL, runtime.GOOS, envURL)
}

func startCluster(settings []string, why, hint string) (*throwaway, error) {
	return nil, fmt.Errorf("%spgtest cannot start a throwaway PostgreSQL cluster on %s", why, runtime.GOOS)
}

func (c *throwaway) logTail(n int) string { return "" }

func (c *throwaway) stop() error { return nil }

func (c *throwaway) serverPID() int { return 0 }

func processAlive(pid int) bool { return false }
