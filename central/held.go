package central

import (
	"context"
	"errors"
	"fmt"

	"github.com/ghsync/ghsync/ledger"
)

// Release appends origin's held events to the ledger, in seq order, as an
// administrator's explicit decision (ghsync central held release): the
// clock check that held them is not applied again. Events the ledger
// accepts are dropped from the held table. If the ledger refuses one (a
// broken chain, a conflict), the events before it are appended and the
// error names it; it and the rest stay held.
func Release(ctx context.Context, store ledger.Store, reg Registry, origin uint16) (appended int, err error) {
	held, err := reg.HeldEvents(ctx, int(origin))
	if err != nil {
		return 0, err
	}
	if len(held) == 0 {
		return 0, nil
	}
	events := make([]*ledger.Event, 0, len(held))
	for _, h := range held {
		e, err := ledger.Unmarshal(h.Payload)
		if err != nil {
			return 0, fmt.Errorf("held event origin %d seq %d: %w", h.Origin, h.Seq, err)
		}
		events = append(events, e)
	}
	var refused error
	for len(events) > 0 {
		res, err := store.Append(ctx, events)
		if err == nil {
			appended = res.Appended
			break
		}
		var ee *ledger.EventError
		if !errors.As(err, &ee) {
			return 0, fmt.Errorf("release origin %d: %w", origin, err)
		}
		k := -1
		for i, e := range events {
			if e.ID == ee.ID {
				k = i
			}
		}
		if k < 0 {
			return 0, fmt.Errorf("release origin %d: %w", origin, err)
		}
		refused = fmt.Errorf("release origin %d: the ledger refused %w; it and the %d events after it stay held", origin, ee, len(events)-k-1)
		events = events[:k]
	}
	if len(events) > 0 {
		if err := reg.ForgetEvents(ctx, origin, events[len(events)-1].OriginSeq); err != nil {
			return appended, err
		}
	}
	return appended, refused
}
