package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"iter"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	sqlite3 "modernc.org/sqlite"
	sqlite3lib "modernc.org/sqlite/lib"

	"github.com/ghsync/ghsync/ledger"
)

// Type names this backend in ledger URLs ("sqlite:/path/ledger.db").
const Type = "sqlite"

// DefaultPollInterval is how often a subscriber looks for appends made by
// other processes; appends by this process wake it at once.
const DefaultPollInterval = 200 * time.Millisecond

var _ ledger.Store = (*Store)(nil)

// Options tune a Store. The zero value is the production setting.
type Options struct {
	PollInterval time.Duration
	// BeforeCommit, when set, runs inside every append transaction after
	// positions are assigned and before commit. Tests use it to hold
	// transactions open; an error aborts the append.
	BeforeCommit func(ctx context.Context) error
}

// Store is a ledger in one SQLite file. It is safe for concurrent use, and
// several processes may open the same file.
type Store struct {
	w, r   *sql.DB    // writer (one connection, BEGIN IMMEDIATE) and readers
	wmu    sync.Mutex // one append at a time in this process
	sig    ledger.Signal
	opts   Options
	closed atomic.Bool
}

// Open opens or creates the ledger file at path.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	name := strings.NewReplacer("%", "%25", "?", "%3F", "#", "%23").Replace(path)
	const pragmas = "_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)"
	w, err := sql.Open("sqlite", "file:"+name+"?"+pragmas+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("open sqlite ledger %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	s := &Store{w: w, opts: opts}
	if err := s.init(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("open sqlite ledger %s: %w", path, err)
	}
	s.r, err = sql.Open("sqlite", "file:"+name+"?"+pragmas+"&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open sqlite ledger %s: %w", path, err)
	}
	return s, nil
}

func (s *Store) init(ctx context.Context) error {
	if _, err := s.w.ExecContext(ctx, schema); err != nil {
		return fmt.Errorf("create schema: %w", err)
	}
	var v int
	if err := s.w.QueryRowContext(ctx, `SELECT value FROM ghsync_meta WHERE name = 'schema_version'`).Scan(&v); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if v > schemaVersion {
		return fmt.Errorf("ledger schema version %d is newer than this ghsync understands (%d)", v, schemaVersion)
	}
	return nil
}

// Close closes the file. Subscriptions end with ErrClosed.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.sig.Notify()
	return errors.Join(s.w.Close(), s.r.Close())
}

// Append implements ledger.Store.
func (s *Store) Append(ctx context.Context, events []*ledger.Event) (ledger.AppendResult, error) {
	return s.AppendHook(ctx, events, nil)
}

// AppendHook implements ledger.HookAppender.
func (s *Store) AppendHook(ctx context.Context, events []*ledger.Event, hook ledger.TxHook) (ledger.AppendResult, error) {
	return s.appendWith(ctx, func() (*ledger.Batch, error) { return ledger.Prepare(events) }, hook)
}

// AppendEncoded implements ledger.EncodedAppender.
func (s *Store) AppendEncoded(ctx context.Context, events []*ledger.Event, payloads [][]byte, hook ledger.TxHook) (ledger.AppendResult, error) {
	return s.appendWith(ctx, func() (*ledger.Batch, error) { return ledger.PrepareEncoded(events, payloads) }, hook)
}

// appendWith prepares a batch (before any lock) and appends it.
func (s *Store) appendWith(ctx context.Context, prep func() (*ledger.Batch, error), hook ledger.TxHook) (ledger.AppendResult, error) {
	if s.closed.Load() {
		return ledger.AppendResult{}, ledger.ErrClosed
	}
	b, err := prep()
	if err != nil {
		return ledger.AppendResult{}, fmt.Errorf("append: %w", err)
	}
	return s.appendBatch(ctx, b, hook)
}

// appendBatch appends a prepared batch under the write lock.
func (s *Store) appendBatch(ctx context.Context, b *ledger.Batch, hook ledger.TxHook) (ledger.AppendResult, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	res, err := s.append(ctx, b, hook)
	if err != nil {
		return ledger.AppendResult{}, fmt.Errorf("append: %w", err)
	}
	if res.Appended > 0 {
		s.sig.Notify()
	}
	return res, nil
}

