// Package wire is the protocol between satellites and central: the frame
// stream that carries events, its limits, and the JSON messages and
// headers both sides share.
//
// # Frame stream (media type application/vnd.ghsync.events)
//
//	stream  = magic frame* trailer
//	magic   = "GHSE" 0x01                  (format version 1)
//	frame   = uvarint(n) payload[n]        (n >= 1)
//	trailer = uvarint(0) uvarint(frames)   (then the end of the stream)
//
// Varints are unsigned LEB128 in their shortest form (anything longer is
// refused, so a stream has one valid encoding). A push frame's payload is
// one event's canonical bytes (ledger.Marshal; decoded with the strict
// ledger.Unmarshal); a pull or new frame's payload is uvarint(position)
// followed by the event's bytes, the position being central's. The
// trailer makes a cut transfer detectable even without compression: a
// stream that ends anywhere before its trailer is ErrTruncated, never a
// shorter page. On HTTP the stream is gzip-compressed (Content-Encoding:
// gzip), whose CRC-32 also covers it.
//
// A Decoder enforces Limits (frame size, decompressed bytes, frame count)
// before allocating, and its errors are *FrameError values naming the
// frame index and the byte offset where that frame starts.
//
// # HTTP
//
//	GET  /v1/heads                          → Heads (JSON)
//	POST /v1/push   (frame stream, gzip)    → PushResponse (JSON)
//	GET  /v1/pull?after=P&limit=N&wait=D    → 200 frame stream (positioned) or 204
//	POST /v1/new    NewRequest (JSON)       → 200 frame stream (positioned)
//
// Requests carry "Authorization: Bearer <token>". Every answer carries
// X-Ghsync-Time (central's wall clock); pull and new answers carry
// X-Ghsync-Head, and pull answers X-Ghsync-Next (the cursor to send
// next). A refused request is answered 4xx with an Error (JSON).
package wire
