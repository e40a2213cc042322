package storetest

import (
	"testing"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/google/uuid"
)

// EstimateStore is a status store's scheduling queue with the loads the
// predicted waits read.
type EstimateStore interface {
	genpipe.TaskQueue
	genpipe.StageLoader
	genpipe.ClaimStore
}

// RunEstimate runs the conformance suite of genpipe.StageLoader, and of
// genpipe.QueueEstimator on it, as parallel subtests of t. newStore
// returns a new, empty store of its own, which it registers the cleanup
// of.
//
// The suite pins down that a place's Ahead is its index in the order takes
// follow (priority, then fair tags; a new place where its task would go),
// that the service time is measured from tasks taken and finished, with
// the capacity their takers passed, never from settings, and that the
// estimate follows from those: the k-th waiting task (from 0) starts
// within one service time after k div P services, P the running slots.
func RunEstimate(t *testing.T, newStore func(t *testing.T) EstimateStore) {
	for _, tc := range estimateTests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, newStore(t))
		})
	}
}

var estimateTests = []struct {
	name string
	run  func(t *testing.T, s EstimateStore)
}{
	{"AheadIsTheTakeOrder", func(t *testing.T, s EstimateStore) {
		// Two tenants' bursts at normal (weights 2 and 1) and a high task
		// after them: the high one is next, then the weighted mix.
		var tasks []genpipe.Task
		for range 6 {
			tasks = append(tasks, newTask("", "a", genpipe.PriorityNormal, 2))
		}
		for range 3 {
			tasks = append(tasks, newTask("", "b", genpipe.PriorityNormal, 1))
		}
		tasks = append(tasks, newTask("", "c", genpipe.PriorityHigh, 1))
		enqueueTasks(t, s, tasks...)
		ahead := map[string]int{}
		for _, task := range tasks {
			l := load(t, s, genpipe.Place{RequestID: task.RequestID, Share: task.Share})
			if !l.Queued || l.Running || l.Waiting != len(tasks) {
				t.Fatalf("load of %s: %+v; want queued, waiting, %d waiting in all", task.RequestID, l, len(tasks))
			}
			ahead[task.RequestID] = l.Ahead
		}
		// Where a new task of tenant b would stand, before it is enqueued.
		late := newTask("", "b", genpipe.PriorityNormal, 1)
		newPlace := load(t, s, genpipe.Place{RequestID: late.RequestID, Share: late.Share})
		if newPlace.Queued {
			t.Fatalf("a request with no task is Queued: %+v", newPlace)
		}
		enqueueTasks(t, s, late)
		ahead[late.RequestID] = newPlace.Ahead
		for i, got := range takeTasks(t, s, "w", 100, 100) {
			if ahead[got.RequestID] != i {
				t.Errorf("task %d taken (tenant %s, %s) had Ahead %d; want %d", i, got.Share.Tenant, got.Share.Priority, ahead[got.RequestID], i)
			}
		}
	}},
	{"RunningTaskIsNotWaiting", func(t *testing.T, s EstimateStore) {
		task := newTask("", "a", genpipe.PriorityNormal, 1)
		enqueueTasks(t, s, task)
		takeTasks(t, s, "w", 1, 1)
		l := load(t, s, genpipe.Place{RequestID: task.RequestID})
		if !l.Queued || !l.Running {
			t.Fatalf("load of a running task: %+v; want Queued and Running", l)
		}
		e, ok, err := genpipe.NewQueueEstimator(s).Estimate(t.Context(), &genpipe.Request{ID: task.RequestID, Status: genpipe.StatusChecking})
		if err != nil || ok {
			t.Errorf("Estimate of a request whose generate task runs = %+v, %v, %v; want none", e, ok, err)
		}
	}},
	{"NextStageIsTheFirstWhoseCallIsNotMade", func(t *testing.T, s EstimateStore) {
		// In transit between stages, a request has no task: its claims
		// say where it goes next, whatever its status says.
		measure(t, s, genpipe.StageCheck, 1, time.Millisecond)
		measure(t, s, qstage, 1, time.Millisecond)
		est := genpipe.NewQueueEstimator(s)
		r := &genpipe.Request{ID: uuid.NewString(), Status: genpipe.StatusReceived}
		for _, want := range []genpipe.Stage{genpipe.StageCheck, genpipe.StageGenerate, ""} {
			e, ok, err := est.Estimate(t.Context(), r)
			if err != nil || ok != (want != "") || e.Stage != want {
				t.Fatalf("Estimate = %+v, %v, %v; want the next call at %q", e, ok, err, want)
			}
			if want == "" {
				break
			}
			c, err := s.ClaimStage(t.Context(), genpipe.ClaimRequest{RequestID: r.ID, Stage: want, Owner: "w", Lease: time.Minute})
			if err != nil || c.State != genpipe.ClaimTaken {
				t.Fatalf("ClaimStage: %+v, %v", c, err)
			}
			if err := s.FinishClaim(t.Context(), r.ID, want, "w", genpipe.ClaimDone, "{}"); err != nil {
				t.Fatal(err)
			}
		}
	}},
	{"TransitIsMeasured", func(t *testing.T, s EstimateStore) {
		// Requests whose check succeeded reach the generate queue a
		// transit later; one on its way starts no sooner than that.
		measure(t, s, genpipe.StageCheck, 1, time.Millisecond)
		measure(t, s, qstage, 1, time.Millisecond)
		const transit = 30 * time.Millisecond
		checked := func(id string) {
			if _, err := s.ClaimStage(t.Context(), genpipe.ClaimRequest{RequestID: id, Stage: genpipe.StageCheck, Owner: "w", Lease: time.Minute}); err != nil {
				t.Fatal(err)
			}
			if err := s.FinishClaim(t.Context(), id, genpipe.StageCheck, "w", genpipe.ClaimDone, "{}"); err != nil {
				t.Fatal(err)
			}
		}
		start := time.Now()
		for range 3 {
			task := newTask("", "a", genpipe.PriorityNormal, 1)
			checked(task.RequestID)
			time.Sleep(transit)
			enqueueTasks(t, s, task)
		}
		span := time.Since(start)
		l := load(t, s, genpipe.Place{})
		if l.Transit < transit || l.Transit > span {
			t.Fatalf("transit %v; want at least the %v the tasks took, at most %v", l.Transit, transit, span)
		}
		r := &genpipe.Request{ID: uuid.NewString()}
		checked(r.ID)
		done := load(t, s, genpipe.Place{RequestID: r.ID}).Now
		e, ok, err := genpipe.NewQueueEstimator(s).Estimate(t.Context(), r)
		if err != nil || !ok || e.Stage != qstage || e.StartAt.Before(done.Add(-time.Second).Add(l.Transit)) {
			t.Errorf("Estimate of a request on its way to %s = %+v, %v, %v; want a start a transit (%v) after its check", qstage, e, ok, err, l.Transit)
		}
	}},
	{"StartLagIsMeasuredFromClaims", func(t *testing.T, s EstimateStore) {
		// A worker claims its task's call a while after the take.
		task := newTask("", "a", genpipe.PriorityNormal, 1)
		enqueueTasks(t, s, task)
		start := time.Now()
		takeTasks(t, s, "w", 1, 1)
		const lag = 30 * time.Millisecond
		time.Sleep(lag)
		if _, err := s.ClaimStage(t.Context(), genpipe.ClaimRequest{RequestID: task.RequestID, Stage: qstage, Owner: "w", Lease: time.Minute}); err != nil {
			t.Fatal(err)
		}
		span := time.Since(start)
		if l := load(t, s, genpipe.Place{}); len(l.RunningSince) != 1 || l.StartLag < lag || l.StartLag > span {
			t.Errorf("load %+v; want one running task and a start lag from %v to %v", l, lag, span)
		}
	}},
	{"ServiceIsMeasuredFromFinishedTasks", func(t *testing.T, s EstimateStore) {
		if l := load(t, s, genpipe.Place{Share: genpipe.Share{}}); l.Service != 0 || l.Capacity != 0 {
			t.Fatalf("load before any finish: %+v; want no service time and no capacity", l)
		}
		const busy = 40 * time.Millisecond
		span := measure(t, s, qstage, 3, busy)
		l := load(t, s, genpipe.Place{})
		if l.Capacity != 3 || l.Service < busy || l.Service > span {
			t.Errorf("after 3 tasks ran %v to %v: service %v, capacity %d; want within that, capacity 3", busy, span, l.Service, l.Capacity)
		}
	}},
	{"EstimateFollowsTheMeasuredService", func(t *testing.T, s EstimateStore) {
		// Both stages measured; then 2 generate tasks run and 6 wait.
		const busy = 30 * time.Millisecond
		measure(t, s, genpipe.StageCheck, 2, busy)
		measure(t, s, qstage, 2, busy)
		var waiting []genpipe.Task
		for range 8 {
			waiting = append(waiting, newTask("", "a", genpipe.PriorityNormal, 1))
		}
		enqueueTasks(t, s, waiting...)
		takeTasks(t, s, "w", 2, 2)
		est := genpipe.NewQueueEstimator(s)
		for k, task := range waiting[2:] {
			l := load(t, s, genpipe.Place{RequestID: task.RequestID})
			e, ok, err := est.Estimate(t.Context(), &genpipe.Request{ID: task.RequestID, Status: genpipe.StatusChecking, Share: task.Share})
			if err != nil || !ok {
				t.Fatalf("Estimate of waiting task %d: %v, %v", k, ok, err)
			}
			after := load(t, s, genpipe.Place{RequestID: task.RequestID})
			// k ahead on 2 slots: k/2 services after the earlier of the
			// running tasks' ends, which is within one service from now
			// (the estimate's now is between l's and after's).
			lo := l.Now.Add(time.Duration(k/2) * l.Service)
			hi := after.Now.Add(time.Duration(k/2+1) * l.Service)
			if e.Stage != qstage || e.StartAt.Before(lo) || e.StartAt.After(hi) || !e.DoneAt.Equal(e.StartAt.Add(l.Service)) {
				t.Errorf("task %d ahead=%d: estimate %+v; want start in [%v, %v] at %s and done one service (%v) later",
					k, l.Ahead, e, lo, hi, qstage, l.Service)
			}
		}
		// A new request of tenant a: its check, then every generate task
		// ahead, all a's; one of another tenant is served next (fair
		// tags), so it starts sooner.
		gen := load(t, s, genpipe.Place{})
		a := genpipe.Share{Tenant: "a", Priority: genpipe.PriorityNormal, Weight: 1}
		aAsked := time.Now()
		e, ok, err := est.Estimate(t.Context(), &genpipe.Request{ID: uuid.NewString(), Status: genpipe.StatusReceived, Share: a})
		if err != nil || !ok || e.Stage != genpipe.StageCheck || !e.LastStartAt.After(e.StartAt) || e.DoneAt.Before(e.LastStartAt) {
			t.Fatalf("Estimate of a new request = %+v, %v, %v; want its check first, then its generation", e, ok, err)
		}
		if min := gen.Now.Add(time.Duration(gen.Waiting/2) * gen.Service); e.LastStartAt.Before(min) {
			t.Errorf("a new request of a starts its generation at %v; want after the %d waiting ones: %v", e.LastStartAt, gen.Waiting, min)
		}
		other, ok, err := est.Estimate(t.Context(), &genpipe.Request{ID: uuid.NewString(), Status: genpipe.StatusReceived})
		otherAnswered := time.Now()
		// Each estimate counts from its own now, and the second is taken
		// later: compare how far ahead each starts, a's from before it
		// was asked (at least its lead), the other's from after it
		// answered (at most its lead), so a slow machine cannot fail it.
		if aLead, otherLead := e.LastStartAt.Sub(aAsked), other.LastStartAt.Sub(otherAnswered); err != nil || !ok || otherLead >= aLead {
			t.Errorf("a new request of another tenant starts its generation %v after it was estimated (%v, %v); want sooner than a's, %v",
				otherLead, ok, err, aLead)
		}
	}},
}

