//go:build !linux

package trytontest

import "syscall"

// childAttr is nil: only Linux can tie a child's life to the test
// process's. Elsewhere the driver still exits when its stdin closes.
func childAttr() *syscall.SysProcAttr { return nil }
