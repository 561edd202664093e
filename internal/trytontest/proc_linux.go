package trytontest

import "syscall"

// childAttr has the kernel kill a trytond process (trytond-admin, the
// driver) when the test process dies, so that no orphan keeps writing to a
// database that a later run drops and rebuilds.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
