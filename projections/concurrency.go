package projections

import (
	"context"
	"errors"
	"fmt"
)

// Several projectors may write one target: ghsync project or rebuild
// beside a running ghsync run, two services pointed at one database, a
// projector of another name. Their batches must take turns, and a batch
// must apply to the state its preparation read: two batches that both
// find a record without a row would both insert one, and the second
// upsert of ghsync.records would orphan the first row (a row with no
// network identity, which capture would later send everywhere as a new
// record). So:
//
//   - every projection transaction holds the target's projection lock
//     from its first statement to its end: on PostgreSQL a
//     transaction-level advisory lock (projectionLock), on SQLite the
//     write lock every transaction takes at BEGIN (IMMEDIATE). The lock
//     is the target's, not a projector name's: projectors of every name
//     share ghsync.records and the Tryton tables.
//   - under it, a batch checks that its own checkpoint is still where its
//     events follow on (batch by batch: read first, before any work;
//     pipelined: the guarded checkpoint update, first of the commit). A
//     batch that finds it moved rolls back with errMoved, and the
//     catch-up reads the checkpoint again and goes on from there: the
//     other projector applied those events, and merging is idempotent, so
//     nothing is lost or applied twice.
//   - the checkpoint update itself stays guarded on the position the
//     batch started from, for a ghsync without the lock (an older one)
//     writing beside this one.
//   - a rebuild marks the target (proj_meta 'rebuilding') in the
//     transaction that empties it, and clears the mark in the one that
//     ends the replay; any other projector's batch meanwhile fails with
//     ErrRebuilding instead of writing into a half-replayed target
//     without the rows' old ids. The mark outlives an interrupted
//     rebuild, which is run again to finish.

// projectionLock takes the target's projection lock, held to the end of
// the transaction (PostgreSQL). A batch's reads must come in later
// statements, which take their snapshots once it is held.
const projectionLock = `pg_advisory_xact_lock(hashtext('ghsync.projection'))`

// errMoved says a batch found the checkpoints other than its preparation
// assumed (another projector or a rebuild committed in between, or,
// pipelined, the batch before it failed): it was rolled back, nothing
// written, and must be prepared again from the stored checkpoint.
var errMoved = errors.New("projection checkpoints moved while the batch was prepared")

// ErrRebuilding says a rebuild of the target is under way, or was
// interrupted: projecting into it now would write rows without their
// pre-rebuild ids. Wait for the rebuild, or run it again to finish it.
var ErrRebuilding = errors.New("a rebuild of the target is under way or was interrupted")

// rebuildMark is the proj_meta row a rebuild holds while it replays.
const rebuildMark = "rebuilding"

// checkTurn starts a batch by batch transaction, tx, that applies the
// events after from: it reads the checkpoints (the state cache is kept
// only if they are as this projector left them), and refuses to go on
// if a rebuild holds the target or this projector's checkpoint is no
// longer from.
func (p *Projector) checkTurn(ctx context.Context, tx dtx, from uint64) error {
	s := p.d.schemaPrefix()
	var sum, own, rebuilding int64
	if err := scanOne(ctx, tx, []any{&sum, &own, &rebuilding}, `SELECT coalesce(sum(position), 0), coalesce(max(CASE WHEN name = ? THEN position END), 0),
		(SELECT count(*) FROM `+s+`proj_meta WHERE name = '`+rebuildMark+`') FROM `+s+`checkpoint`, p.opts.Name); err != nil {
		return fmt.Errorf("read checkpoint: %w", err)
	}
	if rebuilding > 0 && !p.rebuilding {
		return fmt.Errorf("%w: wait for ghsync rebuild to finish, or run it again if it was stopped", ErrRebuilding)
	}
	p.cache.verify(p, uint64(sum), uint64(own))
	if uint64(own) != from {
		p.cache.reset()
		return errMoved
	}
	return nil
}

// checkpointGuard is the statement that moves this projector's checkpoint
// from from to to, and changes no row unless it is still at from, the
// other projectors' checkpoints sum to others (when known: pipelined
// preparation read them outside the transaction) and no rebuild holds
// the target (unless this is the rebuild).
func (p *Projector) checkpointGuard(from, to uint64, others *uint64) (string, []any) {
	s := p.d.schemaPrefix()
	q := `UPDATE ` + s + `checkpoint SET position = ? WHERE name = ? AND position = ?`
	args := []any{int64(to), p.opts.Name, int64(from)}
	if others != nil {
		q += ` AND (SELECT coalesce(sum(position), 0) FROM ` + s + `checkpoint WHERE name <> ?) = ?`
		args = append(args, p.opts.Name, int64(*others))
	}
	if !p.rebuilding {
		q += ` AND NOT EXISTS (SELECT 1 FROM ` + s + `proj_meta WHERE name = '` + rebuildMark + `')`
	}
	return q, args
}
