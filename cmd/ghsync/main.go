// Command ghsync synchronises GNU Health instances through an
// event-sourced ledger. Run `ghsync --help` for the commands.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
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
	exit := -1 // kong asks to exit after --help; run returns instead
	parser, err := newParser(&cli, stdout, stderr, func(code int) {
		if exit < 0 {
			exit = code
		}
	})
	if err != nil {
		fmt.Fprintln(stderr, "ghsync:", err)
		return 2
	}
	kctx, err := parser.Parse(args)
	if exit >= 0 {
		return exit
	}
	if err != nil {
		// No command yet (bare ghsync, ghsync central): show what there is
		// to choose from, rather than kong's "expected one of" and five names.
		var perr *kong.ParseError
		if errors.As(err, &perr) && perr.Context != nil && perr.Context.Error == nil && wantsCommand(perr.Context) {
			if err := perr.Context.PrintUsage(false); err == nil {
				return 2
			}
		}
		fmt.Fprintln(stderr, "ghsync:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	env := &Env{Globals: &cli.Globals, Ctx: ctx, Out: stdout, Log: cli.Globals.logger(stderr)}
	if cli.Ledger == "" {
		if cli.Ledger, err = defaultLedger(kctx); err != nil {
			fmt.Fprintln(stderr, "ghsync:", err)
			return 2
		}
	}
	if err := beforeRun(ctx, kctx, cli.Ledger); err != nil {
		fmt.Fprintln(stderr, "ghsync:", err)
		return 2
	}
	fresh := newLedgerFile(cli.Ledger)
	if err := kctx.Run(env); err != nil {
		if fresh != "" {
			removeEmptyLedger(fresh, env.Log)
		}
		if ue := (usageError{}); errors.As(err, &ue) {
			fmt.Fprintln(stderr, "ghsync:", err)
			return 2
		}
		// Reports that found problems have printed them already.
		if errors.Is(err, errVerifyFailed) || errors.Is(err, errModelsCheckFailed) || errors.Is(err, errProblemsListed) {
			return 1
		}
		env.Log.Error("command failed", "command", kctx.Command(), "error", err)
		return 1
	}
	return 0
}

// newParser builds the command line parser of cli, with the system-wide
// configuration file if there is one.
func newParser(cli *CLI, stdout, stderr io.Writer, exit func(int)) (*kong.Kong, error) {
	parser, err := kong.New(cli,
		kong.Name("ghsync"),
		kong.Description("Synchronise GNU Health instances (central and satellites) through an auditable event ledger."),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
		kong.Writers(stdout, stderr),
		kong.Exit(exit),
		kong.Vars{"version": version},
	)
	if err != nil {
		return nil, err
	}
	// Skipped when absent or unreadable (another user's 0600 file).
	if f, err := os.Open(systemConfig); err == nil {
		f.Close()
		cf, err := readConfig(systemConfig, parser.Model)
		if err != nil {
			return nil, err
		}
		// Before any --config file, whose settings take precedence.
		if err := kong.Resolvers(cf).Apply(parser); err != nil {
			return nil, err
		}
	}
	return parser, nil
}

// wantsCommand reports whether the command line stops at a node that has
// subcommands, none chosen.
func wantsCommand(ctx *kong.Context) bool {
	node := ctx.Selected()
	if node == nil {
		node = ctx.Model.Node
	}
	for _, c := range node.Children {
		if c.Type == kong.CommandNode && !c.Hidden {
			return true
		}
	}
	return false
}
