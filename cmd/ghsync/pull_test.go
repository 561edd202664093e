package main

import (
	"strings"
	"testing"
)

// new takes a patient, or a record by model and key: its usage line does
// not ask for both --patient and --model, and what is missing or too much
// is said before anything is dialled.
func TestNewFlags(t *testing.T) {
	code, out, _ := ghsync(t, "new", "--help")
	usage, _, _ := strings.Cut(out, "\n")
	if code != 0 || usage != "Usage: ghsync new [flags]" || !strings.Contains(out, "--patient=PUID") || !strings.Contains(out, "--model=MODEL") {
		t.Fatalf("new --help: exit %d, usage line %q\n%s", code, usage, out)
	}
	remote := []string{"--id", "2", "--central", "http://127.0.0.1:1", "--token", "t"}
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "ghsync: new: give --patient PUID, or --model MODEL with --key KEY\n"},
		{[]string{"--model", "party.party"}, "ghsync: new: --model needs --key KEY, the record's network key\n"},
		{[]string{"--patient", "P1", "--key", "K"}, "ghsync: new: --key goes with --model, not with --patient\n"},
		{[]string{"--patient", "P1", "--model", "party.party", "--key", "K"}, "ghsync: new: give --patient or --model, not both\n"},
	} {
		code, out, stderr := ghsync(t, append(append([]string{"new"}, remote...), c.args...)...)
		if code != 2 || stderr != c.want {
			t.Errorf("new %v: exit %d, want 2 and %q; got\n%s%s", c.args, code, c.want, out, stderr)
		}
	}
}
