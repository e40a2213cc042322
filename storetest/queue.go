package storetest

import (
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/google/uuid"
)

// RunQueue runs the conformance suite of genpipe.TaskQueue as parallel
// subtests of t. newQueues returns two handles (two processes' stores) on
// one new, empty database of their own; RunQueue closes neither: newQueues
// registers their cleanup.
//
// The suite pins down the schedule (priority first, then weighted fair
// shares among tenants by virtual start tag, a late tenant served next,
// aging one level up), the capacity bound across handles taking at once,
// leases (renewed, expired back to waiting), idempotent enqueue, and a
// release that keeps the task's place.
func RunQueue(t *testing.T, newQueues func(t *testing.T) (genpipe.TaskQueue, genpipe.TaskQueue)) {
	for _, tc := range queueTests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, b := newQueues(t)
			tc.run(t, a, b)
		})
	}
}

type queueTest struct {
	name string
	run  func(t *testing.T, q, other genpipe.TaskQueue)
}

const qstage = genpipe.StageGenerate

var queueTests = []queueTest{
	{"EnqueueIsIdempotent", func(t *testing.T, q, _ genpipe.TaskQueue) {
		id := uuid.NewString()
		in := newTask(id, "a", genpipe.PriorityNormal, 1)
		in.Value, in.TraceParent, in.Topic, in.Partition, in.Offset = []byte(`{"v":1}`), "00-trace", "genpipe.checked", 3, 42
		enqueueTasks(t, q, in, in)
		replay := in
		replay.Replay = 1 // a replay is a task of its own
		enqueueTasks(t, q, in, replay)
		got := takeTasks(t, q, "w1", 10, 10)
		if len(got) != 2 {
			t.Fatalf("took %d tasks; want 2 (one per replay)", len(got))
		}
		g := got[0]
		if g.RequestID != id || g.Stage != qstage || string(g.Value) != `{"v":1}` || g.TraceParent != "00-trace" ||
			g.Topic != "genpipe.checked" || g.Partition != 3 || g.Offset != 42 || g.ID == 0 ||
			g.Share != (genpipe.Share{Tenant: "a", Priority: genpipe.PriorityNormal, Weight: 1}) {
			t.Errorf("took %+v; want the task as enqueued", g)
		}
		if g.EnqueuedAt.IsZero() || g.EnqueuedAt.Location() != time.UTC {
			t.Errorf("EnqueuedAt = %v; want a time in UTC", g.EnqueuedAt)
		}
		// Still idempotent while running.
		enqueueTasks(t, q, in)
		if more := takeTasks(t, q, "w1", 10, 10); len(more) != 0 {
			t.Errorf("took %d more after enqueuing a running task again; want 0", len(more))
		}
	}},
	{"EmptySharesAreDefaults", func(t *testing.T, q, _ genpipe.TaskQueue) {
		enqueueTasks(t, q, genpipe.Task{Stage: qstage, RequestID: uuid.NewString()})
		got := takeTasks(t, q, "w1", 1, 1)
		if len(got) != 1 || got[0].Share != (genpipe.Share{}).Normalized() {
			t.Fatalf("took %+v; want one task of the default tenant, normal, weight 1", got)
		}
	}},
	{"HigherPriorityFirst", func(t *testing.T, q, _ genpipe.TaskQueue) {
		low, normal, high := newTask("", "a", genpipe.PriorityLow, 1), newTask("", "b", genpipe.PriorityNormal, 1), newTask("", "c", genpipe.PriorityHigh, 1)
		enqueueTasks(t, q, low, normal, high)
		got := takeTasks(t, q, "w1", 3, 3)
		checkOrder(t, got, high.RequestID, normal.RequestID, low.RequestID)
	}},
	{"TenantAloneGetsEverything", func(t *testing.T, q, _ genpipe.TaskQueue) {
		var ids []string
		for range 5 {
			task := newTask("", "solo", genpipe.PriorityNormal, 1)
			ids = append(ids, task.RequestID)
			enqueueTasks(t, q, task)
		}
		checkOrder(t, takeTasks(t, q, "w1", 10, 10), ids...) // in submission order, all of them
	}},
	{"WeightedShares", func(t *testing.T, q, _ genpipe.TaskQueue) {
		// A (weight 3) submits all its work before B (weight 1): the
		// takes still split 3:1 while both have work waiting.
		var tasks []genpipe.Task
		for range 300 {
			tasks = append(tasks, newTask("", "A", genpipe.PriorityNormal, 3))
		}
		for range 300 {
			tasks = append(tasks, newTask("", "B", genpipe.PriorityNormal, 1))
		}
		enqueueTasks(t, q, tasks...)
		counts := map[string]int{}
		for range 50 { // 200 takes, 4 at a time, each finished before the next
			got := takeTasks(t, q, "w1", 4, 4)
			for _, g := range got {
				counts[g.Share.Tenant]++
			}
			finish(t, q, "w1", got...)
		}
		if share := float64(counts["A"]) / 200; math.Abs(share-0.75) > 0.03 {
			t.Errorf("A took %d and B %d of 200: A's share %.3f; want 0.75 ± 0.03", counts["A"], counts["B"], share)
		}
	}},
	{"LateTenantIsServedNext", func(t *testing.T, q, _ genpipe.TaskQueue) {
		var burst []genpipe.Task
		for range 100 {
			burst = append(burst, newTask("", "A", genpipe.PriorityNormal, 1))
		}
		enqueueTasks(t, q, burst...)
		finish(t, q, "w1", takeTasks(t, q, "w1", 10, 10)...)
		late := newTask("", "B", genpipe.PriorityNormal, 1)
		enqueueTasks(t, q, late)
		checkOrder(t, takeTasks(t, q, "w1", 1, 10), late.RequestID)
	}},
	{"IdleTenantBanksNoCredit", func(t *testing.T, q, _ genpipe.TaskQueue) {
		// B is idle while A runs 20 tasks alone; when B comes, the two
		// alternate instead of B catching up on what it did not use.
		for range 20 {
			enqueueTasks(t, q, newTask("", "A", genpipe.PriorityNormal, 1))
		}
		for range 20 {
			finish(t, q, "w1", takeTasks(t, q, "w1", 1, 1)...)
		}
		for range 10 {
			enqueueTasks(t, q, newTask("", "A", genpipe.PriorityNormal, 1), newTask("", "B", genpipe.PriorityNormal, 1))
		}
		counts := map[string]int{}
		for _, g := range takeTasks(t, q, "w1", 10, 10) {
			counts[g.Share.Tenant]++
		}
		if counts["A"] != 5 || counts["B"] != 5 {
			t.Errorf("of the next 10 takes A had %d and B %d; want 5 each", counts["A"], counts["B"])
		}
	}},
	{"CapacityBoundsRunning", func(t *testing.T, q, other genpipe.TaskQueue) {
		for range 10 {
			enqueueTasks(t, q, newTask("", "a", genpipe.PriorityNormal, 1))
		}
		first := takeTasks(t, q, "w1", 10, 3)
		if len(first) != 3 {
			t.Fatalf("took %d with capacity 3; want 3", len(first))
		}
		if got := takeTasks(t, other, "w2", 10, 3); len(got) != 0 {
			t.Fatalf("another owner took %d at capacity; want 0", len(got))
		}
		finish(t, q, "w1", first[0])
		if got := takeTasks(t, other, "w2", 10, 3); len(got) != 1 {
			t.Fatalf("another owner took %d after one finished; want 1", len(got))
		}
	}},
	{"CapacityHoldsAcrossHandles", func(t *testing.T, q, other genpipe.TaskQueue) {
		const capacity, tasks = 5, 200
		var all []genpipe.Task
		for range tasks {
			all = append(all, newTask("", "a", genpipe.PriorityNormal, 1))
		}
		enqueueTasks(t, q, all...)
		// running counts what the takers hold: up when a take returns,
		// down before the finish is stored, so it never counts less than
		// the queue does.
		var running, most, done atomic.Int64
		var wg sync.WaitGroup
		for i, h := range []genpipe.TaskQueue{q, other, q, other} {
			owner := fmt.Sprintf("w%d", i)
			wg.Go(func() {
				for done.Load() < tasks && t.Context().Err() == nil {
					got, err := h.TakeTasks(t.Context(), genpipe.TakeRequest{Stage: qstage, Owner: owner, Max: 2, Capacity: capacity, Lease: time.Minute})
					if err != nil {
						t.Errorf("TakeTasks: %v", err)
						return
					}
					n := running.Add(int64(len(got)))
					for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
					}
					running.Add(-int64(len(got)))
					done.Add(int64(len(got)))
					if err := h.FinishTasks(t.Context(), qstage, owner, ids(got)); err != nil {
						t.Errorf("FinishTasks: %v", err)
						return
					}
				}
			})
		}
		wg.Wait()
		if m := most.Load(); m > capacity {
			t.Errorf("%d tasks ran at once; capacity %d", m, capacity)
		}
		if done.Load() != tasks {
			t.Errorf("%d tasks done; want %d", done.Load(), tasks)
		}
	}},
	{"TakeEnqueuesFirst", func(t *testing.T, q, other genpipe.TaskQueue) {
		// One take finishes a task, stores new ones in the schedule, and
		// takes in schedule order among them and those waiting already.
		waiting, running := newTask("", "A", genpipe.PriorityNormal, 1), newTask("", "A", genpipe.PriorityNormal, 1)
		enqueueTasks(t, q, running, waiting)
		got := takeTasks(t, q, "w1", 1, 10)
		checkOrder(t, got, running.RequestID)
		fresh, high := newTask("", "B", genpipe.PriorityNormal, 1), newTask("", "A", genpipe.PriorityHigh, 1)
		took, err := q.TakeTasks(t.Context(), genpipe.TakeRequest{Stage: qstage, Owner: "w1", Max: 2, Capacity: 10,
			Lease: time.Minute, Finish: ids(got), Enqueue: []genpipe.Task{fresh, high, fresh}})
		if err != nil {
			t.Fatalf("TakeTasks with tasks to enqueue: %v", err)
		}
		// B, arriving behind A's backlog, is served next.
		checkOrder(t, took, high.RequestID, fresh.RequestID)
		checkOrder(t, takeTasks(t, other, "w2", 10, 10), waiting.RequestID) // fresh stored once
		if n := renew(t, q, "w1"); n != 2 {
			t.Errorf("w1 holds %d tasks; want 2 (the finished one gone)", n)
		}
		// Nothing is stored when one of them is invalid.
		late := newTask("", "A", genpipe.PriorityNormal, 1)
		_, err = q.TakeTasks(t.Context(), genpipe.TakeRequest{Stage: qstage, Owner: "w1", Max: 1, Capacity: 10,
			Lease: time.Minute, Enqueue: []genpipe.Task{late, newTask("", "A", "urgent", 1)}})
		checkCode(t, "TakeTasks enqueuing an unknown priority", err, genpipe.EINVALID)
		other2 := late
		other2.Stage = genpipe.StageCheck
		_, err = q.TakeTasks(t.Context(), genpipe.TakeRequest{Stage: qstage, Owner: "w1", Max: 1, Capacity: 10,
			Lease: time.Minute, Enqueue: []genpipe.Task{other2}})
		checkCode(t, "TakeTasks enqueuing another stage's task", err, genpipe.EINVALID)
		if more := takeTasks(t, q, "w1", 10, 10); len(more) != 0 {
			t.Errorf("took %d after refused takes; want 0", len(more))
		}
	}},
	{"ExpiredLeaseGoesBackToWaiting", func(t *testing.T, q, other genpipe.TaskQueue) {
		task := newTask("", "a", genpipe.PriorityNormal, 1)
		enqueueTasks(t, q, task)
		got, err := q.TakeTasks(t.Context(), genpipe.TakeRequest{Stage: qstage, Owner: "dead", Max: 1, Capacity: 1, Lease: 50 * time.Millisecond})
		if err != nil || len(got) != 1 {
			t.Fatalf("TakeTasks = %d, %v; want 1", len(got), err)
		}
		time.Sleep(100 * time.Millisecond)
		again := takeTasks(t, other, "w2", 1, 1)
		checkOrder(t, again, task.RequestID)
		// The dead owner's finish is skipped: the task is w2's now.
		finish(t, q, "dead", got...)
		if n := renew(t, other, "w2"); n != 1 {
			t.Errorf("w2 holds %d tasks after the old owner's finish; want 1", n)
		}
	}},
	{"RenewedLeaseHolds", func(t *testing.T, q, other genpipe.TaskQueue) {
		enqueueTasks(t, q, newTask("", "a", genpipe.PriorityNormal, 1))
		got, err := q.TakeTasks(t.Context(), genpipe.TakeRequest{Stage: qstage, Owner: "w1", Max: 1, Capacity: 1, Lease: 50 * time.Millisecond})
		if err != nil || len(got) != 1 {
			t.Fatalf("TakeTasks = %d, %v; want 1", len(got), err)
		}
		if n := renew(t, q, "w1"); n != 1 {
			t.Fatalf("RenewTasks = %d; want 1", n)
		}
		time.Sleep(100 * time.Millisecond)
		if more := takeTasks(t, other, "w2", 1, 1); len(more) != 0 {
			t.Errorf("another owner took %d after the lease was renewed; want 0", len(more))
		}
		if n := renew(t, q, "other"); n != 0 {
			t.Errorf("RenewTasks of an owner with nothing = %d; want 0", n)
		}
	}},
	{"ReleaseKeepsPlace", func(t *testing.T, q, _ genpipe.TaskQueue) {
		var all []genpipe.Task
		for range 4 {
			all = append(all, newTask("", "a", genpipe.PriorityNormal, 1))
		}
		enqueueTasks(t, q, all...)
		got := takeTasks(t, q, "w1", 2, 10)
		if err := q.ReleaseTasks(t.Context(), qstage, "w1", ids(got[:1])); err != nil {
			t.Fatalf("ReleaseTasks: %v", err)
		}
		checkOrder(t, takeTasks(t, q, "w2", 1, 10), all[0].RequestID)
		checkOrder(t, takeTasks(t, q, "w2", 1, 10), all[2].RequestID)
	}},
	{"AgingMovesUpOneLevel", func(t *testing.T, q, _ genpipe.TaskQueue) {
		old := newTask("", "patient", genpipe.PriorityLow, 1)
		enqueueTasks(t, q, old)
		time.Sleep(100 * time.Millisecond)
		fresh := newTask("", "busy", genpipe.PriorityNormal, 1)
		high := newTask("", "busy", genpipe.PriorityHigh, 1)
		enqueueTasks(t, q, fresh, high)
		n, err := q.AgeTasks(t.Context(), qstage, 50*time.Millisecond)
		if err != nil || n != 1 {
			t.Fatalf("AgeTasks = %d, %v; want 1 (the low task)", n, err)
		}
		// The low task now competes at normal, where it came first; high
		// still goes before it. Its priority stays what it asked for.
		got := takeTasks(t, q, "w1", 3, 3)
		checkOrder(t, got, high.RequestID, old.RequestID, fresh.RequestID)
		if got[1].Share.Priority != genpipe.PriorityLow {
			t.Errorf("aged task's priority = %s; want low, as asked", got[1].Share.Priority)
		}
		if n, err := q.AgeTasks(t.Context(), qstage, time.Hour); err != nil || n != 0 {
			t.Errorf("AgeTasks with nothing old = %d, %v; want 0", n, err)
		}
	}},
	{"AgingNeedsHigherWork", func(t *testing.T, q, _ genpipe.TaskQueue) {
		// A tenant's old backlog does not move above another tenant's
		// fresh work at the same priority: nothing higher waits.
		old := newTask("", "noisy", genpipe.PriorityNormal, 1)
		enqueueTasks(t, q, old)
		time.Sleep(100 * time.Millisecond)
		enqueueTasks(t, q, newTask("", "quiet", genpipe.PriorityNormal, 1))
		if n, err := q.AgeTasks(t.Context(), qstage, 50*time.Millisecond); err != nil || n != 0 {
			t.Errorf("AgeTasks with nothing higher waiting = %d, %v; want 0", n, err)
		}
	}},
	{"Counts", func(t *testing.T, q, _ genpipe.TaskQueue) {
		enqueueTasks(t, q, newTask("", "A", genpipe.PriorityHigh, 1), newTask("", "A", genpipe.PriorityHigh, 1),
			newTask("", "B", genpipe.PriorityLow, 1))
		takeTasks(t, q, "w1", 1, 10)
		got, err := q.CountTasks(t.Context(), qstage)
		if err != nil {
			t.Fatalf("CountTasks: %v", err)
		}
		want := map[genpipe.TaskCount]bool{
			{Tenant: "A", Priority: genpipe.PriorityHigh, Running: true, N: 1}:  true,
			{Tenant: "A", Priority: genpipe.PriorityHigh, Running: false, N: 1}: true,
			{Tenant: "B", Priority: genpipe.PriorityLow, Running: false, N: 1}:  true,
		}
		if len(got) != len(want) {
			t.Fatalf("CountTasks = %+v; want %v", got, want)
		}
		for _, c := range got {
			if !want[c] {
				t.Errorf("CountTasks has %+v; want %v", c, want)
			}
		}
	}},
	{"InvalidInput", func(t *testing.T, q, _ genpipe.TaskQueue) {
		checkCode(t, "EnqueueTasks without a request", q.EnqueueTasks(t.Context(), []genpipe.Task{{Stage: qstage}}), genpipe.EINVALID)
		bad := newTask("", "a", "urgent", 1)
		checkCode(t, "EnqueueTasks with an unknown priority", q.EnqueueTasks(t.Context(), []genpipe.Task{bad}), genpipe.EINVALID)
		_, err := q.TakeTasks(t.Context(), genpipe.TakeRequest{Stage: qstage, Owner: "w", Max: 1, Capacity: 0, Lease: time.Second})
		checkCode(t, "TakeTasks with capacity 0", err, genpipe.EINVALID)
		_, err = q.TakeTasks(t.Context(), genpipe.TakeRequest{Stage: qstage, Max: 1, Capacity: 1, Lease: time.Second})
		checkCode(t, "TakeTasks without an owner", err, genpipe.EINVALID)
		_, err = q.AgeTasks(t.Context(), qstage, 0)
		checkCode(t, "AgeTasks with bound 0", err, genpipe.EINVALID)
	}},
}

