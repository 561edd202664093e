package projections_test

import (
	"bytes"
	"context"
	"database/sql"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/ledger/ledgertest"
	"github.com/ghsync/ghsync/models"
	"github.com/ghsync/ghsync/projections"
)

// TestPipelineMatchesBatchByBatch: on PostgreSQL each batch is prepared
// while the one before it commits; with small batches (so parked records,
// deletes and conflicts straddle many of them) the outcome equals
// projecting batch by batch.
func TestPipelineMatchesBatchByBatch(t *testing.T) {
	reg, store := clinicLedger(t)
	for _, size := range []int{1, 7, 64} {
		seq, err := projections.Open(t.Context(), pgTarget(t, reg), store, reg, projections.Options{BatchSize: size, NoPipeline: true})
		if err != nil {
			t.Fatal(err)
		}
		want := project(t, seq)
		seq.Close()
		sameOutcome(t, "pipelined", project(t, openProjector(t, pgTarget(t, reg), store, reg, size)), want)
	}
}

// TestPipelineCheckpointsMoved: another projector's checkpoint moving
// while a batch is prepared makes that batch's commit roll back (its
// preparation may have read what the other one changed); the catch-up
// goes on batch by batch and ends as if nothing had happened.
func TestPipelineCheckpointsMoved(t *testing.T) {
	reg, store := clinicLedger(t)
	want := project(t, openProjector(t, pgTarget(t, reg), store, reg, 5))

	target := pgTarget(t, reg)
	var logs bytes.Buffer // written only by CatchUp's own goroutine
	p, err := projections.Open(t.Context(), target, store, reg, projections.Options{BatchSize: 5,
		Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: &logs})})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	db, err := sql.Open("pgx", target)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`INSERT INTO ghsync.checkpoint (name, position) VALUES ('other', 0)`); err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the other projector
		defer wg.Done()
		for ctx.Err() == nil {
			db.ExecContext(ctx, `UPDATE ghsync.checkpoint SET position = position + 1 WHERE name = 'other'`)
		}
	}()
	_, err = p.CatchUp(t.Context())
	stop()
	wg.Wait()
	if err != nil {
		t.Fatalf("catch up: %v", err)
	}
	if !strings.Contains(logs.String(), "checkpoints moved while a batch was prepared") {
		t.Errorf("no pipelined batch saw the checkpoints move; the test did not exercise the fallback:\n%s", logs.String())
	}
	sameOutcome(t, "checkpoints moved", observe(t, p), want)
}

// clinicLedger is a ledger of four instances' clinic work (600 rounds of
// the workload), with the registry it is for.
func clinicLedger(t *testing.T) (*models.Registry, ledger.Store) {
	t.Helper()
	rng := ledgertest.Rand(t)
	reg := clinicRegistry(t)
	w := newWorkload(t, reg, rng, 0, 1, 2, 3)
	w.build(t, 600)
	return reg, ledgerOf(t, w.events, rng)
}
