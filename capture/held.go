package capture

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/models"
)

// Held rows: what capture keeps back rather than merge two records.
//
// A row is given a network identity once, the first time it is captured,
// and a natural key that other instances also generate would make two
// different records one: Tryton's party sequence starts at 1 in every
// database, so Alice coded "1" at one clinic and Bob coded "1" at another
// would be merged. The capturer therefore refuses an identity from a key
// models.Model.CheckNetworkKey refuses (the rule ghsync models check
// applies), and from a key with an empty part. Such a row is held:
//
//   - it stays in the clinic's database as the user saved it, and its
//     change leaves the outbox without becoming an event, so it blocks
//     nothing else; the held table lists it (model, local id, the refused
//     key, the reason), capture status shows it and the drain logs it;
//   - a row that references a held row is held too, whole if the network
//     has never seen it (a create without the reference would show a
//     record without its party everywhere else, and a required reference
//     would be parked there anyway), or, for a record the network already
//     knows, only the fields that reference held rows: its other fields
//     are captured as usual. A reference is never written as empty in
//     place of a held row;
//   - the projector leaves a record with held fields as the user saved it
//     (projections treats it like a row with a change in the outbox);
//   - once the row can have an identity (the administrator edits the
//     code to a network-unique one, or identifies the model by UUID), the
//     next drain captures it as a create of the row as it is then, under
//     its new key, and then the rows held because of it: a change to the
//     row itself releases it as any first sight does, and at the end of
//     every drain the rows still held are tried again (retryHeld).
//
// An update that would move a known record's identity to a refused key
// (its code edited to "5") holds the key change: the record keeps its
// network identity, the update's other fields are captured under it, and
// the move happens once the code is network-unique.

// HeldRow is a row whose change capture holds back (Status.Held).
type HeldRow struct {
	Model   string
	LocalID int64
	// Key is the network key refused ("" when none could be made, or the
	// record's own key when only some fields are held).
	Key    string
	Reason string
	// Fields are the held fields of a record the network already knows;
	// nil when the whole row is held (the network has never seen it).
	Fields []string
	// At is when the latest held change was made.
	At time.Time
}

// heldRow is a held row as the capturer keeps it.
type heldRow struct {
	HeldRow
	table string
	uid   sql.NullInt64
}

func (h *heldRow) ref() localRef { return localRef{h.Model, h.LocalID} }

func (h *heldRow) whole() bool { return h.Fields == nil }

func (h *heldRow) same(o *heldRow) bool {
	return o != nil && h.Key == o.Key && h.Reason == o.Reason && slices.Equal(h.Fields, o.Fields) && h.whole() == o.whole() &&
		h.At.Equal(o.At) && h.uid == o.uid && h.table == o.table
}

// heldError says why a row cannot be given a network identity now.
type heldError struct {
	ref    localRef
	key    string // the key refused, "" if none could be made
	reason string
}

func (e *heldError) Error() string {
	return fmt.Sprintf("%s id %d is held back: %s", e.ref.model, e.ref.id, e.reason)
}

// asHeld returns err's heldError, if it is one.
func asHeld(err error) *heldError {
	var he *heldError
	if errors.As(err, &he) {
		return he
	}
	return nil
}

// referral is the reason of a row held because what ("field party",
// "key part name") references the row e holds.
func (e *heldError) referral(what string) string {
	return fmt.Sprintf("%s: %s id %d is held back", what, e.ref.model, e.ref.id)
}

// heldDDL creates the held table (Install, and Open for an install made
// before it existed).
func heldDDL(d *db) string {
	id := "INTEGER"
	if d.dialect == models.Postgres {
		id = "BIGINT"
	}
	// fields: "" for the whole row, else the held fields, comma-separated.
	return `CREATE TABLE IF NOT EXISTS ` + d.t("held") + ` (
		model    TEXT NOT NULL,
		local_id ` + id + ` NOT NULL,
		tbl      TEXT NOT NULL,
		key      TEXT NOT NULL,
		reason   TEXT NOT NULL,
		fields   TEXT NOT NULL,
		at       TEXT NOT NULL,
		uid      ` + id + `,
		PRIMARY KEY (model, local_id))`
}

