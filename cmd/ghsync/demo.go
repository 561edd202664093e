package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ghsync/ghsync/capture"
	"github.com/ghsync/ghsync/central"
	"github.com/ghsync/ghsync/clocks"
	"github.com/ghsync/ghsync/fixtures"
	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/ledger/sqlite"
	"github.com/ghsync/ghsync/models"
	"github.com/ghsync/ghsync/site"
	"github.com/ghsync/ghsync/wire"
)

// DemoCmd builds a small network on this machine, with nothing to set up:
// central and three health centres on SQLite, talking HTTP over loopback.
type DemoCmd struct {
	Dir        string `help:"Folder for the instances' databases (must not exist, or be empty)." default:"ghsync-demo"`
	Satellites int    `help:"Health centres besides central (3..20: the story needs clinics 1, 2 and 3)." default:"3"`
	Events     int    `help:"Fixture events each instance starts with (at least 3: a clinic's own record, then a patient)." default:"300"`
	Seed       uint64 `help:"Random seed for the fixture data." default:"1"`
}

// demoNode is one instance of the demo.
type demoNode struct {
	id     uint16
	name   string
	path   string
	db     *sql.DB
	store  ledger.Store
	site   *site.Site
	seq    *ledger.Sequencer
	token  string
	target string
}

// Bounds of the demo's options. The offline story stages its conflicts at
// clinics 1, 2 and 3, and picks a patient each clinic registered: a
// clinic's first transaction records the clinic itself (2 events), the
// next registers a patient.
const (
	demoMinSatellites = 3
	demoMaxSatellites = 20
	demoMinEvents     = 3
)

// validate refuses options the demo cannot tell its story with, before
// anything is written.
func (c *DemoCmd) validate() error {
	if c.Satellites < demoMinSatellites || c.Satellites > demoMaxSatellites {
		return fmt.Errorf("demo: --satellites %d: want %d..%d (the story stages conflicts between clinics 1, 2 and 3)", c.Satellites, demoMinSatellites, demoMaxSatellites)
	}
	if c.Events < demoMinEvents {
		return fmt.Errorf("demo: --events %d: want at least %d (each clinic needs a patient of its own)", c.Events, demoMinEvents)
	}
	if entries, err := os.ReadDir(c.Dir); err == nil && len(entries) > 0 {
		return fmt.Errorf("demo: %s exists and is not empty; remove it or give --dir", c.Dir)
	}
	return nil
}