func (s *Store) append(ctx context.Context, b *ledger.Batch, hook ledger.TxHook) (res ledger.AppendResult, err error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return res, err
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	if err = tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(position), 0) FROM ghsync_events`).Scan(&res.Head); err != nil {
		return res, fmt.Errorf("read head: %w", err)
	}
	heads, err := loadHeads(ctx, tx, b.Origins())
	if err != nil {
		return res, err
	}
	held, err := lookup(ctx, tx, b.Lookups(heads))
	if err != nil {
		return res, err
	}
	plan, err := b.Resolve(heads, held)
	if err != nil {
		return res, err
	}
	res.Duplicates = plan.Duplicates
	if len(plan.Insert) == 0 {
		if hook == nil {
			return res, tx.Rollback()
		}
		if err = hook(ctx, ledger.SQLTx(tx)); err != nil {
			return res, err
		}
		return res, tx.Commit()
	}
	ins, err := tx.PrepareContext(ctx, `INSERT INTO ghsync_events
		(position, id, origin, origin_seq, hlc, model, key, tx, hash, prev_hash, payload)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return res, err
	}
	defer ins.Close()
	for _, i := range plan.Insert {
		e := b.Events[i]
		res.Head++
		if _, err = ins.ExecContext(ctx, res.Head, e.ID[:], e.Origin, e.OriginSeq, int64(e.HLC), e.Model, e.Key,
			int64(e.Tx), e.Hash[:], e.PrevHash[:], b.Payloads[i]); err != nil {
			if isUnique(err) {
				err = &ledger.EventError{ID: e.ID, Origin: e.Origin, OriginSeq: e.OriginSeq,
					Err: fmt.Errorf("%w: id already stored under another origin/seq", ledger.ErrConflict)}
			}
			return res, err
		}
		res.Appended++
	}
	for _, h := range plan.Heads {
		if _, err = tx.ExecContext(ctx, `INSERT INTO ghsync_origins (origin, seq, hash, count, max_hlc) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (origin) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, count = excluded.count, max_hlc = excluded.max_hlc`,
			h.Origin, h.Seq, h.Hash[:], h.Count, int64(h.MaxHLC)); err != nil {
			return res, fmt.Errorf("update origin %d: %w", h.Origin, err)
		}
	}
	if hook != nil {
		if err = hook(ctx, ledger.SQLTx(tx)); err != nil {
			return res, err
		}
	}
	if s.opts.BeforeCommit != nil {
		if err = s.opts.BeforeCommit(ctx); err != nil {
			return res, err
		}
	}
	return res, tx.Commit()
}

func isUnique(err error) bool {
	var se *sqlite3.Error
	return errors.As(err, &se) && se.Code() == sqlite3lib.SQLITE_CONSTRAINT_UNIQUE
}

func loadHeads(ctx context.Context, tx *sql.Tx, origins []uint16) (map[uint16]ledger.OriginHead, error) {
	heads := make(map[uint16]ledger.OriginHead, len(origins))
	for _, o := range origins {
		h, err := ledger.ScanOriginHead(tx.QueryRowContext(ctx, `SELECT origin, seq, hash, count, max_hlc FROM ghsync_origins WHERE origin = ?`, o))
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read origin %d: %w", o, err)
		}
		heads[o] = h
	}
	return heads, nil
}

func lookup(ctx context.Context, tx *sql.Tx, keys []ledger.SeqKey) (map[ledger.SeqKey]ledger.Held, error) {
	held := make(map[ledger.SeqKey]ledger.Held, len(keys))
	for _, k := range keys {
		var id, hash, prev []byte
		err := tx.QueryRowContext(ctx, `SELECT id, hash, prev_hash FROM ghsync_events WHERE origin = ? AND origin_seq = ?`,
			k.Origin, k.Seq).Scan(&id, &hash, &prev)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("look up origin %d seq %d: %w", k.Origin, k.Seq, err)
		}
		var h ledger.Held
		h.ID, _ = uuid.FromBytes(id)
		copy(h.Hash[:], hash)
		copy(h.PrevHash[:], prev)
		held[k] = h
	}
	return held, nil
}

// ReadAll implements ledger.Store.
func (s *Store) ReadAll(ctx context.Context, after uint64, limit int, f ledger.Filter) ([]ledger.Record, error) {
	recs, _, err := s.readPage(ctx, after, limit, f)
	return recs, err
}