const heldCols = "model, local_id, tbl, key, reason, fields, at, uid"

func scanHeld(rows *sql.Rows) (*heldRow, error) {
	h := &heldRow{}
	var fields, at string
	if err := rows.Scan(&h.Model, &h.LocalID, &h.table, &h.Key, &h.Reason, &fields, &at, &h.uid); err != nil {
		return nil, err
	}
	if fields != "" {
		h.Fields = strings.Split(fields, ",")
	}
	h.At, _ = time.Parse(time.RFC3339Nano, at)
	return h, nil
}

// readHeld reads every held row, in model and local id order; none when
// the table does not exist (capture installed by an older ghsync and not
// opened since).
func readHeld(ctx context.Context, d *db) ([]*heldRow, error) {
	if ok, err := d.tableExists(ctx, d.DB, d.t("held")); err != nil || !ok {
		return nil, err
	}
	rows, err := d.QueryContext(ctx, `SELECT `+heldCols+` FROM `+d.t("held")+` ORDER BY model, local_id`)
	if err != nil {
		return nil, fmt.Errorf("read held rows: %w", err)
	}
	defer rows.Close()
	var out []*heldRow
	for rows.Next() {
		h, err := scanHeld(rows)
		if err != nil {
			return nil, fmt.Errorf("read held rows: %w", err)
		}
		out = append(out, h)
	}
	return out, rows.Err()
}

