// Package backoff computes retry delays: exponential growth with full
// jitter, so that many workers retrying a busy AI service do not retry in
// lockstep.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Policy says how often and how long to retry.
type Policy struct {
	Attempts int           // total attempts including the first; < 1 means 1
	Base     time.Duration // the delay ceiling after the first failure
	Max      time.Duration // the delay ceiling never grows beyond this
}

// Default is 6 attempts with delays up to 250ms, 500ms, 1s, 2s, 4s: about
// 8 s of retrying in the worst case, longer than a typical AI hiccup and
// far shorter than a Kafka session timeout.
var Default = Policy{Attempts: 6, Base: 250 * time.Millisecond, Max: 10 * time.Second}

// Delay returns the wait before attempt number attempt+1, after attempt
// failures (attempt ≥ 1): uniformly random in [0, min(Max, Base·2^(attempt-1))].
func (p Policy) Delay(attempt int) time.Duration {
	ceiling := p.Base
	for i := 1; i < attempt && ceiling < p.Max; i++ {
		ceiling *= 2
	}
	if p.Max > 0 && ceiling > p.Max {
		ceiling = p.Max
	}
	if ceiling <= 0 {
		return 0
	}
	return rand.N(ceiling + 1)
}

// MaxAttempts returns Attempts, at least 1.
func (p Policy) MaxAttempts() int { return max(p.Attempts, 1) }

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
