package api

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/genpipe/genpipe"
)

// Predicted waits: the 202 of POST /v1/requests and GET /v1/requests/{id}
// carry, while the request waits, when its next AI call should start and
// its last end (genpipe.Estimator). Admission refuses, with 429
// start_too_late and a Retry-After from the same estimate, a request whose
// calls could not all start by its StartBy or within the server's bound
// (WithMaxStartWait): it would wait only to expire. The error of the
// estimates given at submission is observed when the request's calls start
// (WithEstimateObserver).

// DefaultEstimateReuse is the default of WithEstimateReuse: none, each new
// request is estimated from the queues as they are.
const DefaultEstimateReuse = 0

// MaxEstimateReuse is the most WithEstimateReuse takes: a reused estimate
// is that much older than the queues.
const MaxEstimateReuse = time.Second

// WithEstimateReuse lets the estimate of a new request stand for d for the
// next new requests of the same share. A new request's estimate depends on
// its share and the queues alone, and reading the queues costs a dozen
// store reads: a burst of submissions then shares one reading every d
// (one request reads again once d/2 has passed while the others keep the
// last) instead of paying it each. A reused estimate, and the admission by
// WithMaxStartWait decided on it, is at most d older than the queues, a
// small error beside the waits it predicts. The default is
// DefaultEstimateReuse; more than MaxEstimateReuse is invalid.
func WithEstimateReuse(d time.Duration) Option { return func(c *config) { c.estimateReuse = d } }

// DefaultMaxStartWait is the default of WithMaxStartWait: no bound.
const DefaultMaxStartWait = 0

// WithEstimator makes the API predict waits with e. The default is none:
// no estimates in answers, and no admission on them.
func WithEstimator(e genpipe.Estimator) Option { return func(c *config) { c.estimator = e } }

// WithMaxStartWait refuses a request whose last AI call is predicted to
// start more than d after its submission, with 429 start_too_late and
// Retry-After the excess. 0, DefaultMaxStartWait, is no bound; less is
// invalid. It needs WithEstimator; a request with its own StartBy is
// refused when its calls cannot start by that, whatever d.
func WithMaxStartWait(d time.Duration) Option { return func(c *config) { c.maxStartWait = d } }

// WithEstimateObserver calls observe, for each request this process
// admitted with an estimate, when each of its AI calls starts (its
// checking and generating status events) with the error of the estimate
// given at submission: actual start minus predicted, positive when it
// started later than predicted. For metrics. The default is none.
func WithEstimateObserver(observe func(stage genpipe.Stage, err time.Duration)) Option {
	return func(c *config) { c.observeEstimate = observe }
}

// estimate returns r's estimate, or ok=false without one: no estimator,
// nothing to predict, or a store that could not say (logged: an estimate
// never fails a request).
func (s *Server) estimate(ctx context.Context, r *genpipe.Request) (genpipe.Estimate, bool) {
	if s.cfg.estimator == nil || r.Status.Terminal() {
		return genpipe.Estimate{}, false
	}
	e, ok, err := s.cfg.estimator.Estimate(ctx, r)
	if err != nil {
		s.cfg.logger.Warn("estimate a request's wait", "request", r.ID, "err", err)
		return genpipe.Estimate{}, false
	}
	return e, ok
}

// admitStart estimates a new request's wait and refuses it when its last
// call could not start by its deadline: its StartBy, or now plus the
// server's bound, the earlier.
func (s *Server) admitStart(ctx context.Context, r *genpipe.Request) (genpipe.Estimate, bool, error) {
	e, ok := s.fresh.estimate(ctx, s, r)
	if !ok {
		return e, false, nil
	}
	deadline, why := r.StartBy, "its startBy"
	if d := s.cfg.maxStartWait; d > 0 {
		if bound := s.cfg.now().Add(d); deadline.IsZero() || bound.Before(deadline) {
			deadline, why = bound, "the "+d.String()+" this service lets a request wait"
		}
	}
	if deadline.IsZero() || !e.LastStartAt.After(deadline) {
		return e, true, nil
	}
	late := e.LastStartAt.Sub(deadline)
	return e, true, retryAfter(late, genpipe.Errorf(genpipe.ESTARTTOOLATE,
		"the request's AI calls are predicted to start by %s, %s after %s (%s): it would expire waiting; retry later",
		e.LastStartAt.UTC().Format(time.RFC3339), late.Round(time.Second), why, deadline.UTC().Format(time.RFC3339)))
}

