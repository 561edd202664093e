// Package central is central's side of the synchronisation protocol
// (package wire): an http.Handler serving pushes, pulls and record-graph
// requests (new) to authenticated satellites, over central's ledger.
//
// Central keeps its own bookkeeping in the ledger's database (Registry):
// its identity (satellites key their pull cursors by it), the satellites
// and the SHA-256 of their tokens, each satellite's held set (the records
// a scope-local satellite receives), the events held back because their
// clock ran too far ahead of central's, and an index of references and
// PUIDs maintained incrementally from the ledger.
//
// Rules that keep central's ledger trustworthy:
//
//   - a satellite pushes only its own origin; origin 0 is central's;
//   - a request is decoded whole before anything is stored, so a
//     malformed, oversized or forged one stores nothing;
//   - a push is consecutive in origin_seq; when the ledger refuses one
//     event, the events before it are stored and those after it are not;
//   - an event whose HLC is more than MaxAhead ahead of central's clock
//     is not appended: it and the rest of its chain are held (durably, in
//     held_events) until central's clock catches up or an administrator
//     releases them (ghsync central held release).
package central
