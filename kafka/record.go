package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/backoff"
)

// RecordPath is what RecordHandler builds a stage's handler from: the
// pieces a record meets on its way through the stage.
type RecordPath struct {
	// Stage names the stage in logs and dead letters: check, generate or
	// notifier.
	Stage string
	// Event is the type of event the stage reads; a record of any other
	// type, or no event at all, is poison.
	Event genpipe.EventType
	// Observe starts measuring and tracing one record, returning the
	// context to handle it in and a func that ends the observation with
	// the record's outcome. nil observes nothing.
	Observe func(ctx context.Context, r *kgo.Record) (context.Context, func(err error))
	// Handle is the stage's own work on one event. It returns a
	// *genpipe.DeadLetterError for a request that belongs in the
	// dead-letter topic, and any other error only when the work could not
	// be finished.
	Handle func(ctx context.Context, e genpipe.Event) error
	// DeadLetters takes the records set aside: poison, and the dead
	// letters Handle returns.
	DeadLetters genpipe.DeadLetterQueue
	// Log gets the lines of poison records and dead letters; nil logs to
	// slog.Default().
	Log *slog.Logger
}

// deadLetterRetry paces the retries of a dead letter: backoff.Default's
// delays, without its bound on attempts, since a record is not done until
// its dead letter is written.
var deadLetterRetry = backoff.Policy{Base: backoff.Default.Base, Max: backoff.Default.Max}

// RecordHandler returns the stage engine's handler (an engine.Handler) for
// p: the whole path of a record through a stage, in this order.
//
//  1. Observe: the record's span and timer start. They end with the
//     outcome of the steps below, dead letter included.
//  2. Decode: the value must be a genpipe event of type p.Event. Anything
//     else is poison: it is logged with the stage, the error and the start
//     of the value, and becomes a dead letter with the reason. Handle never
//     sees it.
//  3. Handle: p.Handle does the stage's work on the event.
//  4. Dead-letter: poison, or a *genpipe.DeadLetterError from Handle, goes
//     to p.DeadLetters before the record counts as done, so the record is
//     committed only once it is in the dead-letter topic, and its
//     partition moves on. Kafka being away is retried until ctx ends; the
//     record is then not done, and the partition's next owner handles it
//     again.
//
// Any other error from Handle passes through to the engine, which logs it.
//
// An AI stage runs the path in two halves around its scheduling queue:
// RecordIngest decodes each record from Kafka and enqueues it as a task, and
// the stage's dispatcher runs RecordHandler on each task it takes, as the
// record it came from (TaskRecord), so that the handler, its trace and its
// dead letters are what they would be straight from Kafka.
func RecordHandler(p RecordPath) func(ctx context.Context, r *kgo.Record) error {
	p.setDefaults()
	return func(ctx context.Context, r *kgo.Record) error {
		ctx, end := p.Observe(ctx, r)
		e, err := p.decode(r)
		if err == nil {
			err = p.Handle(ctx, e)
		}
		err = p.deadLetter(ctx, r, err)
		end(err)
		return err
	}
}

// RecordIngest returns the handler of an AI stage's consumer (an
// engine.Handler), the first half of p's path: the record is decoded as in
// RecordHandler, poison goes to p.DeadLetters, and every event is handed to
// enqueue with its record (see NewTask), which stores it in the stage's
// scheduling queue; the record is done once it is stored, or dead-lettered.
// p.Observe observes only the poison; p.Handle is not used: the stage's
// dispatcher runs both when it takes the task (RecordHandler on
// TaskRecord).
func RecordIngest(p RecordPath, enqueue func(ctx context.Context, r *kgo.Record, e genpipe.Event) error) func(ctx context.Context, r *kgo.Record) error {
	p.setDefaults()
	return func(ctx context.Context, r *kgo.Record) error {
		e, err := p.decode(r)
		if err == nil {
			return p.deadLetter(ctx, r, enqueue(ctx, r, e))
		}
		// Poison ends its way here: it is observed here, as the
		// dispatcher observes the tasks.
		ctx, end := p.Observe(ctx, r)
		err = p.deadLetter(ctx, r, err)
		end(err)
		return err
	}
}

func (p *RecordPath) setDefaults() {
	if p.Observe == nil {
		p.Observe = func(ctx context.Context, _ *kgo.Record) (context.Context, func(error)) { return ctx, func(error) {} }
	}
	if p.Log == nil {
		p.Log = slog.Default()
	}
}