// admitsOnEstimate reports whether r's admission depends on its estimate:
// whether it has a deadline to start by, its own or the server's bound.
func (s *Server) admitsOnEstimate(r *genpipe.Request) bool {
	return !r.StartBy.IsZero() || s.cfg.maxStartWait > 0
}

// startAdmission starts admitStart for r, as r is now, and returns what
// waits for its outcome. Where the estimate does not decide admission
// (admitsOnEstimate), the caller stores and queues the request meanwhile:
// at low load reading the queues takes about as long as that, and the 202
// need not wait for both one after the other. (The reading may then find
// the request's own first task already queued and count it ahead of the
// request: one task's share of the wait, rarely, as the queues are read
// before the request's event reaches Kafka.) The reading runs to its end
// even when the caller gives up, so that a failed submission neither logs
// a canceled estimate nor leaves it as its share's latest.
func (s *Server) startAdmission(ctx context.Context, r *genpipe.Request) func() (genpipe.Estimate, bool, error) {
	if s.cfg.estimator == nil {
		return func() (genpipe.Estimate, bool, error) { return genpipe.Estimate{}, false, nil }
	}
	type outcome struct {
		e   genpipe.Estimate
		ok  bool
		err error
	}
	done := make(chan outcome, 1)
	snapshot := *r // the caller goes on with r
	go func() {
		e, ok, err := s.admitStart(context.WithoutCancel(ctx), &snapshot)
		done <- outcome{e, ok, err}
	}()
	wait := sync.OnceValue(func() outcome { return <-done })
	return func() (genpipe.Estimate, bool, error) {
		o := wait()
		return o.e, o.ok, o.err
	}
}

// withEstimate sets v's estimates from r's, while it waits.
func (s *Server) withEstimate(ctx context.Context, r *genpipe.Request, v *genpipe.RequestView) {
	if e, ok := s.estimate(ctx, r); ok {
		v.EstimatedStartAt, v.EstimatedDoneAt = e.StartAt.UTC(), e.DoneAt.UTC()
	}
}

// maxPredictions bounds the estimates kept until their calls start: a
// request whose status events this process never sees is forgotten once
// this many newer ones came.
const maxPredictions = 100_000

// predictions are the estimates given at submission, kept until the
// request's calls start, to measure their error.
type predictions struct {
	mu    sync.Mutex
	byID  map[string]genpipe.Estimate
	order []string // insertion order, for the bound
}

// keep remembers e for request id.
func (p *predictions) keep(id string, e genpipe.Estimate) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.byID == nil {
		p.byID = map[string]genpipe.Estimate{}
	}
	if _, ok := p.byID[id]; !ok {
		p.order = append(p.order, id)
	}
	p.byID[id] = e
	for len(p.byID) > maxPredictions || (len(p.order) > 2*maxPredictions) {
		delete(p.byID, p.order[0])
		p.order = p.order[1:]
	}
}

// started returns the predicted start of c's call, when c says a call
// started and one was predicted, and forgets the request after its last.
func (p *predictions) started(c genpipe.StatusChange) (genpipe.Stage, time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e, ok := p.byID[c.RequestID]
	switch {
	case !ok:
		return "", time.Time{}, false
	case c.Status == genpipe.StatusChecking && e.Stage == genpipe.StageCheck:
		return genpipe.StageCheck, e.StartAt, true
	case c.Status == genpipe.StatusGenerating:
		delete(p.byID, c.RequestID)
		return genpipe.StageGenerate, e.LastStartAt, true
	case c.Status.Terminal():
		delete(p.byID, c.RequestID)
	}
	return "", time.Time{}, false
}

