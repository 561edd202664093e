package main

import (
	"database/sql"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"

	"github.com/ghsync/ghsync/merge"
	"github.com/ghsync/ghsync/models"
)

// errModelsCheckFailed makes the exit status 1 after the report was
// printed.
var errModelsCheckFailed = errors.New("models check found errors")

// ModelsCmd shows the model registry and checks a database against it.
type ModelsCmd struct {
	List  ModelsListCmd  `cmd:"" help:"Print the model registry: model, table, sync kind, key, field count, merge rules (or one model's fields)."`
	Check ModelsCheckCmd `cmd:"" help:"Compare a Tryton database with the registry before the first synchronisation; exit status 1 when ghsync could not write some model there."`
}

// ModelsListCmd prints the registry.
type ModelsListCmd struct {
	Model string `arg:"" optional:"" help:"Show this model's fields, types, targets and rules, and the fields it does not synchronise."`
}

func (c *ModelsListCmd) Run(env *Env) error {
	reg := models.GNUHealth()
	if c.Model != "" {
		m, ok := reg.Lookup(c.Model)
		if !ok {
			return fmt.Errorf("model %s is not in the registry (ghsync models list shows them all)", c.Model)
		}
		return listFields(env, m)
	}
	w := tabwriter.NewWriter(env.Out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "MODEL\tTABLE\tKIND\tKEY\tFIELDS\tRULES")
	for _, m := range reg.Models() {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\n", m.Name, m.Table, m.Kind, keyText(reg, m, false), len(m.Fields), rulesText(m))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(env.Out, "%d models, in dependency order (targets of required references first).\n", reg.Len())
	return nil
}

// keyText shows a model's key fields, a Many2One part with the model
// whose key it borrows ("name→party.party"); deep also shows that key
// ("name→party.party(code)").
func keyText(reg *models.Registry, m *models.Model, deep bool) string {
	if m.Kind == models.UUIDKey {
		return "-"
	}
	parts := make([]string, len(m.Key))
	for i, k := range m.Key {
		parts[i] = k
		if f, ok := m.Field(k); ok && f.Type == models.Many2One {
			parts[i] = k + "→" + f.Target
			if t, ok := reg.Lookup(f.Target); ok && deep {
				parts[i] += "(" + keyText(reg, t, true) + ")"
			}
		}
	}
	return strings.Join(parts, ", ")
}

func rulesText(m *models.Model) string {
	var out []string
	if m.Reference {
		out = append(out, "reference data (not replicated)")
	}
	out = append(out, m.Policy.Default.String())
	if m.Policy.OriginOwned {
		out = append(out, "origin-owned")
	}
	names := make([]string, 0, len(m.Policy.Fields))
	for name := range m.Policy.Fields {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		out = append(out, name+": "+m.Policy.Fields[name].String())
	}
	return strings.Join(out, "; ")
}

func listFields(env *Env, m *models.Model) error {
	reg := models.GNUHealth()
	fmt.Fprintf(env.Out, "%s (table %s, module %s)\n  kind %s, key %s\n  rules: %s\n", m.Name, m.Table, m.Module, m.Kind, keyText(reg, m, true), rulesText(m))
	if m.Active {
		fmt.Fprintln(env.Out, "  has an active column (database default false: writers set it)")
	}
	fmt.Fprintln(env.Out)
	w := tabwriter.NewWriter(env.Out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "FIELD\tTYPE\tTARGET\tREQUIRED\tRULE\tMODULE")
	for _, f := range m.Fields {
		target := f.Target
		if f.Relation != nil {
			target += " via " + f.Relation.Table
		}
		req := ""
		if f.Required {
			req = "yes"
		}
		if slices.Contains(m.Key, f.Name) {
			req += " (key)"
		}
		rule := m.Rule(f.Name)
		ruleText := ""
		if f.HasRule || rule != merge.LastWriterWins {
			ruleText = rule.String()
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", f.Name, f.Type, target, strings.TrimSpace(req), ruleText, f.Module)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if len(m.NotSynced) > 0 {
		fmt.Fprintln(env.Out, "\nNot synchronised:")
		names := make([]string, 0, len(m.NotSynced))
		for name := range m.NotSynced {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			fmt.Fprintf(env.Out, "  %s: %s\n", name, m.NotSynced[name])
		}
	}
	return nil
}

// ModelsCheckCmd checks a Tryton database against the registry.
type ModelsCheckCmd struct {
	DB            string `name:"db" required:"" placeholder:"URL" help:"The GNU Health database: a postgres:// URL, or sqlite:PATH for a Tryton SQLite file."`
	CreateIndexes bool   `name:"create-indexes" help:"Create the indexes the check recommends (unindexed-reference findings), then check again. The database user needs the right to create indexes on those tables."`
}

func (c *ModelsCheckCmd) Run(env *Env) error {
	db, dialect, err := openTryton(c.DB)
	if err != nil {
		return err
	}
	defer db.Close()
	reg, err := env.registry()
	if err != nil {
		return err
	}
	r, err := models.Check(env.Ctx, db, dialect, reg)
	if err != nil {
		return fmt.Errorf("check %s: %w", redact(c.DB), err)
	}
	if c.CreateIndexes {
		n, err := models.CreateIndexes(env.Ctx, db, r)
		fmt.Fprintf(env.Out, "created %s\n", count(n, "index", "indexes"))
		if err != nil {
			return fmt.Errorf("create indexes in %s: %w", redact(c.DB), err)
		}
		if r, err = models.Check(env.Ctx, db, dialect, reg); err != nil {
			return fmt.Errorf("check %s: %w", redact(c.DB), err)
		}
	}
	fmt.Fprint(env.Out, r.Text())
	if !r.OK() {
		return errModelsCheckFailed
	}
	return nil
}

// openTryton opens a Tryton database for reading: a postgres:// URL
// (driver pgx) or sqlite:PATH (driver sqlite, read-only; the file must
// exist).
func openTryton(loc string) (*sql.DB, string, error) {
	switch {
	case strings.HasPrefix(loc, "postgres://"), strings.HasPrefix(loc, "postgresql://"):
		db, err := sql.Open("pgx", loc)
		return db, models.Postgres, err
	case strings.HasPrefix(loc, "sqlite:"):
		path := strings.TrimPrefix(strings.TrimPrefix(loc, "sqlite:"), "//")
		if path == "" {
			return nil, "", fmt.Errorf("database %q names no file", loc)
		}
		if _, err := os.Stat(path); err != nil {
			return nil, "", fmt.Errorf("database %s: %w", loc, err)
		}
		db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
		return db, models.SQLite, err
	}
	return nil, "", fmt.Errorf("database %q: want a postgres:// URL or sqlite:PATH", redact(loc))
}

// redact hides a password in a database URL.
func redact(loc string) string {
	scheme, rest, ok := strings.Cut(loc, "://")
	if !ok {
		return loc
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return loc
	}
	user, _, hasPass := strings.Cut(rest[:at], ":")
	if !hasPass {
		return loc
	}
	return scheme + "://" + user + ":xxxxx" + rest[at:]
}
