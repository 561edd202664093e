package projections

import (
	"maps"
	"slices"
	"strconv"
)

// PostgreSQL checks a foreign key once a row: every projected row of a
// clinic's tables runs two to five queries (create_uid, write_uid, party,
// patient...), each locking the row it finds. Logical replication's apply
// worker skips them by running as session_replication_role = replica,
// which silences every trigger not marked ENABLE REPLICA or ALWAYS,
// foreign-key checks and actions among them. The projector's inserts and
// updates do the same where the database role may set it: every reference
// they write is a local id the projector resolved itself (its records
// table, or a row inserted earlier in the round). What the checks guarded
// against, a target deleted locally that the capturer has not drained
// yet, is kept by one statement a target table a batch
// (ghsync.lock_references): it takes the distinct referenced rows FOR KEY
// SHARE, as the checks do, and fails the batch if one is gone. Deletes run
// in the origin role, so ON DELETE CASCADE and SET NULL still reach rows
// ghsync does not know about.
//
// Hazard: triggers of an administrator's own on GNU Health tables do not
// fire for projected inserts and updates either (as with logical
// replication); ALTER TABLE ... ENABLE ALWAYS TRIGGER makes them.

// lockReferencesDDL creates the check, once: the rows of tbl with the
// given (distinct) ids are locked FOR KEY SHARE until commit, or the
// transaction fails with foreign_key_violation naming the missing ids.
// Created only where missing, so a role that does not own it (capture
// installed by a superuser) still opens; a change to its body needs a
// schema version.
const lockReferencesDDL = `DO $$ BEGIN
	IF to_regprocedure('ghsync.lock_references(regclass, bigint[])') IS NULL THEN
		CREATE FUNCTION ghsync.lock_references(tbl regclass, ids bigint[]) RETURNS void
		LANGUAGE plpgsql AS $fn$
		DECLARE
			found bigint[];
		BEGIN
			EXECUTE format('SELECT array_agg(id) FROM (SELECT id FROM %s WHERE id = ANY ($1) FOR KEY SHARE) r', tbl)
				INTO found USING ids;
			IF coalesce(cardinality(found), 0) < cardinality(ids) THEN
				RAISE EXCEPTION 'projected rows reference rows of % that do not exist: ids %', tbl,
					(SELECT array_agg(i ORDER BY i) FROM unnest(ids) i WHERE NOT i = ANY (coalesce(found, '{}')))
					USING ERRCODE = 'foreign_key_violation',
					HINT = 'a local delete not yet captured? the next sync cycle drains it before projecting';
			END IF;
		END $fn$;
	END IF;
END $$`

// refLocks is the rows a batch's writes reference, by quoted target table.
type refLocks map[string]map[int64]bool

func (l refLocks) add(table string, id int64) {
	if l == nil {
		return // the target checks every row itself
	}
	ids := l[table]
	if ids == nil {
		ids = map[int64]bool{}
		l[table] = ids
	}
	ids[id] = true
}

// queue adds one lock_references call a table to tx and forgets the rows.
func (l refLocks) queue(tx dtx) {
	for _, t := range slices.Sorted(maps.Keys(l)) {
		ids := slices.Sorted(maps.Keys(l[t]))
		arr := make([]byte, 0, 8*len(ids)+2)
		arr = append(arr, '{')
		for i, id := range ids {
			if i > 0 {
				arr = append(arr, ',')
			}
			arr = strconv.AppendInt(arr, id, 10)
		}
		tx.queue(`SELECT ghsync.lock_references(?::regclass, ?::bigint[])`, t, string(append(arr, '}')))
		delete(l, t)
	}
}

// roles switches a PostgreSQL transaction's session_replication_role
// between ops: replica for inserts and updates, origin (the default a
// transaction starts in and returns to at commit) for deletes whose
// ON DELETE actions must fire. Each switch discards the session's cached
// plans, so it switches only when the next op needs the other role.
type roles struct {
	skip    bool // the dialect may run ops as replica
	replica bool // the role the queued statements leave in force
}

var setRole = map[bool]string{
	false: `SELECT set_config('session_replication_role', 'origin', true)`,
	true:  `SELECT set_config('session_replication_role', 'replica', true)`,
}

func (r *roles) queueOp(w *pgBatch, o *op) {
	if len(o.rows) == 0 {
		return
	}
	if want := r.skip && !o.cascades; want != r.replica {
		w.queue(setRole[want])
		r.replica = want
	}
	w.queueOp(o)
}
