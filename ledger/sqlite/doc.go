// Package sqlite is the embedded ledger backend: one file per instance, no
// server to run, which is what the demo and small health centres use. It
// uses the pure-Go modernc.org/sqlite driver so the binary cross-compiles
// for the Linux and FreeBSD servers clinics run.
//
// # Durability
//
// The file is in WAL mode with synchronous=FULL: an Append that returned
// has been fsynced and survives a power cut, not only a killed process.
//
// # Gap safety
//
// SQLite has one writer at a time (BEGIN IMMEDIATE, plus an in-process
// mutex). Positions are assigned as max(position)+1 inside that write
// transaction, so they commit in position order and a reader's snapshot
// always holds a prefix of the positions: a subscriber cannot skip one.
package sqlite
