package projections

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// A projection's writes reach PostgreSQL through pgconn, encoded here, not
// through pgx's type system: an op's column is one binary array built in
// a single pass, sized once, and typed so that the server reads integers,
// booleans, timestamps and dates without parsing text. Through pgx, every
// value became a string, every array was regrown by appends (pgx discards
// parameter buffers above 256 bytes after each statement) and the server
// cast each element from text: a fifth of the projector's allocations.

// wire is how one column of an op travels: a binary array of elem.
type wire struct {
	elem, array uint32 // element and array type OIDs
	name        string // the array's element type, in SQL
}

var (
	wireText      = wire{25, 1009, "text"}
	wireInt8      = wire{20, 1016, "int8"}
	wireBool      = wire{16, 1000, "bool"}
	wireTimestamp = wire{1114, 1115, "timestamp"}
	wireDate      = wire{1082, 1182, "date"}
	wireBytea     = wire{17, 1001, "bytea"}
)

// wireFor is the binary form for a column of PostgreSQL type t (as the
// projector names types); anything without a cheap exact one is text,
// cast by the server.
func wireFor(t string) wire {
	switch {
	case t == "bytea":
		return wireBytea
	case t == "integer" || t == "bigint" || t == "smallint":
		return wireInt8 // the cast to the column's type checks the range
	case t == "boolean":
		return wireBool
	case t == "date":
		return wireDate
	case strings.HasPrefix(t, "timestamp") && !strings.HasSuffix(t, "with time zone"):
		return wireTimestamp
	}
	return wireText
}

// fits reports whether v travels in w's binary form (nil always does).
func (w wire) fits(v any) bool {
	switch v.(type) {
	case nil:
		return true
	case int64, int:
		return w == wireInt8 || w == wireText
	case bool:
		return w == wireBool || w == wireText
	case time.Time:
		return w == wireTimestamp || w == wireDate || w == wireText
	case []byte:
		return w == wireBytea || w == wireText
	}
	return w == wireText
}

// pgEpoch is PostgreSQL's binary date and timestamp origin, 2000-01-01, in
// seconds since the Unix epoch.
const pgEpoch = 946684800

// wallSeconds is t's wall clock in its own location as seconds since
// the Unix epoch: what a timestamp without time zone holds.
func wallSeconds(t time.Time) int64 {
	_, off := t.Zone()
	return t.Unix() + int64(off)
}

// appendElem appends v in w's binary form; the caller checked fits.
func (w wire) appendElem(b []byte, v any) ([]byte, error) {
	if v == nil {
		return binary.BigEndian.AppendUint32(b, 0xFFFFFFFF), nil // -1: NULL
	}
	switch w {
	case wireInt8:
		var x int64
		switch i := v.(type) {
		case int64:
			x = i
		case int:
			x = int64(i)
		}
		return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint32(b, 8), uint64(x)), nil
	case wireBool:
		c := byte(0)
		if v.(bool) {
			c = 1
		}
		return append(binary.BigEndian.AppendUint32(b, 1), c), nil
	case wireTimestamp:
		t := v.(time.Time)
		us := (wallSeconds(t)-pgEpoch)*1e6 + int64(t.Nanosecond()/1000)
		return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint32(b, 8), uint64(us)), nil
	case wireDate:
		s := wallSeconds(v.(time.Time)) - pgEpoch
		days := s / 86400
		if s%86400 < 0 {
			days-- // floor: a wall clock before 2000 still falls on its own day
		}
		return binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(b, 4), uint32(int32(days))), nil
	case wireBytea:
		x := v.([]byte)
		return append(binary.BigEndian.AppendUint32(b, uint32(len(x))), x...), nil
	}
	// Text: the length is patched in once the element is written.
	at := len(b)
	b = append(b, 0, 0, 0, 0)
	b, err := appendText(b, v)
	binary.BigEndian.PutUint32(b[at:], uint32(len(b)-at-4))
	return b, err
}

