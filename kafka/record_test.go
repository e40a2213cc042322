package kafka_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/internal/testutil"
	"github.com/genpipe/genpipe/kafka"
)

// These tests follow records along the record path of kafka.RecordHandler:
// observe, decode (poison to the dead-letter topic), handle, dead-letter.

// A poison record of any kind becomes a dead letter with the reason, keeps
// the record as it was and where it came from, is logged, never reaches the
// stage's handler, and counts as done: its partition moves on.
func TestPoisonRecord(t *testing.T) {
	id := uuid.NewString()
	job := genpipe.Job{ObjectID: uuid.NewString(), Style: "corporate", Description: "d"}
	events := map[genpipe.EventType][]byte{
		genpipe.EventSubmitted: testutil.Encode(t, testutil.JobEvent(genpipe.EventSubmitted, id, job)),
		genpipe.EventChecked:   testutil.Encode(t, testutil.JobEvent(genpipe.EventChecked, id, job)),
		genpipe.EventStatus:    testutil.Encode(t, testutil.StatusEvent(id, genpipe.StatusRejected, nil, "no")),
	}
	submitted, status := events[genpipe.EventSubmitted], events[genpipe.EventStatus]
	poison := map[string][]byte{
		"empty":          nil,
		"not JSON":       []byte("\xff\xfe garbage"),
		"JSON array":     []byte(`[1,2,3]`),
		"v2":             bytes.Replace(submitted, []byte(`"v":1`), []byte(`"v":2`), 1),
		"unknown type":   bytes.Replace(submitted, []byte(`"request.submitted"`), []byte(`"request.exploded"`), 1),
		"no job":         []byte(`{"v":1,"type":"request.submitted","requestId":"` + id + `"}`),
		"no request id":  bytes.Replace(submitted, []byte(id), nil, 1),
		"unknown status": bytes.Replace(status, []byte(`"rejected"`), []byte(`"exploded"`), 1),
		"long":           bytes.Repeat([]byte("x"), 1000),
	}
	for name, v := range poison {
		if _, err := genpipe.DecodeEvent(v); err == nil {
			t.Fatalf("%s: %q decodes; the test needs poison", name, v)
		}
	}
	for _, stage := range []struct {
		name  string
		event genpipe.EventType
	}{{"check", genpipe.EventSubmitted}, {"generate", genpipe.EventChecked}, {"notifier", genpipe.EventStatus}} {
		t.Run(stage.name, func(t *testing.T) {
			cases := map[string][]byte{}
			for name, v := range poison {
				cases[name] = v
			}
			for typ, v := range events {
				if typ != stage.event {
					cases[string(typ)+" event"] = v // an event of another stage's topic
				}
			}
			dlq := &memDLQ{}
			log, logs := testutil.CaptureLogs(t)
			handled := 0
			handle := kafka.RecordHandler(kafka.RecordPath{Stage: stage.name, Event: stage.event, DeadLetters: dlq, Log: log,
				Handle: func(context.Context, genpipe.Event) error { handled++; return nil }})
			offset := int64(0)
			for name, v := range cases {
				offset++
				r := &kgo.Record{Topic: "genpipe.topic", Partition: 2, Offset: offset, Key: []byte(name), Value: v}
				if err := handle(testutil.Context(t), r); err != nil {
					t.Errorf("%s: handler = %v; want nil: the record is done and its partition moves on", name, err)
					continue
				}
				d, ok := dlq.last()
				if !ok || d.Offset != offset {
					t.Errorf("%s: no dead letter", name)
					continue
				}
				if d.Stage != stage.name || d.Reason == "" || d.Attempts != 0 || d.Topic != r.Topic || d.Partition != r.Partition ||
					string(d.Key) != name || !bytes.Equal(d.Value, v) || time.Since(d.At) > time.Minute {
					t.Errorf("%s: dead letter %+v; want the record as it was, from %s/%d@%d, stage %s, a reason and no attempts",
						name, d, r.Topic, r.Partition, r.Offset, stage.name)
				}
				if strings.HasSuffix(name, " event") && !strings.Contains(d.Reason, fmt.Sprintf("event on the %s stage's topic", stage.name)) {
					t.Errorf("%s: reason %q does not say the event is on the wrong topic", name, d.Reason)
				}
			}
			// The record the engine hands on for a batch it would not read.
			why := "the batch at offsets 40 to 41 decompresses to more than 16 MiB: not read"
			unread := &kgo.Record{Topic: "genpipe.topic", Partition: 2, Offset: 41,
				Headers: []kgo.RecordHeader{{Key: genpipe.HeaderUnread, Value: []byte(why)}}}
			if err := handle(testutil.Context(t), unread); err != nil {
				t.Errorf("unread batch: handler = %v; want nil", err)
			} else if d, ok := dlq.last(); !ok || d.Offset != 41 || d.Reason != why || d.Value != nil {
				t.Errorf("unread batch: dead letter %+v; want one at offset 41 without a value, with the engine's reason", d)
			}
			if handled != 0 {
				t.Errorf("the stage's handler saw %d poison records", handled)
			}
			for _, want := range []string{"poison record: to the dead-letter topic", "stage=" + stage.name,
				"value=" + strings.Repeat("x", 200) + "…", "record sent to the dead-letter topic"} {
				if !logs.Contains(want) {
					t.Errorf("the logs lack %q", want)
				}
			}
			if logs.Contains(strings.Repeat("x", 201)) {
				t.Error("the logs hold more than 200 bytes of a poison value")
			}
		})
	}
}

