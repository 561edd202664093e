package main

import (
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/alecthomas/kong"
	"github.com/hashicorp/go-hclog"

	"github.com/ghsync/ghsync/internal/dbopen"
)

// fallbackLedger is the ledger of a command that names neither a ledger
// nor an instance's GNU Health database: for trying ghsync out.
const fallbackLedger = "sqlite:ghsync.db"

// ledgerTargeter is a command that knows its instance's GNU Health
// database (--target, --db, or [database] uri of --trytond-conf): with no
// --ledger, it uses the ledger that goes with that database.
type ledgerTargeter interface {
	ledgerTarget() (string, error)
}

// defaultLedger is the ledger of a command given no --ledger (flag,
// environment or configuration file): the one beside its GNU Health
// database (ledgerBeside) when it knows that database, else
// fallbackLedger in the current directory. Without it, a clinic's
// `ghsync sync --trytond-conf /etc/trytond.conf` from cron put its ledger
// in $HOME or /, apart from the database it belongs to.
func defaultLedger(kctx *kong.Context) (string, error) {
	if sel := kctx.Selected(); sel != nil && sel.Target.IsValid() && sel.Target.CanAddr() {
		if lt, ok := sel.Target.Addr().Interface().(ledgerTargeter); ok {
			target, err := lt.ledgerTarget()
			if err != nil {
				return "", err
			}
			if target != "" {
				return ledgerBeside(target)
			}
		}
	}
	return fallbackLedger, nil
}

// ledgerBeside is the ledger that goes with a GNU Health database: the
// ghsync schema inside it on PostgreSQL (ARCHITECTURE.md: the production
// layout, where capture hands events over in the same transaction), and a
// file beside it for SQLite: /var/lib/trytond/health.sqlite gives
// /var/lib/trytond/health.ghsync.db (not *.sqlite, which trytond would
// list as a database).
func ledgerBeside(target string) (string, error) {
	pg, path, err := ledgerBackend(target)
	if err != nil {
		return "", fmt.Errorf("the ledger beside %s: %w", redact(target), err)
	}
	if pg {
		return target, nil
	}
	dir, file := filepath.Split(path)
	return "sqlite:" + filepath.Join(dir, strings.TrimSuffix(file, filepath.Ext(file))+".ghsync.db"), nil
}

func (t *Target) ledgerTarget() (string, error)   { return t.Target, nil }
func (c *ServeCmd) ledgerTarget() (string, error) { return c.Target, nil }

// newLedgerFile returns the path of the SQLite file location names if it
// does not exist yet ("" otherwise, and for PostgreSQL): the file a
// command is about to create.
func newLedgerFile(location string) string {
	pg, path, err := ledgerBackend(location)
	if err != nil || pg {
		return ""
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		return ""
	}
	return path
}

// removeEmptyLedger removes the SQLite file at path, made by a command
// that then failed, if no event was appended to it: a failed first sync
// (central unreachable, a wrong token) must not leave an empty ledger
// behind for the next command to take as the instance's.
func removeEmptyLedger(path string, log hclog.Logger) {
	if _, err := os.Stat(path); err != nil {
		return
	}
	empty, err := holdsNoEvents(path)
	if err != nil || !empty {
		return
	}
	for _, p := range []string{path, path + "-wal", path + "-shm", path + "-journal"} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			log.Warn("could not remove the empty ledger the failed command made", "file", p, "error", err)
			return
		}
	}
	log.Info("removed the empty ledger the failed command made", "file", path)
}

// holdsNoEvents reports whether the SQLite file at path has no ledger
// events (or no ledger at all).
func holdsNoEvents(path string) (bool, error) {
	db, _, _, err := dbopen.Open("sqlite:" + path)
	if err != nil {
		return false, err
	}
	defer db.Close()
	var tables int
	if err := db.QueryRow(`SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'ghsync_events'`).Scan(&tables); err != nil {
		return false, err
	}
	if tables == 0 {
		return true, nil
	}
	var any bool
	err = db.QueryRow(`SELECT EXISTS (SELECT 1 FROM ghsync_events)`).Scan(&any)
	if errors.Is(err, sql.ErrNoRows) {
		return true, nil
	}
	return !any, err
}
