package aisim

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/httpjson"
)

// WithAbort sets whether the service aborts a running call when its
// client asks (DELETE /v1/calls/{Idempotency-Key}): it stops the work,
// frees the slot and counts the call aborted. Default true. A service
// that does not abort answers such a DELETE 501, and its calls run to
// their end even when their client goes away, as a service that never
// notices would; for tests of a client that must discard the answer.
func WithAbort(abort bool) Option { return func(c *config) { c.noAbort = !abort } }

// errAborted is the cause of a call's context when its client aborted it.
var errAborted = errors.New("aborted by its client")

// calls are the running calls that carry an idempotency key.
type calls struct {
	mu sync.Mutex
	m  map[string]*call
}

type call struct {
	abort   context.CancelCauseFunc
	aborted chan struct{} // closed by the abort
	once    sync.Once
	done    chan struct{} // closed once the call freed its slot
}

// track returns the context a call's work runs under, a channel closed
// when the call is aborted (nil: it cannot be), and the func to call when
// the call has freed its slot. A call with key can be aborted; without
// abort the work ignores its client going away.
func (s *Service) track(ctx context.Context, key string) (context.Context, <-chan struct{}, func()) {
	if s.cfg.noAbort {
		return context.WithoutCancel(ctx), nil, func() {}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	if key == "" {
		return ctx, nil, func() { cancel(nil) }
	}
	c := &call{done: make(chan struct{}), aborted: make(chan struct{})}
	c.abort = func(cause error) {
		cancel(cause)
		c.once.Do(func() { close(c.aborted) })
	}
	s.calls.mu.Lock()
	if s.calls.m == nil {
		s.calls.m = map[string]*call{}
	}
	s.calls.m[key] = c
	s.calls.mu.Unlock()
	return ctx, c.aborted, func() {
		s.calls.mu.Lock()
		if s.calls.m[key] == c {
			delete(s.calls.m, key)
		}
		s.calls.mu.Unlock()
		cancel(nil)
		close(c.done)
	}
}

// work runs a call's work and returns its result, or, as soon as the call
// is aborted, errAborted: the work then ends on its own (it sees its
// context canceled at its next step: a render under way finishes first)
// while the call frees its slot at once.
func work(ctx context.Context, aborted <-chan struct{}, run func(context.Context) (any, error)) (any, error) {
	type result struct {
		out any
		err error
	}
	ch := make(chan result, 1)
	go func() {
		out, err := run(ctx)
		ch <- result{out, err}
	}()
	select {
	case r := <-ch:
		return r.out, r.err
	case <-aborted:
		return nil, errAborted
	}
}

// serveAbort aborts the running call with the key in the path and answers
// once its slot is free.
func (s *Service) serveAbort(w http.ResponseWriter, r *http.Request) {
	if s.cfg.noAbort {
		httpjson.WriteProblem(w, http.StatusNotImplemented, "not_implemented", "this service does not abort calls: they run to their end")
		return
	}
	key := r.PathValue("key")
	s.calls.mu.Lock()
	c := s.calls.m[key]
	s.calls.mu.Unlock()
	if c == nil {
		s.problem(w, r, genpipe.Errorf(genpipe.ENOTFOUND, "no call with this Idempotency-Key is running"))
		return
	}
	c.abort(errAborted)
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	select {
	case <-c.done:
		httpjson.Write(w, http.StatusOK, map[string]bool{"aborted": true})
	case <-r.Context().Done():
	case <-t.C:
		s.problem(w, r, errors.New("the aborted call did not stop in time"))
	}
}