// traceParent is the header of a record's W3C trace context.
const traceParent = "traceparent"

// NewTask returns the task of stage for e, decoded from r: its request,
// replay and share, and what RecordHandler needs of the record again when
// the task runs (TaskRecord).
func NewTask(stage genpipe.Stage, r *kgo.Record, e genpipe.Event) genpipe.Task {
	t := genpipe.Task{Stage: stage, RequestID: e.RequestID, Replay: e.Replay, Share: e.Share.Normalized(),
		StartBy: e.StartBy, Value: r.Value, Topic: r.Topic, Partition: r.Partition, Offset: r.Offset}
	if tp := header(r, traceParent); validTraceParent(tp) {
		t.TraceParent = tp
	}
	return t
}

// validTraceParent reports whether v has the shape of a W3C traceparent
// (version-traceid-parentid-flags, lowercase hex and dashes; later
// versions may add fields) and is short enough to store with the task. A
// header of any other shape is dropped, not stored: it could not continue
// a trace, and bytes such as NUL or invalid UTF-8 would fail every write of
// the stage's queue on PostgreSQL.
func validTraceParent(v string) bool {
	if len(v) < 55 || len(v) > 256 {
		return false
	}
	for _, c := range []byte(v) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') && c != '-' {
			return false
		}
	}
	return true
}

// TaskRecord returns the record t was ingested from, as far as a stage's
// handler reads it: key (the request id), value, trace context, and where
// it came from.
func TaskRecord(t genpipe.Task) *kgo.Record {
	r := &kgo.Record{Key: []byte(t.RequestID), Value: t.Value, Topic: t.Topic, Partition: t.Partition, Offset: t.Offset,
		Timestamp: t.EnqueuedAt}
	if t.TraceParent != "" {
		r.Headers = []kgo.RecordHeader{{Key: traceParent, Value: []byte(t.TraceParent)}}
	}
	return r
}

// decode returns the record's event, or for poison a
// *genpipe.DeadLetterError with the reason.
func (p *RecordPath) decode(r *kgo.Record) (genpipe.Event, error) {
	if why := header(r, genpipe.HeaderUnread); why != "" { // a batch the engine did not read
		p.Log.Error("poison batch: to the dead-letter topic", "stage", p.Stage, "topic", r.Topic, "partition", r.Partition, "err", why)
		return genpipe.Event{}, &genpipe.DeadLetterError{Reason: why}
	}
	e, err := genpipe.DecodeEvent(r.Value)
	if err == nil && e.Type != p.Event {
		err = genpipe.Errorf(genpipe.EINVALID, "%s event on the %s stage's topic", e.Type, p.Stage)
	}
	if err != nil {
		p.Log.Error("poison record: to the dead-letter topic", "stage", p.Stage, "err", err, "value", truncate(r.Value, 200))
		return genpipe.Event{}, &genpipe.DeadLetterError{Reason: genpipe.ErrorMessage(err)}
	}
	return e, nil
}

// deadLetter writes the record to the dead-letter queue if err is a
// *genpipe.DeadLetterError, and returns nil once it is there; any other
// err passes through.
func (p *RecordPath) deadLetter(ctx context.Context, r *kgo.Record, err error) error {
	var dl *genpipe.DeadLetterError
	if !errors.As(err, &dl) {
		return err
	}
	d := genpipe.DeadLetter{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r.Value,
		Stage: p.Stage, Reason: dl.Reason, Attempts: dl.Attempts, At: time.Now()}
	err = backoff.Retry(ctx, deadLetterRetry, func() error {
		return p.DeadLetters.SendDeadLetter(ctx, d)
	}, backoff.OnRetry(func(attempt int, err error) {
		p.Log.Warn("dead-letter publish failed, retrying", "stage", p.Stage, "request", string(r.Key), "offset", r.Offset, "attempt", attempt, "err", err)
	}))
	if err != nil {
		return fmt.Errorf("dead letter of %s/%d/%d: %w", r.Topic, r.Partition, r.Offset, err)
	}
	p.Log.Warn("record sent to the dead-letter topic", "stage", p.Stage, "request", string(r.Key), "topic", r.Topic,
		"partition", r.Partition, "offset", r.Offset, "reason", dl.Reason, "attempts", dl.Attempts)
	return nil
}

// header returns the value of r's header key, or "".
func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// truncate returns b as text, cut after n bytes.
func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}
