package pgbench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// CPUMeter sums the CPU time (user + system) of the server processes
// working for some databases (backends, walsenders, apply workers: by
// pg_stat_activity.datname) and, if self, of this process, over a timed
// window. On a shared 2-core machine the wall-clock rates move with
// whatever else runs; CPU time mostly does not.
type CPUMeter struct {
	c       *Cluster
	dbs     []string
	self    bool
	exclude map[int]bool // pids not to count (a poller's backend)
	before  map[int]time.Duration
	selfCPU time.Duration

	// After Stop: the CPU time of this process and of the server's.
	OwnUsed, ServerUsed time.Duration
}

// Meter starts a CPUMeter over the server processes of the databases dbs
// (but not the pids in exclude) and, if self, this process.
func (c *Cluster) Meter(tb testing.TB, self bool, exclude []int, dbs ...string) *CPUMeter {
	tb.Helper()
	m := &CPUMeter{c: c, dbs: dbs, self: self, exclude: map[int]bool{}}
	for _, pid := range exclude {
		m.exclude[pid] = true
	}
	m.before = m.backends(tb)
	m.selfCPU = SelfCPU()
	return m
}

// Stop returns the CPU time used since the meter was made, by the
// processes alive now; call it before they exit. It sets OwnUsed and
// ServerUsed.
func (m *CPUMeter) Stop(tb testing.TB) time.Duration {
	tb.Helper()
	m.OwnUsed, m.ServerUsed = 0, 0
	if m.self {
		m.OwnUsed = SelfCPU() - m.selfCPU
	}
	for pid, t := range m.backends(tb) {
		m.ServerUsed += t - m.before[pid]
	}
	return m.OwnUsed + m.ServerUsed
}

func (m *CPUMeter) String() string {
	return fmt.Sprintf("CPU: this process %v, server %v", m.OwnUsed.Round(time.Millisecond), m.ServerUsed.Round(time.Millisecond))
}

func (m *CPUMeter) backends(tb testing.TB) map[int]time.Duration {
	tb.Helper()
	rows, err := m.c.Conn.Query(context.Background(), `SELECT pid FROM pg_stat_activity WHERE datname = ANY($1)`, m.dbs)
	if err != nil {
		tb.Fatal(err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		tb.Fatal(err)
	}
	out := map[int]time.Duration{}
	for _, pid := range pids {
		if !m.exclude[int(pid)] {
			out[int(pid)] = ProcCPU(int(pid))
		}
	}
	return out
}

// ProcCPU is the user + system time of a process, from /proc (Linux; 0
// elsewhere or once it has exited). Clock ticks are taken as 100 a
// second (USER_HZ on every Linux port Go supports).
func ProcCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+k) * 10 * time.Millisecond
}