func (c *DemoCmd) Run(env *Env) error {
	start := time.Now()
	if err := c.validate(); err != nil {
		return err
	}
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return fmt.Errorf("demo: create %s: %w", c.Dir, err)
	}
	w := env.Out
	ctx := env.Ctx
	reg := models.GNUHealth()
	say := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }

	say("ghsync demo: central and %s in %s (SQLite, no server to set up)\n", count(c.Satellites, "health centre", "health centres"), c.Dir)
	var nodes []*demoNode
	defer func() {
		for _, n := range nodes {
			if n.site != nil {
				n.site.Close()
			}
			if n.store != nil {
				n.store.Close()
			}
			if n.db != nil {
				n.db.Close()
			}
		}
	}()
	for i := 0; i <= c.Satellites; i++ {
		n := &demoNode{id: uint16(i), name: fmt.Sprintf("clinic-%d", i)}
		if i == 0 {
			n.name = "central"
		}
		n.path = filepath.Join(c.Dir, n.name+".db")
		n.target = "sqlite:" + n.path
		nodes = append(nodes, n)
		if err := n.create(ctx, reg); err != nil {
			return fmt.Errorf("demo: %s: %w", n.name, err)
		}
		clinic := fixtures.NewClinic(n.id, n.seq, c.Seed+uint64(i))
		if err := fixtures.Fill(ctx, n.store, []*fixtures.Clinic{clinic}, c.Events, 50); err != nil {
			return err
		}
		head, _ := n.store.Head(ctx)
		what := "its own patients, appointments and evaluations"
		if i == 0 {
			what = "the ICD-10 pathologies (reference data) and its own activity"
		}
		say("  %-9s synchronisation id %d: GNU Health tables, capture installed, %s of %s", n.name, n.id, count(head, "event", "events"), what)
	}

	// Central serves on loopback.
	cn := nodes[0]
	creg, err := central.OpenRegistry(ctx, cn.target)
	if err != nil {
		return err
	}
	defer creg.Close()
	for _, n := range nodes[1:] {
		tok, hash, err := central.NewToken()
		if err != nil {
			return err
		}
		if err := creg.AddSatellite(ctx, central.Satellite{ID: n.id, Name: n.name, Scope: wire.ScopeAll, TokenHash: hash, Created: time.Now()}); err != nil {
			return err
		}
		n.token = tok
	}
	srv, err := central.New(central.Config{Store: cn.store, Registry: creg, Models: reg, Sequencer: cn.seq, Projects: true,
		FrontierEvery: -1, Logger: env.Log}) // a small ledger: derive the frontier at every report
	if err != nil {
		return err
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln)
	defer hs.Close()
	url := "http://" + ln.Addr().String()
	say("\ncentral serves %s; each health centre has its token\n", url)
	for _, n := range nodes {
		cURL, tok := url, n.token
		if n.id == 0 {
			cURL = ""
		}
		cfg := site.Config{Origin: n.id, Target: n.target, Store: n.store, StoreLocation: n.target,
			Central: cURL, Token: tok, Sequencer: n.seqIfCentral(), Logger: env.Log.Named(n.name)}
		if n.id == 0 {
			cfg.ReportStable = srv.ReportOwn
		}
		if n.site, err = site.Open(ctx, cfg); err != nil {
			return err
		}
		if err := n.writeConfig(c.Dir, url); err != nil {
			return fmt.Errorf("demo: %s: %w", n.name, err)
		}
	}

	say("1. first synchronisation: every instance pushes its records and pulls the others'")
	if err := demoQuiesce(ctx, nodes); err != nil {
		return err
	}
	if err := demoConvergence(ctx, w, nodes); err != nil {
		return err
	}

	say("\n2. offline: the health centres lose their link and keep working (edits made in SQL, as Tryton makes them, captured by the triggers)")
	story, err := demoOffline(ctx, nodes)
	if err != nil {
		return err
	}
	for _, s := range story.lines {
		say("   - %s", s)
	}

	say("\n3. the link is back: sync")
	if err := demoQuiesce(ctx, nodes); err != nil {
		return err
	}
	if err := demoConvergence(ctx, w, nodes); err != nil {
		return err
	}

	cs, err := cn.site.Projector().Conflicts(ctx)
	if err != nil {
		return err
	}
	say("\n4. conflicts found (every instance lists the same): %d", len(cs))
	for _, cf := range cs {
		say("   %s %s  field %s: %s by %s lost to %s by %s (%s)", cf.Model, shortKey(cf.Key), cf.Field,
			cf.LoserValue, instance(cf.LoserOrigin), cf.WinnerValue, instance(cf.WinnerOrigin), cf.Reason)
	}

	say("\n5. the history of the patient edited at two clinics at once (ghsync history):\n")
	if err := writeHistory(ctx, w, cn.store, []ledger.Stream{{Model: "party.party", Key: story.patient}}); err != nil {
		return err
	}
	say("\ndone in %s. The server has stopped. Each instance is one SQLite file in %s,", time.Since(start).Round(100*time.Millisecond), c.Dir)
	say("with a configuration file beside it (central.conf, clinic-1.conf, ...). Explore them:")
	say("  ghsync --config %s log --limit 20", filepath.Join(c.Dir, "central.conf"))
	say("  ghsync --config %s history --patient %s", filepath.Join(c.Dir, "clinic-1.conf"), story.puid)
	say("  ghsync --config %s conflicts", filepath.Join(c.Dir, "clinic-2.conf"))
	say("  ghsync --config %s dump --hash-only", filepath.Join(c.Dir, "clinic-3.conf"))
	say("  ghsync --config %s verify", filepath.Join(c.Dir, "central.conf"))
	return nil
}