// appendText appends v's text form, as the server's input functions read it.
func appendText(b []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case string:
		return append(b, x...), nil
	case int64:
		return strconv.AppendInt(b, x, 10), nil
	case int:
		return strconv.AppendInt(b, int64(x), 10), nil
	case bool:
		return strconv.AppendBool(b, x), nil
	case float64:
		return strconv.AppendFloat(b, x, 'g', -1, 64), nil
	case time.Time:
		return x.AppendFormat(b, "2006-01-02 15:04:05.999999"), nil
	case []byte:
		return hex.AppendEncode(append(b, `\x`...), x), nil
	}
	return b, fmt.Errorf("cannot send a %T to PostgreSQL", v)
}

// pgBatch is a projection transaction's writes, sent in one round trip.
type pgBatch struct {
	b   pgconn.Batch
	n   int   // statements queued
	err error // the first value that could not be encoded
}

// scratch holds an op's arrays until the batch has copied them: one
// buffer for every batch, not one grown from nothing each time.
var scratch = sync.Pool{New: func() any { return new([]byte) }}

// queue adds a statement whose arguments travel as text of a type the
// server infers from where they stand.
func (q *pgBatch) queue(sql string, args ...any) {
	values := make([][]byte, len(args))
	var buf []byte
	for i, a := range args {
		if a == nil {
			continue
		}
		start := len(buf)
		var err error
		if buf, err = appendText(buf, a); err != nil && q.err == nil {
			q.err = fmt.Errorf("%s: argument %d: %w", sql, i+1, err)
		}
		values[i] = buf[start:len(buf):len(buf)]
		if values[i] == nil {
			values[i] = []byte{} // '', not NULL
		}
	}
	q.b.ExecParams(sql, values, nil, nil, nil)
	q.n++
}

// queueOp adds an op as one statement over unnest of one binary array a
// column.
func (q *pgBatch) queueOp(o *op) {
	if len(o.rows) == 0 {
		return
	}
	wires := make([]wire, len(o.cols))
	for i, t := range o.types {
		wires[i] = wireFor(t)
		for _, row := range o.rows {
			if !wires[i].fits(row[i]) {
				wires[i] = wireText
				break
			}
		}
	}
	// All the arrays go into one buffer; values are slices of it.
	buf := scratch.Get().(*[]byte)
	defer scratch.Put(buf)
	b := (*buf)[:0]
	ends := make([]int, len(wires))
	for i, w := range wires {
		hasNull := uint32(0)
		for _, row := range o.rows {
			if row[i] == nil {
				hasNull = 1
				break
			}
		}
		b = binary.BigEndian.AppendUint32(b, 1) // one dimension
		b = binary.BigEndian.AppendUint32(b, hasNull)
		b = binary.BigEndian.AppendUint32(b, w.elem)
		b = binary.BigEndian.AppendUint32(b, uint32(len(o.rows)))
		b = binary.BigEndian.AppendUint32(b, 1) // lower bound
		for r, row := range o.rows {
			var err error
			if b, err = w.appendElem(b, row[i]); err != nil && q.err == nil {
				q.err = fmt.Errorf("%s row %d column %s: %w", o.table, r+1, o.cols[i], err)
			}
		}
		ends[i] = len(b)
	}
	*buf = b
	values := make([][]byte, len(wires))
	oids := make([]uint32, len(wires))
	formats := make([]int16, len(wires))
	start := 0
	for i, w := range wires {
		values[i], oids[i], formats[i] = b[start:ends[i]], w.array, 1
		start = ends[i]
	}
	// ExecParams copies the values into the batch's buffer.
	q.b.ExecParams(o.postgresSet(wires), values, oids, formats, nil)
	q.n++
}

// send runs the batch on conn, which must be in a transaction, and
// returns the last statement's command tag.
func (q *pgBatch) send(ctx context.Context, conn *pgconn.PgConn) (last pgconn.CommandTag, err error) {
	if q.err != nil {
		return last, q.err
	}
	if q.n == 0 {
		return last, nil
	}
	mrr := conn.ExecBatch(ctx, &q.b)
	for mrr.NextResult() {
		if last, err = mrr.ResultReader().Close(); err != nil {
			mrr.Close()
			return last, err
		}
	}
	return last, mrr.Close()
}
