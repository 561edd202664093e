package capture

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/ghsync/ghsync/clocks"
	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/merge"
	"github.com/ghsync/ghsync/models"
)

// ReconcileStats says what a Reconcile did.
type ReconcileStats struct {
	Stats // Changes: rows (and Many2Many sets) captured
	// Created is rows the network had never seen: create events.
	Created int
	// Changed is rows the network knows whose values differ from its
	// merged ones: write events of the differing fields (a changed key
	// moves the record's identity, as a captured update would).
	Changed int
	// Deleted is rows of records the network has deleted that are still
	// here: any field edited meanwhile is written (the merge records it
	// as a conflict with the delete), and the projector removes the row.
	Deleted int
	// Restored is rows the network knows, live, that are gone here: the
	// projector writes them again from the network's copy.
	Restored int
	// Drained is the events made of the changes the outbox held when
	// Reconcile began (it drains them first; not in Stats).
	Drained int
	// Pending is changes made while Reconcile ran, waiting in the outbox
	// (the next drain or sync captures them).
	Pending int64
}

// Reconcile makes what the network knows of this database's rows equal
// to the rows: for an instance joining the network with data, and
// whenever capture was not recording for a while (uninstalled and
// installed again, a module's table newly captured, triggers lost with a
// restored dump), since edits made then are in no event.
//
// It reads one consistent snapshot (a REPEATABLE READ, read-only
// transaction on PostgreSQL; one read transaction on SQLite), model by
// model in dependency order and in chunks of BatchSize rows by id, and
// commits each chunk's events on its own, so it never holds locks that
// block the clinic's users:
//
//   - a row without a network identity becomes a create event, stamped at
//     its write_date (as a snapshot always did);
//   - a row with one is compared, field by field, with what the
//     projector derives from the record's merge state (projections.
//     RowValues, ColumnValue; rows' columns converted as the drain
//     converts them), completed with this instance's events the
//     projector has not applied yet. Each field that differs is
//     captured as a write, stamped now, by the row's write_uid, whose
//     Base is the HLC of the value it replaces (the deferred one where
//     the projector left the row alone), so it merges like an edit made
//     after that value and a concurrent write elsewhere is a conflict as
//     usual. A reference is compared as the local row it resolves to: one
//     the projector could not write (target not here) is no difference.
//     Where the projector knowingly left the row behind the state
//     (deferred, parked, deleted), a value the record had at some point
//     is not taken for an edit either;
//   - a row of a record the network has deleted is compared alike (the
//     edits become conflicts with the delete), then left for the
//     projector to remove: deletes are final network-wide;
//   - a known row that is gone here is not captured as a delete: a
//     restored partial dump or an emptied table would otherwise delete
//     records at every instance, for good. Its local id is released and
//     the projector writes it again from the network's copy (delete it
//     again in Tryton, now recorded, if that was meant).
//
// It first drains the outbox, so that what differs is only what nothing
// recorded. Nothing is repeated by a second run: a row already captured
// equals this instance's events. Once complete it releases projection if
// install held it (projections.MetaReconcile). Changes made while it runs
// reach the outbox.
func (c *Capturer) Reconcile(ctx context.Context, progress func(SnapshotProgress)) (ReconcileStats, error) {
	var rs ReconcileStats
	asked, err := c.d.reconcileRequest(ctx)
	if err != nil {
		return rs, err
	}
	drained, err := c.Drain(ctx)
	if err != nil {
		return rs, fmt.Errorf("reconcile: drain the outbox first: %w", err)
	}
	rs.Drained = drained.Events
	rd, err := c.d.snapshotReader(ctx)
	if err != nil {
		return rs, err
	}
	defer rd.close()
	r := &reconciler{c: c, tx: rd.tx, gone: map[recKeyOf]int64{}, rederive: map[recKeyOf]string{},
		ids: map[recKeyOf]sql.NullInt64{}, cols: map[string][]column{}}
	if err := r.load(ctx); err != nil {
		return rs, fmt.Errorf("reconcile: %w", err)
	}
	for _, m := range c.reg.Models() {
		if _, ok := c.tables[m.Table]; ok {
			if err := r.findGone(ctx, m, &rs); err != nil {
				return rs, fmt.Errorf("reconcile %s: rows gone: %w", m.Name, err)
			}
		}
	}
	for _, m := range c.reg.Models() {
		if _, ok := c.tables[m.Table]; !ok {
			continue // not installed here
		}
		rows := 0
		after := int64(-1)
		for {
			chs, n, last, err := r.chunk(ctx, m, after, &rs)
			if err != nil {
				return rs, fmt.Errorf("reconcile %s after id %d: %w", m.Name, after, err)
			}
			if n == 0 {
				break
			}
			after = last
			rows += n
			if len(chs) > 0 {
				ev, err := c.commit(ctx, chs, false, r.fl)
				if err != nil {
					return rs, fmt.Errorf("reconcile %s ids up to %d: %w", m.Name, last, err)
				}
				rs.Changes += len(chs)
				rs.Events += ev
				rs.Batches++
			}
			if progress != nil {
				progress(SnapshotProgress{Model: m.Name, Rows: rows, Events: rs.Events})
			}
		}
	}
	if err := r.finish(ctx); err != nil {
		return rs, fmt.Errorf("reconcile: %w", err)
	}
	if err := c.d.releaseProjection(ctx, asked); err != nil {
		return rs, err
	}
	if err := c.d.QueryRowContext(ctx, `SELECT count(*) FROM `+c.d.t("outbox")).Scan(&rs.Pending); err != nil {
		return rs, fmt.Errorf("read outbox: %w", err)
	}
	return rs, nil
}