func (n *demoNode) seqIfCentral() *ledger.Sequencer {
	if n.id == 0 {
		return n.seq
	}
	return nil
}

// create makes the instance's database: Tryton-shaped tables, capture,
// and the ledger in the same file.
func (n *demoNode) create(ctx context.Context, reg *models.Registry) error {
	var err error
	if n.db, err = sql.Open("sqlite", "file:"+n.path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)"); err != nil {
		return err
	}
	if err := fixtures.CreateTrytonSchema(ctx, n.db, reg, models.SQLite); err != nil {
		return err
	}
	if _, err := capture.Install(ctx, n.target, reg); err != nil {
		return err
	}
	if n.store, err = sqlite.Open(ctx, n.path, sqlite.Options{}); err != nil {
		return err
	}
	n.seq, err = ledger.Resume(ctx, n.store, n.id, clocks.NewClock(nil, clocks.DefaultMaxOffset))
	return err
}

// writeConfig leaves a ghsync configuration file beside the database. Its
// paths are relative to the file's folder, so it works from any directory
// and the folder can be moved.
func (n *demoNode) writeConfig(dir, url string) error {
	db := "sqlite:" + filepath.Base(n.path)
	lines := []string{
		"# ghsync demo instance " + n.name + " (paths are relative to this file's folder)",
		"ledger = " + db,
		"target = " + db,
		fmt.Sprintf("id = %d", n.id),
	}
	if n.id != 0 {
		lines = append(lines, "# the demo's server has stopped", "central = "+url, "token = "+n.token)
	}
	return os.WriteFile(filepath.Join(dir, n.name+".conf"), []byte(strings.Join(lines, "\n")+"\n"), 0o600)
}

// demoQuiesce syncs every instance until every ledger holds the same
// history and nothing waits in an outbox.
func demoQuiesce(ctx context.Context, nodes []*demoNode) error {
	for round := 0; round < 10; round++ {
		for _, n := range nodes {
			if _, err := n.site.Sync(ctx); err != nil {
				return fmt.Errorf("%s: %w", n.name, err)
			}
		}
		same := true
		var want []ledger.OriginHead
		for i, n := range nodes {
			heads, err := n.store.Origins(ctx)
			if err != nil {
				return err
			}
			for j := range heads {
				heads[j].MaxHLC = 0
			}
			if i == 0 {
				want = heads
			} else if !slices.Equal(heads, want) {
				same = false
			}
		}
		if same && round > 0 {
			return nil
		}
	}
	return errors.New("the instances did not converge in 10 rounds")
}

// demoConvergence prints each instance's canonical table hash.
func demoConvergence(ctx context.Context, w io.Writer, nodes []*demoNode) error {
	var first string
	for _, n := range nodes {
		sum, err := n.site.Projector().Dump(ctx, io.Discard)
		if err != nil {
			return err
		}
		head, _ := n.store.Head(ctx)
		mark := "identical"
		if first == "" {
			first = sum
		} else if sum != first {
			mark = "DIFFERENT"
		}
		fmt.Fprintf(w, "   %-9s ledger %5d events   tables sha256 %s…  %s\n", n.name, head, sum[:16], mark)
		if mark == "DIFFERENT" {
			return fmt.Errorf("%s's tables differ from central's", n.name)
		}
	}
	return nil
}

type demoStory struct {
	lines   []string
	patient string // the party key edited at two clinics
	puid    string
}

