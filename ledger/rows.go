package ledger

import (
	"fmt"

	"github.com/ghsync/ghsync/clocks"
)

// RowScanner is the part of a database row both pgx and database/sql
// provide; backends hand their rows to ScanRecord and ScanOriginHead so
// the stored layout is read back in one place.
type RowScanner interface {
	Scan(dest ...any) error
}

// ScanRecord reads a (position, hash, payload) row and decodes the event,
// checking it against the stored hash (see DecodeStored).
func ScanRecord(r RowScanner) (Record, error) {
	var pos int64
	var hash, payload []byte
	if err := r.Scan(&pos, &hash, &payload); err != nil {
		return Record{}, err
	}
	e, err := DecodeStored(uint64(pos), hash, payload)
	if err != nil {
		return Record{}, err
	}
	return Record{Position: uint64(pos), Event: e, Payload: payload}, nil
}

// ScanOriginHead reads an (origin, seq, hash, count, max_hlc) row.
func ScanOriginHead(r RowScanner) (OriginHead, error) {
	var h OriginHead
	var origin int16
	var seq, count, maxHLC int64
	var hash []byte
	if err := r.Scan(&origin, &seq, &hash, &count, &maxHLC); err != nil {
		return OriginHead{}, err
	}
	h.Origin, h.Seq, h.Count, h.MaxHLC = uint16(origin), uint64(seq), uint64(count), clocks.Timestamp(maxHLC)
	copy(h.Hash[:], hash)
	return h, nil
}

// RecordRows is the part of a result set both pgx and database/sql provide.
type RecordRows interface {
	RowScanner
	Next() bool
	Err() error
}

// CollectRecords reads every (position, hash, payload) row with ScanRecord.
func CollectRecords(rows RecordRows) ([]Record, error) {
	var recs []Record
	for rows.Next() {
		r, err := ScanRecord(rows)
		if err != nil {
			return nil, err
		}
		recs = append(recs, r)
	}
	return recs, rows.Err()
}

// CollectRawRecords reads every (position, origin, hash, payload) row,
// checking each payload against its hash.
func CollectRawRecords(rows RecordRows) ([]RawRecord, error) {
	var recs []RawRecord
	for rows.Next() {
		var pos int64
		var origin int16
		var hash, payload []byte
		if err := rows.Scan(&pos, &origin, &hash, &payload); err != nil {
			return nil, err
		}
		if _, err := CheckStored(uint64(pos), hash, payload); err != nil {
			return nil, err
		}
		// The origin column is not under the hash: it must agree with
		// the payload, which is.
		if o, err := PeekOrigin(payload); err != nil || o != uint16(origin) {
			return nil, &EventError{Position: uint64(pos), Err: fmt.Errorf("%w: stored origin %d does not match the payload's (%d, %v)", ErrCorrupt, origin, o, err)}
		}
		recs = append(recs, RawRecord{Position: uint64(pos), Origin: uint16(origin), Payload: payload})
	}
	return recs, rows.Err()
}

// StoredColumns is an event's row as a store keeps it: the columns reads
// select and filter by (ReadStream by model and key, ReadOrigin by origin,
// Filter by model and origin) beside the bytes they were derived from.
// Only the payload is under the hash, so a column changed by hand could
// hide an event from an auditor's filtered view; Verify compares them.
type StoredColumns struct {
	Position  uint64
	ID        []byte // 16 bytes
	Origin    int64
	OriginSeq int64
	HLC       int64
	Model     string
	Key       string
	Tx        int64
	Hash      []byte
	PrevHash  []byte
	Payload   []byte
}

// CollectColumns reads every (position, id, origin, origin_seq, hlc, model,
// key, tx, hash, prev_hash, payload) row.
func CollectColumns(rows RecordRows) ([]StoredColumns, error) {
	var out []StoredColumns
	for rows.Next() {
		var c StoredColumns
		var pos int64
		if err := rows.Scan(&pos, &c.ID, &c.Origin, &c.OriginSeq, &c.HLC, &c.Model, &c.Key, &c.Tx, &c.Hash, &c.PrevHash, &c.Payload); err != nil {
			return nil, err
		}
		c.Position = uint64(pos)
		out = append(out, c)
	}
	return out, rows.Err()
}

// Disagreement names the first column that does not say what e (decoded
// from the row's payload) says, with both values; "" when all agree.
func (c StoredColumns) Disagreement(e *Event) string {
	type col struct {
		name       string
		stored, is any
	}
	for _, x := range []col{
		{"id", fmt.Sprintf("%x", c.ID), fmt.Sprintf("%x", e.ID[:])},
		{"origin", c.Origin, int64(e.Origin)},
		{"origin_seq", c.OriginSeq, int64(e.OriginSeq)},
		{"hlc", c.HLC, int64(e.HLC)},
		{"model", c.Model, e.Model},
		{"key", c.Key, e.Key},
		{"tx", c.Tx, int64(e.Tx)},
		{"prev_hash", fmt.Sprintf("%x", c.PrevHash), fmt.Sprintf("%x", e.PrevHash[:])},
	} {
		if x.stored != x.is {
			return fmt.Sprintf("column %s holds %#v, the event's bytes say %#v", x.name, x.stored, x.is)
		}
	}
	return ""
}
