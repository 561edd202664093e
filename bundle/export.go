package bundle

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"time"

	"github.com/ghsync/ghsync/clocks"
	"github.com/ghsync/ghsync/ledger"
)

// ExportOptions say what to export and how to sign it.
type ExportOptions struct {
	// Origin is the synchronisation id of the exporting instance, recorded
	// in the header.
	Origin    uint16
	Selection Selection
	// Key signs the bundle; nil writes an unsigned one.
	Key ed25519.PrivateKey
	// Created is the header's creation time; zero means now.
	Created time.Time
	// PageSize is how many records each store read returns
	// (ledger.DefaultPageSize when 0).
	PageSize int
	// Report (a satellite's) or Frontier (central's) travel in the header:
	// see Header.
	Report   *Report
	Frontier clocks.Timestamp
}

// ExportResult says what Export wrote.
type ExportResult struct {
	Header   Header
	Through  uint64 // the ledger's head when the export began: the next export continues with SincePosition = Through
	Size     int64  // bytes written
	Checksum [32]byte
	Origins  []OriginSummary
}

// Export writes a bundle of the events of s that opts.Selection picks, in
// ledger order, to w. It reads the store a page at a time and holds one
// page at most, so its memory does not grow with the ledger.
//
// The header announces the number of events before they follow, and a
// bundle is a stream, so the count is known first: the export fixes the
// store's head when it begins and takes only events at or below it (later
// appends wait for the next export). Positions are dense, so with no
// filter the count is the head minus SincePosition; with a filter, a first
// pass over the same range counts the events (one more read of them, the
// price of a header that says how many follow).
func Export(ctx context.Context, s ledger.Store, w io.Writer, opts ExportOptions) (*ExportResult, error) {
	sel, err := opts.Selection.normalize()
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	if opts.PageSize <= 0 {
		opts.PageSize = ledger.DefaultPageSize
	}
	if opts.Created.IsZero() {
		opts.Created = time.Now()
	}
	head, err := s.Head(ctx)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	if sel.SincePosition > head {
		return nil, fmt.Errorf("export: --since position %d is past this ledger's head %d (positions are local to one ledger: use the position a previous export from this ledger reported)", sel.SincePosition, head)
	}
	var count uint64
	if sel.SinceTime.IsZero() && len(sel.Origins) == 0 && len(sel.Models) == 0 {
		count = head - sel.SincePosition
	} else {
		err = each(ctx, s, sel, head, opts.PageSize, func(*ledger.Event) error { count++; return nil })
		if err != nil {
			return nil, fmt.Errorf("export: count events: %w", err)
		}
	}
	bw, err := NewWriter(w, Header{Origin: opts.Origin, Created: opts.Created, Selection: sel, Events: count,
		Through: head, Report: opts.Report, Frontier: opts.Frontier}, opts.Key)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	if err := each(ctx, s, sel, head, opts.PageSize, bw.Write); err != nil {
		bw.Close() // writes no trailer: the partial bundle cannot pass for a whole one
		return nil, fmt.Errorf("export: %w", err)
	}
	if err := bw.Close(); err != nil {
		return nil, fmt.Errorf("export: %w (the ledger changed below its head during the export?)", err)
	}
	return &ExportResult{Header: bw.Header(), Through: head, Size: bw.Size(), Checksum: bw.Checksum(), Origins: bw.Origins()}, nil
}

// each calls f for every event of sel at positions up to head, in order.
func each(ctx context.Context, s ledger.Store, sel Selection, head uint64, page int, f func(*ledger.Event) error) error {
	filter := sel.Filter()
	for after := sel.SincePosition; after < head; {
		recs, err := s.ReadAll(ctx, after, page, filter)
		if err != nil {
			return err
		}
		if len(recs) == 0 {
			return nil
		}
		for _, r := range recs {
			if r.Position > head {
				return nil
			}
			if !sel.Match(r.Event) {
				continue
			}
			if err := f(r.Event); err != nil {
				return err
			}
		}
		after = recs[len(recs)-1].Position
	}
	return nil
}
