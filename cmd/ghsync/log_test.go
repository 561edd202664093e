package main

import (
	"strings"
	"testing"
)

// A stream name typed with the key as is gets the name to type instead.
func TestLogStreamNeedsEncodedKey(t *testing.T) {
	db := "sqlite:" + generated(t)
	code, out, stderr := ghsync(t, "log", "--ledger", db, "--stream", "party.party-CODE WITH SPACE")
	want := `must be percent-encoded as %20 (the key after the first '-' is percent-encoded, as log prints it: write \"party.party-CODE%20WITH%20SPACE\")`
	if code == 0 || !strings.Contains(out+stderr, want) {
		t.Fatalf("log --stream with a space: exit %d, want %s in\n%s%s", code, want, out, stderr)
	}
}