// startHeld notes, before a build, whether any row may be held: if not,
// no change needs looking up.
func (b *batch) startHeld(ctx context.Context) error {
	if b.heldLooked {
		return nil
	}
	b.heldLooked = true
	if b.fl != nil && len(b.fl.held) > 0 {
		b.anyHeld = true
		return nil
	}
	var n int
	err := b.c.d.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM `+b.c.d.t("held")+` LIMIT 1) h`).Scan(&n)
	if err != nil {
		return fmt.Errorf("read held rows: %w", err)
	}
	b.anyHeld = n > 0
	return nil
}

// loadHeld reads whether refs are held, for those the batch does not know
// yet.
func (b *batch) loadHeld(ctx context.Context, refs []localRef) error {
	if !b.anyHeld {
		return nil
	}
	byModel := map[string][]int64{}
	for _, r := range refs {
		if _, ok := b.held[r]; ok {
			continue
		}
		b.held[r] = nil // not held unless found
		if b.fl != nil {
			if h, ok := b.fl.held[r]; ok {
				b.held[r] = h
				continue
			}
		}
		byModel[r.model] = append(byModel[r.model], r.id)
	}
	for model, ids := range byModel {
		slices.Sort(ids)
		err := eachKeyed(ctx, b.c.d, b.c.d, heldCols, "held", "local_id", "bigint", model, slices.Compact(ids), func(rows *sql.Rows) error {
			h, err := scanHeld(rows)
			if err == nil {
				b.held[h.ref()] = h
			}
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// heldOf is ref's hold, nil if it is not held.
func (b *batch) heldOf(ctx context.Context, ref localRef) (*heldRow, error) {
	if h, ok := b.held[ref]; ok || !b.anyHeld {
		return h, nil
	}
	if err := b.loadHeld(ctx, []localRef{ref}); err != nil {
		return nil, err
	}
	return b.held[ref], nil
}

// setHeld makes h (nil: none) ref's hold, if it changes anything.
func (b *batch) setHeld(ctx context.Context, ref localRef, h *heldRow) (bool, error) {
	old, err := b.heldOf(ctx, ref)
	if err != nil {
		return false, err
	}
	if (h == nil && old == nil) || (h != nil && h.same(old)) {
		return false, nil
	}
	b.held[ref] = h
	b.heldDirty[ref] = true
	if h != nil {
		b.anyHeld = true
	}
	return true, nil
}

// holdWhole holds a row the network has never seen, because of why.
func (b *batch) holdWhole(ctx context.Context, m *models.Model, ref localRef, ch *change, key, reason string) error {
	h := &heldRow{HeldRow: HeldRow{Model: m.Name, LocalID: ref.id, Key: key, Reason: reason, At: ch.at}, table: m.Table, uid: ch.uid}
	changed, err := b.setHeld(ctx, ref, h)
	if changed {
		b.c.log.Warn("record held back, not captured: it cannot have a network identity yet (ghsync capture status lists it)",
			"model", m.Name, "id", ref.id, "key", key, "reason", reason)
	}
	return err
}

// holdFields updates the held fields of a record the network knows:
// the captured ones are no longer held, the held ones are (reason says
// why).
func (b *batch) holdFields(ctx context.Context, m *models.Model, ref localRef, ch *change, captured map[string]ledger.Value, held []string, key, reason string) error {
	old, err := b.heldOf(ctx, ref)
	if err != nil {
		return err
	}
	if old == nil && len(held) == 0 {
		return nil
	}
	var fields []string
	if old != nil && !old.whole() {
		for _, f := range old.Fields {
			if _, ok := captured[f]; !ok {
				fields = append(fields, f)
			}
		}
	}
	for _, f := range held {
		if !slices.Contains(fields, f) {
			fields = append(fields, f)
		}
	}
	if len(fields) == 0 {
		return b.release(ctx, m, ref)
	}
	slices.SortFunc(fields, func(x, y string) int { return cmp.Compare(fieldOrder(m, x), fieldOrder(m, y)) })
	h := &heldRow{HeldRow: HeldRow{Model: m.Name, LocalID: ref.id, Key: key, Reason: reason, Fields: fields, At: ch.at}, table: m.Table, uid: ch.uid}
	if len(held) == 0 { // only some of the held fields were captured: the rest wait for the same reason
		h.Reason, h.Key, h.At, h.uid = old.Reason, old.Key, old.At, old.uid
	}
	changed, err := b.setHeld(ctx, ref, h)
	if changed && len(held) > 0 {
		b.c.log.Warn("fields held back, not captured: they reference a record with no network identity yet (ghsync capture status lists it)",
			"model", m.Name, "id", ref.id, "fields", strings.Join(fields, ","), "reason", reason)
	}
	return err
}

// release ends ref's hold, if it has one: its change has been captured
// (or the row is gone).
func (b *batch) release(ctx context.Context, m *models.Model, ref localRef) error {
	changed, err := b.setHeld(ctx, ref, nil)
	if changed {
		b.c.log.Info("held record captured", "model", m.Name, "id", ref.id)
	}
	return err
}

// bookkeepHeld writes the batch's changes to the held table (inside the
// transaction that appends its events).
func (b *batch) bookkeepHeld(ctx context.Context, exec func(q string, args ...any) error) error {
	refs := make([]localRef, 0, len(b.heldDirty))
	for r := range b.heldDirty {
		refs = append(refs, r)
	}
	slices.SortFunc(refs, func(x, y localRef) int {
		if c := strings.Compare(x.model, y.model); c != 0 {
			return c
		}
		return cmp.Compare(x.id, y.id)
	})
	table := b.c.d.t("held")
	for _, r := range refs {
		var err error
		if h := b.held[r]; h == nil {
			err = exec(`DELETE FROM `+table+` WHERE model = ? AND local_id = ?`, r.model, r.id)
		} else {
			var uid any
			if h.uid.Valid {
				uid = h.uid.Int64
			}
			err = exec(`INSERT INTO `+table+` (`+heldCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT (model, local_id) DO UPDATE SET tbl = excluded.tbl, key = excluded.key, reason = excluded.reason,
				fields = excluded.fields, at = excluded.at, uid = excluded.uid`,
				h.Model, h.LocalID, h.table, h.Key, h.Reason, strings.Join(h.Fields, ","), h.At.UTC().Format(time.RFC3339Nano), uid)
		}
		if err != nil {
			return fmt.Errorf("held row %s id %d: %w", r.model, r.id, err)
		}
	}
	return nil
}

// fieldOrder is the position of field name in m's declaration.
func fieldOrder(m *models.Model, name string) int {
	for i := range m.Fields {
		if m.Fields[i].Name == name {
			return i
		}
	}
	return len(m.Fields)
}