// demoOffline makes the conflicts the demo shows, through SQL on the
// clinics' Tryton tables (captured for real by the triggers).
func demoOffline(ctx context.Context, nodes []*demoNode) (*demoStory, error) {
	st := &demoStory{}
	c1, c2, c3 := nodes[1], nodes[2], nodes[3] // as the story says
	// A patient registered at clinic 1, now edited at clinics 1 and 2.
	var key, name, puid string
	if err := c1.db.QueryRowContext(ctx, `SELECT p.code, p.name, p.ref FROM party_party p JOIN ghsync_records i ON i.model = 'party.party' AND i.local_id = p.id
		WHERE p.ref LIKE 'JM001%' ORDER BY p.id LIMIT 1`).Scan(&key, &name, &puid); err != nil {
		return nil, fmt.Errorf("pick a patient of clinic 1: %w", err)
	}
	st.patient, st.puid = key, puid
	now := time.Now().UTC().Format("2006-01-02 15:04:05")
	exec := func(n *demoNode, q string, args ...any) error {
		if _, err := n.db.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("%s: %s: %w", n.name, q, err)
		}
		return nil
	}
	if err := exec(c2, `UPDATE party_party SET name = ?, write_uid = 1, write_date = ? WHERE code = ?`, name+" (corrected at clinic-2)", now, key); err != nil {
		return nil, err
	}
	time.Sleep(5 * time.Millisecond)
	if err := exec(c1, `UPDATE party_party SET name = ?, lastname = ?, write_uid = 1, write_date = ? WHERE code = ?`, name+" (corrected at clinic-1)", "Brown-Smith", now, key); err != nil {
		return nil, err
	}
	st.lines = append(st.lines, fmt.Sprintf("clinic-1 and clinic-2 both correct the name of patient %s (PUID %s); clinic-1 also changes the family name", name, puid))
	// A delete racing an update: clinic 3 deletes a contact mechanism that clinic 2 updates.
	var cm string
	if err := c3.db.QueryRowContext(ctx, `SELECT i.key FROM party_contact_mechanism m JOIN ghsync_records i ON i.model = 'party.contact_mechanism' AND i.local_id = m.id
		ORDER BY m.id LIMIT 1`).Scan(&cm); err != nil {
		return nil, fmt.Errorf("pick a phone number: %w", err)
	}
	if err := exec(c3, `DELETE FROM party_contact_mechanism WHERE id = (SELECT local_id FROM ghsync_records WHERE model = 'party.contact_mechanism' AND key = ?)`, cm); err != nil {
		return nil, err
	}
	time.Sleep(5 * time.Millisecond)
	if err := exec(c2, `UPDATE party_contact_mechanism SET value = '+18765550199', value_compact = '+18765550199', write_uid = 1, write_date = ?
		WHERE id = (SELECT local_id FROM ghsync_records WHERE model = 'party.contact_mechanism' AND key = ?)`, now, cm); err != nil {
		return nil, err
	}
	st.lines = append(st.lines, "clinic-3 deletes a phone number; a moment later clinic-2, unaware, updates it")
	// A duplicate registration: the same person registered at clinics 1 and 3
	// under the same national code, with different details.
	dup := "JM-NID-1970-0042 Grace Campbell"
	for i, n := range []*demoNode{c1, c3} {
		if err := exec(n, `INSERT INTO party_party (code, name, lastname, ref, is_person, active, create_uid, create_date) VALUES (?, 'Grace', 'Campbell', ?, 1, 1, 1, ?)`,
			dup, fmt.Sprintf("JM00%d777777", []int{1, 3}[i]), now); err != nil {
			return nil, err
		}
	}
	st.lines = append(st.lines, "clinic-1 and clinic-3 both register Grace Campbell (same national code) with different PUIDs")
	return st, nil
}

func shortKey(k string) string {
	if len(k) > 48 {
		return k[:45] + "…"
	}
	return k
}

func instance(origin uint16) string {
	if origin == 0 {
		return "central"
	}
	return fmt.Sprintf("clinic-%d", origin)
}
