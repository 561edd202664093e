package bundle_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/ghsync/ghsync/bundle"
	"github.com/ghsync/ghsync/clocks"
)

// The version 2 fields travel exactly, and a writer refuses the ones that
// make no sense for the exporting instance.
func TestStabilityFields(t *testing.T) {
	key := newKey(t)
	evs := history(t, 3, 12, origins(4)...)
	rep := &bundle.Report{HLC: evs[11].HLC + 5, Applied: 903, Seq: 12}
	for _, c := range []struct {
		name     string
		h        bundle.Header
		complete bool
	}{
		{"satellite report", bundle.Header{Origin: 4, Through: 40, Selection: bundle.Selection{SincePosition: 28}, Report: rep}, true},
		{"central frontier", bundle.Header{Origin: 0, Through: 12, Frontier: evs[3].HLC}, true},
		{"neither, filtered", bundle.Header{Origin: 4, Through: 12, Selection: bundle.Selection{Origins: []uint16{4}}}, false},
		{"since a time", bundle.Header{Origin: 0, Through: 12, Selection: bundle.Selection{SinceTime: evs[0].HLC.Time()}}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			data := writeHeader(t, key, c.h, evs)
			info, err := bundle.Verify("s", bytes.NewReader(data), trust(key))
			if err != nil {
				t.Fatal(err)
			}
			got := info.Header
			if got.Version != bundle.Version || got.Through != c.h.Through || got.Frontier != c.h.Frontier || got.Complete() != c.complete {
				t.Fatalf("read version %d, through %d, frontier %s, complete %v; wrote through %d, frontier %s, want complete %v",
					got.Version, got.Through, got.Frontier, got.Complete(), c.h.Through, c.h.Frontier, c.complete)
			}
			if (got.Report == nil) != (c.h.Report == nil) || got.Report != nil && *got.Report != *c.h.Report {
				t.Fatalf("read report %+v, wrote %+v", got.Report, c.h.Report)
			}
		})
	}

	for _, c := range []struct {
		name, saying string
		h            bundle.Header
	}{
		{"report from central", "only satellites report", bundle.Header{Origin: 0, Through: 12, Report: rep}},
		{"report without a clock", "without a clock reading", bundle.Header{Origin: 4, Through: 12, Report: &bundle.Report{Applied: 3, Seq: 1}}},
		{"frontier from a satellite", "only central announces one", bundle.Header{Origin: 4, Through: 12, Frontier: 9}},
		{"since past the head", "past the head 3", bundle.Header{Origin: 4, Through: 3, Selection: bundle.Selection{SincePosition: 5}}},
	} {
		t.Run("refused: "+c.name, func(t *testing.T) {
			_, err := bundle.NewWriter(new(bytes.Buffer), c.h, key)
			if err == nil || !strings.Contains(err.Error(), c.saying) {
				t.Fatalf("got %v, want an error saying %q", err, c.saying)
			}
		})
	}
}

// A reader refuses stability fields the writer would not write, even
// behind a right checksum and signature.
func TestStabilityFieldsResealed(t *testing.T) {
	key := newKey(t)
	evs := history(t, 3, 2, origins(4)...)
	data := writeHeader(t, key, bundle.Header{Origin: 4, Through: 2, Report: &bundle.Report{HLC: clocks.Timestamp(1) << 20, Applied: 7, Seq: 2}}, evs)
	end := headerLen(data)
	flags := end - 25 // the report's three fields follow the flags
	for _, c := range []struct {
		name, saying string
		patch        func(d []byte)
	}{
		{"unknown flag", "unknown stability flags", func(d []byte) { d[flags] |= 0x80 }},
		{"zero clock", "without a clock reading", func(d []byte) { binary.BigEndian.PutUint64(d[flags+1:], 0) }},
		{"central's origin", "only satellites report", func(d []byte) { binary.BigEndian.PutUint16(d[14:], 0) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := bytes.Clone(data)
			c.patch(d)
			_, err := bundle.Verify("p.bundle", bytes.NewReader(reseal(d, key)), trust(key))
			if !errors.Is(err, bundle.ErrMalformed) || !strings.Contains(err.Error(), c.saying) {
				t.Fatalf("got %v, want ErrMalformed saying %q", err, c.saying)
			}
		})
	}
}

// Bundles of format version 1, written before the stability fields, are
// read as they were: no head covered, no report, not complete.
func TestReadsVersion1(t *testing.T) {
	key := newKey(t)
	evs := history(t, 3, 5, origins(4)...)
	v1 := downgrade(writeBundle(t, key, bundle.Selection{}, evs), key)
	info, err := bundle.Verify("old.bundle", bytes.NewReader(v1), trust(key))
	if err != nil {
		t.Fatal(err)
	}
	h := info.Header
	if h.Version != 1 || h.Events != 5 || h.Through != 0 || h.Report != nil || h.Frontier != 0 || h.Complete() {
		t.Fatalf("read %+v", h)
	}
	store := openSQLite(t)
	res, err := importBytes(t, store, v1, bundle.ImportOptions{Trust: trust(key)})
	if err != nil || res.Appended != 5 {
		t.Fatalf("import of a version 1 bundle: %+v, %v", res, err)
	}
}

// downgrade turns a version 2 bundle without stability fields into the
// version 1 bundle an older build wrote: the head covered and the flags
// removed, the header's length and the version changed, resealed.
func downgrade(data []byte, key ed25519.PrivateKey) []byte {
	end := headerLen(data)
	if data[end-1] != 0 {
		panic("downgrade: the bundle has stability fields")
	}
	out := append(bytes.Clone(data[:end-9]), data[end:]...)
	binary.BigEndian.PutUint16(out[8:], 1)
	binary.BigEndian.PutUint32(out[10:], uint32(end-9-14))
	return reseal(out, key)
}
