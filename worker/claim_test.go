package worker_test

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/backoff"
	"github.com/genpipe/genpipe/internal/testenv"
	"github.com/genpipe/genpipe/internal/testutil"
	"github.com/genpipe/genpipe/worker"
)

// A record handled again (a rebalance, a crash before the commit) finds
// its stage done: the result goes downstream again, the AI is not paid again.
func TestRedeliveryPaysOnce(t *testing.T) {
	bothStages(t, func(t *testing.T, stage string) {
		cs := newClaimedStage(t, stage, newClaims(t), 0)
		for i := range 3 {
			if err := cs.handle(testutil.Context(t), cs.event); err != nil {
				t.Fatalf("Handle #%d: %v", i+1, err)
			}
		}
		cs.wantPaidOnce(t, 3, "3 deliveries")
	})
}

// Two workers handling the same request at once (a duplicate record, or a
// record still running on the partition's old owner while its new owner
// starts it): one calls the AI, the other waits for its outcome.
func TestConcurrentDuplicatesPayOnce(t *testing.T) {
	bothStages(t, func(t *testing.T, stage string) {
		cs := newClaimedStage(t, stage, newClaims(t), 200*time.Millisecond)
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				if err := cs.handle(testutil.Context(t), cs.event); err != nil {
					t.Errorf("Handle: %v", err)
				}
			})
		}
		wg.Wait()
		cs.wantPaidOnce(t, 4, "4 concurrent handlings")
	})
}

// A worker that died holding a claim blocks the request only until its
// lease ends; then another worker takes over and calls the AI once.
func TestExpiredLeaseIsTakenOver(t *testing.T) {
	bothStages(t, func(t *testing.T, stage string) {
		cs := newClaimedStage(t, stage, newClaims(t), 0)
		lease := 300 * time.Millisecond
		dead, err := cs.claims.ClaimStage(testutil.Context(t), genpipe.ClaimRequest{RequestID: cs.id, Stage: genpipe.Stage(stage), Owner: "dead-worker", Lease: lease})
		if err != nil || dead.State != genpipe.ClaimTaken {
			t.Fatalf("ClaimStage for the dead worker = %+v, %v", dead, err)
		}
		start := time.Now()
		if err := cs.handle(testutil.Context(t), cs.event); err != nil {
			t.Fatalf("Handle: %v", err)
		}
		if waited := time.Since(start); waited < lease-50*time.Millisecond {
			t.Errorf("took over after %v, before the dead worker's lease of %v ended", waited, lease)
		}
		if st := cs.stats(); st.Calls != 1 {
			t.Errorf("the AI got %d calls; want 1", st.Calls)
		}
		after, err := cs.claims.ClaimStage(testutil.Context(t), genpipe.ClaimRequest{RequestID: cs.id, Stage: genpipe.Stage(stage), Owner: "probe", Lease: lease})
		if err != nil || after.State != genpipe.ClaimDone || after.Takes != 2 {
			t.Errorf("claim after the take-over = %+v, %v; want done, taken twice", after, err)
		}
	})
}

// A handling interrupted between attempts (a revoke or shutdown that ran
// out of time while it waited to retry the AI) has no answer to keep: it
// hands its claim back, so the partition's next owner starts at once
// instead of waiting out the lease.
func TestInterruptedHandlingReleasesClaim(t *testing.T) {
	bothStages(t, func(t *testing.T, stage string) {
		claims := newClaims(t)
		down := &failingAI{status: http.StatusServiceUnavailable, detail: "warming up"}
		slow := backoff.Policy{Attempts: 3, Base: time.Minute, Max: time.Minute}
		handle, in, _ := newStage(t, stage, serve(t, down), testenv.New(t), claims, worker.WithRetry(slow))
		id := uuid.NewString()
		ctx, cancel := context.WithCancel(testutil.Context(t))
		go func() {
			for down.calls.Load() == 0 {
				time.Sleep(5 * time.Millisecond)
			}
			cancel()
		}()
		if err := handle(ctx, testutil.JobEvent(in, id, newJob(t))); err == nil {
			t.Fatal("Handle with its context canceled while it waited to retry returned nil")
		}
		c, err := claims.ClaimStage(testutil.Context(t), genpipe.ClaimRequest{RequestID: id, Stage: genpipe.Stage(stage), Owner: "next-owner", Lease: time.Minute})
		if err != nil || c.State != genpipe.ClaimTaken {
			t.Errorf("ClaimStage by the next owner = %+v, %v; want taken at once", c, err)
		}
		if n := down.calls.Load(); n != 1 {
			t.Errorf("the AI got %d calls, want 1: no attempt starts once the record is given up", n)
		}
	})
}

