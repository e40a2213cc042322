package kafka_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/internal/testutil"
	"github.com/genpipe/genpipe/kafka"
)

// An AI stage's consumer ingests: poison goes to the dead-letter topic and
// is observed there, every event is enqueued as a task, and the task, when
// it runs, is the record again for the rest of the path.
func TestRecordIngest(t *testing.T) {
	id := uuid.NewString()
	job := genpipe.Job{ObjectID: uuid.NewString(), Style: "corporate", Description: "d"}
	e := testutil.JobEvent(genpipe.EventChecked, id, job)
	e.Replay, e.Share = 2, genpipe.Share{Tenant: "acme", Priority: genpipe.PriorityHigh, Weight: 3}
	good := &kgo.Record{Topic: "genpipe.checked", Partition: 1, Offset: 7, Key: []byte(id), Value: testutil.Encode(t, e),
		Headers: []kgo.RecordHeader{{Key: "traceparent", Value: []byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")}}}
	poison := &kgo.Record{Topic: "genpipe.checked", Partition: 1, Offset: 8, Key: []byte("x"), Value: []byte("not json")}

	dlq := &memDLQ{}
	log, _ := testutil.CaptureLogs(t)
	var observed int
	var tasks []genpipe.Task
	path := kafka.RecordPath{Stage: "generate", Event: genpipe.EventChecked, DeadLetters: dlq, Log: log,
		Observe: func(ctx context.Context, _ *kgo.Record) (context.Context, func(error)) {
			observed++
			return ctx, func(error) {}
		},
		Handle: func(context.Context, genpipe.Event) error { t.Error("Handle called at ingest"); return nil }}
	ingest := kafka.RecordIngest(path, func(_ context.Context, r *kgo.Record, e genpipe.Event) error {
		tasks = append(tasks, kafka.NewTask(genpipe.StageGenerate, r, e))
		return nil
	})
	for _, r := range []*kgo.Record{good, poison} {
		if err := ingest(t.Context(), r); err != nil {
			t.Fatalf("ingest of offset %d = %v; want nil", r.Offset, err)
		}
	}
	if d, ok := dlq.last(); !ok || d.Offset != 8 || observed != 1 {
		t.Errorf("dead letter %+v (%v), %d observed; want the poison dead-lettered and observed", d, ok, observed)
	}
	if len(tasks) != 1 {
		t.Fatalf("%d tasks enqueued; want 1", len(tasks))
	}
	task := tasks[0]
	if task.RequestID != id || task.Replay != 2 || task.Share != e.Share || task.Stage != genpipe.StageGenerate ||
		task.TraceParent == "" || task.Topic != good.Topic || task.Partition != 1 || task.Offset != 7 {
		t.Errorf("task %+v; want the event's request, replay and share, the record's trace context and place", task)
	}
	// A traceparent of another shape is dropped, not stored with the task.
	for _, bad := range []string{"00-\x00\xff", strings.Repeat("0", 300), "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01"} {
		r := *good
		r.Headers = []kgo.RecordHeader{{Key: "traceparent", Value: []byte(bad)}}
		if got := kafka.NewTask(genpipe.StageGenerate, &r, e).TraceParent; got != "" {
			t.Errorf("traceparent %q stored as %q; want it dropped", bad, got)
		}
	}
	// Run, the task is the record as the handler and its dead letters see it.
	back := kafka.TaskRecord(task)
	if string(back.Key) != id || string(back.Value) != string(good.Value) || back.Offset != 7 ||
		len(back.Headers) != 1 || string(back.Headers[0].Value) != string(good.Headers[0].Value) {
		t.Errorf("TaskRecord = %+v; want the ingested record's key, value, place and traceparent", back)
	}
}
