package pgtest

import "syscall"

// procAttr runs a PostgreSQL program as cred (nil: as the test process) in
// its own process group, so signals meant for the test's process group do not
// reach it, and has the kernel send it deathSig when the test process dies.
func procAttr(cred *syscall.Credential, deathSig syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Setpgid: true, Pdeathsig: deathSig}
}