func newTask(id, tenant string, p genpipe.Priority, weight int) genpipe.Task {
	if id == "" {
		id = uuid.NewString()
	}
	return genpipe.Task{Stage: qstage, RequestID: id, Share: genpipe.Share{Tenant: tenant, Priority: p, Weight: weight},
		Value: []byte(`{}`)}
}

func enqueueTasks(t *testing.T, q genpipe.TaskQueue, tasks ...genpipe.Task) {
	t.Helper()
	if err := q.EnqueueTasks(t.Context(), tasks); err != nil {
		t.Fatalf("EnqueueTasks: %v", err)
	}
}

func takeTasks(t *testing.T, q genpipe.TaskQueue, owner string, n, capacity int) []genpipe.Task {
	t.Helper()
	got, err := q.TakeTasks(t.Context(), genpipe.TakeRequest{Stage: qstage, Owner: owner, Max: n, Capacity: capacity, Lease: time.Minute})
	if err != nil {
		t.Fatalf("TakeTasks: %v", err)
	}
	return got
}

func finish(t *testing.T, q genpipe.TaskQueue, owner string, tasks ...genpipe.Task) {
	t.Helper()
	if err := q.FinishTasks(t.Context(), qstage, owner, ids(tasks)); err != nil {
		t.Fatalf("FinishTasks: %v", err)
	}
}

func renew(t *testing.T, q genpipe.TaskQueue, owner string) int {
	t.Helper()
	n, err := q.RenewTasks(t.Context(), qstage, owner, time.Hour)
	if err != nil {
		t.Fatalf("RenewTasks: %v", err)
	}
	return n
}

func ids(tasks []genpipe.Task) []int64 {
	out := make([]int64, len(tasks))
	for i, t := range tasks {
		out[i] = t.ID
	}
	return out
}

func checkOrder(t *testing.T, got []genpipe.Task, want ...string) {
	t.Helper()
	var ids []string
	for _, g := range got {
		ids = append(ids, g.RequestID)
	}
	if fmt.Sprint(ids) != fmt.Sprint(want) {
		t.Errorf("took %v; want %v", ids, want)
	}
}
