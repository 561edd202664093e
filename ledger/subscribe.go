package ledger

import (
	"context"
	"iter"
	"sync"
	"time"
)

// Signal wakes subscribers when a store has appended. Each backend owns one
// and calls Notify after every commit (and, for PostgreSQL, on NOTIFY from
// other processes). The zero value is ready to use.
type Signal struct {
	mu sync.Mutex
	ch chan struct{}
}

// C returns a channel that is closed at the next Notify.
func (s *Signal) C() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

// Notify wakes everyone waiting on a channel from C.
func (s *Signal) Notify() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
}

// PageReader reads one page of matching records after a position, as
// ReadAll does, and also returns through: the position up to which it
// examined the ledger (the head it saw, or the last record when the page
// is full), so a filtered subscription never rescans what did not match.
type PageReader func(ctx context.Context, after uint64, limit int, f Filter) (recs []Record, through uint64, err error)

// Follow implements Store.Subscribe for a backend: it pages through what is
// stored, then waits for the signal (or the poll interval, which catches
// appends by other processes the signal cannot see) and reads again. It is
// gap-free exactly when read never returns a position while an earlier one
// can still commit, which each backend's append lock guarantees.
func Follow(ctx context.Context, after uint64, f Filter, read PageReader, sig *Signal, poll time.Duration) iter.Seq2[Record, error] {
	return func(yield func(Record, error) bool) {
		for {
			wake := sig.C() // before reading, so an append during the read is not missed
			recs, through, err := read(ctx, after, DefaultPageSize, f)
			if err != nil {
				yield(Record{}, err)
				return
			}
			for _, r := range recs {
				if !yield(r, nil) {
					return
				}
			}
			if through > after {
				after = through
			}
			if len(recs) == DefaultPageSize {
				continue
			}
			t := time.NewTimer(poll)
			select {
			case <-ctx.Done():
				t.Stop()
				yield(Record{}, ctx.Err())
				return
			case <-wake:
			case <-t.C:
			}
			t.Stop()
		}
	}
}
