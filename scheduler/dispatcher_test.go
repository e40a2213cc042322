package scheduler_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/internal/testutil"
	"github.com/genpipe/genpipe/scheduler"
	"github.com/genpipe/genpipe/sqlstore"
)

const stage = genpipe.StageGenerate

// openQueues opens n stores on one new SQLite file: n processes' handles.
func openQueues(t *testing.T, n int) []*sqlstore.Store {
	t.Helper()
	url := "sqlite:" + filepath.Join(t.TempDir(), "genpipe.db")
	var out []*sqlstore.Store
	for range n {
		s, err := sqlstore.Open(t.Context(), url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		out = append(out, s)
	}
	return out
}

func task(tenant string, p genpipe.Priority) genpipe.Task {
	return genpipe.Task{Stage: stage, RequestID: uuid.NewString(), Share: genpipe.Share{Tenant: tenant, Priority: p, Weight: 1}, Value: []byte("{}")}
}

// waitLimit bounds a test's wait for what its dispatchers do: a failure,
// not a speed, under -race on a busy machine.
const waitLimit = time.Minute

// start runs d until the test ends, and returns a func that stops it and
// waits for Run to return.
func start(t *testing.T, d *scheduler.Dispatcher) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	// Enqueue works once Run has started.
	testutil.Eventually(t, waitLimit, "Run started", func() bool { return running(d) })
	return stop
}

func running(d *scheduler.Dispatcher) bool {
	err := d.Enqueue(context.Background(), genpipe.Task{}) // invalid: answered at once when running
	return genpipe.ErrorCode(err) == genpipe.EINVALID
}

