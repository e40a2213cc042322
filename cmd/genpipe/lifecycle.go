package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/api"
	"github.com/genpipe/genpipe/backoff"
	"github.com/genpipe/genpipe/worker"
)

// Cancel and deadlines, wired: the API cancels through the status store
// and publishes the canceled event; each worker process watches its
// running calls' requests; the dispatchers report the requests the queue
// expired.

// registerCancelPoll adds -cancel-poll (worker and up).
func registerCancelPoll(f *flags, poll *time.Duration) {
	f.Duration(poll, "cancel-poll", "GENPIPE_CANCEL_POLL", worker.DefaultCancelPoll,
		"how often a worker process asks the status database whether the requests of its running AI calls were canceled "+
			"(one indexed read, only while calls run): a cancel aborts a running call within about this",
		between(time.Millisecond, time.Minute))
}

// cancelOptions are the API's options for DELETE /v1/requests/{id}: the
// canceler on d's store and producer, and the canceled requests' metric.
func cancelOptions(d *deps, topics genpipe.Topics, obs *observability, log *slog.Logger) []api.Option {
	c := genpipe.NewCanceler(d.store, d.producer, topics.Results)
	c.OnPublishFailure(func(id string, err error) {
		log.Warn("canceled event not published: SSE streams see the cancel at their next poll; its webhook is queued", "request", id, "err", err)
	})
	return []api.Option{api.WithCanceler(c), api.WithCancelHook(func(r *genpipe.Request) { obs.metrics.RequestCanceled(r.Tenant) })}
}

// watchCancels runs a cancel watcher on d's store, polling every poll,
// until the returned stop is called (after the stages' calls ended: calls
// given up at shutdown still run, and a cancel still aborts them).
func watchCancels(ctx context.Context, d *deps, poll time.Duration, log *slog.Logger) (*worker.CancelWatcher, func(), error) {
	w, err := worker.NewCancelWatcher(d.store, worker.WithCancelPoll(poll), worker.WithWatchLogger(log))
	if err != nil {
		return nil, nil, err
	}
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() { defer close(done); w.Run(wctx) }()
	return w, func() { cancel(); <-done }, nil
}

// expiredPublishWindow bounds how long a dispatcher retries the expired
// event of a task the queue expired (the store ended the request expired
// and queued its webhook already: the event is for SSE streams).
const expiredPublishWindow = time.Minute

// reportExpired returns the dispatcher's expired hook: it publishes the
// expired status event of the task's request, with its share and deadline,
// and counts it.
func reportExpired(d *deps, obs *observability, log *slog.Logger) func(context.Context, genpipe.Task) {
	topic := genpipe.DefaultTopics().Results
	return func(ctx context.Context, t genpipe.Task) {
		obs.metrics.RequestExpired(t.Share.Tenant)
		e := genpipe.NewStatusEvent(genpipe.StatusChange{RequestID: t.RequestID, Status: genpipe.StatusExpired,
			Error: genpipe.ExpiredReason(t.Stage, t.StartBy), At: time.Now()})
		e.Share, e.StartBy = t.Share, t.StartBy
		value, err := genpipe.EncodeEvent(e)
		if err != nil {
			log.Error("expired event", "request", t.RequestID, "err", err)
			return
		}
		ctx, cancel := context.WithTimeout(ctx, expiredPublishWindow)
		defer cancel()
		err = backoff.Retry(ctx, backoff.Policy{Base: 100 * time.Millisecond, Max: 5 * time.Second}, func() error {
			return d.producer.Publish(ctx, topic, t.RequestID, value)
		})
		if err != nil {
			log.Warn("expired event not published: SSE streams see it at their next poll; its webhook is queued", "request", t.RequestID, "err", err)
		}
	}
}