func (s *Store) readPage(ctx context.Context, after uint64, limit int, f ledger.Filter) (recs []ledger.Record, through uint64, err error) {
	if s.closed.Load() {
		return nil, 0, ledger.ErrClosed
	}
	limit = pageSize(limit)
	// One read transaction: the page and the head it is measured against
	// come from the same snapshot.
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, 0, fmt.Errorf("read ledger: %w", err)
	}
	defer tx.Rollback()
	var head uint64
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(position), 0) FROM ghsync_events`).Scan(&head); err != nil {
		return nil, 0, fmt.Errorf("read ledger head: %w", err)
	}
	q := `SELECT position, hash, payload FROM ghsync_events WHERE position > ? AND position <= ?`
	args := []any{after, head}
	if len(f.Models) > 0 {
		q += ` AND model IN (` + placeholders(len(f.Models)) + `)`
		for _, m := range f.Models {
			args = append(args, m)
		}
	}
	if len(f.Origins) > 0 {
		q += ` AND origin IN (` + placeholders(len(f.Origins)) + `)`
		for _, o := range f.Origins {
			args = append(args, o)
		}
	}
	q += ` ORDER BY position LIMIT ?`
	recs, err = query(ctx, tx, q, append(args, limit)...)
	if err != nil {
		return nil, 0, err
	}
	through = head
	if len(recs) == limit {
		through = recs[len(recs)-1].Position
	}
	return recs, through, nil
}

func pageSize(limit int) int {
	if limit <= 0 {
		return ledger.DefaultPageSize
	}
	return limit
}

func placeholders(n int) string { return strings.TrimSuffix(strings.Repeat("?,", n), ",") }

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func query(ctx context.Context, q querier, sqlText string, args ...any) ([]ledger.Record, error) {
	return collect(ctx, q, ledger.CollectRecords, sqlText, args...)
}

// collect runs a read and gathers its rows with one of ledger's
// collectors.
func collect[T any](ctx context.Context, q querier, rowsTo func(ledger.RecordRows) ([]T, error), sqlText string, args ...any) ([]T, error) {
	rows, err := q.QueryContext(ctx, sqlText, args...)
	if err != nil {
		return nil, fmt.Errorf("read ledger: %w", err)
	}
	defer rows.Close()
	recs, err := rowsTo(rows)
	if err != nil {
		return nil, fmt.Errorf("read ledger: %w", err)
	}
	return recs, nil
}

// ReadAllRaw implements ledger.Store.
func (s *Store) ReadAllRaw(ctx context.Context, after uint64, limit int) ([]ledger.RawRecord, error) {
	if s.closed.Load() {
		return nil, ledger.ErrClosed
	}
	return collect(ctx, s.r, ledger.CollectRawRecords, `SELECT position, origin, hash, payload FROM ghsync_events
		WHERE position > ? ORDER BY position LIMIT ?`, after, pageSize(limit))
}

// ReadColumns implements ledger.Store.
func (s *Store) ReadColumns(ctx context.Context, after uint64, limit int) ([]ledger.StoredColumns, error) {
	if s.closed.Load() {
		return nil, ledger.ErrClosed
	}
	return collect(ctx, s.r, ledger.CollectColumns, `SELECT position, id, origin, origin_seq, hlc, model, key, tx, hash, prev_hash, payload
		FROM ghsync_events WHERE position > ? ORDER BY position LIMIT ?`, after, pageSize(limit))
}

// ReadStream implements ledger.Store.
func (s *Store) ReadStream(ctx context.Context, st ledger.Stream, after uint64, limit int) ([]ledger.Record, error) {
	if s.closed.Load() {
		return nil, ledger.ErrClosed
	}
	return query(ctx, s.r, `SELECT position, hash, payload FROM ghsync_events
		WHERE model = ? AND key = ? AND position > ? ORDER BY position LIMIT ?`, st.Model, st.Key, after, pageSize(limit))
}

// ReadOrigin implements ledger.Store.
func (s *Store) ReadOrigin(ctx context.Context, origin uint16, afterSeq uint64, limit int) ([]ledger.Record, error) {
	if s.closed.Load() {
		return nil, ledger.ErrClosed
	}
	return query(ctx, s.r, `SELECT position, hash, payload FROM ghsync_events
		WHERE origin = ? AND origin_seq > ? ORDER BY origin_seq LIMIT ?`, origin, afterSeq, pageSize(limit))
}

// Subscribe implements ledger.Store.
func (s *Store) Subscribe(ctx context.Context, after uint64, f ledger.Filter) iter.Seq2[ledger.Record, error] {
	return ledger.Follow(ctx, after, f, s.readPage, &s.sig, s.opts.PollInterval)
}

// Head implements ledger.Store.
func (s *Store) Head(ctx context.Context) (uint64, error) {
	if s.closed.Load() {
		return 0, ledger.ErrClosed
	}
	var head uint64
	if err := s.r.QueryRowContext(ctx, `SELECT COALESCE(MAX(position), 0) FROM ghsync_events`).Scan(&head); err != nil {
		return 0, fmt.Errorf("read ledger head: %w", err)
	}
	return head, nil
}

// Origins implements ledger.Store.
func (s *Store) Origins(ctx context.Context) ([]ledger.OriginHead, error) {
	if s.closed.Load() {
		return nil, ledger.ErrClosed
	}
	rows, err := s.r.QueryContext(ctx, `SELECT origin, seq, hash, count, max_hlc FROM ghsync_origins ORDER BY origin`)
	if err != nil {
		return nil, fmt.Errorf("read origins: %w", err)
	}
	defer rows.Close()
	var out []ledger.OriginHead
	for rows.Next() {
		h, err := ledger.ScanOriginHead(rows)
		if err != nil {
			return nil, fmt.Errorf("read origins: %w", err)
		}
		out = append(out, h)
	}
	return out, rows.Err()
}
