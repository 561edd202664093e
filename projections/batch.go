package projections

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/ghsync/ghsync/clocks"
	"github.com/ghsync/ghsync/internal/sqltext"
	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/merge"
	"github.com/ghsync/ghsync/models"
)

// record is one record touched by a batch.
type record struct {
	k     recKey
	m     *models.Model
	st    *merge.State
	dirty bool // the state changed: save it, re-derive the row
	// stored says the records table holds a row for the record, so saving
	// it is an UPDATE (cheaper than an upsert).
	stored bool
	// idSet says the round gave the record a row or deleted it: its local
	// id (b.ids) is saved with its state.
	idSet bool
	user  string // login of the last event applied here
	pos   uint64 // position of that event
	vals  map[string]ledger.Value
	refs  []recKey // the records vals references (refsOf)
	// before is the stored conflict set, so only its changes are written
	// (a busy record can carry hundreds of conflicts); pending says it is
	// still to be computed, before the batch's first change.
	before  []merge.Conflict
	pending bool
	// prior is the state before this batch, kept for records whose row
	// may have a local change pending (see local.go).
	prior *merge.State
	// touched is the fields this batch's events changed, so an update of
	// an existing row sets only their columns; whole says the row is
	// derived again for another reason (unparked, re-merged, deferred) and
	// every column is written.
	touched map[string]bool
	whole   bool
	// entered is the record's life when the batch's first event for it
	// came (lives.go).
	entered life
}

// touch notes that e changed rec's state.
func (rec *record) touch(e *ledger.Event) {
	if rec.whole {
		return
	}
	if rec.touched == nil {
		rec.touched = make(map[string]bool, len(e.Fields))
	}
	for name := range e.Fields {
		rec.touched[name] = true
	}
}

// wait is something a record needs before its row can be (fully) written.
type wait struct {
	target recKey
	reason string
}

// batch is the work of one projection transaction.
type batch struct {
	p      *Projector
	tx     dtx
	s      string // schema prefix
	recs   map[recKey]*record
	ids    map[recKey]int64 // id map: records that have a row
	looked map[recKey]bool  // id map lookups done (hit or miss)
	parked map[recKey][]recKey
	// rebooked is the records whose parked entries this batch rewrote,
	// waits what each of them waits for now.
	rebooked map[recKey]bool
	waits    map[recKey][]recKey
	deferred map[recKey]bool // the deferred table, as this batch leaves it
	// targets holds the merge states of references' targets the batch
	// does not otherwise read (loadTargets).
	targets map[recKey]*merge.State
	// lost is the records whose rows a cascade takes, for the next round.
	lost []recKey
	// parkedNone says no record was parked when the batch began (nor by
	// the batch still committing): then only those this batch parks have
	// entries to delete.
	parkedNone bool
	prev       *carry // what the batch still committing changed (pipeline.go)
	last       uint64 // the batch's last ledger position
	w          writes // this round's set-based writes
	// pending: rows with a local change in the capture outbox (table → ids);
	// alias: renamed records (old key → new key). See local.go.
	pending map[string]map[int64]bool
	alias   map[recKey]string
	// capturedAs is the origin the target's own changes are captured as
	// (package capture binds it), if any. See lives.go.
	capturedAs *uint16
	moves      []idMove            // the renames' id moves still to do (local.go)
	moved      []rowMove           // the rows' moves, in order (local.go)
	bounds     []ledger.ClockBound // see clockbound.go
	// frontier is the stability frontier states are compacted to, read
	// once a batch.
	frontier clocks.Timestamp
	// locks is the rows this round's writes reference, when the target
	// does not check each row (references.go); nil otherwise.
	locks refLocks
	// contention is the records of this round that wait for another
	// whose key leads to the same row (borrow.go).
	contention map[recKey]wait
	// waitMove: records whose row holds a superseded registration of this
	// instance's, left where it is until the capturer moves it
	// (superseded.go).
	waitMove map[recKey]bool
	// movedLate is the records a key change reached after they were
	// deleted (refollow.go).
	movedLate []recKey
	// endedRows is the rows of ended lives whose key a row moved to
	// (moveIDs): they go.
	endedRows []endedRow
	// landed is the keys a row moved to (moveIDs, a key change captured
	// here or elsewhere): what waits for them to get a row goes on.
	landed []recKey
	// rowless is the records a notice asked this instance's capturer to
	// move in this batch (noticeRowless).
	rowless map[recKey]bool
	// renull is the records whose references the round's deletes empty
	// while their targets live on (cascade.go: nulled).
	renull []recKey
	// placed is where this batch's rows of borrowing models went: the
	// key a place is named by → the record whose row it gave it. Reads of
	// the target do not see a batch's own writes before it commits (nor,
	// when pipelined, those of the batch still committing: carry.placed).
	placed map[recKey]recKey
}

func newBatch(p *Projector, tx dtx, prev *carry) *batch {
	b := &batch{p: p, tx: tx, s: p.d.schemaPrefix(), recs: map[recKey]*record{}, ids: map[recKey]int64{},
		looked: map[recKey]bool{}, parked: map[recKey][]recKey{}, rebooked: map[recKey]bool{},
		waits: map[recKey][]recKey{}, deferred: map[recKey]bool{}, prev: prev, frontier: p.Frontier()}
	if p.rebuilding || p.compactionHeld() {
		// A replay from the start brings every record's history again, in
		// ledger order: the frontier's premise holds only once it is over.
		// So does a pull from the start (HoldCompaction).
		b.frontier = 0
	}
	if p.d.skipsRowChecks() {
		b.locks = refLocks{}
	}
	return b
}

func (b *batch) reject(r ledger.Record, rej *Rejection) {
	rej.Position = r.Position
	b.p.log.Warn("event rejected", "position", r.Position, "event", rej.EventID, "model", rej.Model, "key", rej.Key, "field", rej.Field, "problem", rej.Problem)
	b.tx.queue(`INSERT INTO `+b.s+`rejected (position, event_id, model, key, field, problem) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (position) DO NOTHING`, int64(r.Position), rej.EventID, rej.Model, rej.Key, rej.Field, rej.Problem)
}

