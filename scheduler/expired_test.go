package scheduler_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/internal/testutil"
	"github.com/genpipe/genpipe/scheduler"
)

// A task whose StartBy passed while it waited never reaches the handler:
// the queue ends its request expired and the dispatcher hands it to the
// expired hook, which reports it; the live task beside it runs.
func TestExpiredTaskGoesToHookNotHandler(t *testing.T) {
	q := openQueues(t, 1)[0]
	late, live := publishedRequest(t, q, time.Now().Add(-time.Second)), publishedRequest(t, q, time.Time{})
	var handled atomic.Int64
	var handledLate atomic.Bool
	expired := make(chan genpipe.Task, 1)
	d := newDispatcher(t, q, func(_ context.Context, tk genpipe.Task) error {
		handled.Add(1)
		if tk.RequestID == late.ID {
			handledLate.Store(true)
		}
		return nil
	}, scheduler.WithExpiredHook(func(_ context.Context, tk genpipe.Task) { expired <- tk }))
	lt := task("a", genpipe.PriorityNormal)
	lt.RequestID, lt.StartBy = late.ID, late.StartBy
	ft := task("a", genpipe.PriorityNormal)
	ft.RequestID = live.ID
	if err := q.EnqueueTasks(t.Context(), []genpipe.Task{lt, ft}); err != nil {
		t.Fatal(err)
	}
	start(t, d)
	got := <-expired
	if got.RequestID != late.ID || !got.Expired {
		t.Errorf("expired hook got %+v; want the late task", got)
	}
	testutil.Eventually(t, waitLimit, "the live task handled", func() bool { return handled.Load() == 1 })
	if handledLate.Load() {
		t.Error("the late task reached the handler")
	}
	r, err := q.Request(t.Context(), late.ID)
	if err != nil || r.Status != genpipe.StatusExpired {
		t.Errorf("late request = %+v, %v; want expired", r, err)
	}
}

func publishedRequest(t *testing.T, q interface {
	genpipe.RequestStore
}, startBy time.Time) *genpipe.Request {
	t.Helper()
	r, _, err := q.CreateRequest(t.Context(), &genpipe.Request{ID: newUUID(), Job: genpipe.Job{ObjectID: newUUID(), Style: "forest"}, StartBy: startBy})
	if err != nil {
		t.Fatal(err)
	}
	if err := q.MarkPublished(t.Context(), r.ID); err != nil {
		t.Fatal(err)
	}
	return r
}

func newUUID() string { return uuid.NewString() }

// With every slot busy, a waiting task whose StartBy passes is expired
// all the same, without waiting for a slot to free.
func TestExpiredWhileSlotsBusy(t *testing.T) {
	q := openQueues(t, 1)[0]
	release := make(chan struct{})
	expired := make(chan genpipe.Task, 1)
	d := newDispatcher(t, q, func(ctx context.Context, _ genpipe.Task) error {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	}, scheduler.WithCapacity(1), scheduler.WithExpiredHook(func(_ context.Context, tk genpipe.Task) { expired <- tk }))
	start(t, d)
	t.Cleanup(func() { close(release) }) // before the dispatcher stops
	busy := publishedRequest(t, q, time.Time{})
	bt := task("a", genpipe.PriorityNormal)
	bt.RequestID = busy.ID
	if err := d.Enqueue(t.Context(), bt); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, waitLimit, "the slot busy", func() bool { return d.Stats().Running == 1 })
	late := publishedRequest(t, q, time.Now().Add(300*time.Millisecond))
	lt := task("a", genpipe.PriorityNormal)
	lt.RequestID, lt.StartBy = late.ID, late.StartBy
	if err := d.Enqueue(t.Context(), lt); err != nil {
		t.Fatal(err)
	}
	if got := <-expired; got.RequestID != late.ID {
		t.Errorf("expired %s; want the late task", got.RequestID)
	}
}
