package main

import (
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
)

// parseOnly parses args as the CLI would, without running the command.
func parseOnly(args []string) error {
	var cli CLI
	parser, err := newParser(&cli, io.Discard, io.Discard, func(int) {})
	if err != nil {
		return err
	}
	_, err = parser.Parse(args)
	return err
}

// TestReadmeCommands parses every ghsync command line in README.md's shell
// examples, as the CLI would, without running them: an example must work
// as written (required flags given, no flag the command lacks).
func TestReadmeCommands(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	inBlock, checked := false, 0
	for n, line := range strings.Split(string(readme), "\n") {
		if strings.HasPrefix(line, "```") {
			inBlock = line == "```sh"
			continue
		}
		if !inBlock {
			continue
		}
		args := readmeArgs(line)
		if args == nil {
			continue
		}
		checked++
		if err := parseOnly(args); err != nil {
			t.Errorf("README.md line %d: %s\n  %v", n+1, line, err)
		}
	}
	if checked < 5 {
		t.Fatalf("only %d ghsync command lines found in README.md's examples", checked)
	}
}

// readmeArgs returns the arguments of a ghsync command line (after any
// environment assignments, before any comment), or nil for other lines.
func readmeArgs(line string) []string {
	if i := strings.Index(line, " #"); i >= 0 {
		line = line[:i]
	}
	f := strings.Fields(line)
	for len(f) > 0 && strings.Contains(f[0], "=") {
		f = f[1:]
	}
	switch {
	case len(f) > 0 && f[0] == "ghsync":
		return f[1:]
	case len(f) > 2 && f[0] == "go" && f[1] == "run" && f[2] == "./cmd/ghsync":
		return f[3:]
	}
	return nil
}

// TestReadmeCommandTable parses the command lines of README.md's table of
// commands: each with its [optional parts] left out and with them given,
// every alternative (a\|b) in turn, placeholders replaced by values.
func TestReadmeCommandTable(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var cli CLI
	parser, err := newParser(&cli, io.Discard, io.Discard, func(int) {})
	if err != nil {
		t.Fatal(err)
	}
	var top []string
	for _, c := range parser.Model.Children {
		top = append(top, c.Name)
	}
	span := regexp.MustCompile("`([^`]*)`")
	optional := regexp.MustCompile(`\[([^\]]*)\]`)
	checked := 0
	for n, line := range strings.Split(string(readme), "\n") {
		if !strings.HasPrefix(line, "| `ghsync ") {
			continue
		}
		cell := strings.SplitN(line, "` |", 2)[0] + "`"
		var prev []string // the previous command's words, for "/ `list`"
		for _, m := range span.FindAllStringSubmatch(cell, -1) {
			cmd, _, _ := strings.Cut(strings.TrimPrefix(m[1], "ghsync "), ">")
			words := strings.Fields(cmd)
			if len(words) == 0 {
				continue
			}
			if !slices.Contains(top, strings.Split(words[0], "\\|")[0]) && len(prev) > 1 {
				// A sibling of the previous command: `central satellite add ...` / `list`.
				cmd = strings.Join(prev[:len(prev)-1], " ") + " " + cmd
			}
			prev = commandWords(parser.Model.Node, strings.Fields(cmd))
			for _, variant := range []string{optional.ReplaceAllString(cmd, ""), optional.ReplaceAllString(cmd, "$1")} {
				for _, args := range alternatives(strings.Fields(variant)) {
					checked++
					if err := parseOnly(placeholders(args)); err != nil {
						t.Errorf("README.md line %d: ghsync %s\n  %v", n+1, strings.Join(args, " "), err)
					}
				}
			}
		}
	}
	if checked < 30 {
		t.Fatalf("only %d command lines checked in README.md's table", checked)
	}
}

// commandWords returns the leading words of args that name commands.
func commandWords(node *kong.Node, args []string) []string {
	var out []string
	for _, a := range args {
		var next *kong.Node
		for _, c := range node.Children {
			if c.Type == kong.CommandNode && c.Name == a {
				next = c
			}
		}
		if next == nil {
			break
		}
		out, node = append(out, a), next
	}
	return out
}

// alternatives expands the first word holding a\|b into one command line
// per alternative, recursively.
func alternatives(args []string) [][]string {
	for i, a := range args {
		if !strings.Contains(a, "\\|") {
			continue
		}
		var out [][]string
		for _, alt := range strings.Split(a, "\\|") {
			line := slices.Clone(args)
			line[i] = alt
			out = append(out, alternatives(line)...)
		}
		return out
	}
	return [][]string{args}
}

// placeholders gives the table's numeric placeholders a value.
func placeholders(args []string) []string {
	out := slices.Clone(args)
	for i, a := range out {
		switch {
		case a == "N" || a == "ID":
			out[i] = "1"
		case a == "D":
			out[i] = "1s"
		case strings.HasPrefix(a, "ID="):
			out[i] = "1=" + a[3:]
		}
	}
	return out
}
