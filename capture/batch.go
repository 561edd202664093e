package capture

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/ghsync/ghsync/clocks"
	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/merge"
	"github.com/ghsync/ghsync/models"
)

// localRef is a row of this database: a model and its local id.
type localRef struct {
	model string
	id    int64
}

// idChange is a change to the local ids in the records table, which the
// projector shares.
type idChange struct {
	op         byte // 'i' insert, 'd' delete, 'm' move (rename)
	model, key string
	newKey     string
	id         int64
}

type stampAt struct {
	e  *ledger.Event
	at time.Time
}

// owner is a record whose Many2Many relation rows changed (or, in a
// snapshot, may hold some).
type owner struct {
	ref      localRef
	field    string
	at       time.Time
	tx       int64
	uid      sql.NullInt64
	snapshot bool // an empty set is no change
}

// batch turns one batch of changes into events.
type batch struct {
	c       *Capturer
	keys    map[localRef]string     // identities known: the id map, then this batch's
	holders keyHolders              // keys, by key (setKey and unkey keep both)
	stored  keyHolders              // the id map's rows of keys read ahead (prefetchStored), nil for none
	recs    map[recKeyOf]*recordRow // records rows read (recordRows), nil for none
	looked  map[localRef]bool       // refs the id map was asked for, found or not
	gone    map[localRef]bool       // deleted in this batch
	rowless map[recKeyOf]bool       // records without a row moved in this batch (moveRowless)
	ids     []idChange
	events  []*ledger.Event
	encoded [][]byte // events' canonical encodings, once stamped
	pending []stampAt
	owners  []owner
	stamps  map[recKeyOf]fieldStamps // each field's HLC in this batch, once stamped
	fl      *inflight                // the batch appended meanwhile, while this one builds
	lenders lenderLives              // the lives its borrowers' lenders are in (lenders.go)
	// Rows held back (held.go): the holds this batch knows (nil: not
	// held), loaded or changed by it; the rows whose hold it changed;
	// whether any row may be held at all (if not, none is looked up).
	held       map[localRef]*heldRow
	heldDirty  map[localRef]bool
	anyHeld    bool
	heldLooked bool // anyHeld is known
}

// inflight is what a batch being appended will have written once it
// commits, for the batch built meanwhile (Drain overlaps them). Its id map
// writes are not visible to other connections until then, and may become
// visible at any moment of the next build: rows it touches are answered
// from here, never from the database, and entries it removes are ignored
// in what the database returns, so the answer is the same before and
// after the commit. (The alternative, building only after the commit,
// would leave the build, most of the process's work, out of the overlap.)
type inflight struct {
	keys    map[localRef]string // the entry of each row it maps, moves or unmaps ("" for none)
	holders keyHolders          // keys' rows that have one, by key
	// taken: keys a rename moved its row to; bookkeep deletes the entry
	// of any other row holding one.
	taken  map[recKeyOf]bool
	stamps map[recKeyOf]fieldStamps // its HLC per field: the Base of later writes
	// deletes: its deletes' HLCs, the latest per record (setRevivals)
	deletes map[recKeyOf]clocks.Timestamp
	held    map[localRef]*heldRow // the holds it sets or ends (nil)
}

// inflight is b's effect on the id map and its stamps, as the next batch
// must see them while b is appended (b is built and stamped).
func (b *batch) inflight() *inflight {
	fl := &inflight{keys: make(map[localRef]string, len(b.ids)), taken: map[recKeyOf]bool{}, stamps: b.stamps,
		held: make(map[localRef]*heldRow, len(b.heldDirty))}
	for ref := range b.heldDirty {
		fl.held[ref] = b.held[ref]
	}
	for _, e := range b.events {
		if k := (recKeyOf{e.Model, e.Key}); e.Op == ledger.OpDelete && e.HLC > fl.deletes[k] {
			if fl.deletes == nil {
				fl.deletes = map[recKeyOf]clocks.Timestamp{}
			}
			fl.deletes[k] = e.HLC
		}
	}
	for _, ic := range b.ids {
		ref := localRef{ic.model, ic.id}
		switch ic.op {
		case 'i':
			fl.keys[ref] = ic.key
		case 'd':
			fl.keys[ref] = ""
		case 'm':
			fl.keys[ref] = ic.newKey
			fl.taken[recKeyOf{ic.model, ic.newKey}] = true
		}
	}
	for ref, key := range fl.keys {
		if key != "" {
			fl.holders.add(ref, key)
		}
	}
	return fl
}

// keyHolders lists, per key, the local rows an id map gives it: what
// checks a new row's key against the rows of a batch (keyed), which
// would otherwise walk all of them for each, quadratic in the batch.
type keyHolders map[recKeyOf][]int64

func (h *keyHolders) add(ref localRef, key string) {
	if *h == nil {
		*h = keyHolders{}
	}
	k := recKeyOf{ref.model, key}
	(*h)[k] = append((*h)[k], ref.id)
}

func (h keyHolders) drop(ref localRef, key string) {
	k := recKeyOf{ref.model, key}
	if ids := slices.DeleteFunc(h[k], func(id int64) bool { return id == ref.id }); len(ids) > 0 {
		h[k] = ids
	} else {
		delete(h, k)
	}
}

// setKey gives ref key in the batch's id map.
func (b *batch) setKey(ref localRef, key string) {
	b.unkey(ref)
	b.keys[ref] = key
	b.holders.add(ref, key)
}

// unkey takes ref's key out of the batch's id map.
func (b *batch) unkey(ref localRef) {
	if old, ok := b.keys[ref]; ok {
		b.holders.drop(ref, old)
		delete(b.keys, ref)
	}
}

func newBatch(c *Capturer) *batch {
	return &batch{c: c, keys: map[localRef]string{}, gone: map[localRef]bool{}, looked: map[localRef]bool{},
		held: map[localRef]*heldRow{}, heldDirty: map[localRef]bool{}}
}

// build makes the batch's events from chs, in order.
func (b *batch) build(ctx context.Context, chs []change) error {
	refs := b.refsOf(chs)
	if err := b.loadKeys(ctx, refs); err != nil {
		return err
	}
	if err := b.prefetchStored(ctx, chs); err != nil {
		return err
	}
	if err := b.startHeld(ctx); err != nil {
		return err
	}
	if err := b.loadHeld(ctx, refs); err != nil {
		return err
	}
	for i := range chs {
		ch := &chs[i]
		t, ok := b.c.tables[ch.table]
		if !ok {
			b.c.log.Warn("outbox row for a table that is no longer captured: skipped", "seq", ch.seq, "table", ch.table)
			continue
		}
		m, _ := b.c.reg.Lookup(t.Model)
		var err error
		if t.Field != "" {
			err = b.relation(m, t.Field, ch)
		} else {
			err = b.record(ctx, m, ch)
		}
		if err != nil {
			return fmt.Errorf("capture outbox seq %d (%s %s id %d): %w", ch.seq, ch.table, opName(ch.op), ch.id, err)
		}
	}
	if err := b.flushOwners(ctx); err != nil {
		return err
	}
	return b.setBases(ctx)
}

func opName(op string) string {
	switch op {
	case "I":
		return "insert"
	case "U":
		return "update"
	case "D":
		return "delete"
	case "K":
		return "key notice"
	case "M":
		return "move notice"
	}
	return op
}

