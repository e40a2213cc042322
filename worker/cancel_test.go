package worker_test

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/aisim"
	"github.com/genpipe/genpipe/internal/testenv"
	"github.com/genpipe/genpipe/internal/testutil"
	"github.com/genpipe/genpipe/worker"
)

// canceledStage is a stage whose request is stored (so that it can be
// canceled or given a deadline), with a cancel watcher running.
type canceledStage struct {
	env    *testenv.Env
	store  *testenv.StatusStore
	handle stageHandler
	svc    *aisim.Service
	event  genpipe.Event
	id     string
	// expired counts the expiries the stage reported (WithExpiredHook).
	expired *atomic.Int32
}

func newCanceledStage(t *testing.T, stage string, startBy time.Time, ai ...aisim.Option) canceledStage {
	return newCanceledStagePolling(t, stage, startBy, 10*time.Millisecond, ai...)
}

func newCanceledStagePolling(t *testing.T, stage string, startBy time.Time, poll time.Duration, ai ...aisim.Option) canceledStage {
	t.Helper()
	env := testenv.New(t)
	store := testenv.NewStatusStore(t)
	job := newJob(t)
	r, _, err := store.CreateRequest(t.Context(), &genpipe.Request{ID: uuid.NewString(), Job: job, StartBy: startBy})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.MarkPublished(t.Context(), r.ID); err != nil {
		t.Fatal(err)
	}
	w := testutil.Must(worker.NewCancelWatcher(store, worker.WithCancelPoll(poll)))(t)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	t.Cleanup(func() { stop(); <-done })
	svc, url := simulatedAI(t, stage, ai...)
	expired := new(atomic.Int32)
	handle, in, _ := newStage(t, stage, url, env, store, worker.WithCancelWatcher(w),
		worker.WithExpiredHook(func(string) { expired.Add(1) }))
	e := testutil.JobEvent(in, r.ID, job)
	e.StartBy = startBy
	return canceledStage{env: env, store: store, handle: handle, svc: svc, event: e, id: r.ID, expired: expired}
}

// downstream lists what the stage sent on for its request: checked
// events and statuses past the working one.
func (cs canceledStage) downstream(t *testing.T) []genpipe.Status {
	t.Helper()
	var out []genpipe.Status
	for _, r := range of(readAll(t, cs.env, cs.env.Topics.Checked), cs.id) {
		out = append(out, genpipe.Status("checked:"+string(r.event.Type)))
	}
	for _, st := range statusesOf(t, of(readAll(t, cs.env, cs.env.Topics.Results), cs.id)) {
		if st != genpipe.StatusChecking && st != genpipe.StatusGenerating {
			out = append(out, st)
		}
	}
	return out
}

// A cancel while the AI call runs aborts it: the AI counts it aborted and
// frees its slot, the handling ends without sending anything on (no done,
// failed or checked), and the claim refuses any later handling.
func TestCancelAbortsRunningCall(t *testing.T) {
	bothStages(t, func(t *testing.T, stage string) {
		cs := newCanceledStage(t, stage, time.Time{}, aisim.WithLatency(time.Hour))
		done := make(chan error, 1)
		go func() { done <- cs.handle(testutil.Context(t), cs.event) }()
		waitUntil(t, func() bool { return cs.svc.Stats().InFlight == 1 })
		if _, _, err := cs.store.CancelRequest(t.Context(), cs.id); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatalf("Handle = %v; want nil (nothing to retry)", err)
		}
		if s := cs.svc.Stats(); s.Aborted != 1 || s.InFlight != 0 || s.Succeeded != 0 {
			t.Errorf("AI stats %+v; want the call aborted", s)
		}
		if got := cs.downstream(t); len(got) != 0 {
			t.Errorf("sent on %v after the cancel; want nothing", got)
		}
		if err := cs.handle(testutil.Context(t), cs.event); err != nil {
			t.Fatalf("Handle again: %v", err)
		}
		if s := cs.svc.Stats(); s.Calls != 1 {
			t.Errorf("the AI got %d calls; want 1 (none after the cancel)", s.Calls)
		}
	})
}

// A service that does not abort runs the call out; its answer is
// discarded and nothing goes on.
func TestCancelDiscardsAnswerOfServiceThatDoesNotAbort(t *testing.T) {
	bothStages(t, func(t *testing.T, stage string) {
		cs := newCanceledStage(t, stage, time.Time{}, aisim.WithLatency(300*time.Millisecond), aisim.WithAbort(false))
		done := make(chan error, 1)
		go func() { done <- cs.handle(testutil.Context(t), cs.event) }()
		waitUntil(t, func() bool { return cs.svc.Stats().InFlight == 1 })
		if _, _, err := cs.store.CancelRequest(t.Context(), cs.id); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatalf("Handle = %v; want nil", err)
		}
		waitUntil(t, func() bool { return cs.svc.Stats().InFlight == 0 })
		if got := cs.downstream(t); len(got) != 0 {
			t.Errorf("sent on %v after the cancel; want nothing", got)
		}
	})
}

