// Package ledger is ghsync's event-sourced sync ledger: an append-only log
// of immutable record changes made on GNU Health instances (central 0,
// satellites 1..511). Sync exchanges events, never table rows, so every
// change is kept, ordered, attributed and verifiable.
//
// # The event
//
// An Event is one create, write or delete of one Tryton record. ID (a
// UUIDv7) is the idempotency key. Origin and OriginSeq (1, 2, 3... per
// origin, gap-free at the origin) say who wrote it and make loss visible.
// HLC (a clocks.Timestamp) says when; Compare orders events by (HLC,
// Origin, ID), the tie-break every replica uses. Model and Key name the
// record by its network-wide identity, never a local id; its history is
// the Stream "<model>-<escaped key>". Fields holds only the fields the
// change set; Base holds, per changed field, the HLC of the value it
// replaced, so a merge can tell a concurrent overwrite from a later one.
// User and Tx are the Tryton login and origin transaction. PrevHash and
// Hash chain each origin's events.
//
// Field values are typed Values from a closed set: null, bool, int64,
// decimal (exact canonical text, never a float), string, date (civil day),
// datetime (UTC, microseconds), bytes, Ref (model, key and the life of the
// target it means) and RefSet
// (sorted, deduplicated). Constructors canonicalise and refuse what a
// Tryton field cannot hold; their errors never echo the value.
//
// # Format version 1
//
// Marshal writes the format byte 1, then a msgpack array of 12 elements:
//
//	id bin(16), origin uint, origin_seq uint, hlc uint, model str, key str,
//	op uint (1 create, 2 write, 3 delete), user str, tx uint,
//	fields map{str: value}, base map{str: uint hlc}, prev_hash bin(32)
//
// Map keys are sorted bytewise; integers, lengths and headers take their
// shortest msgpack form. Values: nil, bool, int, str and bin are native;
// the others are extensions: 1 decimal (canonical text), 2 date (int32
// big-endian, days since 1970-01-01), 3 datetime (int64 big-endian, µs
// since the epoch, UTC), 4 ref (uvarint length + model, uvarint length +
// key, then, for a ref naming a life of its target (Ref.Saw), that HLC as
// a uvarint, never 0 unless a lender life follows; then, for a ref to a
// record whose key borrows another's naming the life of that lender
// (Ref.Lender), that HLC as a uvarint, never 0), 5 refset (refs as in 4
// without either life, concatenated, sorted by model then key, no
// duplicates). Anything else, other extension types included, is an
// error. The lives of a ref came after format 1 was pinned: every event
// without them encodes as before, a decoder older than the life refuses
// a ref that names one, and one older than the lender life a ref that
// names that.
//
// Hash is the SHA-256 of the whole encoding, format byte included; Hash
// itself is not encoded. Seal sets PrevHash to the hash of the origin's
// previous event (zero for OriginSeq 1) and computes Hash, so an altered,
// inserted or missing event breaks the chain. testdata/event_v1.golden
// pins these bytes.
//
// # Invariants
//
//   - Immutability: a sealed event never changes; any change is
//     ErrHashMismatch (Prepare) or ErrCorrupt (DecodeStored).
//   - Canonical encoding: one event, one byte string, one hash. Unmarshal
//     re-encodes what it decoded and refuses any other spelling.
//   - Dense positions: a Store numbers events 1, 2, 3... with no gaps and
//     never reuses a position; positions are local to one store.
//   - Every Store shares Prepare, Lookups and Resolve (plan.go), so
//     idempotency, conflict and chain rules are identical in every backend.
//
// # Hazards
//
// HAZARD: the encoding is the hash. A change to Marshal, or a msgpack
// upgrade that picks another header, makes every stored event fail to
// verify. Never regenerate the golden file to make a test pass: a new
// layout is a new format byte, and decoders keep reading version 1.
//
// HAZARD: Fields and Base are maps the event shares with its caller.
// Writing to them after Seal silently changes the event in memory; only
// Prepare or a later verification notices.
//
// HAZARD: DecodeStored skips Validate and the canonical check: it trusts
// bytes whose stored hash matches. Bytes from a peer, a bundle or a file
// go through Unmarshal.
//
// HAZARD: Validate checks an event alone. A zero PrevHash past OriginSeq
// 1, a gap, or a fork is found only against a store (ErrChainBroken,
// ErrConflict).
//
// HAZARD: a Sequencer does not hold the numbers of events whose Append
// failed: call Resume before stamping again, or later events link to
// events no store holds.
//
// HAZARD: the codec does not tell a nil map from an empty one; decoded
// events have nil Fields and Base when they are empty.
package ledger
