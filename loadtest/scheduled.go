package loadtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/backoff"
	"github.com/genpipe/genpipe/kafka"
	"github.com/genpipe/genpipe/scheduler"
	"github.com/genpipe/genpipe/sqlstore"
)

// The genpipe profile runs each AI stage as `genpipe worker` does: each
// worker's consumer only ingests records into the stage's scheduling queue
// (a SQLite file the workers share, as processes on one machine share the
// embedded default), and each worker's dispatcher takes tasks in the fair
// schedule, within the stage's capacity over every worker, and calls the AI.

// queueDB is the profile's status database: one SQLite file in a temporary
// directory. Every worker uses the same store, as the parts of one `genpipe
// up` process would: SQLite has one writer at a time, and writers of one
// store queue for its write connection, while writers of separate stores
// (processes) collide and back off in SQLite's busy handler, for up to
// tens of milliseconds. Worker processes on separate machines share a
// PostgreSQL database instead.
type queueDB struct {
	url string

	mu    sync.Mutex
	store *sqlstore.Store
	// overhead collects every scheduling overhead measured, in real
	// (unscaled) time: the dispatchers' own cost does not shrink with the
	// time scale.
	overhead []time.Duration
}

func newQueueDB(dir string) *queueDB {
	return &queueDB{url: "sqlite:" + filepath.Join(dir, "queue.db")}
}

// open returns the store, opening it on first use.
func (q *queueDB) open(ctx context.Context) (*sqlstore.Store, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.store == nil {
		s, err := sqlstore.Open(ctx, q.url)
		if err != nil {
			return nil, fmt.Errorf("loadtest: queue database: %w", err)
		}
		q.store = s
	}
	return q.store, nil
}

func (q *queueDB) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.store != nil {
		q.store.Close()
		q.store = nil
	}
}

// scheduledStage is one worker of one AI stage: an ingesting engine and a
// dispatcher on the shared queue.
type scheduledStage struct {
	*engineStage
	disp *scheduler.Dispatcher
}

// labTask is what the lab's events say about their request's share; the
// scenarios with tenants set these fields, others leave them empty (the
// default tenant, normal priority, weight 1).
type labTask struct {
	ID       string           `json:"id"`
	Tenant   string           `json:"tenant"`
	Priority genpipe.Priority `json:"priority"`
	Weight   int              `json:"weight"`
}

// newScheduledStage returns a worker of stage: its engine ingests topic
// into db's queue, and its dispatcher runs handle on each task, at most
// capacity at once over every worker of the stage.
func newScheduledStage(ctx context.Context, db *queueDB, stage genpipe.Stage, conn *kafka.Conn, group, topic string,
	capacity, partitions, members int, t timing, handle func(context.Context, *kgo.Record) error,
	events *groupEvents, trouble *groupTrouble, log *slog.Logger) (*scheduledStage, error) {
	store, err := db.open(ctx)
	if err != nil {
		return nil, err
	}
	disp, err := scheduler.New(store, stage, func(ctx context.Context, task genpipe.Task) error {
		return handle(ctx, kafka.TaskRecord(task))
	},
		scheduler.WithCapacity(capacity),
		scheduler.WithLogger(slog.New(warnOnly{log.Handler()})),
		scheduler.WithShutdownTimeout(max(t.d(30*time.Second), time.Second)),
		scheduler.WithAging(max(t.d(scheduler.DefaultAging), 10*time.Millisecond)),
	)
	if err != nil {
		return nil, err
	}
	ingest := func(ctx context.Context, r *kgo.Record) error {
		var lt labTask
		if err := json.Unmarshal(r.Value, &lt); err != nil {
			return err
		}
		task := genpipe.Task{Stage: stage, RequestID: lt.ID, Value: r.Value, Topic: r.Topic, Partition: r.Partition, Offset: r.Offset,
			Share: genpipe.Share{Tenant: lt.Tenant, Priority: lt.Priority, Weight: lt.Weight}.Normalized()}
		// Retried until stored: the engine commits a record whose handler
		// returned, error or not.
		return backoff.Retry(ctx, backoff.Policy{Base: time.Millisecond, Max: 100 * time.Millisecond}, func() error {
			return disp.Enqueue(ctx, task)
		}, backoff.RetryIf(func(err error) bool { return genpipe.ErrorCode(err) != genpipe.EINVALID }))
	}
	es, err := newEngineStage(conn, group, topic, ingestCapacity, partitions, members, t, ingest, events, trouble, log)
	if err != nil {
		return nil, err
	}
	return &scheduledStage{engineStage: es, disp: disp}, nil
}

// ingestCapacity is how many records a worker's consumer stores at once:
// as `genpipe worker`'s.
const ingestCapacity = 256

// run runs the dispatcher and the engine until ctx ends; the dispatcher
// stops after the engine, so that every record taken is stored.
func (s *scheduledStage) run(ctx context.Context) error {
	dctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	done := make(chan error, 1)
	go func() { done <- s.disp.Run(dctx) }()
	err := s.e.Run(ctx)
	stop()
	return errors.Join(err, <-done)
}
