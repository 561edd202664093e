package main

import (
	"fmt"
	"runtime"

	"github.com/ghsync/ghsync/ledger"
)

// VersionCmd prints what an administrator needs in a bug report.
type VersionCmd struct{}

func (VersionCmd) Run(env *Env) error {
	_, err := fmt.Fprintf(env.Out, "ghsync %s (event format %d, %s, %s/%s)\n",
		version, ledger.FormatVersion, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return err
}