// measure runs n tasks of stage for at least busy each, taken with
// capacity n, and returns the longest they can have run.
func measure(t *testing.T, s EstimateStore, stage genpipe.Stage, n int, busy time.Duration) time.Duration {
	t.Helper()
	var tasks []genpipe.Task
	for range n {
		task := newTask("", "m", genpipe.PriorityNormal, 1)
		task.Stage = stage
		tasks = append(tasks, task)
	}
	enqueueTasks(t, s, tasks...)
	start := time.Now()
	take := genpipe.TakeRequest{Stage: stage, Owner: "m", Max: n, Capacity: n, Lease: time.Minute}
	got, err := s.TakeTasks(t.Context(), take)
	if err != nil || len(got) != n {
		t.Fatalf("TakeTasks: %d, %v; want %d", len(got), err, n)
	}
	time.Sleep(busy)
	// A take that finishes, as a dispatcher's: the capacity is recorded
	// with the finish.
	take.Finish = ids(got)
	if _, err := s.TakeTasks(t.Context(), take); err != nil {
		t.Fatalf("TakeTasks finishing: %v", err)
	}
	return time.Since(start)
}

func load(t *testing.T, s EstimateStore, p genpipe.Place) genpipe.StageLoad {
	t.Helper()
	l, err := s.StageLoad(t.Context(), qstage, p)
	if err != nil {
		t.Fatalf("StageLoad: %v", err)
	}
	return l
}
