package main

import (
	"context"
	"fmt"
	"reflect"
	"time"

	"github.com/alecthomas/kong"

	"github.com/ghsync/ghsync/ledger"
)

// AfterApply runs once the command line, environment and configuration
// file are applied: the argument checks every command shares live here
// rather than in each Run. It does no I/O: parsing alone (README's
// examples are checked that way) touches no ledger.
func (c *CLI) AfterApply(kctx *kong.Context) error {
	return checkOrigins(kctx)
}

// beforeRun refuses, before a read-only command runs, a ledger that does
// not exist, rather than letting it create an empty one.
func beforeRun(ctx context.Context, kctx *kong.Context, location string) error {
	if sel := kctx.Selected(); sel != nil && readsLedgerOnly(sel.Target) {
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		return requireLedger(ctx, location)
	}
	return nil
}

// readsLedgerOnly says whether a command never appends to the ledger, so
// has no use for an empty one: it refuses a ledger that does not exist
// instead of creating it. The others (generate, import, pull, new,
// recover, sync, run, serve, capture, central satellite add, central
// held release) create the ledger as they write it.
func readsLedgerOnly(cmd reflect.Value) bool {
	if !cmd.IsValid() || !cmd.CanAddr() {
		return false
	}
	switch cmd.Addr().Interface().(type) {
	case *VerifyCmd, *LogCmd, *HistoryCmd, *ExportCmd,
		*ProjectCmd, *RebuildCmd, *ParkedCmd, *StatesCmd, *ConflictsCmd, *RejectedCmd, *DumpCmd,
		*PushCmd, *SatelliteListCmd, *SatelliteSetCmd, *SatelliteRemoveCmd, *HeldListCmd:
		return true
	}
	return false
}

// checkOrigins refuses a synchronisation id outside 0..MaxOrigin in any
// flag or argument: every uint16 the commands take is one (--id,
// --origin, --complete, central satellite add's id...). One tagged
// satellite:"" names a satellite, never central: 1..MaxOrigin, so the
// message gives the range the command takes.
func checkOrigins(kctx *kong.Context) error {
	for _, f := range kctx.Flags() {
		if err := checkOrigin("--"+f.Name, f.Target, f.Tag.Has("satellite")); err != nil {
			return err
		}
	}
	if sel := kctx.Selected(); sel != nil {
		for _, p := range sel.Positional {
			if err := checkOrigin("<"+p.Name+">", p.Target, p.Tag.Has("satellite")); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkOrigin refuses an id outside the range in v, when v holds
// synchronisation ids (a uint16, a pointer to one, or a slice of them);
// what names it.
func checkOrigin(what string, v reflect.Value, satellite bool) error {
	if v.Kind() == reflect.Ptr {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	ids := []uint16{}
	switch {
	case v.Kind() == reflect.Uint16:
		ids = append(ids, uint16(v.Uint()))
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Uint16:
		for i := range v.Len() {
			ids = append(ids, uint16(v.Index(i).Uint()))
		}
	}
	for _, id := range ids {
		switch {
		case satellite && (id < 1 || id > ledger.MaxOrigin):
			return fmt.Errorf("%s %d: a satellite's synchronisation id outside 1..%d (0 is central)", what, id, ledger.MaxOrigin)
		case id > ledger.MaxOrigin:
			return fmt.Errorf("%s %d: a synchronisation id outside 0..%d (0 is central, 1..%d the satellites)", what, id, ledger.MaxOrigin, ledger.MaxOrigin)
		}
	}
	return nil
}
