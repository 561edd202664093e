package projections_test

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/projections"
)

// plainUpsertCols are the party_party columns a plain upsert writes.
const plainUpsertCols = `id, code, name, lastname, ref, dob, gender, active, create_uid, create_date, write_uid, write_date`

// plainUpsertSet updates all but the create_ columns on conflict.
const plainUpsertSet = ` ON CONFLICT (id) DO UPDATE SET code = excluded.code, name = excluded.name, lastname = excluded.lastname,
	ref = excluded.ref, dob = excluded.dob, gender = excluded.gender, active = excluded.active,
	write_uid = excluded.write_uid, write_date = excluded.write_date`

// plainRow is a party as the plain applier keeps it in memory.
type plainRow struct {
	id      int64
	vals    map[string]ledger.Value
	created time.Time
	written *time.Time
	stored  bool // in party_party already (plain=copy)
}

// plainApplier is what the projector would be without merging: it reads
// the ledger in pages of the projector's batch size, lays each event's
// fields over the record's row (kept in memory: no merge state, no id map,
// no conflicts or parking in the database), and per page upserts the
// touched rows into party_party and moves a checkpoint, in one
// transaction. It knows only party.party.
type plainApplier struct {
	conn   *pgx.Conn
	store  ledger.Store
	unnest bool // one set-based statement per page; else a pgx.Batch of one statement per row
	copy   bool // new rows by COPY, the rest by COPY into a staging table and one UPDATE ... FROM
	rows   map[string]*plainRow
	nextID int64
}

func (a *plainApplier) str(r *plainRow, name string) any {
	if s, ok := r.vals[name].AsString(); ok {
		return s
	}
	return nil
}

func (a *plainApplier) date(r *plainRow) any {
	if d, ok := r.vals["dob"].AsDate(); ok {
		return d
	}
	return nil
}

func (a *plainApplier) active(r *plainRow) bool {
	b, ok := r.vals["active"].AsBool()
	return b || !ok // a missing active is true, as the projector writes it
}