// A dead letter from the handler goes to the queue with its reason and
// attempts and the record counts as done; other errors pass through as
// they are; the record is observed from its start to its outcome, and the
// handler runs in the observed context.
func TestRecordPath(t *testing.T) {
	type observed struct {
		offset int64
		err    error
		ended  bool
	}
	var (
		mu  sync.Mutex
		obs = map[int64]*observed{}
	)
	type spanKey struct{}
	observe := func(ctx context.Context, r *kgo.Record) (context.Context, func(error)) {
		o := &observed{offset: r.Offset}
		mu.Lock()
		obs[r.Offset] = o
		mu.Unlock()
		return context.WithValue(ctx, spanKey{}, r.Offset), func(err error) {
			mu.Lock()
			defer mu.Unlock()
			if o.ended {
				t.Errorf("record %d observed as ended twice", r.Offset)
			}
			o.err, o.ended = err, true
		}
	}
	boom := errors.New("boom")
	dlq := &memDLQ{}
	log, _ := testutil.CaptureLogs(t)
	handle := kafka.RecordHandler(kafka.RecordPath{Stage: "check", Event: genpipe.EventSubmitted, Observe: observe, DeadLetters: dlq, Log: log,
		Handle: func(ctx context.Context, e genpipe.Event) error {
			if ctx.Value(spanKey{}) == nil {
				t.Errorf("%s: handled outside the observed context", e.RequestID)
			}
			switch e.RequestID {
			case "failed":
				return &genpipe.DeadLetterError{Reason: "AI down", Attempts: 6}
			case "other":
				return fmt.Errorf("check: %w", boom)
			}
			return nil
		}})
	job := genpipe.Job{ObjectID: "o", Style: "forest", Description: "d"}
	want := map[int64]error{}
	for i, id := range []string{"fine", "failed", "other", "poison"} {
		v := testutil.Encode(t, testutil.JobEvent(genpipe.EventSubmitted, id, job))
		if id == "poison" {
			v = []byte("poison")
		}
		r := &kgo.Record{Topic: "genpipe.requests", Partition: 3, Offset: int64(40 + i), Key: []byte(id), Value: v}
		err := handle(testutil.Context(t), r)
		if id == "other" {
			if !errors.Is(err, boom) {
				t.Errorf("handler error %v was not passed through", err)
			}
			want[r.Offset] = err
		} else if err != nil {
			t.Errorf("%s: handler = %v; want nil", id, err)
		}
	}
	letters := dlq.all()
	if len(letters) != 2 {
		t.Fatalf("%d dead letters, want 2 (failed, poison): %+v", len(letters), letters)
	}
	if d := letters[0]; string(d.Key) != "failed" || d.Reason != "AI down" || d.Attempts != 6 || d.Offset != 41 || d.Stage != "check" {
		t.Errorf("dead letter of the failed request = %+v", d)
	}
	if d := letters[1]; string(d.Key) != "poison" || d.Attempts != 0 || d.Offset != 43 {
		t.Errorf("dead letter of the poison record = %+v", d)
	}
	mu.Lock()
	defer mu.Unlock()
	for offset := int64(40); offset < 44; offset++ {
		o := obs[offset]
		if o == nil || !o.ended || o.err != want[offset] {
			t.Errorf("record %d observed as %+v; want started and ended with %v", offset, o, want[offset])
		}
	}
}

