package main

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ghsync/ghsync/bundle"
	"github.com/ghsync/ghsync/central"
	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/site"
)

// ExportCmd writes a bundle: the offline transfer of a clinic with no link.
type ExportCmd struct {
	Instance uint16   `name:"id" required:"" env:"GHSYNC_ID" help:"This instance's synchronisation_id (0 = central, 1..511 = satellites), recorded in the bundle as its exporter (the same setting as capture's --id)." placeholder:"ID"`
	Since    string   `help:"Only events after this ledger position (as a previous export printed), or at or after this RFC 3339 time by their clock (e.g. 2026-11-30T08:00:00Z)." placeholder:"POSITION|TIME"`
	Origin   []uint16 `help:"Only events from these synchronisation ids (repeat or comma-separate)." sep:","`
	Model    []string `help:"Only these models (repeat or comma-separate), e.g. gnuhealth.patient." sep:","`
	Out      string   `short:"o" help:"Bundle file to write ('-' for standard output). A file is written under a temporary name and renamed when complete." default:"-" placeholder:"FILE|-"`
	Key      string   `help:"Private key file (from ghsync keygen) to sign the bundle with." placeholder:"FILE"`
	Unsigned bool     `help:"Write an unsigned bundle instead (importers must then pass --insecure-skip-signature)."`
}

// parseSince reads --since: a position (digits) or an RFC 3339 time.
func parseSince(s string) (bundle.Selection, error) {
	var sel bundle.Selection
	if s == "" {
		return sel, nil
	}
	if p, err := strconv.ParseUint(s, 10, 64); err == nil {
		sel.SincePosition = p
		return sel, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return sel, fmt.Errorf("--since %q: want a ledger position (a number) or an RFC 3339 time such as 2026-11-30T08:00:00Z", s)
	}
	sel.SinceTime = t
	return sel, nil
}

func readPrivateKey(env *Env, path string) (ed25519.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--key: %w", err)
	}
	key, err := bundle.ParsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("--key %s: %w", path, err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		env.Log.Warn("the signing key file is readable by other users; chmod 600 it", "key", path, "mode", fi.Mode().Perm().String())
	}
	return key, nil
}

func (c *ExportCmd) Run(env *Env) error {
	if c.Instance > ledger.MaxOrigin {
		return fmt.Errorf("export: --id %d outside 0..%d", c.Instance, ledger.MaxOrigin)
	}
	sel, err := parseSince(c.Since)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	sel.Origins, sel.Models = c.Origin, c.Model
	var key ed25519.PrivateKey
	switch {
	case c.Key != "" && c.Unsigned:
		return errors.New("export: --key and --unsigned exclude each other")
	case c.Key == "" && !c.Unsigned:
		return errors.New("export: give --key FILE to sign the bundle (make one with ghsync keygen --out FILE), or --unsigned to write an unsigned one")
	case c.Key != "":
		if key, err = readPrivateKey(env, c.Key); err != nil {
			return fmt.Errorf("export: %w", err)
		}
	}
	store, err := openLedger(env.Ctx, env.Ledger)
	if err != nil {
		return err
	}
	defer store.Close()
	opts := bundle.ExportOptions{Origin: c.Instance, Selection: sel, Key: key}
	if key != nil {
		// Only a signed bundle's stability fields are believed.
		if err := site.ExportStability(env.Ctx, env.Ledger, &opts); err != nil {
			return fmt.Errorf("export: %w", err)
		}
	}

	if c.Out == "-" || c.Out == "" {
		if f, ok := env.Out.(*os.File); ok && isTerminal(f) {
			return errors.New("export: a bundle is binary: write it to a file with --out FILE, or redirect standard output")
		}
		res, err := bundle.Export(env.Ctx, store, env.Out, opts)
		if err != nil {
			return err
		}
		env.Log.Info("bundle written to standard output", "events", res.Header.Events, "bytes", res.Size,
			"sha256", fmt.Sprintf("%x", res.Checksum), "signed", key != nil, "through_position", res.Through)
		return nil
	}
	res, err := exportToFile(env, store, c.Out, opts)
	if err != nil {
		return err
	}
	w := env.Out
	fmt.Fprintf(w, "exported %s (%s) of instance %d's ledger %s to %s\n", count(res.Header.Events, "event", "events"), res.Header.Selection, c.Instance, env.Ledger, c.Out)
	printOrigins(w, res.Origins)
	signed := "UNSIGNED"
	if key != nil {
		signed = "signed by " + bundle.FormatPublicKey(key.Public().(ed25519.PublicKey))
	}
	fmt.Fprintf(w, "  %d bytes, sha256 %x, %s\n", res.Size, res.Checksum, signed)
	fmt.Fprintf(w, "  through ledger position %d: the next export continues with --since %d\n", res.Through, res.Through)
	printStability(w, res.Header)
	return nil
}