// refsOf lists the rows whose identity the batch needs.
func (b *batch) refsOf(chs []change) []localRef {
	out := make([]localRef, 0, len(chs))
	for _, ch := range chs {
		t, ok := b.c.tables[ch.table]
		if !ok {
			continue
		}
		m, _ := b.c.reg.Lookup(t.Model)
		if t.Field != "" {
			f, _ := m.Field(t.Field)
			for _, img := range []row{ch.old, ch.new} {
				if id, ok := img.int(f.Relation.OriginColumn); ok {
					out = append(out, localRef{m.Name, id})
				}
			}
			continue
		}
		out = append(out, localRef{m.Name, ch.id})
		for col := range ch.new { // an update's image holds a few of the model's columns
			f, ok := m.FieldByColumn(col)
			if !ok || f.Type != models.Many2One {
				continue
			}
			if id, ok := ch.new.int(col); ok {
				out = append(out, localRef{f.Target, id})
			}
		}
	}
	return out
}

// loadKeys reads the id map for refs not yet known.
func (b *batch) loadKeys(ctx context.Context, refs []localRef) error {
	byModel := map[string][]int64{}
	for _, r := range refs {
		if _, ok := b.keys[r]; ok || b.looked[r] {
			continue
		}
		b.looked[r] = true // a row the id map lacks is not asked for again
		if b.fl != nil {
			if k, ok := b.fl.keys[r]; ok {
				if k != "" {
					b.setKey(r, k)
				}
				continue
			}
		}
		byModel[r.model] = append(byModel[r.model], r.id)
	}
	for model, ids := range byModel {
		slices.Sort(ids)
		err := eachKeyed(ctx, b.c.d, b.c.d, "key, local_id", "records", "local_id", "bigint", model, slices.Compact(ids), func(rows *sql.Rows) error {
			var key string
			var id int64
			if err := rows.Scan(&key, &id); err != nil {
				return err
			}
			if b.fl == nil || !b.fl.taken[recKeyOf{model, key}] { // the batch appended meanwhile removes it
				b.setKey(localRef{model, id}, key)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// prefetchStored reads, one query a model, the id map's rows of the keys
// the batch's new rows of models whose key borrows another's will get,
// where the batch tells them already (likelyKey), so that keyFree need
// not ask the database for each: a round trip a patient registered.
func (b *batch) prefetchStored(ctx context.Context, chs []change) error {
	inserted := map[localRef]row{}
	var news []*change
	for i := range chs {
		ch := &chs[i]
		t, ok := b.c.tables[ch.table]
		if !ok || t.Field != "" || ch.op != "I" {
			continue
		}
		inserted[localRef{t.Model, ch.id}] = ch.new
		if m, _ := b.c.reg.Lookup(t.Model); len(m.BorrowedKeyParts()) > 0 {
			news = append(news, ch)
		}
	}
	byModel := map[string][]string{}
	for _, ch := range news {
		m, _ := b.c.reg.Lookup(b.c.tables[ch.table].Model)
		if key, ok := b.likelyKey(m, ch.new, inserted, 0); ok {
			byModel[m.Name] = append(byModel[m.Name], key)
		}
	}
	for model, keys := range byModel {
		if b.stored == nil {
			b.stored = keyHolders{}
		}
		slices.Sort(keys)
		keys = slices.Compact(keys)
		for _, key := range keys {
			b.stored[recKeyOf{model, key}] = nil
		}
		err := eachKeyed(ctx, b.c.d, b.c.d, "key, local_id", "records", "key", "text", model, keys, func(rows *sql.Rows) error {
			var key string
			var id sql.NullInt64
			if err := rows.Scan(&key, &id); err != nil {
				return err
			}
			if id.Valid {
				b.stored.add(localRef{model, id.Int64}, key)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// likelyKey is the key naturalKey gives a new row of m whose image is
// img, if the batch tells it without a read: its own parts from the
// image, a borrowed part from the lender's key known, or from the
// lender's insert in the batch (inserted). It is a guess for
// prefetchStored only: the lender's key may change before the row's turn.
func (b *batch) likelyKey(m *models.Model, img row, inserted map[localRef]row, depth int) (string, bool) {
	if depth > 2 {
		return "", false
	}
	parts := make([]string, len(m.Key))
	for i, name := range m.Key {
		f, _ := m.Field(name)
		if f.Type != models.Many2One {
			s, ok := img.str(f.Column)
			if !ok || s == "" {
				return "", false
			}
			parts[i] = s
			continue
		}
		id, ok := img.int(f.Column)
		if !ok {
			return "", false
		}
		ref := localRef{f.Target, id}
		if k, ok := b.keys[ref]; ok {
			parts[i] = k
			continue
		}
		lender, ok := b.c.reg.Lookup(f.Target)
		limg, inBatch := inserted[ref]
		if !ok || !inBatch || lender.Kind == models.UUIDKey {
			return "", false
		}
		if parts[i], ok = b.likelyKey(lender, limg, inserted, depth+1); !ok {
			return "", false
		}
	}
	return m.KeyOf(parts...), true
}

// identity is the network key of a local row, from the id map or made now:
// a new UUID for a UUID model, the key fields' values otherwise (img, or
// the row as it is now when img lacks them). A row held back (held.go),
// or one whose key is refused now, has none: the error is a *heldError.
func (b *batch) identity(ctx context.Context, ref localRef, img row) (string, error) {
	if k, ok, err := b.mapped(ctx, ref); err != nil || ok {
		return k, err
	}
	// A held row gets its identity when its own change (or the retry of
	// it) is captured as its create, never as a side effect of a
	// reference: the network would have its key and never its create.
	if h, err := b.heldOf(ctx, ref); err != nil {
		return "", err
	} else if h != nil && h.whole() {
		return "", &heldError{ref: ref, key: h.Key, reason: h.Reason}
	}
	return b.mint(ctx, ref, img)
}

// own is the identity of a row captured as a create: the id map's, or a
// new one (minted), even for a row held until now.
func (b *batch) own(ctx context.Context, ref localRef, img row) (key string, minted bool, err error) {
	if k, ok, err := b.mapped(ctx, ref); err != nil || ok {
		return k, false, err
	}
	k, err := b.mint(ctx, ref, img)
	return k, err == nil, err
}

// target is the network key of a row another one references (a
// Many2One, a key part, a Many2Many owner or member). A row refused an
// identity here is held itself, so that it is listed and captured once
// it can be; the referrer is held because of it (the caller's part).
func (b *batch) target(ctx context.Context, ref localRef) (string, error) {
	k, err := b.identity(ctx, ref, nil)
	if he := asHeld(err); he != nil && he.ref == ref {
		if h, herr := b.heldOf(ctx, ref); herr != nil {
			return "", herr
		} else if h == nil {
			m, _ := b.c.reg.Lookup(ref.model)
			if herr := b.holdWhole(ctx, m, ref, &change{at: b.c.now()}, he.key, he.reason); herr != nil {
				return "", herr
			}
		}
	}
	return k, err
}

// mapped is ref's key in the id map, if it has one.
func (b *batch) mapped(ctx context.Context, ref localRef) (string, bool, error) {
	if k, ok := b.keys[ref]; ok {
		return k, true, nil
	}
	if err := b.loadKeys(ctx, []localRef{ref}); err != nil {
		return "", false, err
	}
	k, ok := b.keys[ref]
	return k, ok, nil
}

// mint gives ref a new network identity, entered in the id map when the
// batch commits.
func (b *batch) mint(ctx context.Context, ref localRef, img row) (string, error) {
	m, ok := b.c.reg.Lookup(ref.model)
	if !ok {
		return "", fmt.Errorf("model %s is not synchronised", ref.model)
	}
	var key string
	if m.Kind == models.UUIDKey {
		key = uuid.NewString()
	} else {
		var err error
		if key, err = b.naturalKey(ctx, m, ref.id, img); err != nil {
			return "", err
		}
		if err = b.keyFree(ctx, m, ref, key); err != nil {
			return "", err
		}
	}
	b.setKey(ref, key)
	b.ids = append(b.ids, idChange{op: 'i', model: m.Name, key: key, id: ref.id})
	return key, nil
}

// keyFree refuses a new row a borrowed key that is still another row's
// identity. A record created elsewhere under its person's old code (a
// stale key, projections/borrow.go) keeps that key here until the
// instance that began it captures its move; a row for the person who has
// the code now, captured under it meanwhile, would be merged into that
// record and leave with its move. Held instead, it is captured once the
// key is free (the retry of held rows), as a new life of the key.
func (b *batch) keyFree(ctx context.Context, m *models.Model, ref localRef, key string) error {
	if len(m.BorrowedKeyParts()) == 0 {
		return nil // a key of the row's own columns: the table keeps it unique
	}
	ids, err := b.holdersOf(ctx, m, key)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if id != ref.id {
			return &heldError{ref: ref, key: key, reason: fmt.Sprintf("key %s is still the identity of %s id %d, whose key changed elsewhere (waits for that record's move)", key, m.Name, id)}
		}
	}
	return nil
}

// unassign takes back the identity mint gave ref in this batch.
func (b *batch) unassign(ref localRef) {
	b.unkey(ref)
	for i := len(b.ids) - 1; i >= 0; i-- {
		if ic := b.ids[i]; ic.op == 'i' && ic.model == ref.model && ic.id == ref.id {
			b.ids = slices.Delete(b.ids, i, i+1)
			return
		}
	}
}

// naturalKey builds a unique or composite key from a row image, reading
// the row when the image lacks a part. A key with an empty part, one
// borrowed from a held row, or one models.Model.CheckNetworkKey refuses
// (a plain number, as every instance's sequence makes) is no identity:
// the error is a *heldError.
func (b *batch) naturalKey(ctx context.Context, m *models.Model, id int64, img row) (string, error) {
	ref := localRef{m.Name, id}
	for _, name := range m.Key {
		f, _ := m.Field(name)
		if _, ok := img[f.Column]; !ok {
			cur, err := b.c.readRow(ctx, m.Table, id)
			if err != nil {
				return "", err
			}
			if cur == nil {
				return "", fmt.Errorf("%s id %d: row not found, and its key is not known", m.Name, id)
			}
			img = cur
			break
		}
	}
	parts := make([]string, len(m.Key))
	for i, name := range m.Key {
		f, _ := m.Field(name)
		if f.Type == models.Many2One {
			tid, ok := img.int(f.Column)
			if !ok {
				return "", &heldError{ref: ref, reason: emptyKeyPart(name)}
			}
			k, err := b.target(ctx, localRef{f.Target, tid})
			if he := asHeld(err); he != nil {
				return "", &heldError{ref: ref, reason: he.referral("key part " + name)}
			}
			if err != nil {
				return "", fmt.Errorf("%s id %d: key part %s: %w", m.Name, id, name, err)
			}
			parts[i] = k
			continue
		}
		s, ok := img.str(f.Column)
		if !ok || s == "" {
			return "", &heldError{ref: ref, reason: emptyKeyPart(name)}
		}
		parts[i] = s
	}
	key := m.KeyOf(parts...)
	if err := m.CheckNetworkKey(parts...); err != nil {
		why := strings.TrimPrefix(err.Error(), models.ErrKeyNotNetworkUnique.Error()+": ")
		return "", &heldError{ref: ref, key: key, reason: "key not network-unique: " + why}
	}
	return key, nil
}

func emptyKeyPart(name string) string {
	return fmt.Sprintf("key part %s is empty: the record has no network key until it is set", name)
}

// fields converts the synchronised columns present in img (all of them for
// a full image) into event fields. Nulls are kept when keepNull (a write
// that cleared a field), dropped otherwise (a create). held lists, in the
// model's order, the fields left out because their value references a
// row held back (held.go), and reason says why for the first.
//
// It walks the image, which holds a few columns for a write, rather than
// the model's fields (dozens for a party); a bad value is reported for
// the first bad field in the model's order, whatever the image's.
func (b *batch) fields(ctx context.Context, m *models.Model, img row, keepNull bool) (out map[string]ledger.Value, held []string, reason string, err error) {
	out = make(map[string]ledger.Value, len(img))
	var whys map[string]*heldError
	for col, raw := range img {
		f, ok := m.FieldByColumn(col)
		if !ok || f.Type == models.Many2Many {
			continue
		}
		v, err := b.fieldValue(ctx, f, img, raw)
		if he := asHeld(err); he != nil {
			if whys == nil {
				whys = map[string]*heldError{}
			}
			whys[f.Name] = he
			held = append(held, f.Name)
			continue
		}
		if err != nil {
			return nil, nil, "", b.firstBadField(ctx, m, img)
		}
		if v.IsNull() && !keepNull {
			continue
		}
		out[f.Name] = v
	}
	if len(held) > 0 {
		slices.SortFunc(held, func(x, y string) int { return cmp.Compare(fieldOrder(m, x), fieldOrder(m, y)) })
		reason = whys[held[0]].referral("field " + held[0])
	}
	return out, held, reason, nil
}

// fieldValue converts one column of img to f's ledger value; a Many2One
// becomes a reference to the target's network key.
func (b *batch) fieldValue(ctx context.Context, f *models.Field, img row, raw json.RawMessage) (ledger.Value, error) {
	if f.Type != models.Many2One {
		return valueOf(raw, f)
	}
	tid, ok := img.int(f.Column)
	if !ok {
		return ledger.Null(), nil
	}
	key, err := b.target(ctx, localRef{f.Target, tid})
	if err != nil {
		return ledger.Value{}, err
	}
	return ledger.RefTo(f.Target, key)
}

// firstBadField is the error of the first field, in the model's order,
// whose column in img does not convert.
func (b *batch) firstBadField(ctx context.Context, m *models.Model, img row) error {
	for i := range m.Fields {
		f := &m.Fields[i]
		if raw, ok := img[f.Column]; ok && f.Type != models.Many2Many {
			if _, err := b.fieldValue(ctx, f, img, raw); err != nil && asHeld(err) == nil {
				return fmt.Errorf("field %s: %w", f.Name, err)
			}
		}
	}
	return errors.New("a field does not convert") // not reached: fields found one
}

// emit queues an event, stamped later at the change's time.
func (b *batch) emit(m *models.Model, key string, op ledger.Op, fields map[string]ledger.Value, ch *change) {
	e := &ledger.Event{Model: m.Name, Key: key, Op: op, Fields: fields, User: b.c.login(context.Background(), ch.uid), Tx: uint64(ch.tx)}
	b.events = append(b.events, e)
	b.pending = append(b.pending, stampAt{e, ch.at})
}

// record handles a change to a model's own table.
func (b *batch) record(ctx context.Context, m *models.Model, ch *change) error {
	ref := localRef{m.Name, ch.id}
	switch ch.op {
	case "I":
		key, minted, err := b.own(ctx, ref, ch.new)
		if he := asHeld(err); he != nil {
			return b.holdWhole(ctx, m, ref, ch, he.key, he.reason)
		}
		if err != nil {
			return err
		}
		fields, held, reason, err := b.fields(ctx, m, ch.new, false)
		if err != nil {
			return err
		}
		if len(held) > 0 && minted {
			// New to the network: created once everything it references
			// can be named, rather than without the reference.
			b.unassign(ref)
			if m.Kind == models.UUIDKey {
				key = ""
			}
			return b.holdWhole(ctx, m, ref, ch, key, reason)
		}
		b.emit(m, key, ledger.OpCreate, fields, ch)
		delete(b.gone, ref)
		if ch.whole { // a snapshot row, or one seen for the first time: its Many2Many sets too
			for _, f := range m.Fields {
				if f.Type == models.Many2Many && f.Relation != nil && b.c.tables[f.Relation.Table].Field == f.Name {
					b.owners = append(b.owners, owner{ref: ref, field: f.Name, at: ch.at, uid: ch.uid, snapshot: true})
				}
			}
		}
		return b.holdFields(ctx, m, ref, ch, fields, held, key, reason)
	case "U":
		known, err := b.known(ctx, ref)
		if err != nil {
			return err
		}
		if !known {
			// A row from before capture was installed, never snapshotted,
			// or one held back until now: the network learns it whole.
			return b.firstSight(ctx, m, ch)
		}
		key := b.keys[ref]
		newKey, moved, err := b.moved(ctx, m, key, ch)
		keyHeld := asHeld(err)
		if err != nil && keyHeld == nil {
			return err
		} else if moved {
			return b.rename(ctx, m, key, newKey, ch)
		}
		fields, held, reason, err := b.fields(ctx, m, ch.new, true)
		if err != nil {
			return err
		}
		heldKey := key
		if keyHeld != nil {
			// The record keeps its identity; the move waits for a key
			// that may be one, the other fields go now.
			for _, k := range m.Key {
				delete(fields, k)
				if !slices.Contains(held, k) {
					held = append(held, k)
				}
			}
			heldKey, reason = keyHeld.key, keyHeld.reason
		}
		if len(fields) > 0 { // only unsynchronised columns changed otherwise
			b.emit(m, key, ledger.OpWrite, fields, ch)
		}
		return b.holdFields(ctx, m, ref, ch, fields, held, heldKey, reason)
	case "D":
		if h, err := b.heldOf(ctx, ref); err != nil {
			return err
		} else if h != nil && h.whole() {
			// Never captured: the network has nothing to delete.
			b.gone[ref] = true
			return b.release(ctx, m, ref)
		}
		key, err := b.identity(ctx, ref, ch.old)
		if err != nil {
			b.c.log.Warn("deleted row has no network identity: not captured", "model", m.Name, "id", ch.id, "error", err)
			return nil
		}
		b.emit(m, key, ledger.OpDelete, nil, ch)
		b.ids = append(b.ids, idChange{op: 'd', model: m.Name, key: key, id: ch.id})
		b.unkey(ref)
		b.gone[ref] = true
		return b.release(ctx, m, ref)
	case "K":
		return b.rekey(ctx, m, ch)
	case "M":
		return b.moveRowless(ctx, m, ch)
	default:
		return fmt.Errorf("unknown outbox operation %q", ch.op)
	}
}

// rekey handles the projector's notice that the record a row's key
// borrows from moved to another key (projections.noticeBorrowers): if the
// key the row has now differs from its identity, the identity moves. A
// row the network does not know yet, or deleted since, needs nothing: its
// create takes the key it has then.
func (b *batch) rekey(ctx context.Context, m *models.Model, ch *change) error {
	ref := localRef{m.Name, ch.id}
	key, known, err := b.mapped(ctx, ref)
	if err != nil || !known || b.gone[ref] {
		return err
	}
	cur, err := b.c.readRow(ctx, m.Table, ch.id)
	if err != nil || cur == nil {
		return err
	}
	newKey, err := b.naturalKey(ctx, m, ch.id, cur)
	if asHeld(err) != nil {
		return nil // it keeps its identity until its key may be one (held.go)
	}
	if err != nil || newKey == key {
		return err
	}
	return b.rename(ctx, m, key, newKey, ch)
}

// moveRowless handles the projector's notice that a record this instance
// began under a key it borrows, and has no row of any more, waits for its
// move to the key its lender has now (projections.noticeRowless). With no
// row whose key change would move it, the identity moves (emitMove) from
// the merged state: its values, the borrowed key parts
// naming the new key. Nothing happens when the record is no longer live
// here or this instance has captured a delete of it meanwhile.
func (b *batch) moveRowless(ctx context.Context, m *models.Model, ch *change) error {
	from, okFrom := ch.old.str("_key")
	to, okTo := ch.new.str("_key")
	if !okFrom || !okTo || from == "" || to == "" {
		return fmt.Errorf("move notice without both keys (old %s, new %s)", ch.old, ch.new)
	}
	k := recKeyOf{m.Name, from}
	if from == to || b.rowless[k] {
		return nil
	}
	unapplied, err := b.c.unappliedDeletes(ctx)
	if err != nil {
		return err
	}
	if _, deleted := unapplied[k]; deleted {
		return nil
	}
	var st *merge.State
	err = b.c.eachKeyRow(ctx, "records", "state", m.Name, []string{from}, func(_ string, raw []byte) error {
		if raw == nil {
			return nil
		}
		var err error
		st, err = merge.DecodeState(raw)
		return err
	})
	if err != nil || st == nil || !st.Live() {
		return err
	}
	if owner, ok := st.Owner(); !ok || owner != b.c.opts.Origin {
		return nil // only the instance that began it moves it
	}
	parts := []string{to}
	if len(m.Key) > 1 {
		if parts, err = ledger.SplitKey(to); err != nil || len(parts) != len(m.Key) {
			return fmt.Errorf("move notice: key %q is not one of %s: %v", to, m.Name, err)
		}
	}
	fields := map[string]ledger.Value{}
	for name, v := range st.Values(m.Policy) {
		if _, ok := m.Field(name); ok {
			fields[name] = v
		}
	}
	for _, kp := range m.BorrowedKeyParts() {
		r, ok := fields[kp.Field.Name].AsRef()
		if !ok {
			return fmt.Errorf("move notice: %s %s has no %s", m.Name, from, kp.Field.Name)
		}
		if fields[kp.Field.Name], err = ledger.RefTo(r.Model, parts[kp.Index]); err != nil {
			return err
		}
	}
	if err := b.emitMove(m, from, to, fields, ch); err != nil {
		return err
	}
	if b.rowless == nil {
		b.rowless = map[recKeyOf]bool{}
	}
	b.rowless[k] = true
	b.c.log.Info("record key changed: identity of a record with no row here moved", "model", m.Name, "from", from, "to", to)
	return nil
}

// known reports whether a row has a network identity already.
func (b *batch) known(ctx context.Context, ref localRef) (bool, error) {
	if _, ok := b.keys[ref]; ok {
		return true, nil
	}
	if err := b.loadKeys(ctx, []localRef{ref}); err != nil {
		return false, err
	}
	_, ok := b.keys[ref]
	return ok, nil
}

// firstSight captures an update of a row the network has never seen as
// the create of the row as it is now.
func (b *batch) firstSight(ctx context.Context, m *models.Model, ch *change) error {
	cur, err := b.c.readRow(ctx, m.Table, ch.id)
	if err != nil {
		return err
	}
	if cur == nil {
		return nil // deleted since; the delete follows and has nothing to remove
	}
	if h, err := b.heldOf(ctx, localRef{m.Name, ch.id}); err != nil {
		return err
	} else if h == nil {
		b.c.log.Warn("change to a row the network has not seen (run ghsync capture snapshot): captured whole", "model", m.Name, "id", ch.id)
	}
	return b.record(ctx, m, &change{seq: ch.seq, tx: ch.tx, at: ch.at, table: ch.table, op: "I", id: ch.id, uid: ch.uid, new: cur, whole: true})
}

// moved reports whether an update changed the record's natural key, and
// the new key.
func (b *batch) moved(ctx context.Context, m *models.Model, key string, ch *change) (string, bool, error) {
	if m.Kind == models.UUIDKey {
		return "", false, nil
	}
	touched := false
	for _, name := range m.Key {
		f, _ := m.Field(name)
		if _, ok := ch.new[f.Column]; ok {
			touched = true
		}
	}
	if !touched {
		return "", false, nil
	}
	img := row{}
	if cur, err := b.c.readRow(ctx, m.Table, ch.id); err != nil {
		return "", false, err
	} else if cur != nil {
		img = cur
	}
	for col, v := range ch.new { // the change's own values win over later ones
		img[col] = v
	}
	newKey, err := b.naturalKey(ctx, m, ch.id, img)
	if he := asHeld(err); he != nil && he.key == key && key != "" {
		return "", false, nil // its own key, given before the rule: kept
	}
	if err != nil {
		return "", false, err
	}
	return newKey, newKey != key, nil
}

// emitMove emits a record's key change with fields, its values under the
// new key: a create of the new key that names the old one, then a delete
// of the old key that names the new one (so two concurrent moves are a
// conflict: merge.RenamedTo).
func (b *batch) emitMove(m *models.Model, from, to string, fields map[string]ledger.Value, ch *change) error {
	var err error
	if fields[models.RenamedFrom], err = ledger.RefTo(m.Name, from); err != nil {
		return err
	}
	moved, err := ledger.RefTo(m.Name, to)
	if err != nil {
		return err
	}
	b.emit(m, to, ledger.OpCreate, fields, ch)
	b.emit(m, from, ledger.OpDelete, map[string]ledger.Value{merge.RenamedTo: moved}, ch)
	return nil
}

// rename moves a record's identity (emitMove). The local row keeps its
// id.
func (b *batch) rename(ctx context.Context, m *models.Model, oldKey, newKey string, ch *change) error {
	cur, err := b.c.readRow(ctx, m.Table, ch.id)
	if err != nil {
		return err
	}
	img := row{}
	for col, v := range cur {
		img[col] = v
	}
	for col, v := range ch.new {
		img[col] = v
	}
	fields, held, reason, err := b.fields(ctx, m, img, false)
	if err != nil {
		return err
	}
	if err := b.emitMove(m, oldKey, newKey, fields, ch); err != nil {
		return err
	}
	b.ids = append(b.ids, idChange{op: 'm', model: m.Name, key: oldKey, newKey: newKey, id: ch.id})
	b.setKey(localRef{m.Name, ch.id}, newKey)
	b.c.log.Info("record key changed: identity moved", "model", m.Name, "from", oldKey, "to", newKey)
	// Fields referencing held rows follow once those can be named.
	if err := b.holdFields(ctx, m, localRef{m.Name, ch.id}, ch, fields, held, newKey, reason); err != nil {
		return err
	}
	return b.moveBorrowers(ctx, m, oldKey, newKey, ch)
}

// moveBorrowers moves the identities of the records whose key borrows
// the key of the row ch just moved (from oldKey to newKey): a patient's
// key is its person's code, so a corrected code moves the patient record
// too. Left under the old key, it would be taken for the record of
// whoever gets that code next (their patient record merged into this
// one). Only rows the network knows move; the others are captured under
// the new key when their turn comes. A row that points at the moved one
// now takes the key it has now; any other that holds the old key (gone
// from the table, or pointing elsewhere, by changes later in the outbox
// than ch) takes it with the borrowed part replaced, so its later
// changes name it and not the record that may take the old key next.
func (b *batch) moveBorrowers(ctx context.Context, m *models.Model, oldKey, newKey string, ch *change) error {
	for _, kp := range b.c.reg.Borrowers(m.Name) {
		if t, ok := b.c.tables[kp.Model.Table]; !ok || t.Field != "" {
			continue // not captured here
		}
		pointing, err := b.c.referrers(ctx, kp.Model.Table, kp.Field.Column, ch.id)
		if err != nil {
			return fmt.Errorf("records whose key borrows %s id %d: %w", m.Name, ch.id, err)
		}
		holding, err := b.borrowersOf(ctx, kp, oldKey)
		if err != nil {
			return fmt.Errorf("records whose key borrows %s %s: %w", m.Name, oldKey, err)
		}
		ids := append(slices.Clone(pointing), holding...)
		slices.Sort(ids)
		for _, id := range slices.Compact(ids) {
			from, known, err := b.mapped(ctx, localRef{kp.Model.Name, id})
			if err != nil {
				return err
			}
			if !known {
				continue
			}
			var to string
			if slices.Contains(pointing, id) {
				to, err = b.naturalKey(ctx, kp.Model, id, nil)
				if asHeld(err) != nil {
					continue // it keeps its identity until its key may be one (held.go)
				}
				if err != nil {
					return err
				}
			} else if to = replacePart(kp, from, oldKey, newKey); to == "" {
				continue
			}
			if to == from {
				continue
			}
			sub := &change{seq: ch.seq, tx: ch.tx, at: ch.at, table: kp.Model.Table, op: "U", id: id, uid: ch.uid, new: row{}}
			if err := b.rename(ctx, kp.Model, from, to, sub); err != nil {
				return fmt.Errorf("%s id %d, whose key borrows %s's: %w", kp.Model.Name, id, m.Name, err)
			}
		}
	}
	return nil
}

// replacePart is key with its part kp changed from oldPart to newPart; ""
// when that part of key is not oldPart.
func replacePart(kp models.KeyPart, key, oldPart, newPart string) string {
	if len(kp.Model.Key) == 1 {
		if key != oldPart {
			return ""
		}
		return newPart
	}
	parts, err := ledger.SplitKey(key)
	if err != nil || len(parts) != len(kp.Model.Key) || parts[kp.Index] != oldPart {
		return ""
	}
	parts[kp.Index] = newPart
	return kp.Model.KeyOf(parts...)
}

// borrowersOf lists the rows whose identity holds key as its part kp: the
// id map's entries, with this batch's changes to it and those of the
// batch appended meanwhile.
func (b *batch) borrowersOf(ctx context.Context, kp models.KeyPart, key string) ([]int64, error) {
	m := kp.Model
	if len(m.Key) == 1 {
		return b.holdersOf(ctx, m, key)
	}
	parts := make([]string, len(m.Key))
	for i := range parts {
		parts[i] = "%"
	}
	// The other parts are any text without '/' (JoinKey escapes it).
	parts[kp.Index] = strings.NewReplacer("!", "!!", "%", "!%", "_", "!_").Replace(ledger.JoinKey(key))
	q := `SELECT local_id FROM ` + b.c.d.t("records") + ` WHERE model = ? AND key LIKE ? ESCAPE '!' AND local_id IS NOT NULL`
	return b.keyed(ctx, m, q, strings.Join(parts, "/"), func(k string) bool { return replacePart(kp, k, key, key) != "" })
}

// keyQuery finds the local id of a model's key in the id map.
func (b *batch) keyQuery() string {
	return `SELECT local_id FROM ` + b.c.d.t("records") + ` WHERE model = ? AND key = ? AND local_id IS NOT NULL`
}

// holdersOf lists the rows of m whose identity is key: the id map's (read
// ahead by prefetchStored, or asked for now), with this batch's changes
// to it and those of the batch appended meanwhile.
func (b *batch) holdersOf(ctx context.Context, m *models.Model, key string) ([]int64, error) {
	k := recKeyOf{m.Name, key}
	found, ok := b.stored[k]
	if ok {
		found = slices.Clone(found)
	} else {
		var err error
		if found, err = b.c.ids(ctx, b.keyQuery(), m.Name, key); err != nil {
			return nil, err
		}
	}
	found = append(found, b.holders[k]...)
	if b.fl != nil {
		found = append(found, b.fl.holders[k]...)
	}
	return b.matching(ctx, m, found, func(got string) bool { return got == key })
}

// keyed lists the rows of m whose identity matches: those the id map
// query q (one argument, arg) finds, with this batch's changes to the id
// map and those of the batch appended meanwhile.
func (b *batch) keyed(ctx context.Context, m *models.Model, q, arg string, match func(key string) bool) ([]int64, error) {
	found, err := b.c.ids(ctx, q, m.Name, arg)
	if err != nil {
		return nil, err
	}
	var flKeys map[localRef]string
	if b.fl != nil {
		flKeys = b.fl.keys
	}
	for _, keys := range []map[localRef]string{b.keys, flKeys} {
		for ref, k := range keys {
			if ref.model == m.Name && match(k) {
				found = append(found, ref.id)
			}
		}
	}
	return b.matching(ctx, m, found, match)
}

// matching keeps the rows of m among found whose identity, as the batch
// sees it now, matches.
func (b *batch) matching(ctx context.Context, m *models.Model, found []int64, match func(key string) bool) ([]int64, error) {
	slices.Sort(found)
	var out []int64
	for _, id := range slices.Compact(found) {
		k, known, err := b.mapped(ctx, localRef{m.Name, id})
		if err != nil {
			return nil, err
		}
		if known && match(k) {
			out = append(out, id)
		}
	}
	return out, nil
}

// relation notes the owner of a changed Many2Many relation row; its new
// set is read once per batch (flushOwners).
func (b *batch) relation(m *models.Model, field string, ch *change) error {
	f, _ := m.Field(field)
	for _, img := range []row{ch.new, ch.old} {
		if id, ok := img.int(f.Relation.OriginColumn); ok {
			b.owners = append(b.owners, owner{ref: localRef{m.Name, id}, field: field, at: ch.at, tx: ch.tx, uid: ch.uid})
			return nil
		}
	}
	return fmt.Errorf("relation row has no %s", f.Relation.OriginColumn)
}

// flushOwners writes each changed Many2Many as its whole new set.
func (b *batch) flushOwners(ctx context.Context) error {
	done := map[owner]bool{}
	for i := len(b.owners) - 1; i >= 0; i-- { // the last change names the time
		o := b.owners[i]
		k := owner{ref: o.ref, field: o.field, snapshot: o.snapshot}
		if done[k] || b.gone[o.ref] {
			continue
		}
		done[k] = true
		m, _ := b.c.reg.Lookup(o.ref.model)
		f, _ := m.Field(o.field)
		key, err := b.target(ctx, o.ref)
		if err != nil {
			// A held row's sets go with its create, once it has one.
			if asHeld(err) == nil {
				b.c.log.Warn("Many2Many change of a row with no identity: not captured", "model", m.Name, "id", o.ref.id, "error", err)
			}
			continue
		}
		set, err := b.c.relationSet(ctx, f, o.ref.id)
		if err != nil {
			return err
		}
		if len(set) == 0 && o.snapshot {
			continue
		}
		var refs []ledger.Ref
		var held *heldError
		for _, tid := range set {
			tk, err := b.target(ctx, localRef{f.Target, tid})
			if held = asHeld(err); held != nil {
				break
			}
			if err != nil {
				return fmt.Errorf("%s %s: %w", m.Name, f.Name, err)
			}
			refs = append(refs, ledger.Ref{Model: f.Target, Key: tk})
		}
		ch := &change{at: o.at, tx: o.tx, uid: o.uid}
		if held != nil { // the whole set, once every member can be named
			if err := b.holdFields(ctx, m, o.ref, ch, nil, []string{f.Name}, key, held.referral("field "+f.Name)); err != nil {
				return err
			}
			continue
		}
		v, err := ledger.RefSet(refs...)
		if err != nil {
			return err
		}
		written := map[string]ledger.Value{f.Name: v}
		b.emit(m, key, ledger.OpWrite, written, ch)
		if err := b.holdFields(ctx, m, o.ref, ch, written, nil, key, ""); err != nil {
			return err
		}
	}
	return nil
}

// setBases names, for each field a write changes, the HLC of the value the
// writer saw: what the projector had shown (deferred), else the merged
// state's winner, and at least this capturer's own previous write
// (committed, or in the batch appended meanwhile). A create of a key
// whose record the network deleted names that delete (setRevivals); a
// write or a delete of a natural key names the latest delete of it this
// instance knew of (merge.Saw), so it stays with the life the user saw.
func (b *batch) setBases(ctx context.Context) error {
	if err := b.setRevivals(ctx); err != nil {
		return err
	}
	if err := b.setLenders(ctx); err != nil {
		return err
	}
	if err := b.setRefLives(ctx); err != nil {
		return err
	}
	var keys []recKeyOf
	natural := map[string]bool{} // models whose keys can be used again
	for _, e := range b.events {
		if e.Op == ledger.OpWrite || e.Op == ledger.OpDelete {
			keys = append(keys, recKeyOf{e.Model, e.Key})
			if b.c.natural(e.Model) {
				natural[e.Model] = true
			}
		}
	}
	if len(keys) == 0 {
		return nil
	}
	seen, deleted, err := b.c.shownBases(ctx, keys)
	if err != nil {
		return err
	}
	var unapplied map[recKeyOf]ownDelete
	if len(natural) > 0 {
		if unapplied, err = b.c.unappliedDeletes(ctx); err != nil {
			return err
		}
	}
	for _, e := range b.events {
		if e.Op != ledger.OpWrite && e.Op != ledger.OpDelete {
			continue
		}
		k := recKeyOf{e.Model, e.Key}
		if natural[e.Model] {
			saw := max(deleted[k], unapplied[k].hlc)
			if b.fl != nil {
				saw = max(saw, b.fl.deletes[k])
			}
			if saw != 0 {
				if e.Fields == nil {
					e.Fields = map[string]ledger.Value{}
				}
				e.Fields[merge.Saw] = ledger.Int(int64(saw))
			}
		}
		if e.Op != ledger.OpWrite {
			continue
		}
		var pending fieldStamps
		if b.fl != nil {
			pending = b.fl.stamps[k]
		}
		for f := range e.Fields {
			if f == merge.Saw {
				continue
			}
			base := max(seen[k][f], b.c.stamped[k].get(f), pending.get(f))
			if base != 0 {
				if e.Base == nil {
					e.Base = map[string]clocks.Timestamp{}
				}
				e.Base[f] = base
			}
		}
	}
	return nil
}

type recKeyOf struct{ model, key string }

// setRefLives makes each Many2One to a natural key name the life the user
// pointed at (ledger.Ref.Saw): the latest delete of the target's key this
// instance knew of, as for the target's own changes (merge.Saw). A party
// code given to someone else after its person was deleted or recoded
// must not pull in an address a clinic added to the old person before it
// heard. A delete of the target in this batch is named when the batch is
// stamped.
func (b *batch) setRefLives(ctx context.Context) error {
	byModel := map[string][]string{}
	type at struct {
		e     *ledger.Event
		field string
	}
	var refs []at
	for _, e := range b.events {
		for f, v := range e.Fields {
			if r, ok := v.AsRef(); ok && b.c.livesOf(e.Model, f, r) {
				refs = append(refs, at{e, f})
				byModel[r.Model] = append(byModel[r.Model], r.Key)
			}
		}
	}
	if len(refs) == 0 {
		return nil
	}
	unapplied, err := b.c.unappliedDeletes(ctx)
	if err != nil {
		return err
	}
	saw := map[recKeyOf]clocks.Timestamp{}
	for model, keys := range byModel {
		slices.Sort(keys)
		err := b.recordRows(ctx, model, slices.Compact(keys), func(key string, r *recordRow) error {
			if r.state == nil {
				return nil
			}
			d, err := merge.LastDeleteOf(r.state)
			saw[recKeyOf{model, key}] = d
			return err
		})
		if err != nil {
			return err
		}
	}
	for _, r := range refs {
		ref, _ := r.e.Fields[r.field].AsRef()
		k := recKeyOf{ref.Model, ref.Key}
		ref.Saw = max(saw[k], unapplied[k].hlc)
		if b.fl != nil {
			ref.Saw = max(ref.Saw, b.fl.deletes[k])
		}
		if ref.Saw != 0 {
			v, err := ledger.RefValue(ref)
			if err != nil {
				return err
			}
			r.e.Fields[r.field] = v
		}
	}
	return nil
}

// setRevivals marks the creates of natural keys whose record was deleted
// as this instance knows it: in the merged state here, or by a delete
// captured here that the projector has not applied yet (deletes.go). A
// code used again after its party was deleted, or a record renamed back
// to a key it left: the user saw the deletion (the row was gone here),
// so the create begins a new life of the record (merge.Revives) instead
// of losing to the delete, which would take the user's new row away
// again. A delete made in this batch is named when the batch is stamped
// (Capturer.stamp).
func (b *batch) setRevivals(ctx context.Context) error {
	byModel := map[string][]string{}
	for _, e := range b.events {
		if m, ok := b.c.reg.Lookup(e.Model); ok && e.Op == ledger.OpCreate && m.Kind != models.UUIDKey {
			byModel[e.Model] = append(byModel[e.Model], e.Key)
		}
	}
	if len(byModel) == 0 {
		return nil
	}
	unapplied, err := b.c.unappliedDeletes(ctx)
	if err != nil {
		return err
	}
	for model, keys := range byModel {
		ended := map[string]clocks.Timestamp{}
		for _, key := range keys {
			k := recKeyOf{model, key}
			saw := unapplied[k].hlc
			if b.fl != nil {
				saw = max(saw, b.fl.deletes[k])
			}
			if saw != 0 {
				ended[key] = saw
			}
		}
		err := b.recordRows(ctx, model, keys, func(key string, r *recordRow) error {
			if r.state == nil {
				return nil
			}
			st, err := merge.DecodeState(r.state)
			if err != nil {
				return err
			}
			if st.Deleted != nil && !st.Live() {
				ended[key] = max(ended[key], st.LastDelete().HLC)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, e := range b.events {
			if saw, ok := ended[e.Key]; ok && e.Model == model && e.Op == ledger.OpCreate {
				e.Fields[merge.Revives] = ledger.Int(int64(saw))
			}
		}
	}
	return nil
}

// recordRow is a records row as a batch read it.
type recordRow struct {
	state []byte        // the merged state; nil before the projector merged an event of it
	id    sql.NullInt64 // the local row it has
}

// recordRows calls fn for each of keys of model that has a records row,
// reading each at most once a batch: setRevivals, setLenders and
// setRefLives all read the parties of a batch of registrations.
func (b *batch) recordRows(ctx context.Context, model string, keys []string, fn func(key string, r *recordRow) error) error {
	if b.recs == nil {
		b.recs = map[recKeyOf]*recordRow{}
	}
	var missing []string
	for _, key := range keys {
		if _, read := b.recs[recKeyOf{model, key}]; !read {
			b.recs[recKeyOf{model, key}] = nil // none, unless found below
			missing = append(missing, key)
		}
	}
	if len(missing) > 0 {
		err := eachKeyed(ctx, b.c.d, b.c.d, "key, state, local_id", "records", "key", "text", model, missing, func(rows *sql.Rows) error {
			var key string
			r := &recordRow{}
			if err := rows.Scan(&key, &r.state, &r.id); err != nil {
				return err
			}
			b.recs[recKeyOf{model, key}] = r
			return nil
		})
		if err != nil {
			return err
		}
	}
	for _, key := range keys {
		if r := b.recs[recKeyOf{model, key}]; r != nil {
			if err := fn(key, r); err != nil {
				return fmt.Errorf("%s/%s: %w", model, key, err)
			}
		}
	}
	return nil
}

// shownBases reads, per record, the HLC of each field's shown value: the
// deferred bases where the projector left the row as it was, else the
// merged state's winners; and the latest delete the merged state holds,
// for records it has any.
func (c *Capturer) shownBases(ctx context.Context, keys []recKeyOf) (map[recKeyOf]map[string]clocks.Timestamp, map[recKeyOf]clocks.Timestamp, error) {
	out := map[recKeyOf]map[string]clocks.Timestamp{}
	deleted := map[recKeyOf]clocks.Timestamp{}
	byModel := map[string][]string{}
	for _, k := range keys {
		if _, ok := out[k]; !ok {
			out[k] = map[string]clocks.Timestamp{}
			byModel[k.model] = append(byModel[k.model], k.key)
		}
	}
	for model, ks := range byModel {
		m, _ := c.reg.Lookup(model)
		deferred := map[string]bool{}
		err := c.eachKeyRow(ctx, "deferred", "bases", model, ks, func(key string, raw []byte) error {
			deferred[key] = true
			return json.Unmarshal(raw, ptr(out[recKeyOf{model, key}]))
		})
		if err != nil {
			return nil, nil, err
		}
		err = c.eachKeyRow(ctx, "records", "state", model, ks, func(key string, raw []byte) error {
			if raw == nil {
				return nil
			}
			st, err := merge.DecodeState(raw)
			if err != nil {
				return err
			}
			k := recKeyOf{model, key}
			if st.Deleted != nil {
				deleted[k] = st.LastDelete().HLC
			}
			if deferred[key] {
				return nil
			}
			bases := out[k]
			for f := range st.Fields {
				if w, ok := st.Value(m.Policy, f); ok {
					bases[f] = w.Stamp.HLC
				}
			}
			return nil
		})
		if err != nil {
			return nil, nil, err
		}
	}
	return out, deleted, nil
}

func ptr[T any](v T) *T { return &v }

// eachKeyRow reads column col of table for the given keys of one model.
func (c *Capturer) eachKeyRow(ctx context.Context, table, col, model string, keys []string, fn func(key string, raw []byte) error) error {
	return eachKeyed(ctx, c.d, c.d, "key, "+col, table, "key", "text", model, keys, func(rows *sql.Rows) error {
		var key string
		var raw []byte
		if err := rows.Scan(&key, &raw); err != nil {
			return err
		}
		if err := fn(key, raw); err != nil {
			return fmt.Errorf("%s/%s: %w", model, key, err)
		}
		return nil
	})
}

// bookkeep commits the batch's local id changes and removes its outbox
// rows, inside tx (the ledger append's, or the hand-off's).
func (b *batch) bookkeep(ctx context.Context, tx ledger.Tx, seqs []int64) error {
	d := b.c.d
	records, alias := d.t("records"), d.t("alias")
	exec := func(q string, args ...any) error {
		_, err := tx.Exec(ctx, d.q(q), args...)
		return err
	}
	// Runs of new entries go in one statement each (in order with the
	// deletes and moves around them): one round trip, not one per row. A
	// record the network already knows (a tombstone, say) gets its new row;
	// one that has a row keeps it.
	var run []any
	flushRun := func() error {
		if len(run) == 0 {
			return nil
		}
		rows := strings.TrimSuffix(strings.Repeat("(?, ?, ?), ", len(run)/3), ", ")
		err := exec(`INSERT INTO `+records+` (model, key, local_id) VALUES `+rows+`
			ON CONFLICT (model, key) DO UPDATE SET local_id = excluded.local_id
			WHERE `+strings.TrimPrefix(records, "ghsync.")+`.local_id IS NULL`, run...)
		run = run[:0]
		return err
	}
	// unmap takes a key's local id away; a records row left with neither
	// id nor merge state goes.
	unmap := func(model, key string) error {
		err := exec(`DELETE FROM `+records+` WHERE model = ? AND key = ? AND state IS NULL`, model, key)
		if err == nil {
			err = exec(`UPDATE `+records+` SET local_id = NULL WHERE model = ? AND key = ?`, model, key)
		}
		return err
	}
	for _, ic := range b.ids {
		if ic.op == 'i' {
			if run = append(run, ic.model, ic.key, ic.id); len(run) >= 3*300 {
				if err := flushRun(); err != nil {
					return fmt.Errorf("local ids: %w", err)
				}
			}
			continue
		}
		if err := flushRun(); err != nil {
			return fmt.Errorf("local ids: %w", err)
		}
		var err error
		switch ic.op {
		case 'd':
			err = unmap(ic.model, ic.key)
		case 'm':
			if err = unmap(ic.model, ic.newKey); err == nil {
				err = unmap(ic.model, ic.key)
			}
			if err == nil {
				err = exec(`INSERT INTO `+records+` (model, key, local_id) VALUES (?, ?, ?)
					ON CONFLICT (model, key) DO UPDATE SET local_id = excluded.local_id`, ic.model, ic.newKey, ic.id)
			}
			if err == nil {
				err = exec(`INSERT INTO `+alias+` (model, old_key, new_key) VALUES (?, ?, ?)
					ON CONFLICT (model, old_key) DO UPDATE SET new_key = excluded.new_key`, ic.model, ic.key, ic.newKey)
			}
		}
		if err != nil {
			return fmt.Errorf("local id %s/%s: %w", ic.model, ic.key, err)
		}
	}
	if err := flushRun(); err != nil {
		return fmt.Errorf("local ids: %w", err)
	}
	if err := b.bookkeepHeld(ctx, exec); err != nil {
		return err
	}
	for len(seqs) > 0 {
		n := min(len(seqs), 1000)
		got, err := tx.Exec(ctx, `DELETE FROM `+d.t("outbox")+` WHERE seq IN (`+intList(seqs[:n])+`)`)
		if err != nil {
			return fmt.Errorf("remove captured outbox rows: %w", err)
		}
		if got != int64(n) {
			return fmt.Errorf("outbox rows vanished while being captured (%d of %d): %w", got, n, errBusy)
		}
		seqs = seqs[n:]
	}
	return nil
}

// readRow reads a row as it is now, as a row image; nil if it is gone.
func (c *Capturer) readRow(ctx context.Context, table string, id int64) (row, error) {
	var q string
	if c.d.dialect == models.Postgres {
		q = `SELECT to_jsonb(t)::text FROM ` + quoteIdent(table) + ` t WHERE id = $1`
	} else {
		cols, err := c.d.columns(ctx, c.d.DB, table)
		if err != nil {
			return nil, err
		}
		q = `SELECT ` + sqliteObject(cols, "t") + ` FROM ` + quoteIdent(table) + ` t WHERE id = ?`
	}
	var s string
	err := c.d.QueryRowContext(ctx, q, id).Scan(&s)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s id %d: %w", table, id, err)
	}
	return parseRow([]byte(s))
}

// referrers lists the ids of table's rows whose column holds id.
func (c *Capturer) referrers(ctx context.Context, table, column string, id int64) ([]int64, error) {
	ids, err := c.ids(ctx, `SELECT id FROM `+quoteIdent(table)+` WHERE `+quoteIdent(column)+` = ? ORDER BY id`, id)
	if err != nil {
		return nil, fmt.Errorf("read %s by %s: %w", table, column, err)
	}
	return ids, nil
}

// relationSet reads the target ids a Many2Many of one record holds now.
func (c *Capturer) relationSet(ctx context.Context, f *models.Field, ownerID int64) ([]int64, error) {
	rel := f.Relation
	ids, err := c.ids(ctx, `SELECT `+quoteIdent(rel.TargetColumn)+` FROM `+quoteIdent(rel.Table)+
		` WHERE `+quoteIdent(rel.OriginColumn)+` = ? AND `+quoteIdent(rel.TargetColumn)+` IS NOT NULL`, ownerID)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", rel.Table, err)
	}
	return ids, nil
}

// ids runs a query of one integer column and returns its values.
func (c *Capturer) ids(ctx context.Context, q string, args ...any) ([]int64, error) {
	rows, err := c.d.QueryContext(ctx, c.d.q(q), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}