// A request canceled before its turn gets no AI call, and nothing is sent
// on for it.
func TestCanceledRequestGetsNoCall(t *testing.T) {
	bothStages(t, func(t *testing.T, stage string) {
		cs := newCanceledStage(t, stage, time.Time{})
		if _, _, err := cs.store.CancelRequest(t.Context(), cs.id); err != nil {
			t.Fatal(err)
		}
		if err := cs.handle(testutil.Context(t), cs.event); err != nil {
			t.Fatalf("Handle: %v", err)
		}
		if s := cs.svc.Stats(); s.Calls != 0 {
			t.Errorf("the AI got %d calls for a canceled request; want 0", s.Calls)
		}
		if got := cs.downstream(t); len(got) != 0 {
			t.Errorf("sent on %v for a canceled request; want nothing", got)
		}
	})
}

// A request whose StartBy passed before its call could start ends expired
// with the reason, without an AI call, counted once however often its
// record is handled.
func TestLateRequestExpiresWithoutCall(t *testing.T) {
	bothStages(t, func(t *testing.T, stage string) {
		cs := newCanceledStage(t, stage, time.Now().Add(-time.Second))
		for range 2 { // a redelivery
			if err := cs.handle(testutil.Context(t), cs.event); err != nil {
				t.Fatalf("Handle: %v", err)
			}
		}
		if n := cs.expired.Load(); n != 1 {
			t.Errorf("expiry reported %d times; want once", n)
		}
		if s := cs.svc.Stats(); s.Calls != 0 {
			t.Errorf("the AI got %d calls past the request's StartBy; want 0", s.Calls)
		}
		recs := of(readAll(t, cs.env, cs.env.Topics.Results), cs.id)
		last := recs[len(recs)-1].event
		if last.Status != genpipe.StatusExpired || last.Error == "" || !last.StartBy.Equal(cs.event.StartBy) {
			t.Errorf("last status %s %q (startBy %v); want expired with a reason and the deadline", last.Status, last.Error, last.StartBy)
		}
	})
}

// The cause of an aborted call is genpipe.ErrCanceled: what the ledger
// records as aborted.
func TestWatcherCancelsWithErrCanceled(t *testing.T) {
	store := testenv.NewStatusStore(t)
	r, _, err := store.CreateRequest(t.Context(), &genpipe.Request{ID: uuid.NewString(), Job: genpipe.Job{ObjectID: uuid.NewString(), Style: "forest"}})
	if err != nil {
		t.Fatal(err)
	}
	store.MarkPublished(t.Context(), r.ID)
	w := testutil.Must(worker.NewCancelWatcher(store, worker.WithCancelPoll(5*time.Millisecond)))(t)
	go w.Run(testutil.Context(t))
	ctx, stop := w.Watch(r.ID)
	defer stop()
	other, stopOther := w.Watch(uuid.NewString())
	defer stopOther()
	store.CancelRequest(t.Context(), r.ID)
	<-ctx.Done()
	if !errors.Is(context.Cause(ctx), genpipe.ErrCanceled) {
		t.Errorf("cause %v; want genpipe.ErrCanceled", context.Cause(ctx))
	}
	if other.Err() != nil {
		t.Error("the watch of another request ended")
	}
	if _, err := worker.NewCancelWatcher(store, worker.WithCancelPoll(0)); err == nil {
		t.Error("NewCancelWatcher with poll 0: no error")
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestCancelAbortLatency measures how long a cancel takes to abort a
// running AI call, from the cancel written to the status database to the
// AI's slot freed, with the watcher at its default poll (a figure, not an
// assertion; skipped under -short). Run:
//
//	go test -run TestCancelAbortLatency -v ./worker/
func TestCancelAbortLatency(t *testing.T) {
	if testing.Short() {
		t.Skip("a measurement: run without -short")
	}
	cs := newCanceledStagePolling(t, "check", time.Time{}, worker.DefaultCancelPoll, aisim.WithLatency(time.Hour))
	const n = 40
	var lat []time.Duration
	for i := range n {
		e := cs.event
		if i > 0 {
			r, _, err := cs.store.CreateRequest(t.Context(), &genpipe.Request{ID: uuid.NewString(), Job: *cs.event.Job})
			if err != nil {
				t.Fatal(err)
			}
			cs.store.MarkPublished(t.Context(), r.ID)
			e.RequestID = r.ID
		}
		done := make(chan error, 1)
		go func() { done <- cs.handle(testutil.Context(t), e) }()
		waitUntil(t, func() bool { return cs.svc.Stats().InFlight == 1 })
		if _, _, err := cs.store.CancelRequest(t.Context(), e.RequestID); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		for cs.svc.Stats().InFlight != 0 {
			time.Sleep(100 * time.Microsecond)
		}
		lat = append(lat, time.Since(start))
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(lat)
	t.Logf("abort latency (cancel stored → AI slot freed), poll %v, %d calls: p50 %v, p99 %v, max %v",
		worker.DefaultCancelPoll, n, lat[n/2], lat[n*99/100], lat[n-1])
	if s := cs.svc.Stats(); s.Aborted != n {
		t.Errorf("aborted %d; want %d", s.Aborted, n)
	}
}