// load brings the merge states of keys into the batch.
func (b *batch) load(ctx context.Context, keys []recKey) error {
	var missing []recKey
	for _, k := range keys {
		if _, ok := b.recs[k]; ok {
			continue
		}
		if r, ok := b.prev.record(k); ok {
			b.p.cache.take(k) // the same state, or an older one
			b.recs[k] = &record{k: k, m: r.m, st: r.st, before: r.before, pending: r.pending, pos: b.last, stored: r.stored}
			continue
		}
		if c, ok := b.p.cache.take(k); ok {
			m, _ := b.p.reg.Lookup(k.model) // it was when cached
			b.recs[k] = &record{k: k, m: m, st: c.st, before: c.before, pending: !c.known, pos: b.last, stored: true}
			continue
		}
		missing = append(missing, k)
	}
	if len(missing) == 0 {
		return nil
	}
	got, err := b.tx.loadStates(ctx, missing)
	if err != nil {
		return err
	}
	for _, k := range missing {
		m, ok := b.p.reg.Lookup(k.model)
		if !ok {
			return fmt.Errorf("load %s/%s: model left the registry", k.model, k.key)
		}
		rec := &record{k: k, m: m, st: &merge.State{}}
		s, found := got[k]
		rec.stored = found
		b.noteID(k, s)
		if raw := s.state; raw != nil {
			if rec.st, err = merge.DecodeState(raw); err != nil {
				return fmt.Errorf("load %s/%s: merge state: %w", k.model, k.key, err)
			}
			rec.pending = true
		}
		rec.pos = b.last // re-examined here, unless an event of the batch touches it
		b.recs[k] = rec
	}
	return nil
}

// noteID keeps k's local id as the records table had it, unless the
// batch already looked it up (its own view is newer).
func (b *batch) noteID(k recKey, s stored) {
	if !b.looked[k] {
		b.looked[k] = true
		if s.hasID {
			b.ids[k] = s.id
		}
	}
}

// Stand-ins for the states of targets without a delete, which need no
// decoding: all a reference asks of them is whether they are live.
var (
	liveTarget = &merge.State{Created: &merge.Stamp{HLC: 1}}
	deadTarget = &merge.State{} // no create known
)

