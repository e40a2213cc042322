package worker_test

import (
	"testing"

	"github.com/google/uuid"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/backoff"
	"github.com/genpipe/genpipe/internal/testenv"
	"github.com/genpipe/genpipe/internal/testutil"
	"github.com/genpipe/genpipe/worker"
)

// Every event a stage produces, checked or status, carries the share
// (tenant, priority, weight) of the event it handles, whatever the
// outcome: each stage schedules on it without reading the status store.
func TestEventsCarryShare(t *testing.T) {
	share := genpipe.Share{Tenant: "acme", Priority: genpipe.PriorityHigh, Weight: 7}
	withShare := func(e genpipe.Event) genpipe.Event {
		e.Share = share
		return e
	}
	env := testenv.New(t)
	check, _ := simulatedStage(t, "check", env, nil)
	gen, _ := simulatedStage(t, "generate", env, nil)
	ctx := testutil.Context(t)

	// Passed, checked, generated, done.
	id := uuid.NewString()
	if err := check(ctx, withShare(testutil.JobEvent(genpipe.EventSubmitted, id, newJob(t)))); err != nil {
		t.Fatal(err)
	}
	checked := of(readAll(t, env, env.Topics.Checked), id)
	if len(checked) != 1 {
		t.Fatalf("checked topic holds %d records of %s; want 1", len(checked), id)
	}
	if err := gen(ctx, checked[0].event); err != nil {
		t.Fatal(err)
	}
	// Rejected: never uploaded.
	rejected := uuid.NewString()
	job := genpipe.Job{ObjectID: uuid.NewString(), Style: "minimal", Description: "d"}
	if err := check(ctx, withShare(testutil.JobEvent(genpipe.EventSubmitted, rejected, job))); err != nil {
		t.Fatal(err)
	}
	// Failed: an unknown style, and an AI that fails for good.
	failed := uuid.NewString()
	job = genpipe.Job{ObjectID: uuid.NewString(), Style: "baroque", Description: "d"}
	wantDeadLetter(t, gen(ctx, withShare(testutil.JobEvent(genpipe.EventChecked, failed, job))), 0)
	ai := &failingAI{status: 500, detail: "down"}
	handle, event, aiFailed, _ := stageUnderTest(t, "generate", serve(t, ai), env,
		worker.WithRetry(backoff.Policy{Attempts: 1}))
	wantDeadLetter(t, handle(ctx, withShare(event)), 1)

	results := readAll(t, env, env.Topics.Results)
	want := map[string][]genpipe.Status{
		id:       {genpipe.StatusChecking, genpipe.StatusGenerating, genpipe.StatusDone},
		rejected: {genpipe.StatusChecking, genpipe.StatusRejected},
		failed:   {genpipe.StatusFailed},
		aiFailed: {genpipe.StatusGenerating, genpipe.StatusFailed},
	}
	for req, statuses := range want {
		if got := statusesOf(t, of(results, req)); len(got) != len(statuses) {
			t.Errorf("statuses of %s: %v; want %v", req, got, statuses)
		}
	}
	for _, r := range append(checked, results...) {
		if r.event.Share != share {
			t.Errorf("%s event of %s carries share %+v; want %+v", r.event.Type, r.key, r.event.Share, share)
		}
	}
}
