package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/alecthomas/kong"
	"github.com/hashicorp/go-hclog"

	"github.com/ghsync/ghsync/models"
)

// CLI is the command tree. Each command lives in its own file.
type CLI struct {
	Globals

	Demo     DemoCmd     `cmd:"" help:"Run a small network on this machine (central and three health centres on SQLite, over loopback HTTP): offline work, conflicts, convergence, a patient's history."`
	Help     HelpCmd     `cmd:"" help:"Print the usage of ghsync, or of a command and its flags (ghsync help central satellite add)."`
	Version  VersionCmd  `cmd:"" help:"Print the ghsync version and the ledger format it writes."`
	Log      LogCmd      `cmd:"" help:"Print the events of a ledger: what changed, where, when and by whom."`
	History  HistoryCmd  `cmd:"" help:"Replay one record's history, or a patient's whole record graph (--patient PUID), for an audit."`
	Verify   VerifyCmd   `cmd:"" help:"Check a ledger's hash chains and report the first break of each origin."`
	Generate GenerateCmd `cmd:"" help:"Write a ledger of realistic clinic activity (a few health centres), for trying ghsync out."`
	Models   ModelsCmd   `cmd:"" help:"List the synchronised Tryton models, or check a GNU Health database against them before the first sync."`

	Project   ProjectCmd   `cmd:"" group:"Tryton database" help:"Apply the ledger's events to a GNU Health database (merging, resolving references, recording conflicts)."`
	Rebuild   RebuildCmd   `cmd:"" group:"Tryton database" help:"Throw away what ghsync materialised in a GNU Health database and replay the whole ledger."`
	Parked    ParkedCmd    `cmd:"" group:"Tryton database" help:"List records waiting for a record they reference (or a required value) before they can be written."`
	Conflicts ConflictsCmd `cmd:"" group:"Tryton database" help:"List the changes that lost to another one: both values, both instances, both clocks."`
	States    StatesCmd    `cmd:"" group:"Tryton database" help:"Report the merge states' size and the largest ones, and how far they are compacted."`
	Rejected  RejectedCmd  `cmd:"" group:"Tryton database" help:"List events set aside because they do not fit the model registry."`
	Schema    SchemaCmd    `cmd:"" group:"Tryton database" help:"Create empty GNU Health tables as Tryton 6 / GNU Health 4.0 create them, to try ghsync without a Tryton server."`
	Dump      DumpCmd      `cmd:"" group:"Tryton database" help:"Print the synchronised tables in a canonical form (no local ids), with its SHA-256, to compare instances."`
	Capture   CaptureCmd   `cmd:"" group:"Tryton database" help:"Record every change made in a GNU Health database as ledger events (install, status, drain, snapshot, uninstall)."`

	Export ExportCmd `cmd:"" group:"Offline transfer" help:"Write ledger events to a signed bundle file, to carry to another instance (a USB stick)."`
	Import ImportCmd `cmd:"" group:"Offline transfer" help:"Verify bundle files (checksum, signature, every event) and append their events to the ledger."`
	Keygen KeygenCmd `cmd:"" group:"Offline transfer" help:"Make an Ed25519 key for signing bundles; print its public key for importers to trust."`

	Serve   ServeCmd   `cmd:"" group:"Network" help:"Serve central's side of the protocol (push, pull, new) over HTTP(S) to the satellites."`
	Central CentralCmd `cmd:"" group:"Network" help:"Administer central: register, list and remove satellites; list and release held events."`
	Push    PushCmd    `cmd:"" group:"Network" help:"Send this satellite's events that central does not hold yet."`
	Pull    PullCmd    `cmd:"" group:"Network" help:"Fetch central's events for this satellite (long poll with --wait, or keep following with -f)."`
	New     NewCmd     `cmd:"" group:"Network" help:"Fetch a patient (--patient PUID) or a record (--model MODEL --key KEY) and everything about it from central, and follow it from then on."`
	Recover RecoverCmd `cmd:"" group:"Network" help:"Fetch back from central this satellite's own events its ledger lacks, after it was restored from an older backup (sync and run do it by themselves before capturing)."`
	Sync    SyncCmd    `cmd:"" group:"Network" help:"One full cycle at a satellite: capture local changes, push, pull, project."`
	Run     RunCmd     `cmd:"" group:"Network" help:"Keep synchronising every --every, backing off while central is unreachable (a service; stops cleanly on SIGTERM)."`
}

// Globals are the settings every command shares. Each can come from a
// flag, an environment variable or the configuration file, in that order
// of precedence.
type Globals struct {
	Config    configFlag `help:"Configuration file (key = value lines, keys named like the flags; relative paths in it are relative to its folder)." placeholder:"FILE" env:"GHSYNC_CONFIG"`
	Ledger    string     `help:"Ledger location: sqlite:PATH (embedded) or a postgres:// URL of the GNU Health database. Default: the GNU Health database's own (its ghsync schema on PostgreSQL, NAME.ghsync.db beside a SQLite one) when the command has --target, --db or --trytond-conf; else sqlite:ghsync.db here." env:"GHSYNC_LEDGER" placeholder:"LOCATION"`
	LogLevel  string     `help:"Log level: trace, debug, info, warn, error." default:"info" enum:"trace,debug,info,warn,error" env:"GHSYNC_LOG_LEVEL"`
	LogFormat string     `help:"Log format: text, json, or auto (text on a terminal, json otherwise)." default:"auto" enum:"auto,text,json" env:"GHSYNC_LOG_FORMAT"`
	// UUIDIdentity is network-wide: every instance must say the same.
	UUIDIdentity []string `name:"uuid-identity" sep:"," placeholder:"MODEL,..." env:"GHSYNC_UUID_IDENTITY" help:"Identify these models by UUID instead of their natural key, e.g. party.party (and the models keyed by it) when party codes come from a per-instance sequence. Must be the same on every instance of the network."`
}

// HelpCmd prints what --help prints, for those who type "ghsync help log".
type HelpCmd struct {
	Command []string `arg:"" optional:"" help:"The command, e.g. log, or central satellite add."`
}

func (h *HelpCmd) Run(kctx *kong.Context) error {
	ctx, err := kong.Trace(kctx.Kong, h.Command)
	if err == nil {
		err = ctx.Error
	}
	if err != nil {
		return usageError{fmt.Errorf("help %s: no such command (%w); ghsync help lists the commands", strings.Join(h.Command, " "), err)}
	}
	return ctx.PrintUsage(false)
}

// usageError is a mistake on the command line found while a command runs:
// printed as kong prints its own, with exit status 2, not logged as a
// failure.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// registry is the model registry the settings describe: the GNU Health
// catalogue, with the administrator's UUID identities.
func (g *Globals) registry() (*models.Registry, error) {
	reg := models.GNUHealth()
	if len(g.UUIDIdentity) == 0 {
		return reg, nil
	}
	return reg.WithUUIDIdentity(g.UUIDIdentity...)
}

// Env is what every command's Run receives.
type Env struct {
	*Globals
	Ctx context.Context
	Out io.Writer
	Log hclog.Logger
}

func (g *Globals) logger(w *os.File) hclog.Logger {
	json := g.LogFormat == "json" || g.LogFormat == "auto" && !isTerminal(w)
	return hclog.New(&hclog.LoggerOptions{
		Name:       "ghsync",
		Level:      hclog.LevelFromString(g.LogLevel),
		Output:     w,
		JSONFormat: json,
	})
}

// isTerminal reports whether f is a character device (a terminal), without
// a dependency for it.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
