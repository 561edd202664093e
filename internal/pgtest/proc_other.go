//go:build unix && !linux

package pgtest

import "syscall"

// procAttr runs a PostgreSQL program as cred (nil: as the test process).
// Only Linux can tie the program's life to the test process's, so elsewhere
// it stays in the test's process group, where an interrupt reaches it too.
func procAttr(cred *syscall.Credential, deathSig syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred}
}
