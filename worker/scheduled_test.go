package worker_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/aisim"
	"github.com/genpipe/genpipe/internal/testenv"
	"github.com/genpipe/genpipe/internal/testutil"
	"github.com/genpipe/genpipe/kafka"
	"github.com/genpipe/genpipe/scheduler"
	"github.com/genpipe/genpipe/worker"
)

// The generate stage on its scheduling queue, as worker processes run it,
// while a process stops or dies in the middle of an AI call: the call is
// paid once, and the request is done.

// scheduledRig is a generate stage against a simulated AI taking latency a
// call, and a status database that processes open handles on.
type scheduledRig struct {
	env *testenv.Env
	ai  *aisim.Service
	url string
}

func newScheduledRig(t *testing.T, latency time.Duration) *scheduledRig {
	t.Helper()
	svc, url := simulatedAI(t, "generate", aisim.WithLatency(latency))
	return &scheduledRig{env: testenv.New(t), ai: svc, url: url}
}

// process returns a worker process's dispatcher of the generate stage, on
// a store handle of its own, with its claims in it.
func (r *scheduledRig) process(t *testing.T, opts ...scheduler.Option) (*scheduler.Dispatcher, *testenv.StatusStore) {
	t.Helper()
	store := testenv.OpenStatusStore(t, r.env.StorePath)
	stage, _, _ := newStage(t, "generate", r.url, r.env, store, worker.WithHeldPoll(20*time.Millisecond),
		worker.WithLease(300*time.Millisecond))
	log, _ := testutil.CaptureLogs(t)
	run := kafka.RecordHandler(kafka.RecordPath{Stage: "generate", Event: genpipe.EventChecked, Handle: stage,
		DeadLetters: kafka.NewDeadLetters(r.env.Producer, r.env.Topics.DeadLetters), Log: log})
	d := testutil.Must(scheduler.New(store, genpipe.StageGenerate, func(ctx context.Context, task genpipe.Task) error {
		return run(ctx, kafka.TaskRecord(task))
	}, append([]scheduler.Option{scheduler.WithPoll(20 * time.Millisecond), scheduler.WithLogger(log),
		scheduler.WithAbandonWait(time.Minute)}, opts...)...))(t)
	return d, store
}

// enqueue stores a checked event of a new request as the consumer would,
// and returns its id.
func (r *scheduledRig) enqueue(t *testing.T, q genpipe.TaskQueue) string {
	t.Helper()
	id := uuid.NewString()
	e := testutil.JobEvent(genpipe.EventChecked, id, newJob(t))
	rec := &kgo.Record{Topic: r.env.Topics.Checked, Key: []byte(id), Value: testutil.Must(genpipe.EncodeEvent(e))(t)}
	if err := q.EnqueueTasks(t.Context(), []genpipe.Task{kafka.NewTask(genpipe.StageGenerate, rec, e)}); err != nil {
		t.Fatal(err)
	}
	return id
}

// requireDonePaidOnce waits until the request is done downstream, once,
// and checks that the AI was paid once.
func (r *scheduledRig) requireDonePaidOnce(t *testing.T, id string) {
	t.Helper()
	testutil.Eventually(t, 30*time.Second, "the request done downstream", func() bool {
		for _, st := range statusesOf(t, of(readAll(t, r.env, r.env.Topics.Results), id)) {
			if st == genpipe.StatusDone {
				return true
			}
		}
		return false
	})
	if st := r.ai.Stats(); st.Calls != 1 || st.UniqueSucceeded != 1 || st.Abandoned != 0 {
		t.Errorf("AI: %+v; want one call, succeeded, none abandoned", st)
	}
}

// A process shuts down while its AI call runs, past its shutdown timeout:
// the call runs to its end and is recorded in the claim, the task goes back
// to waiting, and the process that takes it next emits the result without
// a second call.
func TestDispatcherStopMidCallPaysOnce(t *testing.T) {
	r := newScheduledRig(t, time.Second)
	a, store := r.process(t, scheduler.WithShutdownTimeout(0))
	id := r.enqueue(t, store)
	stopA := testutil.Start(t, context.Background(), "dispatcher a", a.Run)
	testutil.Eventually(t, 10*time.Second, "the AI call under way", func() bool { return r.ai.Stats().InFlight == 1 })
	stopA()
	if st := a.Stats(); st.Released != 1 || len(st.Tenants) != 0 {
		t.Errorf("stopped dispatcher: %+v; want its task released, none completed", st)
	}
	b, _ := r.process(t)
	testutil.Start(t, context.Background(), "dispatcher b", b.Run)
	r.requireDonePaidOnce(t, id)
}

// A process dies holding a task whose AI call it claimed: no release, no
// renewal. Once the task's lease runs out another process takes it, takes
// the claim over when its lease runs out too, and pays the call once.
func TestTaskOfADeadProcessIsDone(t *testing.T) {
	r := newScheduledRig(t, 100*time.Millisecond)
	b, store := r.process(t, scheduler.WithLease(300*time.Millisecond))
	id := r.enqueue(t, store)
	taken, err := store.TakeTasks(t.Context(), genpipe.TakeRequest{Stage: genpipe.StageGenerate, Owner: "dead",
		Max: 1, Capacity: 64, Lease: 300 * time.Millisecond})
	if err != nil || len(taken) != 1 {
		t.Fatalf("TakeTasks = %d, %v", len(taken), err)
	}
	if c, err := store.ClaimStage(t.Context(), genpipe.ClaimRequest{RequestID: id, Stage: genpipe.StageGenerate,
		Owner: "dead-call", Lease: 300 * time.Millisecond}); err != nil || c.State != genpipe.ClaimTaken {
		t.Fatalf("ClaimStage = %+v, %v", c, err)
	}
	testutil.Start(t, context.Background(), "dispatcher b", b.Run)
	r.requireDonePaidOnce(t, id)
}
