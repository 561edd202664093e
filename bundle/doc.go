// Package bundle moves ledger events between instances that have no
// usable link at all: a file carried on a USB stick. `ghsync export`
// writes one, `ghsync import` appends it to another ledger.
//
// # Format version 2
//
// All integers are big-endian. A bundle is a header, the events, and a
// trailer:
//
//	offset  size  field
//	0       8     magic "GHSYNCB1"
//	8       2     format version (1)
//	10      4     L, length of the header fields that follow (at most 1 MiB)
//	14      L     header fields:
//	                2  exporting instance's origin (synchronisation id, 0..511)
//	                8  creation time, Unix microseconds, UTC
//	                1  since kind: 0 none, 1 position, 2 time
//	                8  since: 0; a position of the exporting ledger (events
//	                   after it); or Unix microseconds (events whose HLC is
//	                   at or after it)
//	                2  number of selected origins, then each as 2 bytes
//	                   (sorted, unique; none = all origins)
//	                2  number of selected models, then each as a 2-byte
//	                   length and the name (sorted, unique; none = all)
//	                8  N, number of events
//	                8  head covered: the exporting ledger's head when the
//	                   export began (version 2)
//	                1  stability flags: 1 a report follows, 2 a frontier
//	                   follows (version 2)
//	                24 report (a satellite's): clock reading, central
//	                   position applied, origin seq (each 8)
//	                8  frontier (central's): an HLC, not zero
//	14+L    ...   N records, in the exporting ledger's order: a 4-byte
//	              length n (1..64 MiB), then n bytes of the event's
//	              canonical encoding (ledger.Marshal, format byte first)
//	T       8     trailer magic "GHSYNCT1"
//	T+8     32    SHA-256 of bytes 0..T-1 (header and records)
//	T+40    1     signature scheme: 0 unsigned, 1 Ed25519
//	T+41    32    Ed25519 public key of the signer (zeros if unsigned)
//	T+73    64    Ed25519 signature of the 32 checksum bytes (zeros if unsigned)
//	T+137         end of file: any byte after it is an error
//
// Version 1 is version 2 without the fields marked so; readers still read
// it. Readers refuse a version newer than theirs (ErrNewerVersion). The
// stability fields let instances linked only by bundles take part in
// compaction (ARCHITECTURE.md, "Stability and compaction"). An event's
// hash is not stored: it is the SHA-256 of its encoding, as everywhere in
// the ledger, and its PrevHash links it to the previous event of its
// origin, so the reader checks the chain between consecutive events of an
// origin in the bundle; the whole-file checksum catches anything else, and
// the signature says who wrote the checksum.
//
// # Streaming
//
// Export holds one page of the store at a time (Export); Writer one
// event. Import reads the file twice and holds one batch: see Reader for
// why two passes rather than a spool, and Import for how an import stays
// all-or-nothing.
//
// # Keys
//
// Signing keys are Ed25519. GenerateKey makes one; MarshalPrivateKey
// writes it as PEM PKCS #8 (what `ghsync keygen` stores, mode 0600);
// FormatPublicKey gives the public key as "ed25519:BASE64", which
// ParsePublicKey reads back (as it reads a PEM PUBLIC KEY).
package bundle