// apply applies the ledger's events after position after, up to upto.
func (a *plainApplier) apply(ctx context.Context, after, upto uint64) (events int, err error) {
	for after < upto {
		recs, err := a.store.ReadAll(ctx, after, min(projections.DefaultBatchSize, int(upto-after)), ledger.Filter{})
		if err != nil {
			return events, err
		}
		if len(recs) == 0 {
			return events, nil
		}
		var touched []*plainRow
		seen := map[*plainRow]bool{}
		for _, r := range recs {
			e := r.Event
			if e.Model != "party.party" || e.Op == ledger.OpDelete {
				return events, fmt.Errorf("plain applier: %s of %s", e.Op, e.Model)
			}
			row := a.rows[e.Key]
			if row == nil {
				a.nextID++
				row = &plainRow{id: a.nextID, vals: map[string]ledger.Value{}, created: e.HLC.Time()}
				a.rows[e.Key] = row
			} else {
				t := e.HLC.Time()
				row.written = &t
			}
			maps.Copy(row.vals, e.Fields)
			if !seen[row] {
				seen[row] = true
				touched = append(touched, row)
			}
		}
		tx, err := a.conn.Begin(ctx)
		if err != nil {
			return events, err
		}
		var batch pgx.Batch
		if a.copy {
			if err := a.copyRows(ctx, tx, touched); err != nil {
				tx.Rollback(ctx)
				return events, err
			}
		} else if a.unnest {
			n := len(touched)
			ids, creates := make([]int64, n), make([]time.Time, n)
			codes, names, lastnames, refs, genders := make([]any, n), make([]any, n), make([]any, n), make([]any, n), make([]any, n)
			dobs, actives := make([]any, n), make([]bool, n)
			writeUIDs, writes := make([]any, n), make([]any, n)
			for i, row := range touched {
				ids[i], creates[i] = row.id, row.created
				codes[i], names[i], lastnames[i], refs[i], genders[i] = a.str(row, "code"), a.str(row, "name"), a.str(row, "lastname"), a.str(row, "ref"), a.str(row, "gender")
				dobs[i], actives[i] = a.date(row), a.active(row)
				if row.written != nil {
					writeUIDs[i], writes[i] = int64(1), *row.written
				}
			}
			batch.Queue(`INSERT INTO party_party (`+plainUpsertCols+`)
				SELECT u.id, u.code, u.name, u.lastname, u.ref, u.dob, u.gender, u.active, 1, u.create_date, u.write_uid, u.write_date
				FROM unnest($1::int[], $2::text[], $3::text[], $4::text[], $5::text[], $6::date[], $7::text[], $8::bool[],
					$9::timestamp[], $10::int[], $11::timestamp[])
					AS u(id, code, name, lastname, ref, dob, gender, active, create_date, write_uid, write_date)`+plainUpsertSet,
				ids, codes, names, lastnames, refs, dobs, genders, actives, creates, writeUIDs, writes)
		} else {
			for _, row := range touched {
				var writeUID, written any
				if row.written != nil {
					writeUID, written = int64(1), *row.written
				}
				batch.Queue(`INSERT INTO party_party (`+plainUpsertCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, $9, $10, $11)`+plainUpsertSet,
					row.id, a.str(row, "code"), a.str(row, "name"), a.str(row, "lastname"), a.str(row, "ref"), a.date(row),
					a.str(row, "gender"), a.active(row), row.created, writeUID, written)
			}
		}
		after = recs[len(recs)-1].Position
		batch.Queue(`UPDATE plain_checkpoint SET position = $1`, int64(after))
		if err := tx.SendBatch(ctx, &batch).Close(); err != nil {
			tx.Rollback(ctx)
			return events, err
		}
		if err := tx.Commit(ctx); err != nil {
			return events, err
		}
		events += len(recs)
	}
	return events, nil
}

// copyRows writes touched rows by COPY: new ones into party_party,
// the others into a staging table that one UPDATE ... FROM applies.
func (a *plainApplier) copyRows(ctx context.Context, tx pgx.Tx, touched []*plainRow) error {
	var fresh, old [][]any
	for _, row := range touched {
		var writeUID, written any
		if row.written != nil {
			writeUID, written = int64(1), *row.written
		}
		vals := []any{row.id, a.str(row, "code"), a.str(row, "name"), a.str(row, "lastname"), a.str(row, "ref"), a.date(row),
			a.str(row, "gender"), a.active(row), int64(1), row.created, writeUID, written}
		if row.stored {
			old = append(old, vals)
		} else {
			fresh = append(fresh, vals)
			row.stored = true
		}
	}
	cols := strings.Split(strings.ReplaceAll(plainUpsertCols, " ", ""), ",")
	if len(fresh) > 0 {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"party_party"}, cols, pgx.CopyFromRows(fresh)); err != nil {
			return err
		}
	}
	if len(old) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, `CREATE TEMP TABLE IF NOT EXISTS plain_stage (LIKE party_party INCLUDING DEFAULTS) ON COMMIT DELETE ROWS`); err != nil {
		return err
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"plain_stage"}, cols, pgx.CopyFromRows(old)); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `UPDATE party_party p SET code = s.code, name = s.name, lastname = s.lastname, ref = s.ref, dob = s.dob,
		gender = s.gender, active = s.active, write_uid = s.write_uid, write_date = s.write_date FROM plain_stage s WHERE p.id = s.id`)
	return err
}

// BenchmarkMergeOverhead compares the projector with plain upserts of the
// same rows, on a durable throwaway cluster (fsync, synchronous_commit and
// full_page_writes on): the party-shaped history (anchorParties creates,
// then one write of lastname to each party), in two timed phases,
// creates then updates, each into the same fresh Tryton database.
//
//   - read=ledger: only reading the ledger (ReadAll in pages of the batch
//     size, which checks hashes and decodes): the floor of both sides;
//   - plain=batch and plain=unnest: plainApplier, which reads the same
//     pages and upserts the rows (INSERT ... ON CONFLICT (id) DO UPDATE),
//     as a pgx.Batch of one statement per row, or as one unnest statement
//     per page; plain=copy writes new rows by COPY and the others by COPY
//     into a staging table and one UPDATE ... FROM it;
//   - ghsync: the projector's CatchUp (merge states, id map, conflict and
//     parking bookkeeping, checkpoint), with ratios x_<plain> = ghsync's
//     wall-clock time over that plain applier's, for both phases and for
//     updates alone (_upd), and of CPU time (_cpu: this process and the
//     target database's server processes, both phases).
//
// One op is one run of both phases; a CHECKPOINT precedes each phase.
// The overhead the issue bounds (at most 1.5×) is x_unnest: the projector
// writes set-based, one unnest statement per table and kind.
func BenchmarkMergeOverhead(b *testing.B) {
	ctx := context.Background()
	reg := clinicRegistry(b)
	c := newBenchCluster(b)
	evs := partyHistory(b, anchorParties)
	creates := uint64(anchorParties)
	// Two ledgers with the same positions: the creates alone, and all.
	// The projector catches up on the first, then on the second.
	createsOnly := fileLedger(b, evs[:anchorParties])
	all := fileLedger(b, evs)

	// phases are the wall-clock times of the two phases, and the CPU time
	// of both (this process and the target database's server processes).
	type phases struct{ creates, updates, cpu time.Duration }
	results := map[string]phases{}
	report := func(b *testing.B, name string, total phases) {
		n := time.Duration(b.N)
		results[name] = phases{total.creates / n, total.updates / n, total.cpu / n} // one run's
		events := float64(b.N * len(evs))
		b.ReportMetric(events/(total.creates+total.updates).Seconds(), "events/s")
		b.ReportMetric(float64(b.N*anchorParties)/total.creates.Seconds(), "creates/s")
		b.ReportMetric(float64(b.N*(len(evs)-anchorParties))/total.updates.Seconds(), "updates/s")
		b.ReportMetric(total.cpu.Seconds()/events*1e6, "cpu_µs/event")
	}
	// timed runs one phase; cpu, if not nil, adds the CPU time it used
	// in this process and the server processes of database db.
	timed := func(b *testing.B, db string, cpu *time.Duration, run func()) time.Duration {
		c.checkpoint(b)
		var m *cpuMeter
		if db != "" {
			m = c.meter(b, true, nil, db)
		} else {
			m = c.meter(b, true, nil)
		}
		b.StartTimer()
		start := time.Now()
		run()
		d := time.Since(start)
		b.StopTimer()
		*cpu += m.stop(b)
		b.Logf("phase took %v; %v", d.Round(time.Millisecond), m)
		return d
	}

	b.Run("read=ledger", func(b *testing.B) {
		b.StopTimer()
		var total phases
		for range b.N {
			read := func(after, upto uint64) {
				for after < upto {
					recs, err := all.ReadAll(ctx, after, min(projections.DefaultBatchSize, int(upto-after)), ledger.Filter{})
					if err != nil || len(recs) == 0 {
						b.Fatalf("read ledger after %d: %d records, %v", after, len(recs), err)
					}
					after = recs[len(recs)-1].Position
				}
			}
			total.creates += timed(b, "", &total.cpu, func() { read(0, creates) })
			total.updates += timed(b, "", &total.cpu, func() { read(creates, uint64(len(evs))) })
		}
		report(b, "read", total)
	})

	for _, style := range []string{"batch", "unnest", "copy"} {
		b.Run("plain="+style, func(b *testing.B) {
			b.StopTimer()
			var total phases
			for range b.N {
				name, target := c.database(b, "plain", reg)
				conn, err := pgx.Connect(ctx, target)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := conn.Exec(ctx, `CREATE TABLE plain_checkpoint (position bigint NOT NULL); INSERT INTO plain_checkpoint VALUES (0)`); err != nil {
					b.Fatal(err)
				}
				a := &plainApplier{conn: conn, store: all, unnest: style == "unnest", copy: style == "copy", rows: map[string]*plainRow{}}
				phase := func(after, upto uint64) func() {
					return func() {
						if n, err := a.apply(ctx, after, upto); err != nil || n != int(upto-after) {
							b.Fatalf("plain apply %d..%d: %d events, %v", after, upto, n, err)
						}
					}
				}
				total.creates += timed(b, name, &total.cpu, phase(0, creates))
				total.updates += timed(b, name, &total.cpu, phase(creates, uint64(len(evs))))
				conn.Close(ctx)
				if rows, digest := partyDigest(b, target); rows != anchorParties || digest == "" {
					b.Fatalf("plain upserts left %d parties", rows)
				}
				c.drop(b, name)
			}
			report(b, "plain_"+style, total)
		})
	}

	b.Run("ghsync", func(b *testing.B) {
		b.StopTimer()
		var total phases
		for range b.N {
			name, target := c.database(b, "ghsync", reg)
			// The checkpoint the first projector leaves (after the
			// creates) is where the second, on the whole ledger, starts.
			catchUp := func(store ledger.Store, want int) time.Duration {
				p, err := projections.Open(ctx, target, store, reg, projections.Options{BatchSize: projections.DefaultBatchSize})
				if err != nil {
					b.Fatal(err)
				}
				defer p.Close()
				var st projections.Stats
				d := timed(b, name, &total.cpu, func() { st, err = p.CatchUp(ctx) })
				if err != nil || st.Events != want || st.Rejected != 0 {
					b.Fatalf("catch up: %d events, %d rejected, %v; want %d", st.Events, st.Rejected, err, want)
				}
				return d
			}
			total.creates += catchUp(createsOnly, anchorParties)
			total.updates += catchUp(all, len(evs)-anchorParties)
			if rows, _ := partyDigest(b, target); rows != anchorParties {
				b.Fatalf("the projection holds %d parties, want %d", rows, anchorParties)
			}
			c.drop(b, name)
		}
		report(b, "ghsync", total)
		ours := results["ghsync"]
		for _, style := range []string{"batch", "unnest", "copy"} {
			plain, ok := results["plain_"+style]
			if !ok {
				continue
			}
			b.ReportMetric((ours.creates+ours.updates).Seconds()/(plain.creates+plain.updates).Seconds(), "x_"+style)
			b.ReportMetric(ours.updates.Seconds()/plain.updates.Seconds(), "x_"+style+"_upd")
			b.ReportMetric(ours.cpu.Seconds()/plain.cpu.Seconds(), "x_"+style+"_cpu")
		}
	})
}
