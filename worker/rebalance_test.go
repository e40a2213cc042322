package worker_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/aisim"
	"github.com/genpipe/genpipe/engine"
	"github.com/genpipe/genpipe/internal/testenv"
	"github.com/genpipe/genpipe/internal/testutil"
	"github.com/genpipe/genpipe/kafka"
	"github.com/genpipe/genpipe/worker"
)

// The generate stage on the stage engine, as a worker process runs it, while
// the engine gives records up in the middle of their AI calls: a revoke
// whose shutdown timeout runs out, and partitions lost when the broker goes
// away. No call is abandoned: each runs to its end, its outcome is recorded,
// and the record's next owner emits the result without a second call.

// rebalanceRig is a broker with genpipe's topics (partitions each), a
// generate stage against a simulated AI taking latency a call, and what a
// test needs to run engines on it.
type rebalanceRig struct {
	env    *testenv.Env
	ai     *aisim.Service
	handle engine.Handler
}

func newRebalanceRig(t *testing.T, partitions int32, latency time.Duration) *rebalanceRig {
	t.Helper()
	k := testenv.StartKafka(t, testutil.FastGroups())
	env := &testenv.Env{Kafka: k, Topics: genpipe.DefaultTopics(), Objects: testenv.Objects(t)}
	k.EnsureTopics(t, partitions, env.Topics.All()...)
	env.Producer = k.NewProducer(t, kafka.WithDeliveryTimeout(time.Second))
	svc, url := simulatedAI(t, "generate", aisim.WithLatency(latency))
	stage, _, _ := newStage(t, "generate", url, env, newClaims(t), worker.WithHeldPoll(20*time.Millisecond))
	log, _ := testutil.CaptureLogs(t)
	handle := kafka.RecordHandler(kafka.RecordPath{Stage: "generate", Event: genpipe.EventChecked, Handle: stage,
		DeadLetters: kafka.NewDeadLetters(env.Producer, env.Topics.DeadLetters), Log: log})
	return &rebalanceRig{env: env, ai: svc, handle: handle}
}

// engine returns an engine of group g on the checked topic, run until the
// test ends; its shutdown timeout is short, so a revoke gives running
// records up, and it waits for abandoned calls as a worker does.
func (r *rebalanceRig) engine(t *testing.T) *engine.Engine {
	t.Helper()
	log, _ := testutil.CaptureLogs(t)
	e := testutil.Must(engine.New(r.env.Kafka.Addrs(), "g", []string{r.env.Topics.Checked}, r.handle,
		engine.WithCapacity(8), engine.WithSessionTimeout(time.Second), engine.WithRebalanceTimeout(3*time.Second),
		engine.WithShutdownTimeout(100*time.Millisecond), engine.WithAbandonWait(time.Minute),
		engine.WithCommitInterval(50*time.Millisecond), engine.WithLogger(log),
		engine.WithClientOpts(kgo.FetchMaxWait(100*time.Millisecond), kgo.WithLogger(kafka.NewKgoLogger(log)))))(t)
	testutil.Start(t, context.Background(), "engine", e.Run)
	return e
}

// submit publishes a checked event for a new request on each partition of
// the checked topic and returns the requests' ids.
func (r *rebalanceRig) submit(t *testing.T, partitions int32) []string {
	t.Helper()
	var ids []string
	for p := range partitions {
		id := uuid.NewString()
		value := testutil.Must(genpipe.EncodeEvent(testutil.JobEvent(genpipe.EventChecked, id, newJob(t))))(t)
		rec := &kgo.Record{Topic: r.env.Topics.Checked, Partition: p, Key: []byte(id), Value: value}
		cl := testutil.Must(kgo.NewClient(append(r.env.Kafka.Conn.Opts(), kgo.RecordPartitioner(kgo.ManualPartitioner()))...))(t)
		err := cl.ProduceSync(testutil.Context(t), rec).FirstErr()
		cl.Close()
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

// waitInFlight waits until the AI has n calls in flight.
func (r *rebalanceRig) waitInFlight(t *testing.T, n int) {
	t.Helper()
	testutil.Eventually(t, 20*time.Second, "AI calls in flight", func() bool { return r.ai.Stats().InFlight == n })
}

// requireDonePaidOnce waits until every request of ids is done downstream,
// and checks that each was paid for once and no call was abandoned.
func (r *rebalanceRig) requireDonePaidOnce(t *testing.T, ids []string) {
	t.Helper()
	testutil.Eventually(t, 30*time.Second, "every request done downstream", func() bool {
		recs := readAll(t, r.env, r.env.Topics.Results)
		for _, id := range ids {
			done := false
			for _, st := range statusesOf(t, of(recs, id)) {
				done = done || st == genpipe.StatusDone
			}
			if !done {
				return false
			}
		}
		return true
	})
	st := r.ai.Stats()
	t.Logf("AI: %+v", st)
	if st.Calls != int64(len(ids)) || st.UniqueSucceeded != int64(len(ids)) || st.Abandoned != 0 {
		t.Errorf("the AI got %d calls for %d requests, %d abandoned; want one call each, none abandoned",
			st.Calls, len(ids), st.Abandoned)
	}
}

// A second member joins while the first runs a call on each of two
// partitions: the revoked partition's record is given up after the
// shutdown timeout, but its call runs on and is recorded; the new owner
// waits for the claim and emits the result.
func TestRevokeMidCallPaysOnce(t *testing.T) {
	r := newRebalanceRig(t, 2, 2*time.Second)
	a := r.engine(t)
	testutil.Eventually(t, 10*time.Second, "the first engine owns both partitions", func() bool { return a.Stats().Owned == 2 })
	ids := r.submit(t, 2)
	r.waitInFlight(t, 2)
	b := r.engine(t)
	testutil.Eventually(t, 20*time.Second, "the second engine owns a partition", func() bool { return b.Stats().Owned == 1 })
	r.requireDonePaidOnce(t, ids)
	if s := a.Stats(); s.Revokes == 0 || s.Abandoned != 1 {
		t.Errorf("first engine: %d revokes, %d records given up; want ≥ 1 and 1 (the revoke gave a record up mid-call)", s.Revokes, s.Abandoned)
	}
}

// The broker goes away while a call runs: the partition is lost and its
// record given up at once, but the call runs on and is recorded. Once the
// broker is back, the record comes again (it was not committed), and the
// result goes downstream without a second call.
func TestLostPartitionMidCallPaysOnce(t *testing.T) {
	r := newRebalanceRig(t, 1, 3*time.Second)
	e := r.engine(t)
	testutil.Eventually(t, 10*time.Second, "the engine owns the partition", func() bool { return e.Stats().Owned == 1 })
	ids := r.submit(t, 1)
	r.waitInFlight(t, 1)
	r.env.Kafka.Stop()
	testutil.Eventually(t, 20*time.Second, "the partition lost", func() bool { return e.Stats().Losses > 0 })
	if st := r.ai.Stats(); st.InFlight != 1 {
		t.Errorf("AI calls in flight after the loss: %d, want 1 (the call goes on)", st.InFlight)
	}
	r.env.Kafka.Start(t)
	r.requireDonePaidOnce(t, ids)
	if s := e.Stats(); s.Abandoned == 0 {
		t.Error("no record was given up: the loss did not hit the call")
	}
}