// loadTargets reads the merge states of references' targets that values
// needs (MeantKey), from what the batch or the one committing holds, the
// state cache, or else the records table, where only a state with a
// delete is decoded. It notes their local ids as load does.
func (b *batch) loadTargets(ctx context.Context, keys []recKey) error {
	if b.targets == nil {
		b.targets = map[recKey]*merge.State{}
	}
	var missing []recKey
	for _, k := range keys {
		if _, ok := b.targets[k]; ok {
			continue
		}
		if r, ok := b.prev.record(k); ok {
			b.targets[k] = r.st
		} else if c, ok := b.p.cache.peek(k); ok {
			b.targets[k] = c.st
		} else {
			missing = append(missing, k)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	got, err := b.tx.loadStates(ctx, missing)
	if err != nil {
		return err
	}
	for _, k := range missing {
		s := got[k]
		b.noteID(k, s)
		st := deadTarget
		if s.state != nil {
			created, deleted, err := merge.PeekHeader(s.state)
			switch {
			case err != nil:
				return fmt.Errorf("load %s/%s: merge state: %w", k.model, k.key, err)
			case deleted != 0:
				if st, err = merge.DecodeState(s.state); err != nil {
					return fmt.Errorf("load %s/%s: merge state: %w", k.model, k.key, err)
				}
			case created:
				st = liveTarget
			}
		}
		b.targets[k] = st
	}
	return nil
}

// apply merges the batch's events into their records' states and brings
// the tables in line, unparking whatever the new rows make resolvable.
func (b *batch) apply(ctx context.Context, evs []ledger.Record) error {
	var keys []recKey
	for _, r := range evs {
		if r.Event.Model != ledger.ClockBoundModel {
			keys = append(keys, recKey{r.Event.Model, r.Event.Key})
		}
		b.last = r.Position
	}
	if err := b.load(ctx, keys); err != nil {
		return err
	}
	var todo []*record
	for _, r := range evs {
		if r.Event.Model == ledger.ClockBoundModel {
			redo, err := b.bound(ctx, r.Event)
			if err != nil {
				return err
			}
			for _, rec := range redo {
				rec.whole = true
				if !rec.dirty {
					rec.dirty = true
					todo = append(todo, rec)
				}
			}
			continue
		}
		rec := b.recs[recKey{r.Event.Model, r.Event.Key}]
		if rec.pending {
			// Only records about to change need their stored conflict set.
			rec.before, rec.pending = rec.st.Conflicts(rec.m.Policy), false
		}
		if rec.prior == nil && len(b.pending[rec.m.Table]) > 0 {
			rec.prior = rec.st.Clone()
		}
		if !rec.entered.known {
			rec.entered = lifeOf(rec.st)
		}
		if _, ok := r.Event.Fields[models.RenamedFrom]; ok {
			if err := b.rename(ctx, r.Event); err != nil {
				return err
			}
		} else if _, ok := r.Event.Fields[merge.Revives]; ok {
			b.unalias(rec.k)
		}
		e := b.clamp(r.Event)
		if e.HLC <= b.frontier {
			b.p.arrivedLate(rec.k)
		}
		if _, moves := e.Fields[merge.RenamedTo]; moves && rec.st.Deleted != nil {
			b.movedLate = append(b.movedLate, rec.k)
		}
		if rec.st.Apply(e) {
			if !rec.dirty {
				todo = append(todo, rec)
			}
			rec.dirty = true
			rec.touch(r.Event)
		}
		rec.user, rec.pos = r.Event.User, r.Position
	}
	if err := b.moveIDs(ctx); err != nil {
		return err
	}
	redo, err := b.redoDeferred(ctx)
	if err != nil {
		return err
	}
	again, err := b.refollow(ctx)
	if err != nil {
		return err
	}
	for _, rec := range append(redo, again...) {
		if rec.pending {
			rec.before, rec.pending = rec.st.Conflicts(rec.m.Policy), false
		}
		rec.whole = true
		if !rec.dirty {
			rec.dirty = true
			todo = append(todo, rec)
		}
	}
	settled := map[recKey]bool{}
	for len(todo) > 0 {
		inserted, err := b.materialize(ctx, todo)
		if err != nil {
			return err
		}
		// Records waiting for one that got its row (inserted, or moved
		// to its key), or that was deleted (there is then nothing to wait
		// for), are looked at again.
		var news []recKey
		for _, k := range inserted {
			if !settled[k] {
				settled[k] = true
				news = append(news, k)
			}
		}
		for _, rec := range todo {
			if rec.st.Deleted != nil && !settled[rec.k] {
				settled[rec.k] = true
				news = append(news, rec.k)
			}
		}
		landed := b.landed
		b.landed = nil
		if todo, err = b.unpark(ctx, news, landed); err != nil {
			return err
		}
		if len(b.lost) > 0 {
			lost, err := b.loseRows(ctx, b.lost)
			if err != nil {
				return err
			}
			b.lost = nil
			todo = append(todo, lost...)
		}
		if len(b.renull) > 0 {
			again, err := b.reload(ctx, b.renull, todo)
			if err != nil {
				return err
			}
			b.renull = nil
			todo = append(todo, again...)
		}
	}
	return nil
}

// reload loads keys' records to be derived again whole, but those
// already in todo.
func (b *batch) reload(ctx context.Context, keys []recKey, todo []*record) ([]*record, error) {
	slices.SortFunc(keys, compareKeys)
	keys = slices.Compact(keys)
	if err := b.load(ctx, keys); err != nil {
		return nil, err
	}
	in := make(map[*record]bool, len(todo))
	for _, rec := range todo {
		in[rec] = true
	}
	var out []*record
	for _, k := range keys {
		if rec := b.recs[k]; rec.st.Live() && !in[rec] {
			rec.whole = true
			out = append(out, rec)
		}
	}
	return out, nil
}

// loadParkedNone learns whether any record is parked (see parkedNone).
func (b *batch) loadParkedNone(ctx context.Context) error {
	if b.prev != nil && len(b.prev.parked) > 0 {
		return nil // its entries may not show yet
	}
	return scanOne(ctx, b.tx, []any{&b.parkedNone}, `SELECT NOT EXISTS (SELECT 1 FROM `+b.s+`parked)`)
}

// unpark returns the records waiting for any of keys, and those
// waiting for any of landed to get a row. Not those contending with
// landed's for a place (dialect.parkedOn's arrivals): they wait for a key
// change out of it, not for a row.
func (b *batch) unpark(ctx context.Context, keys, landed []recKey) ([]*record, error) {
	if len(keys)+len(landed) == 0 {
		return nil, nil
	}
	waiting, err := b.parkedOn(ctx, keys, false)
	if err != nil {
		return nil, err
	}
	if len(landed) > 0 {
		arrived, err := b.parkedOn(ctx, landed, true)
		if err != nil {
			return nil, err
		}
		waiting = append(waiting, arrived...)
	}
	for _, t := range keys {
		waiting = append(waiting, b.parked[t]...)
		delete(b.parked, t)
	}
	slices.SortFunc(waiting, compareKeys)
	waiting = slices.Compact(waiting)
	if err := b.load(ctx, waiting); err != nil {
		return nil, err
	}
	out := make([]*record, 0, len(waiting))
	for _, k := range waiting {
		rec := b.recs[k]
		rec.whole = true
		out = append(out, rec)
	}
	return out, nil
}

func compareKeys(a, b recKey) int {
	if c := strings.Compare(a.model, b.model); c != 0 {
		return c
	}
	return strings.Compare(a.key, b.key)
}

// values derives the live records' field values (RowValues), their
// references followed to the keys they mean now (FollowRefs): a reference
// to a natural key needs its target's merge state, read here with the
// batch's others.
func (b *batch) values(ctx context.Context, todo []*record) error {
	for _, rec := range todo {
		rec.vals = nil
		if rec.st.Live() {
			rec.vals = RowValues(rec.m, rec.k.key, rec.st)
		}
	}
	state := b.state
	for range 16 { // each round reads the targets of key changes the last one found
		var need []recKey
		for _, rec := range todo {
			for i := range rec.m.Fields {
				if f := &rec.m.Fields[i]; f.Type != models.Many2One {
					continue
				} else if r, ok := rec.vals[f.Name].AsRef(); ok {
					if _, _, n := MeantKey(b.p.reg, r, state); n != nil {
						need = append(need, recKey{n.Model, n.Key})
					}
				}
			}
		}
		if len(need) == 0 {
			break
		}
		if err := b.loadTargets(ctx, need); err != nil {
			return err
		}
	}
	var alias Alias
	if len(b.alias) > 0 {
		alias = func(model, key string) string {
			if st, ok := state(model, key); ok && st.Live() {
				return key // a late move of an ended life left the alias
			}
			return b.resolveAlias(recKey{model, key}).key
		}
	}
	lives := func(r ledger.Ref) (string, bool, bool) {
		key, ok, _ := MeantKey(b.p.reg, r, state)
		st, loaded := state(r.Model, key)
		return key, ok, loaded && Named(st)
	}
	for _, rec := range todo {
		if rec.vals != nil {
			FollowRefs(rec.vals, alias, lives)
		}
	}
	return nil
}

// state is a record's merge state as the batch holds it (its own records
// and the targets it read); loaded is false for one it has not read.
func (b *batch) state(model, key string) (st *merge.State, loaded bool) {
	k := recKey{model, key}
	if t, ok := b.recs[k]; ok {
		return t.st, true
	}
	st, loaded = b.targets[k]
	return st, loaded
}

// refsOf lists every record a row needs ids for.
func refsOf(rec *record) []recKey {
	var out []recKey
	for _, f := range rec.m.Fields {
		v := rec.vals[f.Name]
		if r, ok := v.AsRef(); ok {
			out = append(out, recKey{r.Model, r.Key})
		}
		if rs, ok := v.AsRefSet(); ok {
			for _, r := range rs {
				out = append(out, recKey{r.Model, r.Key})
			}
		}
	}
	return out
}

func (b *batch) lookupIDs(ctx context.Context, keys []recKey) error {
	var need []recKey
	for _, k := range keys {
		if b.looked[k] {
			continue
		}
		b.looked[k] = true
		if id, has, known := b.prev.id(k); known {
			if has {
				b.ids[k] = id
			}
			continue
		}
		need = append(need, k)
	}
	if len(need) == 0 {
		return nil
	}
	found, err := b.tx.loadIDs(ctx, "records", need)
	if err != nil {
		return err
	}
	for k, id := range found {
		b.ids[k] = id
	}
	return nil
}

// materialize writes the rows of todo's records and returns the records
// that got a row in this round (they may unpark others).
func (b *batch) materialize(ctx context.Context, todo []*record) ([]recKey, error) {

	if err := b.values(ctx, todo); err != nil {
		return nil, err
	}
	var need []recKey
	for _, rec := range todo {
		rec.refs = nil
		if rec.vals != nil {
			rec.refs = refsOf(rec)
			need = append(need, rec.refs...)
		}
		need = append(need, rec.k)
	}
	if err := b.lookupIDs(ctx, need); err != nil {
		return nil, err
	}

	// A row of a life that ended in this batch is not the new life's:
	// it goes (with the deletes below) and the new life gets a row of
	// its own, as when the delete and the revival come in two batches.
	// So is the row of a record whose required reference now names a
	// deleted target: no later event brings the target back, and where
	// the row never was, the record is parked.
	var ended map[recKey]int64 // rare: made when needed
	for _, rec := range todo {
		if !b.lifeEnded(rec) && !b.orphaned(rec) {
			continue
		}
		if id, has := b.ids[rec.k]; has && !b.keepsLocalChange(rec, id) {
			if ended == nil {
				ended = map[recKey]int64{}
			}
			ended[rec.k] = id
			delete(b.ids, rec.k)
			rec.entered = lifeOf(rec.st) // the row written next is this life's, in later rounds too
		}
	}
	// A row still holding a superseded registration (superseded.go): the
	// current life waits for its move here, or the row goes elsewhere.
	b.waitMove = nil
	for _, rec := range todo {
		id, has := b.ids[rec.k]
		if !has || len(rec.st.Fields[merge.Lender]) == 0 || b.keepsLocalChange(rec, id) {
			continue
		}
		stale, own, err := b.supersededRow(ctx, rec, id)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", rec.m.Name, rec.k.key, err)
		}
		switch {
		case !stale:
		case own:
			if b.waitMove == nil {
				b.waitMove = map[recKey]bool{}
			}
			b.waitMove[rec.k] = true
		default:
			if ended == nil {
				ended = map[recKey]int64{}
			}
			ended[rec.k] = id
			delete(b.ids, rec.k)
			rec.entered = lifeOf(rec.st)
		}
	}
	for _, er := range b.endedRows { // taken by a move (moveIDs)
		if ended == nil {
			ended = map[recKey]int64{}
		}
		ended[er.k] = er.id
	}
	b.endedRows = nil

	// Rows the deletes below take with them (cascade.go).
	if err := b.cascade(ctx, todo, ended); err != nil {
		return nil, err
	}
	for k := range b.waitMove {
		if _, has := b.ids[k]; !has {
			delete(b.waitMove, k) // its row goes with its person: nothing to wait for
		}
	}

	// Which new records can be inserted now: the greatest set whose
	// required references resolve to existing rows or to each other.
	candidates := map[recKey]*record{}
	for _, rec := range todo {
		if _, has := b.ids[rec.k]; rec.st.Live() && !has && b.p.hasTable(rec.m.Table) {
			candidates[rec.k] = rec
		}
	}
	gone := map[recKey]bool{} // deleted in this round
	for _, rec := range todo {
		if !rec.st.Live() {
			gone[rec.k] = true
		}
	}
	resolvable := func(t recKey) bool {
		_, has := b.ids[t]
		_, cand := candidates[t]
		return !gone[t] && (has || cand)
	}
	if err := b.contend(ctx, todo, candidates); err != nil {
		return nil, err
	}
	for k := range b.waitMove {
		if b.contention == nil {
			b.contention = map[recKey]wait{}
		}
		b.contention[k] = wait{k, supersededReason}
	}
	for changed := true; changed; {
		changed = false
		for k, rec := range candidates {
			if len(b.blockers(rec, resolvable)) > 0 {
				delete(candidates, k)
				changed = true
			}
		}
	}
	if err := b.assignIDs(ctx, candidates); err != nil {
		return nil, err
	}

	order := b.p.order()
	byOrder := func(x, y *record) int {
		if c := cmp.Compare(order[x.k.model], order[y.k.model]); c != 0 {
			return c
		}
		return strings.Compare(x.k.key, y.k.key)
	}
	sorted := slices.Clone(todo)
	slices.SortFunc(sorted, byOrder)

	// Deletes first, referrers before their targets.
	for i := len(sorted) - 1; i >= 0; i-- {
		rec := sorted[i]
		if id, ok := ended[rec.k]; ok {
			b.removeRow(rec, id)
			if _, has := b.ids[rec.k]; !has {
				rec.idSet = true // no row for the new life yet: its id is saved as none
			}
		} else if id, has := b.ids[rec.k]; !rec.st.Live() && has && !b.keepsLocalChange(rec, id) {
			b.removeRow(rec, id)
			delete(b.ids, rec.k)
			rec.idSet = true
		}
	}
	// Inserts and updates, targets before referrers; a reference to a row
	// inserted later in this round is filled in afterwards.
	written := map[recKey]bool{}
	later := func(t recKey) bool { // inserted further down this round
		_, cand := candidates[t]
		return cand && !written[t]
	}
	var deferred []func()
	var inserted []recKey
	write := func(rec *record, alone bool) {
		if !rec.st.Live() || written[rec.k] {
			return
		}
		_, isNew := candidates[rec.k]
		id, has := b.ids[rec.k]
		if !has {
			return // parked below
		}
		if !isNew && len(b.blockers(rec, resolvable)) > 0 {
			return // an existing row whose required target vanished: keep it, park
		}
		if !isNew && b.keepsLocalChange(rec, id) {
			written[rec.k] = true
			return
		}
		deferred = append(deferred, b.writeRow(rec, id, isNew, later, alone)...)
		written[rec.k] = true
		if isNew {
			inserted = append(inserted, rec.k)
		}
	}
	// Table by table, in dependency order (targets first): rows that
	// moved to a new key, each in a statement of its own, after the row
	// that held its new key (moveOrder: the key a row leaves may be the
	// next one's new key, or a new row's); then updates, then inserts (an
	// existing row may leave a unique place, such as a patient record's
	// person, that a new one takes).
	var moved []rowMove
	inRound := map[recKey]*record{}
	if len(b.moved) > 0 {
		for _, rec := range todo {
			inRound[rec.k] = rec
		}
		// Only a row written in this round may be set aside (write).
		canAside := func(mv rowMove) bool {
			rec, ok := inRound[mv.to]
			if _, isNew := candidates[mv.to]; !ok || isNew || !rec.st.Live() || written[mv.to] {
				return false
			}
			id, has := b.ids[mv.to]
			return has && id == mv.id && len(b.blockers(rec, resolvable)) == 0 && !b.keepsLocalChange(rec, id)
		}
		var aside []rowMove
		moved, aside = b.moveOrder(canAside)
		b.setAside(aside)
	}
	for i := 0; i < len(sorted); {
		rank := order[sorted[i].k.model]
		j := i
		for j < len(sorted) && order[sorted[j].k.model] == rank {
			j++
		}
		for _, mv := range moved {
			// A new record under a key a row moved to and on from is
			// inserted with the others, after these.
			if _, isNew := candidates[mv.to]; !isNew && order[mv.to.model] == rank {
				if rec, ok := inRound[mv.to]; ok {
					write(rec, true)
				}
			}
		}
		for _, isNew := range []bool{false, true} {
			for _, rec := range sorted[i:j] {
				if _, n := candidates[rec.k]; n == isNew {
					write(rec, false)
				}
			}
		}
		i = j
	}
	for _, f := range deferred {
		f()
	}
	if err := b.writeRelations(ctx, sorted, written, candidates); err != nil {
		return nil, err
	}
	// Learn whether unresolved targets are still to come or were deleted:
	// only the first is worth waiting for.
	var unresolved []recKey
	for _, rec := range sorted {
		if rec.vals != nil {
			for _, t := range rec.refs {
				if _, has := b.ids[t]; !has {
					unresolved = append(unresolved, t)
				}
			}
		}
	}
	if err := b.load(ctx, unresolved); err != nil {
		return nil, err
	}
	// Parked entries are deleted before any is inserted, whichever record
	// has the first of either (bookkeep skips records that cannot have any).
	b.w.declare(opDelete, 1, b.p.own.parked, keyCols, keyTypes, "")
	for _, rec := range sorted {
		b.bookkeep(rec, resolvable)
	}
	for _, o := range b.w.order {
		b.tx.queueOp(o)
	}
	b.w = writes{}
	b.locks.queue(b.tx)
	if err := b.tx.flush(ctx); err != nil {
		return nil, fmt.Errorf("write rows: %w", err)
	}
	return inserted, nil
}

// blockers are what keep a live record's row from being written: required
// references that do not resolve, required values that are missing.
func (b *batch) blockers(rec *record, resolvable func(recKey) bool) []wait {
	var out []wait
	if w, ok := b.contention[rec.k]; ok {
		out = append(out, w)
	}
	for _, f := range rec.m.Fields {
		if !f.Required {
			continue
		}
		v := rec.vals[f.Name]
		if v.IsNull() {
			if w, ok := rec.st.Value(rec.m.Policy, f.Name); ok {
				if r, ok := w.Value.AsRef(); ok { // nulled by FollowRefs
					out = b.waitHops(out, r, "required "+f.Name+" names a life of its target that was deleted")
					continue
				}
			}
			out = append(out, wait{rec.k, "missing required field " + f.Name})
			continue
		}
		if r, ok := v.AsRef(); ok && !resolvable(recKey{r.Model, r.Key}) {
			t := recKey{r.Model, r.Key}
			if !b.deleted(t) {
				out = append(out, wait{t, "required " + f.Name + " target has not arrived"})
				continue
			}
			out = append(out, wait{t, "required " + f.Name + " target was deleted"})
			if w, ok := rec.st.Value(rec.m.Policy, f.Name); ok {
				if r, ok := w.Value.AsRef(); ok {
					out = b.waitHops(out, r, "required "+f.Name+" target was deleted")
				}
			}
		}
	}
	return out
}

// waitHops adds a wait on every record a reference passes through to the
// deleted life it ends at (Hops): one more key change of any of them, by
// a site that had not heard of the delete, can lead it to a live record.
func (b *batch) waitHops(out []wait, r ledger.Ref, reason string) []wait {
	for _, h := range Hops(b.p.reg, r, b.state) {
		t := recKey{h.Model, h.Key}
		if !slices.ContainsFunc(out, func(w wait) bool { return w.target == t }) {
			out = append(out, wait{t, reason})
		}
	}
	return out
}

// orphaned reports whether live rec has a required reference to a
// deleted target, or to a life of its target that was deleted (written
// by someone who had not heard of the delete). The target's own delete
// takes rows pointing at it (cascade.go); a row pointing elsewhere, at
// the site whose user made the reference before it was moved, would
// otherwise stay there alone.
func (b *batch) orphaned(rec *record) bool {
	if rec.vals == nil || !rec.st.Live() {
		return false
	}
	for i := range rec.m.Fields {
		f := &rec.m.Fields[i]
		if !f.Required || f.Type != models.Many2One {
			continue
		}
		r, ok := rec.vals[f.Name].AsRef()
		if !ok {
			if w, ok := rec.st.Value(rec.m.Policy, f.Name); ok {
				if _, ok := w.Value.AsRef(); ok {
					return true // nulled by FollowRefs: a deleted life
				}
			}
			continue
		}
		t := recKey{r.Model, r.Key}
		st := b.targets[t]
		if tr, ok := b.recs[t]; ok {
			st = tr.st
		}
		if st != nil && st.Deleted != nil && !st.Live() {
			return true
		}
	}
	return false
}

// assignIDs gives the new rows local ids: the old id after a rebuild,
// otherwise the next values of the table's own sequence, as Tryton would.
func (b *batch) assignIDs(ctx context.Context, candidates map[recKey]*record) error {
	if len(candidates) == 0 {
		return nil
	}
	keys := make([]recKey, 0, len(candidates))
	for k := range candidates {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareKeys)
	if b.p.rebuilding {
		prior, err := b.tx.loadIDs(ctx, "idmap_prior", keys)
		if err != nil {
			return err
		}
		for k, id := range prior {
			b.ids[k] = id
		}
	}
	byTable := map[string][]recKey{}
	for _, k := range keys {
		if _, has := b.ids[k]; !has {
			t := candidates[k].m.Table
			byTable[t] = append(byTable[t], k)
		}
	}
	for _, t := range slices.Sorted(maps.Keys(byTable)) {
		ids, err := b.tx.reserveIDs(ctx, t, len(byTable[t]))
		if err != nil {
			return err
		}
		for i, k := range byTable[t] {
			b.ids[k] = ids[i]
		}
	}
	return nil
}

// references notes that a row written this round references the row id
// of model's table.
func (b *batch) references(model string, id int64) {
	if b.locks == nil {
		return
	}
	if m, ok := b.p.reg.Lookup(model); ok {
		b.locks.add(b.p.shapeOf(m).table, id)
	}
}

// deleted reports whether a record is known to be deleted (its tombstone
// is in the batch's loaded states).
func (b *batch) deleted(k recKey) bool {
	r, ok := b.recs[k]
	return ok && r.st.Deleted != nil
}

// removeRow deletes rec's row id and its Many2Many links, firing the
// table's ON DELETE actions.
func (b *batch) removeRow(rec *record, id int64) {
	for _, f := range rec.m.Fields {
		if f.Type == models.Many2Many && b.p.hasField(rec.m, &f) {
			b.w.add(opDelete, quoteIdent(f.Relation.Table), []string{f.Relation.OriginColumn}, intType, "", id)
		}
	}
	o := b.w.declare(opDelete, 1, b.p.shapeOf(rec.m).table, []string{"id"}, intType, "")
	o.cascades = true
	o.rows = append(o.rows, []any{id})
}

// Column lists of the projector's own tables, for ops.
var (
	intType  = []string{"integer"}
	keyCols  = []string{"model", "key"}
	keyTypes = []string{"text", "text"}
	// The records table: its whole row, the merge state, the local id.
	recordCols  = []string{"model", "key", "live", "state", "local_id"}
	recordTypes = []string{"text", "text", "boolean", "bytea", "bigint"}
	stateCols   = recordCols[:4:4]
	stateTypes  = recordTypes[:4:4]
	idCols      = []string{"model", "key", "local_id"}
	idTypes     = []string{"text", "text", "bigint"}
	parkCols    = []string{"model", "key", "waits_model", "waits_key", "reason", "position"}
	parkTypes   = []string{"text", "text", "text", "text", "text", "bigint"}
	confCols    = []string{"model", "key", "field", "loser_event", "reason", "loser_origin", "loser_hlc", "loser_value",
		"winner_event", "winner_origin", "winner_hlc", "winner_value"}
	confTypes   = []string{"text", "text", "text", "text", "text", "integer", "text", "text", "text", "integer", "text", "text"}
	confKeyCols = []string{"model", "key", "field", "loser_event"}
	// conflictUpsert replaces a stored conflict whose winner changed.
	conflictUpsert = `ON CONFLICT (model, key, field, loser_event) DO UPDATE SET reason = excluded.reason,
		winner_event = excluded.winner_event, winner_origin = excluded.winner_origin,
		winner_hlc = excluded.winner_hlc, winner_value = excluded.winner_value`
	confKeyTypes = []string{"text", "text", "text", "text"}
)

// ownTables names the projector's own tables as its writes do, once.
type ownTables struct {
	records, parked, conflicts string
	// recordUpsert inserts a records row, keeping a local id the capturer
	// stored meanwhile. The existing row goes by the table's name,
	// without PostgreSQL's schema. recordUpsertID sets the id the batch
	// decided, none included (a row it moved here, then deleted).
	recordUpsert, recordUpsertID string
}

func newOwnTables(prefix string) ownTables {
	return ownTables{records: prefix + "records", parked: prefix + "parked", conflicts: prefix + "conflicts",
		recordUpsert: `ON CONFLICT (model, key) DO UPDATE SET live = excluded.live, state = excluded.state,
			local_id = COALESCE(excluded.local_id, ` + strings.TrimPrefix(prefix, "ghsync.") + `records.local_id)`,
		recordUpsertID: `ON CONFLICT (model, key) DO UPDATE SET live = excluded.live, state = excluded.state, local_id = excluded.local_id`}
}

// shape is the column lists of a model's table, computed once.
type shape struct {
	table                   string          // quoted
	fields                  []*models.Field // stored, non-Many2Many
	insertCols, insertTypes []string
	updateCols, updateTypes []string
}

func (p *Projector) shapeOf(m *models.Model) *shape {
	if sh, ok := p.shapes[m.Name]; ok {
		return sh
	}
	sh := &shape{table: quoteIdent(m.Table), updateCols: []string{"id"}, updateTypes: []string{"integer"}}
	for i := range m.Fields {
		f := &m.Fields[i]
		if f.Type == models.Many2Many || !p.hasField(m, f) {
			continue
		}
		sh.fields = append(sh.fields, f)
		sh.insertCols = append(sh.insertCols, f.Column)
		sh.insertTypes = append(sh.insertTypes, f.SQLType(models.Postgres))
	}
	sh.updateCols = append(sh.updateCols, sh.insertCols...)
	sh.updateTypes = append(sh.updateTypes, sh.insertTypes...)
	sh.insertCols = append(sh.insertCols, "id", "create_uid", "create_date")
	sh.insertTypes = append(sh.insertTypes, "integer", "integer", "timestamp(6) without time zone")
	sh.updateCols = append(sh.updateCols, "write_uid", "write_date")
	sh.updateTypes = append(sh.updateTypes, "integer", "timestamp(6) without time zone")
	if p.shapes == nil {
		p.shapes = map[string]*shape{}
	}
	p.shapes[m.Name] = sh
	return sh
}

// writeRow inserts or updates a live record's row. A reference to a row
// inserted later in this round is written afterwards (deferred).
func (b *batch) writeRow(rec *record, id int64, isNew bool, later func(recKey) bool, alone bool) (deferred []func()) {
	m := rec.m
	sh := b.p.shapeOf(m)
	fields, cols, types := sh.fields, sh.updateCols, sh.updateTypes
	if !isNew && !rec.whole && rec.touched != nil {
		fields, cols, types = b.p.partialShape(m, sh, rec.touched)
	}
	args := make([]any, 0, len(fields)+3)
	for _, f := range fields {
		v := rec.vals[f.Name]
		var a any
		switch {
		case f.Type == models.Many2One:
			if r, ok := v.AsRef(); ok {
				t := recKey{r.Model, r.Key}
				if tid, has := b.ids[t]; has {
					b.references(t.model, tid)
					if later(t) {
						col := []string{"id", f.Column}
						deferred = append(deferred, func() {
							b.w.add(opUpdate, sh.table, col, []string{"integer", "integer"}, "", id, tid)
						})
					} else {
						a = tid
					}
				}
			}
		default:
			a = b.tx.arg(ColumnValue(v, f), f)
		}
		args = append(args, a)
	}
	uid := b.p.users[rec.user]
	if b.p.hasTable("res_user") {
		b.locks.add(quoteIdent("res_user"), uid)
	}
	if isNew {
		created := ledger.Null()
		if rec.st.Created != nil {
			created, _ = ledger.DateTime(rec.st.Created.HLC.Time())
		}
		args = append(args, id, uid, b.tx.arg(created, nil))
		b.w.add(opInsert, sh.table, sh.insertCols, sh.insertTypes, "", args...)
		rec.idSet = true
		return deferred
	}
	now, _ := ledger.DateTime(b.p.clock().UTC().Truncate(time.Microsecond))
	row := append([]any{id}, args...)
	row = append(row, uid, b.tx.arg(now, nil))
	if alone {
		b.w.addAlone(opUpdate, sh.table, cols, types, row...)
	} else {
		b.w.add(opUpdate, sh.table, cols, types, "", row...)
	}
	return deferred
}

// partialShape is the column lists of an update that sets only the
// touched fields' columns, every reference column and the audit columns:
// the row's other columns already hold the merged state's values, while a
// reference can resolve in this batch (its target's row arriving) without
// an event of the record touching it.
func (p *Projector) partialShape(m *models.Model, sh *shape, touched map[string]bool) ([]*models.Field, []string, []string) {
	mask := make([]byte, len(sh.fields))
	n := 0
	for i, f := range sh.fields {
		mask[i] = '0'
		if touched[f.Name] || f.Type == models.Many2One {
			mask[i] = '1'
			n++
		}
	}
	if n == len(sh.fields) {
		return sh.fields, sh.updateCols, sh.updateTypes
	}
	key := m.Name + "\x00" + string(mask)
	if ps, ok := p.partials[key]; ok {
		return ps.fields, ps.updateCols, ps.updateTypes
	}
	ps := &shape{updateCols: []string{"id"}, updateTypes: []string{"integer"}}
	for i, f := range sh.fields {
		if mask[i] == '1' {
			ps.fields = append(ps.fields, f)
			ps.updateCols = append(ps.updateCols, sh.updateCols[i+1])
			ps.updateTypes = append(ps.updateTypes, sh.updateTypes[i+1])
		}
	}
	ps.updateCols = append(ps.updateCols, "write_uid", "write_date")
	ps.updateTypes = append(ps.updateTypes, "integer", "timestamp(6) without time zone")
	if p.partials == nil {
		p.partials = map[string]*shape{}
	}
	p.partials[key] = ps
	return ps.fields, ps.updateCols, ps.updateTypes
}

func joinIdents(cols []string) string {
	q := make([]string, len(cols))
	for i, c := range cols {
		q[i] = quoteIdent(c)
	}
	return strings.Join(q, ", ")
}

var placeholders = sqltext.Placeholders

// writeRelations rewrites the Many2Many relation rows of written records.
func (b *batch) writeRelations(ctx context.Context, recs []*record, written map[recKey]bool, fresh map[recKey]*record) error {
	type relRow struct {
		f              *models.Field
		origin, target int64
	}
	var rows []relRow
	count := map[string]int{}
	for _, rec := range recs {
		if !written[rec.k] {
			continue
		}
		id := b.ids[rec.k]
		for i := range rec.m.Fields {
			f := &rec.m.Fields[i]
			if f.Type != models.Many2Many || !b.p.hasField(rec.m, f) {
				continue
			}
			if _, isNew := fresh[rec.k]; !isNew {
				if refs, _ := rec.vals[f.Name].AsRefSet(); !rec.whole && rec.touched != nil && !rec.touched[f.Name] && len(refs) == 0 {
					continue // an empty set, unchanged: no relation rows to rewrite
				}
				b.w.add(opDelete, quoteIdent(f.Relation.Table), []string{f.Relation.OriginColumn}, intType, "", id)
			}
			refs, _ := rec.vals[f.Name].AsRefSet()
			for _, r := range refs {
				if tid, ok := b.ids[recKey{r.Model, r.Key}]; ok {
					b.references(rec.m.Name, id)
					b.references(r.Model, tid)
					rows = append(rows, relRow{f, id, tid})
					count[f.Relation.Table]++
				}
			}
		}
	}
	ids := map[string][]int64{}
	for _, t := range slices.Sorted(maps.Keys(count)) {
		got, err := b.tx.reserveIDs(ctx, t, count[t])
		if err != nil {
			return err
		}
		ids[t] = got
	}
	for _, r := range rows {
		rel := r.f.Relation
		id := ids[rel.Table][0]
		ids[rel.Table] = ids[rel.Table][1:]
		b.w.add(opInsert, quoteIdent(rel.Table), []string{"id", rel.OriginColumn, rel.TargetColumn},
			[]string{"integer", "integer", "integer"}, "", id, r.origin, r.target)
	}
	return nil
}

// bookkeep saves a record's merge state and local id, its parked entries
// and its conflict set.
func (b *batch) bookkeep(rec *record, resolvable func(recKey) bool) {
	own := &b.p.own
	hadState := rec.stored // parked entries are only ever written with a row
	if rec.dirty || rec.idSet {
		var id any // NULL: no row
		if v, has := b.ids[rec.k]; has {
			id = v
		}
		// Conflicts are derived before compaction: the ones of the writes
		// it drops are final and stay stored, no longer tracked.
		var conflicts []merge.Conflict
		compacted := false
		if rec.dirty {
			conflicts = rec.st.Conflicts(rec.m.Policy)
			compacted = b.frontier != 0 && b.p.compactable(rec.k) && rec.st.Compact(rec.m.Policy, b.frontier) > 0
		}
		var raw []byte
		if rec.dirty || !rec.stored {
			raw, _ = rec.st.MarshalBinary()
		}
		switch {
		case !rec.stored:
			upsert := own.recordUpsert
			if rec.idSet {
				upsert = own.recordUpsertID
			}
			b.w.add(opInsert, own.records, recordCols, recordTypes, upsert, rec.k.model, rec.k.key, rec.st.Live(), raw, id)
			rec.stored = true
		case !rec.dirty:
			b.w.updateBy(2, own.records, idCols, idTypes, rec.k.model, rec.k.key, id)
		case rec.idSet:
			b.w.updateBy(2, own.records, recordCols, recordTypes, rec.k.model, rec.k.key, rec.st.Live(), raw, id)
		default:
			b.w.updateBy(2, own.records, stateCols, stateTypes, rec.k.model, rec.k.key, rec.st.Live(), raw)
		}
		rec.idSet = false
		if rec.dirty {
			b.writeConflicts(rec, conflicts)
			if compacted {
				rec.before = rec.st.Conflicts(rec.m.Policy)
			}
		}
	}
	if (hadState && !b.parkedNone) || b.rebooked[rec.k] {
		b.w.add(opDelete, own.parked, keyCols, keyTypes, "", rec.k.model, rec.k.key)
	}
	b.rebooked[rec.k] = true
	delete(b.waits, rec.k)
	if !rec.st.Live() {
		return
	}
	waits := b.blockers(rec, resolvable)
	// An optional reference to a deleted target is left NULL (refollow
	// takes it up again if a key change leads it elsewhere).
	for _, t := range rec.refs {
		if _, has := b.ids[t]; !has && !b.deleted(t) && !slices.ContainsFunc(waits, func(w wait) bool { return w.target == t }) {
			waits = append(waits, wait{t, "optional reference target has not arrived"})
		}
	}
	if _, has := b.ids[rec.k]; !has && len(waits) == 0 {
		reason := "not materialised"
		if !b.p.hasTable(rec.m.Table) {
			reason = "table " + rec.m.Table + " does not exist here (module not activated)"
		}
		waits = append(waits, wait{rec.k, reason})
	}
	seen := map[recKey]bool{}
	for _, w := range waits {
		if seen[w.target] {
			continue
		}
		seen[w.target] = true
		b.parked[w.target] = append(b.parked[w.target], rec.k)
		b.waits[rec.k] = append(b.waits[rec.k], w.target)
		b.w.add(opInsert, own.parked, parkCols, parkTypes, "ON CONFLICT (model, key, waits_model, waits_key) DO NOTHING",
			rec.k.model, rec.k.key, w.target.model, w.target.key, w.reason, int64(rec.pos))
	}
}

// writeConflicts brings the stored conflict set of rec from rec.before to
// after, the state's current one, touching only what changed.
func (b *batch) writeConflicts(rec *record, after []merge.Conflict) {
	type id struct {
		field string
		loser merge.Stamp
	}
	old := make(map[id]merge.Conflict, len(rec.before))
	for _, c := range rec.before {
		old[id{c.Field, c.Loser.Stamp}] = c
	}
	for _, c := range after {
		k := id{c.Field, c.Loser.Stamp}
		if o, ok := old[k]; ok {
			delete(old, k)
			if o.Reason == c.Reason && o.Winner.Stamp == c.Winner.Stamp && o.Winner.Value.Equal(c.Winner.Value) {
				continue // unchanged
			}
		}
		// An upsert, so a changed conflict never needs a delete that could
		// run after it in this round.
		b.w.add(opInsert, b.p.own.conflicts, confCols, confTypes, conflictUpsert,
			rec.k.model, rec.k.key, c.Field, c.Loser.Stamp.ID.String(), c.Reason.String(), int64(c.Loser.Stamp.Origin),
			c.Loser.Stamp.HLC.String(), jsonText(c.Loser.Value), c.Winner.Stamp.ID.String(), int64(c.Winner.Stamp.Origin),
			c.Winner.Stamp.HLC.String(), jsonText(c.Winner.Value))
	}
	for _, c := range old { // no longer a conflict
		b.w.add(opDelete, b.p.own.conflicts, confKeyCols, confKeyTypes, "", rec.k.model, rec.k.key, c.Field, c.Loser.Stamp.ID.String())
	}
	rec.before = after
}

func jsonText(v ledger.Value) string {
	b, err := json.Marshal(v)
	if err != nil {
		return "?"
	}
	return string(b)
}
