package projections

import (
	"context"
	"fmt"
	"strconv"

	"github.com/ghsync/ghsync/clocks"
	"github.com/ghsync/ghsync/merge"
)

// Parked is a record whose row cannot be (fully) written yet, and why.
type Parked struct {
	Model, Key           string
	WaitsModel, WaitsKey string
	Reason               string
	Position             uint64 // the last event that touched the record
}

// Parked lists every parked record: nothing waits silently.
func (p *Projector) Parked(ctx context.Context) ([]Parked, error) {
	var out []Parked
	err := p.list(ctx, `SELECT model, key, waits_model, waits_key, reason, position FROM `+p.d.schemaPrefix()+`parked ORDER BY model, key, waits_model, waits_key`,
		func(r rowIter) error {
			var x Parked
			var pos int64
			if err := r.Scan(&x.Model, &x.Key, &x.WaitsModel, &x.WaitsKey, &x.Reason, &pos); err != nil {
				return err
			}
			x.Position = uint64(pos)
			out = append(out, x)
			return nil
		})
	return out, err
}

// ParkedRecords counts the parked records (each once, whatever it waits
// for), so a catch-up's summary can say that some are waiting.
func (p *Projector) ParkedRecords(ctx context.Context) (int, error) {
	var n int64
	err := p.list(ctx, `SELECT count(*) FROM (SELECT DISTINCT model, key FROM `+p.d.schemaPrefix()+`parked) x`,
		func(r rowIter) error { return r.Scan(&n) })
	return int(n), err
}

// Uncreated is a record this target has writes of but no create: it has
// no row until the create arrives (a record outside a satellite's former
// scope, say), and is listed so that it is not silently missing.
type Uncreated struct {
	Model, Key string
	Writes     int
}

// Uncreated lists the records written but not created here.
func (p *Projector) Uncreated(ctx context.Context) ([]Uncreated, error) {
	var out []Uncreated
	err := p.list(ctx, `SELECT model, key, state FROM `+p.d.schemaPrefix()+`records WHERE local_id IS NULL AND state IS NOT NULL ORDER BY model, key`,
		func(r rowIter) error {
			var x Uncreated
			var raw []byte
			if err := r.Scan(&x.Model, &x.Key, &raw); err != nil {
				return err
			}
			st, err := merge.DecodeState(raw)
			if err != nil {
				return fmt.Errorf("uncreated: %s/%s: %w", x.Model, x.Key, err)
			}
			if st.Created != nil || st.Deleted != nil {
				return nil
			}
			for _, ws := range st.Fields {
				x.Writes += len(ws)
			}
			out = append(out, x)
			return nil
		})
	return out, err
}

// Conflict is a losing write as stored for auditors: both values, both
// origins and clocks.
type Conflict struct {
	Model, Key, Field string
	Reason            string
	LoserEvent        string
	LoserOrigin       uint16
	LoserHLC          string
	LoserValue        string // JSON, typed (ledger.Value's JSON form)
	WinnerEvent       string
	WinnerOrigin      uint16
	WinnerHLC         string
	WinnerValue       string
}

// Conflicts lists every recorded conflict, by record and field.
func (p *Projector) Conflicts(ctx context.Context) ([]Conflict, error) {
	var out []Conflict
	err := p.list(ctx, `SELECT model, key, field, reason, loser_event, loser_origin, loser_hlc, loser_value,
		winner_event, winner_origin, winner_hlc, winner_value FROM `+p.d.schemaPrefix()+`conflicts ORDER BY model, key, field, loser_event`,
		func(r rowIter) error {
			var c Conflict
			var lo, wo int64
			if err := r.Scan(&c.Model, &c.Key, &c.Field, &c.Reason, &c.LoserEvent, &lo, &c.LoserHLC, &c.LoserValue,
				&c.WinnerEvent, &wo, &c.WinnerHLC, &c.WinnerValue); err != nil {
				return err
			}
			c.LoserOrigin, c.WinnerOrigin = uint16(lo), uint16(wo)
			out = append(out, c)
			return nil
		})
	return out, err
}

// Rejected lists the events set aside because they break the registry.
func (p *Projector) Rejected(ctx context.Context) ([]Rejection, error) {
	var out []Rejection
	err := p.list(ctx, `SELECT position, event_id, model, key, field, problem FROM `+p.d.schemaPrefix()+`rejected ORDER BY position`,
		func(r rowIter) error {
			var x Rejection
			var pos int64
			if err := r.Scan(&pos, &x.EventID, &x.Model, &x.Key, &x.Field, &x.Problem); err != nil {
				return err
			}
			x.Position = uint64(pos)
			out = append(out, x)
			return nil
		})
	return out, err
}

func (p *Projector) list(ctx context.Context, q string, each func(rowIter) error) error {
	tx, err := p.d.begin(ctx)
	if err != nil {
		return err
	}
	defer tx.rollback(ctx)
	rows, err := tx.query(ctx, q)
	if err != nil {
		return fmt.Errorf("list: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := each(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// StateSize is one record's merge state, by size.
type StateSize struct {
	Model, Key string
	Bytes      int64
	Writes     int // writes kept, all fields together
}

// StateReport summarises the merge states, so an administrator can see
// whether compaction keeps them small and which records are the largest.
type StateReport struct {
	Records  int64
	Bytes    int64
	Frontier clocks.Timestamp // zero: none recorded, nothing compacted
	Largest  []StateSize      // the top ones, largest first
}

// States reports the merge states' total size and the top largest.
func (p *Projector) States(ctx context.Context, top int) (StateReport, error) {
	rep := StateReport{Frontier: p.Frontier()}
	s := p.d.schemaPrefix()
	err := p.list(ctx, `SELECT count(*), coalesce(sum(length(state)), 0) FROM `+s+`records WHERE state IS NOT NULL`,
		func(r rowIter) error { return r.Scan(&rep.Records, &rep.Bytes) })
	if err != nil || top <= 0 {
		return rep, err
	}
	err = p.list(ctx, `SELECT model, key, state FROM `+s+`records WHERE state IS NOT NULL ORDER BY length(state) DESC, model, key LIMIT `+strconv.Itoa(top),
		func(r rowIter) error {
			var x StateSize
			var raw []byte
			if err := r.Scan(&x.Model, &x.Key, &raw); err != nil {
				return err
			}
			st, err := merge.DecodeState(raw)
			if err != nil {
				return fmt.Errorf("states: %s/%s: %w", x.Model, x.Key, err)
			}
			x.Bytes = int64(len(raw))
			for _, ws := range st.Fields {
				x.Writes += len(ws)
			}
			rep.Largest = append(rep.Largest, x)
			return nil
		})
	return rep, err
}