// printStability says what stability fields a bundle carries.
func printStability(w io.Writer, h bundle.Header) {
	if r := h.Report; r != nil {
		fmt.Fprintf(w, "  stability report: events stamped through %s (seq %d) included, tables reflect central through position %d\n", r.HLC, r.Seq, r.Applied)
	}
	if h.Frontier != 0 {
		fmt.Fprintf(w, "  stability frontier: %s\n", h.Frontier)
	}
}

// exportToFile writes the bundle under a temporary name beside path (mode
// 0600: it holds patient data) and renames it when it is complete and
// synced, so a failed export never leaves a partial file under the name.
func exportToFile(env *Env, store ledger.Store, path string, opts bundle.ExportOptions) (*bundle.ExportResult, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		if fi, serr := os.Stat(filepath.Dir(path)); serr != nil || !fi.IsDir() {
			return nil, fmt.Errorf("export --out %s: the folder %s does not exist (is the USB stick mounted?)", path, filepath.Dir(path))
		}
		return nil, fmt.Errorf("export --out %s: cannot write there: %w", path, err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	res, err := bundle.Export(env.Ctx, store, tmp, opts)
	if err != nil {
		return nil, err
	}
	if err := tmp.Sync(); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	ok = true
	return res, nil
}

func printOrigins(w io.Writer, origins []bundle.OriginSummary) {
	for _, o := range origins {
		fmt.Fprintf(w, "  origin %3d: %s, seq %d..%d\n", o.Origin, count(o.Events, "event", "events"), o.MinSeq, o.MaxSeq)
	}
}

// ImportCmd appends bundles to the ledger.
type ImportCmd struct {
	Files                 []string `arg:"" name:"file" help:"Bundle files to import, in order ('-' reads standard input): a later one may continue the chains of an earlier one."`
	Instance              int      `name:"id" env:"GHSYNC_ID" default:"-1" help:"This instance's synchronisation_id: with it, the stability fields of trusted bundles are recorded (at central, a satellite's report; at a satellite, the positions of central's ledger a bundle covers and its frontier), so instances linked only by bundles take part in compaction." placeholder:"ID"`
	Trust                 []string `help:"A trusted signer: its public key (ed25519:BASE64, as keygen prints) or a file holding it (keygen's FILE.pub, or a PEM PUBLIC KEY). Prefix ID= to bind it to the instance it signs for (0=central.pub at a satellite, 12=clinic12.pub at central): only bound keys' stability fields are believed. Repeat or comma-separate." placeholder:"[ID=]PUBKEY|FILE" sep:","`
	InsecureSkipSignature bool     `help:"Accept bundles that are unsigned, or signed by a key not given with --trust, or whose signature does not verify. The checksum and every event are still checked."`
	Batch                 int      `help:"Events per append." default:"2000"`
	// At central, a satellite's bundle is admitted as its push would be,
	// under the clock policy serve records unless these are given.
	MaxAhead time.Duration `help:"At central (--id 0): how far ahead of this machine's clock a clinic's events may be stamped and still merge as stamped. Default: what serve last ran with (5m if it never ran)." placeholder:"DURATION"`
	Skew     string        `help:"At central (--id 0): bound or hold, for events stamped further ahead (see serve). Default: what serve last ran with (bound if it never ran)." enum:",bound,hold" default:""`
}

// parseTrust reads --trust: keys, each optionally bound to the instance
// it signs for ("12=clinic12.pub").
func parseTrust(specs []string) ([]ed25519.PublicKey, site.Signers, error) {
	var keys []ed25519.PublicKey
	signers := site.Signers{}
	for _, spec := range specs {
		spec = strings.TrimSpace(spec)
		if spec == "" {
			continue
		}
		origin := -1
		if id, rest, ok := strings.Cut(spec, "="); ok && id != "" && strings.Trim(id, "0123456789") == "" {
			n, err := strconv.ParseUint(id, 10, 16)
			if err != nil || n > uint64(ledger.MaxOrigin) {
				return nil, nil, fmt.Errorf("--trust %s: instance %s outside 0..%d", spec, id, ledger.MaxOrigin)
			}
			origin, spec = int(n), rest
		}
		data := []byte(spec)
		fi, statErr := os.Stat(spec)
		if statErr == nil && fi.Mode().IsRegular() {
			var err error
			if data, err = os.ReadFile(spec); err != nil {
				return nil, nil, fmt.Errorf("--trust %s: %w", spec, err)
			}
		}
		k, err := bundle.ParsePublicKey(data)
		switch {
		case err != nil && errors.Is(statErr, fs.ErrNotExist) && !strings.HasPrefix(spec, "ed25519:"):
			return nil, nil, fmt.Errorf("--trust %s: no such file, and not a public key (ed25519:BASE64, as keygen prints)", spec)
		case err != nil:
			return nil, nil, fmt.Errorf("--trust %s: neither a public key nor a file holding one: %w", spec, err)
		}
		keys = append(keys, k)
		if origin >= 0 {
			signers[uint16(origin)] = append(signers[uint16(origin)], k)
		}
	}
	return keys, signers, nil
}

// openBundle opens a bundle file, or spools standard input to a temporary
// file (a bundle is read twice: once to verify, once to append).
func openBundle(name string) (f *os.File, label string, cleanup func(), err error) {
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, "", nil, err
		}
		return f, name, func() { f.Close() }, nil
	}
	tmp, err := os.CreateTemp("", "ghsync-import-*.bundle")
	if err != nil {
		return nil, "", nil, err
	}
	cleanup = func() { tmp.Close(); os.Remove(tmp.Name()) }
	if _, err := io.Copy(tmp, os.Stdin); err != nil {
		cleanup()
		return nil, "", nil, fmt.Errorf("read standard input: %w", err)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		cleanup()
		return nil, "", nil, err
	}
	return tmp, "(standard input)", cleanup, nil
}