// A stage that failed for good goes to the dead-letter topic once; a
// redelivery repeats the failed status without calling the AI; an
// operator's replay (a newer Event.Replay) tries again.
func TestFailedIsRetriedOnlyOnReplay(t *testing.T) {
	bothStages(t, func(t *testing.T, stage string) {
		claims := newClaims(t)
		down := &failingAI{status: http.StatusServiceUnavailable, detail: "GPU pool drained"}
		policy := backoff.Policy{Attempts: 2, Base: time.Millisecond, Max: 2 * time.Millisecond}
		env := testenv.New(t)
		handle, typ, _ := newStage(t, stage, serve(t, down), env, claims, worker.WithRetry(policy))
		id, job := uuid.NewString(), newJob(t)
		replay := func(n int) genpipe.Event {
			e := testutil.JobEvent(typ, id, job)
			e.Replay = n
			return e
		}

		wantDeadLetter(t, handle(testutil.Context(t), replay(0)), 2)
		if err := handle(testutil.Context(t), replay(0)); err != nil { // a redelivery
			t.Fatalf("Handle of a redelivered failed record = %v; want nil (already in the dead-letter topic)", err)
		}
		if n := down.calls.Load(); n != 2 {
			t.Fatalf("the AI got %d calls after a failure and a redelivery; want 2", n)
		}
		wantDeadLetter(t, handle(testutil.Context(t), replay(1)), 2) // the operator replays; the AI is still down
		if n := down.calls.Load(); n != 4 {
			t.Fatalf("the AI got %d calls after a replay; want 4", n)
		}
		statuses := statusesOf(t, of(readAll(t, env, env.Topics.Results), id))
		if n := len(slices.DeleteFunc(statuses, func(s genpipe.Status) bool { return s != genpipe.StatusFailed })); n != 3 {
			t.Errorf("%d failed statuses; want 3, one per delivery", n)
		}

		// The AI is back: a newer replay succeeds, and a redelivery of it
		// does not pay again.
		cs := newClaimedStage(t, stage, claims, 0)
		cs.id, cs.job = id, job
		cs.event = replay(2)
		for range 2 {
			if err := cs.handle(testutil.Context(t), cs.event); err != nil {
				t.Fatalf("Handle of replay 2: %v", err)
			}
		}
		if st := cs.stats(); st.Calls != 1 {
			t.Errorf("the recovered AI got %d calls for replay 2 delivered twice; want 1", st.Calls)
		}
	})
}

// A generate worker that dies after the AI answered and before it recorded
// the outcome leaves the claim running, with the slide already written:
// the worker that takes over finds the files and does not pay again.
func TestTakeOverFindsWrittenSlide(t *testing.T) {
	cs := newClaimedStage(t, "generate", newClaims(t), 0)
	if err := cs.handle(testutil.Context(t), cs.event); err != nil { // the dead worker's call: files written
		t.Fatal(err)
	}
	claims := newClaims(t) // its outcome never recorded
	lease := 200 * time.Millisecond
	if c, err := claims.ClaimStage(testutil.Context(t), genpipe.ClaimRequest{RequestID: cs.id, Stage: genpipe.StageGenerate, Owner: "dead-worker", Lease: lease}); err != nil || c.State != genpipe.ClaimTaken {
		t.Fatalf("ClaimStage for the dead worker = %+v, %v", c, err)
	}
	svc, url := simulatedAI(t, "generate")
	next, _, _ := newStage(t, "generate", url, cs.env, claims, worker.WithHeldPoll(20*time.Millisecond))
	if err := next(testutil.Context(t), cs.event); err != nil {
		t.Fatal(err)
	}
	if n := svc.Stats().Calls; n != 0 {
		t.Errorf("the worker that took over called the AI %d times; want 0 (the slide was written)", n)
	}
	if n := cs.emitted(t); n != 2 {
		t.Errorf("done went downstream %d times; want 2", n)
	}
}