// Kafka being away is retried: the record is done once its dead letter is
// written. When ctx ends first, the handler says so, and the record is not
// done (the engine does not commit it).
func TestDeadLetterRetried(t *testing.T) {
	log, logs := testutil.CaptureLogs(t)
	dlq := &memDLQ{failures: 2}
	var ended []error
	handle := kafka.RecordHandler(kafka.RecordPath{Stage: "generate", Event: genpipe.EventChecked, DeadLetters: dlq, Log: log,
		Observe: func(ctx context.Context, _ *kgo.Record) (context.Context, func(error)) {
			return ctx, func(err error) { ended = append(ended, err) }
		},
		Handle: func(context.Context, genpipe.Event) error { return nil }})
	r := &kgo.Record{Topic: "genpipe.checked", Key: []byte("k"), Value: []byte("poison")}
	if err := handle(testutil.Context(t), r); err != nil {
		t.Fatalf("handler = %v; want nil once the dead letter is written", err)
	}
	if tries, sent := dlq.tries, len(dlq.all()); tries != 3 || sent != 1 {
		t.Errorf("%d sends, %d dead letters; want 3 sends (2 failed), 1 dead letter", tries, sent)
	}
	if !logs.Contains("dead-letter publish failed, retrying") {
		t.Error("the failed sends are not logged")
	}

	dlq.failures = -1 // down for good
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	err := handle(ctx, r)
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, errDLQDown) {
		t.Errorf("handler with the dead-letter topic down = %v; want the send's error and the context's", err)
	}
	if len(ended) != 2 || ended[0] != nil || ended[1] != err {
		t.Errorf("observations ended with %v; want nil, then the handler's error", ended)
	}
}

// Through the engine: poison records and dead letters between good records
// leave the dead-letter topic holding them, every good record handled, and
// the group's committed offset at the end of the partition.
func TestPoisonDoesNotBlockPartition(t *testing.T) {
	t.Parallel()
	b := testutil.StartBroker(t)
	conn := newConn(t, b.Addrs())
	ctx := ctxFor(t, 30*time.Second)
	const topic, dlqTopic, group = "records", "records-dlq", "records-group"
	if err := conn.EnsureTopics(ctx, 1, topic, dlqTopic); err != nil {
		t.Fatal(err)
	}
	p, err := conn.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	job := genpipe.Job{ObjectID: "o", Style: "forest", Description: "d"}
	const n = 30
	for i := range n {
		id := fmt.Sprintf("req-%02d", i)
		v := testutil.Encode(t, testutil.JobEvent(genpipe.EventSubmitted, id, job))
		switch i % 10 {
		case 3:
			v = []byte("not an event")
		case 7:
			v = testutil.Encode(t, testutil.StatusEvent(id, genpipe.StatusDone, nil, ""))
		}
		if err := p.Publish(ctx, topic, id, v); err != nil {
			t.Fatal(err)
		}
	}

	handled := newKeySet()
	handle := kafka.RecordHandler(kafka.RecordPath{Stage: "check", Event: genpipe.EventSubmitted,
		DeadLetters: kafka.NewDeadLetters(p, dlqTopic), Log: testutil.Logger(t, "GENPIPE_KAFKA_TEST_LOG"),
		Handle: func(_ context.Context, e genpipe.Event) error {
			handled.add(e.RequestID)
			if e.RequestID == "req-15" {
				return &genpipe.DeadLetterError{Reason: "AI down", Attempts: 6}
			}
			return nil
		}})
	stop := testutil.Start(t, ctx, "engine", newEngine(t, conn, group, topic, 4, handle).Run)
	waitCommitted(t, ctx, conn, group, topic, n)
	stop()
	if got := handled.len(); got != n-6 {
		t.Errorf("%d events handled, want %d: all but the poison", got, n-6)
	}
	letters, err := conn.ReadDeadLetters(ctx, dlqTopic)
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]string{}
	for _, d := range letters {
		reasons[string(d.Key)] = d.Reason
		if d.Topic != topic || d.Stage != "check" {
			t.Errorf("dead letter %+v lacks its origin", d)
		}
	}
	for _, id := range []string{"req-03", "req-07", "req-13", "req-15", "req-17", "req-23", "req-27"} {
		if reasons[id] == "" {
			t.Errorf("%s: no dead letter with a reason, have %v", id, reasons)
		}
	}
	if len(letters) != 7 {
		t.Errorf("%d dead letters, want 7 (6 poison, 1 failed): %v", len(letters), reasons)
	}
}

var errDLQDown = errors.New("dead-letter topic down")

// memDLQ is a dead-letter queue in memory whose first sends can fail.
type memDLQ struct {
	mu       sync.Mutex
	failures int // sends still to fail; -1 fails them all
	tries    int
	sent     []genpipe.DeadLetter
}

func (q *memDLQ) SendDeadLetter(_ context.Context, d genpipe.DeadLetter) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.tries++
	if q.failures != 0 {
		if q.failures > 0 {
			q.failures--
		}
		return errDLQDown
	}
	q.sent = append(q.sent, d)
	return nil
}

func (q *memDLQ) all() []genpipe.DeadLetter {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]genpipe.DeadLetter(nil), q.sent...)
}

func (q *memDLQ) last() (genpipe.DeadLetter, bool) {
	all := q.all()
	if len(all) == 0 {
		return genpipe.DeadLetter{}, false
	}
	return all[len(all)-1], true
}