func (c *ImportCmd) Run(env *Env) error {
	keys, signers, err := parseTrust(c.Trust)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	if c.Batch < 1 {
		return errors.New("import: --batch must be at least 1")
	}
	if c.Instance > int(ledger.MaxOrigin) {
		return fmt.Errorf("import: --id %d outside 0..%d", c.Instance, ledger.MaxOrigin)
	}
	store, err := openLedger(env.Ctx, env.Ledger)
	if err != nil {
		return err
	}
	defer store.Close()
	opts := bundle.ImportOptions{Trust: bundle.Trust{Keys: keys, InsecureSkipSignature: c.InsecureSkipSignature}, Batch: c.Batch}
	// Central takes a satellite's events by bundle only as it takes them
	// by push; an import there without --id 0 would go around that.
	n, err := central.Registered(env.Ctx, env.Ledger)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	if n > 0 && c.Instance != 0 {
		return errors.New("import: this is central's ledger (satellites are registered in it): import here with --id 0 (or GHSYNC_ID=0), so bundles are admitted as pushes are; nothing was appended")
	}
	if c.Instance == 0 {
		cn, err := openCentral(env, store, centralUse{Policy: ClockPolicy{MaxAhead: c.MaxAhead, Skew: c.Skew}})
		if err != nil {
			return err
		}
		defer cn.Close()
		opts.Admit = site.AdmitAtCentral(env.Ctx, cn.srv, signers)
		opts.Sink = cn.srv.BundleSink()
	}

	// Every file is verified, and checked against the ledger, before
	// anything from any of them is appended: each against the ledger as
	// the files before it will leave it, so that a clinic's consecutive
	// bundles, given in order, import in one command.
	plans := make([]*bundle.Plan, 0, len(c.Files))
	for i, name := range c.Files {
		f, label, cleanup, err := openBundle(name)
		if err != nil {
			return fmt.Errorf("import: %w (nothing was appended)", err)
		}
		defer cleanup()
		opts.Name = label
		p, err := bundle.Check(env.Ctx, store, f, opts)
		if err != nil {
			if i < len(c.Files)-1 && errors.Is(err, bundle.ErrRefused) {
				err = fmt.Errorf("%w (the bundles are checked in the order given)", err)
			}
			return fmt.Errorf("import refused, nothing was appended: %w", err)
		}
		plans = append(plans, p)
		opts.After = p
	}
	w := env.Out
	var total, added, dups uint64
	for i, p := range plans {
		info := p.Info()
		h := info.Header
		fmt.Fprintf(w, "bundle %s: format %d, exported by instance %d at %s (%s)\n", info.Name, h.Version, h.Origin, h.Created.Format(time.RFC3339), h.Selection)
		sig := info.Signature.String()
		if info.Signer != nil {
			sig += " " + bundle.FormatPublicKey(info.Signer)
		}
		if c.InsecureSkipSignature && info.Signature != bundle.SignedTrusted {
			sig += " (accepted: --insecure-skip-signature)"
		}
		fmt.Fprintf(w, "  %s, %d bytes, sha256 %x, %s\n", count(h.Events, "event", "events"), info.Size, info.Checksum, sig)
		printOrigins(w, info.Origins)
		if p.Partial {
			fmt.Fprintln(w, "  note: the bundle holds many out-of-order runs of sequence numbers; only the first ones were checked against the ledger before appending (Append checks every event)")
		}
		res, err := p.Apply(env.Ctx)
		if err != nil {
			if i > 0 {
				err = fmt.Errorf("%w; %s before it %s imported whole", err, pick(i, "the bundle", fmt.Sprintf("the %d bundles", i)), pick(i, "was", "were"))
			}
			return fmt.Errorf("import: %w", err)
		}
		fmt.Fprintf(w, "  %s: %d new, %s (ledger head %d)\n", count(h.Events, "event", "events"), res.Appended, count(res.Duplicates, "duplicate", "duplicates"), res.Head)
		if res.Held > 0 {
			fmt.Fprintf(w, "  %s held out of the ledger for review: stamped too far ahead of this machine's clock, or following such an event in their chain (ghsync central held)\n", count(res.Held, "event", "events"))
		}
		printStability(w, h)
		if c.Instance >= 0 {
			note, err := site.RecordBundle(env.Ctx, store, env.Ledger, uint16(c.Instance), info, res, signers)
			switch {
			case errors.Is(err, site.ErrStabilityRefused):
				fmt.Fprintf(w, "  %v\n", err)
				env.Log.Warn("a bundle's stability fields were not recorded; compaction waits", "bundle", info.Name, "error", err)
			case err != nil:
				return fmt.Errorf("import: %s was imported, but recording its stability fields failed: %w", info.Name, err)
			case note != "":
				fmt.Fprintf(w, "  %s\n", note)
			}
		}
		total += h.Events
		added += res.Appended
		dups += res.Duplicates
	}
	if len(plans) > 1 {
		fmt.Fprintf(w, "import: %d bundles, %s: %d new, %s\n", len(plans), count(total, "event", "events"), added, count(dups, "duplicate", "duplicates"))
	}
	return nil
}

