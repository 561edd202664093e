package bundle_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ghsync/ghsync/bundle"
	"github.com/ghsync/ghsync/internal/pgtest"
	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/ledger/ledgertest"
	"github.com/ghsync/ghsync/ledger/postgres"
	"github.com/ghsync/ghsync/ledger/sqlite"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// backend opens fresh, real stores of one kind.
type backend struct {
	name string
	open func(t testing.TB) ledger.Store
}

func openSQLite(t testing.TB) ledger.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "ledger.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func openPostgres(t testing.TB) ledger.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), pgtest.NewDatabase(t), postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var backends = []backend{{"sqlite", openSQLite}, {"postgres", openPostgres}}

// history makes n events for each origin, interleaved as a central's
// ledger holds them (origin by origin, a few at a time), over two models.
func history(t testing.TB, seed uint64, n int, origins ...*ledgertest.Origin) []*ledger.Event {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed+1))
	var out []*ledger.Event
	left := make([]int, len(origins))
	for i := range left {
		left[i] = n
	}
	for done := 0; done < len(origins); {
		done = 0
		for i, o := range origins {
			k := min(left[i], 1+rng.IntN(7))
			if k == 0 {
				done++
				continue
			}
			for range k {
				model := "gnuhealth.patient"
				if rng.IntN(4) == 0 {
					model = "party.party"
				}
				out = append(out, o.Event(t, model, fmt.Sprintf("JM-%d", rng.IntN(50)), ledger.OpWrite, ledgertest.SampleFields(rng)))
			}
			left[i] -= k
		}
	}
	return out
}

func origins(ids ...uint16) []*ledgertest.Origin {
	out := make([]*ledgertest.Origin, len(ids))
	for i, id := range ids {
		out[i] = ledgertest.NewOrigin(id)
	}
	return out
}

func appendAll(t testing.TB, s ledger.Store, evs []*ledger.Event) {
	t.Helper()
	for len(evs) > 0 {
		k := min(1000, len(evs))
		if _, err := s.Append(context.Background(), evs[:k]); err != nil {
			t.Fatal(err)
		}
		evs = evs[k:]
	}
}

// all reads every record of s.
func all(t testing.TB, s ledger.Store) []ledger.Record {
	t.Helper()
	var out []ledger.Record
	for after := uint64(0); ; {
		page, err := s.ReadAll(context.Background(), after, 1000, ledger.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			return out
		}
		out = append(out, page...)
		after = page[len(page)-1].Position
	}
}

func head(t testing.TB, s ledger.Store) uint64 {
	t.Helper()
	h, err := s.Head(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func newKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	k, err := bundle.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func pub(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

var created = time.Date(2026, 12, 1, 9, 30, 0, 123456000, time.UTC)

// export runs bundle.Export into memory.
func export(t testing.TB, s ledger.Store, key ed25519.PrivateKey, sel bundle.Selection) ([]byte, *bundle.ExportResult) {
	t.Helper()
	var buf bytes.Buffer
	res, err := bundle.Export(context.Background(), s, &buf, bundle.ExportOptions{Origin: 7, Selection: sel, Key: key, Created: created})
	if err != nil {
		t.Fatal(err)
	}
	if int64(buf.Len()) != res.Size {
		t.Fatalf("export reports %d bytes, wrote %d", res.Size, buf.Len())
	}
	return buf.Bytes(), res
}

// writeBundle writes events with a Writer, as an exporter would.
func writeBundle(t testing.TB, key ed25519.PrivateKey, sel bundle.Selection, evs []*ledger.Event) []byte {
	t.Helper()
	return writeHeader(t, key, bundle.Header{Origin: 7, Selection: sel, Through: sel.SincePosition + uint64(len(evs))}, evs)
}

// writeHeader is writeBundle with the header's other fields given (Events
// and, when zero, Created are filled in).
func writeHeader(t testing.TB, key ed25519.PrivateKey, h bundle.Header, evs []*ledger.Event) []byte {
	t.Helper()
	var buf bytes.Buffer
	h.Events = uint64(len(evs))
	if h.Created.IsZero() {
		h.Created = created
	}
	w, err := bundle.NewWriter(&buf, h, key)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		if err := w.Write(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// reseal recomputes the trailer of data (checksum, and signature with key,
// or unsigned when key is nil): what an exporter that wrote those bytes
// would have produced. Tests use it to make bundles whose checksum and
// signature are right but whose content is bad.
func reseal(data []byte, key ed25519.PrivateKey) []byte {
	body := bytes.Clone(data[:len(data)-bundle.TrailerSize])
	sum := sha256.Sum256(body)
	out := append(body, bundle.TrailerMagic...)
	out = append(out, sum[:]...)
	if key == nil {
		out = append(out, 0)
		return append(out, make([]byte, 96)...)
	}
	out = append(out, 1)
	out = append(out, pub(key)...)
	return append(out, ed25519.Sign(key, sum[:])...)
}

// importBytes imports data through a real file, as the CLI does.
func importBytes(t testing.TB, s ledger.Store, data []byte, opts bundle.ImportOptions) (*bundle.ImportResult, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "x.bundle")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if opts.Name == "" {
		opts.Name = "x.bundle"
	}
	return bundle.Import(context.Background(), s, f, opts)
}

// checkBytes checks data against s through a real file, as the CLI does
// for each file of an import; the file stays open for the plan's Apply.
func checkBytes(t testing.TB, s ledger.Store, data []byte, opts bundle.ImportOptions) (*bundle.Plan, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "x.bundle")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return bundle.Check(context.Background(), s, f, opts)
}

func trust(keys ...ed25519.PrivateKey) bundle.Trust {
	var tr bundle.Trust
	for _, k := range keys {
		tr.Keys = append(tr.Keys, pub(k))
	}
	return tr
}

// sameEvents fails unless got and want hold the same events, byte for
// byte, in the same order.
func sameEvents(t testing.TB, got []ledger.Record, want []*ledger.Event) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d events, want %d", len(got), len(want))
	}
	for i := range want {
		a, err := ledger.Marshal(got[i].Event)
		if err != nil {
			t.Fatal(err)
		}
		b, err := ledger.Marshal(want[i])
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) || got[i].Event.Hash != want[i].Hash || ledger.HashOf(a) != want[i].Hash {
			t.Fatalf("event %d differs: %s vs %s", i+1, got[i].Event, want[i])
		}
	}
}

func events(recs []ledger.Record) []*ledger.Event {
	out := make([]*ledger.Event, len(recs))
	for i, r := range recs {
		out[i] = r.Event
	}
	return out
}
