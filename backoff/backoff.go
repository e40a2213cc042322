// Package backoff retries: Retry is genpipe's one loop that calls an
// operation again until it succeeds, and Policy says how long it waits in
// between: exponential growth with full jitter, so that many workers
// retrying a busy AI service do not retry in lockstep. Sleep and Every are
// the waits on a context that the retries and the periodic chores share.
package backoff

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// Policy says how often and how long to retry.
type Policy struct {
	Attempts int           // total attempts including the first; 0 or less: no limit, Retry goes on until its context ends
	Base     time.Duration // the delay ceiling after the first failure
	Max      time.Duration // the delay ceiling never grows beyond this
	constant bool          // wait the ceiling itself, without jitter (see Constant)
}

// Default is 6 attempts with delays up to 250ms, 500ms, 1s, 2s, 4s: about
// 8 s of retrying in the worst case, longer than a typical AI hiccup and
// far shorter than a Kafka session timeout.
var Default = Policy{Attempts: 6, Base: 250 * time.Millisecond, Max: 10 * time.Second}

// Constant returns a policy that waits d between attempts, every time and
// without jitter, with no limit on the attempts: for a process waiting on
// its own infrastructure (a topic to appear, a server to start), where no
// crowd of clients retries in lockstep and a steady pace is what the wait
// is tuned for.
func Constant(d time.Duration) Policy { return Policy{Base: d, Max: d, constant: true} }

// Delay returns the wait before attempt number attempt+1, after attempt
// failures (attempt ≥ 1): uniformly random in [0, min(Max, Base·2^(attempt-1))],
// or that ceiling itself for a Constant policy.
func (p Policy) Delay(attempt int) time.Duration {
	ceiling := p.Base
	for i := 1; i < attempt && ceiling < p.Max; i++ {
		ceiling *= 2
	}
	if p.Max > 0 && ceiling > p.Max {
		ceiling = p.Max
	}
	switch {
	case ceiling <= 0:
		return 0
	case p.constant:
		return ceiling
	}
	return rand.N(ceiling + 1)
}

// RetryOption configures Retry.
type RetryOption func(*retryConfig)

type retryConfig struct {
	retryable func(error) bool
	onRetry   func(attempt int, err error)
}

// RetryIf makes Retry return at once an error for which retryable reports
// false, overriding retrying every error: for errors that retrying cannot
// fix (a bug, a refused credential, a request the other side rejects).
func RetryIf(retryable func(err error) bool) RetryOption {
	return func(c *retryConfig) { c.retryable = retryable }
}

// OnRetry calls f after each failed attempt that is about to be retried,
// with the attempt's number (from 1) and its error, before the wait,
// overriding a no-op: to log the failure or count it. f runs on Retry's
// goroutine, so it must be quick. It is not called for the failure that
// ends Retry.
func OnRetry(f func(attempt int, err error)) RetryOption {
	return func(c *retryConfig) { c.onRetry = f }
}

// Retry calls op until it returns nil, returns an error that is not
// retried (see RetryIf), has been called p.Attempts times (no limit if
// p.Attempts is 0), or ctx ends. op is always called at least once. After
// the n-th failure it waits p.Delay(n), or longer if the error asks for a
// longer wait with a RetryAfter() time.Duration method (an HTTP 429's or
// 503's Retry-After), though never longer than p.Max.
//
// It returns nil, or the error that ended it: the one that is not retried,
// the last one when the attempts ran out, or, when ctx ended, the last one
// wrapped together with ctx's error, so that both errors.Is(err,
// context.Canceled) and the last failure's own tests hold.
func Retry(ctx context.Context, p Policy, op func() error, opts ...RetryOption) error {
	cfg := retryConfig{retryable: func(error) bool { return true }, onRetry: func(int, error) {}}
	for _, o := range opts {
		o(&cfg)
	}
	for attempt := 1; ; attempt++ {
		err := op()
		switch {
		case err == nil, !cfg.retryable(err), p.Attempts > 0 && attempt >= p.Attempts:
			return err
		case ctx.Err() != nil:
			return stopped(ctx, err)
		}
		cfg.onRetry(attempt, err)
		if Sleep(ctx, p.delay(attempt, err)) != nil {
			return stopped(ctx, err)
		}
	}
}

// delay is Delay, but no shorter than the wait err asks for, capped at Max
// so that a silly Retry-After cannot stall a caller for a day.
func (p Policy) delay(attempt int, err error) time.Duration {
	d := p.Delay(attempt)
	var asked interface{ RetryAfter() time.Duration }
	if errors.As(err, &asked) {
		d = max(d, min(asked.RetryAfter(), p.Max))
	}
	return d
}

// stopped is err, the last failure, once ctx ended the retries.
func stopped(ctx context.Context, err error) error {
	if errors.Is(err, ctx.Err()) {
		return err // the attempt itself says so
	}
	return fmt.Errorf("%w (retrying stopped: %w)", err, ctx.Err())
}

// Sleep waits d or until ctx is done, returning ctx.Err() in that case.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Every calls f every d until ctx is done, d after it started first: for
// a chore that repeats while a context lasts, such as renewing a lease.
// f runs on Every's goroutine; a tick that f overran is
// dropped, not queued.
func Every(ctx context.Context, d time.Duration, f func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f()
		}
	}
}