// KeygenCmd makes a bundle signing key.
type KeygenCmd struct {
	Out   string `required:"" help:"Private key file to write (PEM, mode 0600); the public key goes to FILE.pub." placeholder:"FILE"`
	Force bool   `help:"Overwrite existing key files."`
}

func (c *KeygenCmd) Run(env *Env) error {
	key, err := bundle.GenerateKey()
	if err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	pemBytes, err := bundle.MarshalPrivateKey(key)
	if err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	pub := bundle.FormatPublicKey(key.Public().(ed25519.PublicKey))
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if c.Force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	if err := writeKeyFile(c.Out, flags, 0o600, pemBytes); err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	if err := writeKeyFile(c.Out+".pub", flags, 0o644, []byte(pub+"\n")); err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	fmt.Fprintln(env.Out, pub)
	fmt.Fprintf(env.Out, "private key: %s (mode 0600; keep it on this instance: ghsync export --key %s)\n", c.Out, c.Out)
	fmt.Fprintf(env.Out, "public key:  %s.pub (give it to the importing instances: ghsync import --trust %s.pub)\n", c.Out, c.Out)
	return nil
}

func writeKeyFile(path string, flags int, mode os.FileMode, data []byte) error {
	f, err := os.OpenFile(path, flags, mode)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%s exists (pass --force to overwrite it)", path)
		}
		return err
	}
	if err := f.Chmod(mode); err != nil { // an existing file keeps its mode otherwise
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