func newDispatcher(t *testing.T, q genpipe.TaskQueue, h scheduler.Handler, opts ...scheduler.Option) *scheduler.Dispatcher {
	t.Helper()
	d, err := scheduler.New(q, stage, h, append([]scheduler.Option{scheduler.WithPoll(5 * time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestDispatchersNeverExceedCapacity(t *testing.T) {
	const capacity, tasks = 4, 60
	stores := openQueues(t, 3)
	var now, most, done atomic.Int64
	handle := func(ctx context.Context, _ genpipe.Task) error {
		n := now.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		time.Sleep(2 * time.Millisecond)
		now.Add(-1)
		done.Add(1)
		return nil
	}
	var ds []*scheduler.Dispatcher
	for _, s := range stores {
		d := newDispatcher(t, s, handle, scheduler.WithCapacity(capacity))
		start(t, d)
		ds = append(ds, d)
	}
	var wg sync.WaitGroup
	for i := range tasks {
		wg.Go(func() {
			if err := ds[i%len(ds)].Enqueue(t.Context(), task("a", genpipe.PriorityNormal)); err != nil {
				t.Errorf("Enqueue: %v", err)
			}
		})
	}
	wg.Wait()
	testutil.Eventually(t, waitLimit, "every task done", func() bool { return done.Load() == tasks })
	if m := most.Load(); m > capacity {
		t.Errorf("%d handlers ran at once over three dispatchers; capacity %d", m, capacity)
	}
}

func TestPriorityOrder(t *testing.T) {
	q := openQueues(t, 1)[0]
	low, normal, high := task("a", genpipe.PriorityLow), task("b", genpipe.PriorityNormal), task("c", genpipe.PriorityHigh)
	if err := q.EnqueueTasks(t.Context(), []genpipe.Task{low, normal, high}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var order []string
	d := newDispatcher(t, q, func(ctx context.Context, tk genpipe.Task) error {
		mu.Lock()
		defer mu.Unlock()
		order = append(order, tk.RequestID)
		return nil
	}, scheduler.WithCapacity(1))
	start(t, d)
	testutil.Eventually(t, waitLimit, "three tasks", func() bool { mu.Lock(); defer mu.Unlock(); return len(order) == 3 })
	if want := []string{high.RequestID, normal.RequestID, low.RequestID}; order[0] != want[0] || order[1] != want[1] || order[2] != want[2] {
		t.Errorf("ran %v; want high, normal, low %v", order, want)
	}
	if st := d.Stats(); st.Tenants[scheduler.TenantPriority{Tenant: "a", Priority: genpipe.PriorityLow}].Completed != 1 || st.Taken != 3 || st.Running != 0 {
		t.Errorf("Stats = %+v; want 3 taken, one completed for a, none running", st)
	}
}

// A process that dies holding tasks loses none: their leases run out and
// another process runs them.
func TestTasksOfADeadProcessRunElsewhere(t *testing.T) {
	stores := openQueues(t, 2)
	var tasks []genpipe.Task
	for range 5 {
		tasks = append(tasks, task("a", genpipe.PriorityNormal))
	}
	if err := stores[0].EnqueueTasks(t.Context(), tasks); err != nil {
		t.Fatal(err)
	}
	taken, err := stores[0].TakeTasks(t.Context(), genpipe.TakeRequest{Stage: stage, Owner: "dead", Max: 3, Capacity: 10, Lease: 100 * time.Millisecond})
	if err != nil || len(taken) != 3 {
		t.Fatalf("TakeTasks = %d, %v", len(taken), err)
	}
	var mu sync.Mutex
	ran := map[string]int{}
	d := newDispatcher(t, stores[1], func(ctx context.Context, tk genpipe.Task) error {
		mu.Lock()
		defer mu.Unlock()
		ran[tk.RequestID]++
		return nil
	})
	start(t, d)
	testutil.Eventually(t, waitLimit, "every task run", func() bool { mu.Lock(); defer mu.Unlock(); return len(ran) == 5 })
	for id, n := range ran {
		if n != 1 {
			t.Errorf("task %s ran %d times; want once", id, n)
		}
	}
}

// At shutdown, tasks whose handlers do not finish in time go back to
// waiting, in their place, for another process.
func TestShutdownReleases(t *testing.T) {
	q := openQueues(t, 1)[0]
	if err := q.EnqueueTasks(t.Context(), []genpipe.Task{task("a", genpipe.PriorityNormal), task("a", genpipe.PriorityNormal)}); err != nil {
		t.Fatal(err)
	}
	var started atomic.Int64
	d := newDispatcher(t, q, func(ctx context.Context, _ genpipe.Task) error {
		started.Add(1)
		<-ctx.Done()
		return ctx.Err()
	}, scheduler.WithShutdownTimeout(0), scheduler.WithAbandonWait(time.Second))
	stop := start(t, d)
	testutil.Eventually(t, waitLimit, "both tasks started", func() bool { return started.Load() == 2 })
	stop()
	counts, err := q.CountTasks(t.Context(), stage)
	if err != nil || len(counts) != 1 || counts[0].Running || counts[0].N != 2 {
		t.Fatalf("CountTasks after shutdown = %+v, %v; want 2 waiting", counts, err)
	}
	if err := d.Enqueue(t.Context(), task("a", genpipe.PriorityNormal)); err == nil {
		t.Error("Enqueue after Run returned succeeded")
	}
}

var errOverloaded = errors.New("429")

// An overloaded AI sends the task back to waiting and cuts the limit; the
// task runs again.
func TestOverloadReleasesAndBacksOff(t *testing.T) {
	q := openQueues(t, 1)[0]
	tk := task("a", genpipe.PriorityNormal)
	if err := q.EnqueueTasks(t.Context(), []genpipe.Task{tk}); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int64
	d := newDispatcher(t, q, func(ctx context.Context, _ genpipe.Task) error {
		if calls.Add(1) == 1 {
			return errOverloaded
		}
		return nil
	}, scheduler.WithCapacity(8), scheduler.WithOverloadTest(func(err error) bool { return errors.Is(err, errOverloaded) }),
		scheduler.WithOverloadCooldown(time.Hour))
	start(t, d)
	key := scheduler.TenantPriority{Tenant: "a", Priority: genpipe.PriorityNormal}
	testutil.Eventually(t, waitLimit, "the task run twice", func() bool { return d.Stats().Tenants[key].Completed == 1 })
	st := d.Stats()
	if calls.Load() != 2 || st.Released != 1 || st.Overloads != 1 || st.Limit != 4 {
		t.Errorf("calls %d, Stats %+v; want 2 calls, 1 release, 1 overload, limit 4", calls.Load(), st)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	q := openQueues(t, 1)[0]
	_, err := scheduler.New(q, stage, func(context.Context, genpipe.Task) error { return nil },
		scheduler.WithCapacity(0), scheduler.WithLease(0), scheduler.WithAging(-1))
	if err == nil {
		t.Fatal("New with capacity 0, lease 0 and aging -1 succeeded")
	}
	for _, want := range []string{"capacity 0", "lease 0s", "aging -1ns"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
}

// TestInvalidEnqueueFailsAlone enqueues valid and invalid tasks at once,
// so that rounds store them together: each invalid one is refused, and
// every valid one runs.
func TestInvalidEnqueueFailsAlone(t *testing.T) {
	var done atomic.Int64
	d := newDispatcher(t, openQueues(t, 1)[0], func(context.Context, genpipe.Task) error {
		done.Add(1)
		return nil
	})
	start(t, d)
	const valid = 40
	var wg sync.WaitGroup
	for i := range 2 * valid {
		wg.Go(func() {
			tk := task("a", genpipe.PriorityNormal)
			if i%2 == 1 {
				tk.Share.Priority = "urgent"
			}
			err := d.Enqueue(t.Context(), tk)
			if i%2 == 1 && genpipe.ErrorCode(err) != genpipe.EINVALID {
				t.Errorf("Enqueue of a task with an unknown priority: %v; want EINVALID", err)
			}
			if i%2 == 0 && err != nil {
				t.Errorf("Enqueue: %v", err)
			}
		})
	}
	wg.Wait()
	testutil.Eventually(t, waitLimit, "every valid task done", func() bool { return done.Load() == valid })
}
