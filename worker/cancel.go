package worker

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/internal/invalid"
)

// DefaultCancelPoll is how often a CancelWatcher asks the status database
// whether the requests of the process's running AI calls were canceled
// (see WithCancelPoll): a cancel aborts a running call within about this,
// plus the AI's answer to the abort. It asks only while calls run, one
// indexed read for all of them.
const DefaultCancelPoll = 50 * time.Millisecond

// CancelWatcher watches the requests of a worker process's running AI
// calls and, when one is canceled, cancels the contexts of its calls with
// the cause genpipe.ErrCanceled, so that the AI client aborts them (see
// package aiclient). One per process serves every stage: pass it to each
// with WithCancelWatcher, and Run it.
type CancelWatcher struct {
	store genpipe.CancelStore
	poll  time.Duration
	log   *slog.Logger

	mu      sync.Mutex
	watched map[string]map[*watch]struct{} // by request id
}

// watch is one call's hold on a request id.
type watch struct{ cancel context.CancelCauseFunc }

// WatchOption configures a CancelWatcher.
type WatchOption func(*CancelWatcher)

// WithCancelPoll sets how often the watcher polls, overriding
// DefaultCancelPoll; it must be positive.
func WithCancelPoll(d time.Duration) WatchOption { return func(w *CancelWatcher) { w.poll = d } }

// WithWatchLogger sets the watcher's logger, overriding slog.Default().
func WithWatchLogger(l *slog.Logger) WatchOption { return func(w *CancelWatcher) { w.log = l } }

// NewCancelWatcher returns a watcher on store, or an error naming an
// option out of range.
func NewCancelWatcher(store genpipe.CancelStore, opts ...WatchOption) (*CancelWatcher, error) {
	w := &CancelWatcher{store: store, poll: DefaultCancelPoll, log: slog.Default(), watched: map[string]map[*watch]struct{}{}}
	for _, o := range opts {
		o(w)
	}
	check := invalid.New("worker")
	check.If(w.poll <= 0, "cancel poll %v: want more than 0", w.poll)
	check.If(store == nil, "a cancel watcher needs a store")
	if err := check.Err(); err != nil {
		return nil, err
	}
	return w, nil
}

// Run polls until ctx ends, then returns nil. A failing poll is logged
// and retried at the next one.
func (w *CancelWatcher) Run(ctx context.Context) error {
	t := time.NewTicker(w.poll)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		err := w.check(ctx)
		switch {
		case err != nil && !failing && ctx.Err() == nil:
			w.log.Warn("watching for canceled requests failed; retrying every poll", "err", err)
			failing = true
		case err == nil && failing:
			w.log.Info("watching for canceled requests works again")
			failing = false
		}
	}
}

// check asks once about every watched request and cancels the calls of
// those canceled.
func (w *CancelWatcher) check(ctx context.Context) error {
	w.mu.Lock()
	ids := slices.Collect(maps.Keys(w.watched))
	w.mu.Unlock()
	if len(ids) == 0 {
		return nil
	}
	canceled, err := w.store.CanceledRequests(ctx, ids)
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, id := range canceled {
		for wt := range w.watched[id] {
			wt.cancel(genpipe.ErrCanceled)
		}
		delete(w.watched, id)
		w.log.Info("request canceled: aborting its AI call", "request", id)
	}
	return nil
}

// Watch returns a context that ends with the cause genpipe.ErrCanceled
// once request id is seen canceled, and the func that stops watching (and
// ends the context without that cause).
func (w *CancelWatcher) Watch(id string) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(context.Background())
	wt := &watch{cancel: cancel}
	w.mu.Lock()
	if w.watched[id] == nil {
		w.watched[id] = map[*watch]struct{}{}
	}
	w.watched[id][wt] = struct{}{}
	w.mu.Unlock()
	return ctx, func() {
		w.mu.Lock()
		delete(w.watched[id], wt)
		if len(w.watched[id]) == 0 {
			delete(w.watched, id)
		}
		w.mu.Unlock()
		cancel(nil)
	}
}

// WithCancelWatcher makes the stage abort the AI call of a request that is
// canceled while the call runs: w watches it (run w too). Without one, a
// call runs to its end and its answer is discarded (the request stays
// canceled).
func WithCancelWatcher(w *CancelWatcher) Option { return func(c *config) { c.watcher = w } }

// WithExpiredHook sets a func called with the tenant of each request the
// stage reported expired (its claim refused past its StartBy), overriding a
// no-op: for metrics.
func WithExpiredHook(hook func(tenant string)) Option { return func(c *config) { c.onExpired = hook } }

// canceledKey keys the context that ends when the request of the work
// under way is canceled (see follow).
type canceledKey struct{}

// watchRequest returns ctx carrying the cancel signal of request id, and
// the func that stops watching. Without a watcher, ctx as it is.
func (s *stage) watchRequest(ctx context.Context, id string) (context.Context, context.Context, func()) {
	if s.watcher == nil {
		return ctx, nil, func() {}
	}
	sig, stop := s.watcher.Watch(id)
	return context.WithValue(ctx, canceledKey{}, sig), sig, stop
}

// follow returns a context of parent that also ends, with the cause
// genpipe.ErrCanceled, when the request of ctx's work is canceled.
func follow(parent, ctx context.Context) (context.Context, func()) {
	c, cancel := context.WithCancelCause(parent)
	sig, _ := ctx.Value(canceledKey{}).(context.Context)
	if sig == nil {
		return c, func() { cancel(nil) }
	}
	stop := context.AfterFunc(sig, func() {
		if errors.Is(context.Cause(sig), genpipe.ErrCanceled) {
			cancel(genpipe.ErrCanceled)
		}
	})
	return c, func() { stop(); cancel(nil) }
}

// wasCanceled reports whether sig ended because its request was canceled.
func wasCanceled(sig context.Context) bool {
	return sig != nil && errors.Is(context.Cause(sig), genpipe.ErrCanceled)
}

// refused ends the handling of a request the store refused or that was
// canceled under way, and reports whether it did: a canceled one publishes
// nothing (its canceled status is published by whoever canceled it), an
// expired one is reported expired with the reason.
func (s *stage) refused(ctx context.Context, e genpipe.Event, o outcome) (bool, error) {
	switch o.state {
	case genpipe.ClaimCanceled:
		return true, nil
	case genpipe.ClaimExpired:
		if err := s.setStatus(ctx, e, genpipe.StatusExpired, nil, o.output); err != nil {
			return true, err
		}
		if o.ended { // counted once, by the handling that ended it
			s.onExpired(e.Share.Tenant)
		}
		return true, nil
	}
	return false, nil
}
