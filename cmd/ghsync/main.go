// Command ghsync synchronises GNU Health instances through an
// event-sourced ledger. Run `ghsync --help` for the commands.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/alecthomas/kong"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	tuneGC(os.LookupEnv)
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// gcPercent is the collector's target heap growth unless GOGC says
// otherwise. A catch-up allocates fast over a small live heap, so at Go's
// default of 100 a 1M-event projection collected 460 times; at 200, 195
// times, in 41–44 s instead of 46–52 s, its peak RSS 135–143 MiB instead of
// 102 MiB (docs/projection-benchmarks.md). CPU saved is CPU left to the
// clinic's Tryton and PostgreSQL on the same machine.
const gcPercent = 200

// tuneGC sets gcPercent unless the administrator set GOGC.
func tuneGC(env func(string) (string, bool)) {
	if _, set := env("GOGC"); !set {
		debug.SetGCPercent(gcPercent)
	}
}

// run parses args and executes one command; it returns the exit code so
// tests can drive the whole CLI in-process.
func run(args []string, stdout, stderr *os.File) int {
	var cli CLI
	parser, err := kong.New(&cli,
		kong.Name("ghsync"),
		kong.Description("Synchronise GNU Health instances (central and satellites) through an auditable event ledger."),
		kong.UsageOnError(),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
		kong.Configuration(loadConfig, "/etc/ghsync/ghsync.conf"),
		kong.Writers(stdout, stderr),
		kong.Vars{"version": version},
	)
	if err != nil {
		fmt.Fprintln(stderr, "ghsync:", err)
		return 2
	}
	kctx, err := parser.Parse(args)
	if err != nil {
		fmt.Fprintln(stderr, "ghsync:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	env := &Env{Globals: &cli.Globals, Ctx: ctx, Out: stdout, Log: cli.Globals.logger(stderr)}
	if err := kctx.Run(env); err != nil {
		// Reports that found problems have printed them already.
		if errors.Is(err, errVerifyFailed) || errors.Is(err, errModelsCheckFailed) || errors.Is(err, errProblemsListed) {
			return 1
		}
		env.Log.Error("command failed", "command", kctx.Command(), "error", err)
		return 1
	}
	return 0
}
