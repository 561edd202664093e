package bundle_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/ghsync/ghsync/bundle"
	"github.com/ghsync/ghsync/ledger"
)

// checksumVerifies reports, independently of the package, whether data
// ends with a trailer whose SHA-256 is that of the bytes before it.
func checksumVerifies(data []byte) bool {
	if len(data) < bundle.TrailerSize {
		return false
	}
	t := data[len(data)-bundle.TrailerSize:]
	sum := sha256.Sum256(data[:len(data)-bundle.TrailerSize])
	return string(t[:8]) == bundle.TrailerMagic && bytes.Equal(t[8:40], sum[:])
}

// FuzzRead: reading any bytes never panics; a bundle whose checksum does
// not verify yields no event; what a bundle yields are whole, canonical,
// sealed events, as many as its header announces.
//
//	go test -run '^$' -fuzz FuzzRead ./bundle
func FuzzRead(f *testing.F) {
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	// Small events keep inputs short, which the fuzzer mutates and
	// minimises faster.
	o1, o2 := origins(1)[0], origins(2)[0]
	evs := []*ledger.Event{
		o1.Event(f, "gnuhealth.patient", "JM-1", ledger.OpCreate, map[string]ledger.Value{"name": ledger.String("Ana")}),
		o2.Event(f, "party.party", "P-9", ledger.OpWrite, map[string]ledger.Value{"active": ledger.Bool(true)}),
		o1.Event(f, "gnuhealth.patient", "JM-1", ledger.OpDelete, nil),
	}
	signed := writeBundle(f, key, bundle.Selection{}, evs)
	f.Add(signed)
	f.Add(writeBundle(f, nil, bundle.Selection{SincePosition: 4, Origins: []uint16{1, 2}, Models: []string{"gnuhealth.patient", "party.party"}}, evs))
	f.Add(writeBundle(f, nil, bundle.Selection{SinceTime: evs[0].HLC.Time()}, evs[:1]))
	f.Add(writeBundle(f, key, bundle.Selection{}, nil))
	f.Add(writeHeader(f, key, bundle.Header{Origin: 1, Through: 9, Report: &bundle.Report{HLC: evs[2].HLC, Applied: 4, Seq: 2}}, evs))
	f.Add(writeHeader(f, key, bundle.Header{Origin: 0, Through: 3, Frontier: evs[0].HLC}, evs))
	f.Add(downgrade(signed, key))
	f.Add(signed[:len(signed)-bundle.TrailerSize]) // a body: resealed below
	f.Add([]byte(bundle.Magic))

	trusted := bundle.Trust{Keys: []ed25519.PublicKey{key.Public().(ed25519.PublicKey)}}
	insecure := bundle.Trust{InsecureSkipSignature: true}
	read := func(t *testing.T, data []byte, tr bundle.Trust) {
		r, err := bundle.Open(bytes.NewReader(data), bundle.Options{Trust: tr, Batch: 2})
		if err != nil {
			var be *bundle.Error
			if !errors.As(err, &be) {
				t.Fatalf("error %v is not a *bundle.Error", err)
			}
			return
		}
		if !checksumVerifies(data) {
			t.Fatalf("a bundle whose checksum does not verify was opened")
		}
		if tr.InsecureSkipSignature == false && r.Info().Signature != bundle.SignedTrusted {
			t.Fatalf("opened with signature %v", r.Info().Signature)
		}
		var n uint64
		for b, err := range r.Batches() {
			if err != nil {
				t.Fatalf("second pass over unchanged bytes: %v", err)
			}
			for _, e := range b.Events {
				p, err := ledger.Marshal(e)
				if err != nil || ledger.HashOf(p) != e.Hash {
					t.Fatalf("yielded an event that does not re-encode to its hash: %v", err)
				}
				n++
			}
		}
		if n != r.Info().Header.Events {
			t.Fatalf("yielded %d events, the header announces %d", n, r.Info().Header.Events)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		read(t, data, trusted)
		read(t, data, insecure)
		// The same bytes behind a right checksum (and a right signature),
		// so that mutations reach the header and event decoding.
		sealed := reseal(append(bytes.Clone(data), make([]byte, bundle.TrailerSize)...), key)
		read(t, sealed, trusted)
		if len(data) >= bundle.TrailerSize {
			read(t, reseal(data, nil), insecure)
		}
	})
}