// reconciler is one Reconcile's view of the database and the ledger.
type reconciler struct {
	c  *Capturer
	tx *sql.Tx // the snapshot
	// tail is the merge of this instance's events after the projector's
	// checkpoint: the rows show them (the projector has not, its states
	// lack them). fl carries their HLCs, the Base of later writes.
	tail  map[recKeyOf]*merge.State
	fl    *inflight
	alias map[recKeyOf]string
	// gone is the known records whose row is gone here (local id);
	// rederive the records the projector must derive again, with the HLC
	// of each value the row shows (the deferred table's bases).
	gone     map[recKeyOf]int64
	rederive map[recKeyOf]string
	ids      map[recKeyOf]sql.NullInt64 // local ids of referenced records, as the snapshot has them
	lives    map[recKeyOf]*merge.State  // merge states of referenced natural keys (loadLives)
	live     map[recKeyOf]bool          // whether each of those is live (records.live)
	cols     map[string][]column        // SQLite: a table's columns, for its row images
}

// load reads the alias table and this instance's events the projector
// has not applied (after the smallest checkpoint the snapshot shows).
func (r *reconciler) load(ctx context.Context) error {
	d := r.c.d
	r.alias = map[recKeyOf]string{}
	rows, err := r.tx.QueryContext(ctx, `SELECT model, old_key, new_key FROM `+d.t("alias"))
	if err != nil {
		return fmt.Errorf("read aliases: %w", err)
	}
	for rows.Next() {
		var k recKeyOf
		var to string
		if err := rows.Scan(&k.model, &k.key, &to); err != nil {
			rows.Close()
			return err
		}
		r.alias[k] = to
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	var cp sql.NullInt64
	if err := r.tx.QueryRowContext(ctx, `SELECT min(position) FROM `+d.t("checkpoint")).Scan(&cp); err != nil {
		return fmt.Errorf("read the projector's checkpoint: %w", err)
	}
	r.tail = map[recKeyOf]*merge.State{}
	stamps := map[recKeyOf]fieldStamps{}
	after := uint64(cp.Int64)
	for {
		recs, err := r.c.store.ReadAll(ctx, after, 1000, ledger.Filter{Origins: []uint16{r.c.opts.Origin}})
		if err != nil {
			return fmt.Errorf("read this instance's events after position %d: %w", after, err)
		}
		if len(recs) == 0 {
			break
		}
		for _, rec := range recs {
			e := rec.Event
			if _, ok := r.c.reg.Lookup(e.Model); !ok {
				continue // a clock bound, or a model left out of the registry
			}
			k := recKeyOf{e.Model, e.Key}
			st := r.tail[k]
			if st == nil {
				st = &merge.State{}
				r.tail[k] = st
			}
			st.Apply(e)
			noteStamps(stamps, e)
		}
		after = recs[len(recs)-1].Position
	}
	r.fl = &inflight{stamps: stamps}
	return nil
}

// aliasOf follows renames from a key to the record's current key.
func (r *reconciler) aliasOf(model, key string) string {
	if r.live[recKeyOf{model, key}] {
		return key // as the projector: see projections.Alias
	}
	for range 16 { // a rename chain longer than this is a loop
		to, ok := r.alias[recKeyOf{model, key}]
		if !ok {
			break
		}
		key = to
	}
	return key
}

// state is a record's merge state as the row should show it: the stored
// one (raw; nil: none yet) with this instance's unapplied events. A
// record with neither is read from its stream, in case another origin's
// events are what the projector has not applied.
func (r *reconciler) state(ctx context.Context, k recKeyOf, raw []byte) (*merge.State, error) {
	st := &merge.State{}
	if raw != nil {
		var err error
		if st, err = merge.DecodeState(raw); err != nil {
			return nil, fmt.Errorf("%s/%s: merge state: %w", k.model, k.key, err)
		}
	}
	st.Merge(r.tail[k])
	if !empty(st) {
		return st, nil
	}
	recs, err := r.c.store.ReadStream(ctx, ledger.Stream{Model: k.model, Key: k.key}, 0, 10_000)
	if err != nil {
		return nil, fmt.Errorf("read the history of %s/%s: %w", k.model, k.key, err)
	}
	for _, rec := range recs {
		st.Apply(rec.Event)
	}
	return st, nil
}

// empty reports whether no event of the record is known.
func empty(st *merge.State) bool {
	return st.Created == nil && st.Deleted == nil && len(st.Fields) == 0
}

// basesOf is the HLC of each value a row derived from st shows, as
// the projector records it for a deferred record.
func basesOf(m *models.Model, st *merge.State) string {
	bases := map[string]clocks.Timestamp{}
	for f := range st.Fields {
		if w, ok := st.Value(m.Policy, f); ok {
			bases[f] = w.Stamp.HLC
		}
	}
	raw, _ := json.Marshal(bases)
	return string(raw)
}

// findGone notes the records of m the network knows with a row here that
// is gone.
func (r *reconciler) findGone(ctx context.Context, m *models.Model, rs *ReconcileStats) error {
	d := r.c.d
	q := d.q(`SELECT i.key, i.local_id, i.state FROM ` + d.t("records") + ` i
		WHERE i.model = ? AND i.local_id IS NOT NULL AND i.local_id > ?
		AND NOT EXISTS (SELECT 1 FROM ` + quoteIdent(m.Table) + ` t WHERE t.id = i.local_id)
		ORDER BY i.local_id LIMIT ?`)
	after := int64(-1)
	for {
		rows, err := r.tx.QueryContext(ctx, q, m.Name, after, r.c.opts.BatchSize)
		if err != nil {
			return err
		}
		type gone struct {
			key string
			id  int64
			raw []byte
		}
		var got []gone
		for rows.Next() {
			var g gone
			if err := rows.Scan(&g.key, &g.id, &g.raw); err != nil {
				rows.Close()
				return err
			}
			got = append(got, g)
		}
		rows.Close()
		if err := rows.Err(); err != nil || len(got) == 0 {
			return err
		}
		for _, g := range got {
			k := recKeyOf{m.Name, g.key}
			st, err := r.state(ctx, k, g.raw)
			if err != nil {
				return err
			}
			r.gone[k] = g.id
			r.rederive[k] = basesOf(m, st)
			if st.Live() {
				rs.Restored++
				r.c.log.Warn("a row the network knows is gone here: not captured as a delete; the projector writes it again", "model", m.Name, "key", g.key, "id", g.id)
			}
			after = g.id
		}
	}
}

// finish commits what the projector must do once the reconcile is over,
// in one transaction: gone rows lose their local id, and the records
// whose row the projector left behind are listed for it to derive again
// (its deferred table, which it works through at the end of every
// catch-up).
func (r *reconciler) finish(ctx context.Context) error {
	if len(r.gone) == 0 && len(r.rederive) == 0 {
		return nil
	}
	d := r.c.d
	tx, err := d.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	exec := func(q string, args ...any) error {
		_, err := tx.ExecContext(ctx, d.q(q), args...)
		return err
	}
	for k, id := range r.gone {
		err := exec(`DELETE FROM `+d.t("records")+` WHERE model = ? AND key = ? AND local_id = ? AND state IS NULL`, k.model, k.key, id)
		if err == nil {
			err = exec(`UPDATE `+d.t("records")+` SET local_id = NULL WHERE model = ? AND key = ? AND local_id = ?`, k.model, k.key, id)
		}
		if err != nil {
			return fmt.Errorf("release the local id of %s/%s: %w", k.model, k.key, err)
		}
	}
	for k, bases := range r.rederive {
		if err := exec(`INSERT INTO `+d.t("deferred")+` (model, key, bases) VALUES (?, ?, ?) ON CONFLICT (model, key) DO NOTHING`, k.model, k.key, bases); err != nil {
			return fmt.Errorf("list %s/%s for the projector: %w", k.model, k.key, err)
		}
	}
	return tx.Commit()
}