// observeStart measures the estimate of c's call when c says it started.
func (s *Server) observeStart(c genpipe.StatusChange) {
	if stage, predicted, ok := s.predicted.started(c); ok && !c.At.IsZero() {
		s.cfg.observeEstimate(stage, c.At.Sub(predicted))
	}
}

// maxFreshShares bounds the shares freshEstimates keeps: past it, it
// starts afresh.
const maxFreshShares = 1024

// freshEstimates are the latest estimates of new requests, by share (see
// WithEstimateReuse), and those being made. The zero value is ready to use.
type freshEstimates struct {
	mu      sync.Mutex
	last    map[genpipe.Share]freshEstimate
	reading map[genpipe.Share]*reading // estimates being made, by share

	waiting atomic.Int64 // requests waiting for another's reading, for tests
}

type freshEstimate struct {
	at time.Time
	e  genpipe.Estimate
	ok bool
}

// A reading is an estimate of a share's new request being made: once done
// is closed, e and ok are its outcome.
type reading struct {
	done chan struct{}
	e    genpipe.Estimate
	ok   bool
}

// estimate returns the estimate of r, a request not submitted yet: one
// made less than the server's estimateReuse ago for its share, the one
// being made for its share, or a new one. Under load, the estimate of a
// share is read again once half its reuse has passed, by one request
// while the others keep the last: reading the queues costs a dozen round
// trips to the store, and when the last estimate ran out instead, every
// request in flight waited for the reading (over a 2.5 ms round trip to
// PostgreSQL, half their time). Requests that come once it ran out wait
// for the reading in progress rather than each reading the queues too: a
// burst of reads takes the store's connections from the submissions'
// writes.
func (f *freshEstimates) estimate(ctx context.Context, s *Server, r *genpipe.Request) (genpipe.Estimate, bool) {
	share, now, reuse := r.Share.Normalized(), s.cfg.now(), s.cfg.estimateReuse
	// Placed without its id, as a request not submitted yet (which it
	// is): the estimator then does not look for its tasks and claims,
	// which cannot exist.
	fresh := *r
	fresh.ID = ""
	if reuse <= 0 {
		return s.estimate(ctx, &fresh)
	}
	f.mu.Lock()
	last, found := f.last[share]
	age := now.Sub(last.at)
	valid := found && age >= 0 && age < reuse
	rd, busy := f.reading[share]
	switch {
	case valid && (busy || age < reuse/2):
		f.mu.Unlock()
		return last.e, last.ok
	case busy:
		f.mu.Unlock()
		f.waiting.Add(1)
		defer f.waiting.Add(-1)
		select {
		case <-rd.done:
			return rd.e, rd.ok
		case <-ctx.Done():
			return genpipe.Estimate{}, false
		}
	}
	rd = &reading{done: make(chan struct{})}
	if f.reading == nil {
		f.reading = map[genpipe.Share]*reading{}
	}
	f.reading[share] = rd
	f.mu.Unlock()
	defer f.read(share, now, rd)
	rd.e, rd.ok = s.estimate(ctx, &fresh)
	return rd.e, rd.ok
}

// read keeps rd, the reading of share's estimate that began at now, as the
// share's latest, and hands it to the requests that wait for it.
func (f *freshEstimates) read(share genpipe.Share, now time.Time, rd *reading) {
	f.mu.Lock()
	delete(f.reading, share)
	if f.last == nil || len(f.last) >= maxFreshShares {
		f.last = map[genpipe.Share]freshEstimate{}
	}
	f.last[share] = freshEstimate{at: now, e: rd.e, ok: rd.ok}
	f.mu.Unlock()
	close(rd.done)
}
