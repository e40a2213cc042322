package api

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/genpipe/genpipe"
)

// Admission control: the API refuses work at once, with 429 and
// Retry-After, rather than queue what would wait long (backlog) or let one
// client crowd out the others (rate limit). Both are decided in memory (the
// backlog is counted in the store once a second at most), before the body
// is read: a refused client waits for nothing, least of all the AI.

// admit refuses a new request when the backlog is at its bound.
func (s *Server) admit(ctx context.Context) error {
	if n, full := s.backlog.full(ctx, s.cfg.now(), s.cfg.logger); full {
		return genpipe.Errorf(genpipe.ETOOMANY,
			"%d requests are waiting for the AI, the most this service queues; retry later", n)
	}
	return nil
}

// backlogRefresh is how long a backlog count is used before it is read
// again from the status store.
const backlogRefresh = time.Second

// backlogGauge knows the backlog without counting it on every request: it
// reads the status store at most once per backlogRefresh and adds this
// process's acceptances in between, so one process cannot overshoot its
// bound between refreshes.
type backlogGauge struct {
	max   int // 0: no bound
	store interface {
		Backlog(context.Context) (int, error)
	}

	mu       sync.Mutex
	n        int
	at       time.Time // when n was read from the store; zero before the first read
	counting bool      // a refresh is under way: others use n meanwhile
}

// full reports whether the backlog is at the bound, and its size. A store
// that cannot count does not stop the API: the last count stands.
func (g *backlogGauge) full(ctx context.Context, now time.Time, log *slog.Logger) (int, bool) {
	if g.max <= 0 {
		return 0, false
	}
	g.mu.Lock()
	stale := !g.counting && (g.at.IsZero() || now.Sub(g.at) >= backlogRefresh)
	if !stale {
		defer g.mu.Unlock()
		return g.n, g.n >= g.max
	}
	g.counting = true
	g.mu.Unlock()

	n, err := g.store.Backlog(ctx)
	g.mu.Lock()
	defer g.mu.Unlock()
	g.counting = false
	if err != nil {
		log.Warn("count the backlog", "err", err)
	} else {
		g.n, g.at = n, now
	}
	return g.n, g.n >= g.max
}

// added counts a request this process has just queued.
func (g *backlogGauge) added() {
	g.mu.Lock()
	g.n++
	g.mu.Unlock()
}

// rateLimiter is a token bucket per client: each holds up to burst tokens,
// refilled at rate a second, and a request takes one.
type rateLimiter struct {
	rate, burst float64

	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	tokens float64
	at     time.Time // when tokens was computed
}

func newRateLimiter(rate float64, burst int) *rateLimiter {
	return &rateLimiter{rate: rate, burst: float64(max(burst, 1)), buckets: map[string]*bucket{}}
}

// take spends one of client's tokens at now; without one it says how long
// until there is one.
func (l *rateLimiter) take(client string, now time.Time) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweep(now)
	b, ok := l.buckets[client]
	if !ok {
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[client] = b
	}
	if now.After(b.at) { // a clock stepping back refills nothing
		b.tokens, b.at = l.level(b, now), now
	}
	if b.tokens < 1 {
		return time.Duration((1 - b.tokens) / l.rate * float64(time.Second)), false
	}
	b.tokens--
	return 0, true
}

// level is b's token count at now.
func (l *rateLimiter) level(b *bucket, now time.Time) float64 {
	elapsed := max(now.Sub(b.at).Seconds(), 0)
	return min(l.burst, b.tokens+elapsed*l.rate)
}

// sweep forgets, once a minute, the clients whose bucket is full again:
// a full bucket is what a new client gets, so memory holds only the
// clients active in the last minute or so.
func (l *rateLimiter) sweep(now time.Time) {
	if now.Sub(l.swept) < time.Minute {
		return
	}
	l.swept = now
	for client, b := range l.buckets {
		if l.level(b, now) >= l.burst {
			delete(l.buckets, client)
		}
	}
}

// retryLaterError is an error whose answer tells the client when to retry.
type retryLaterError struct {
	err   error
	after time.Duration
}

func (e *retryLaterError) Error() string { return e.err.Error() }
func (e *retryLaterError) Unwrap() error { return e.err }

func retryAfter(d time.Duration, err error) error { return &retryLaterError{err: err, after: d} }

// retryAfterSeconds is the Retry-After of err: its own when it has one,
// else 2 seconds. Retry-After counts whole seconds, so it is rounded up.
func retryAfterSeconds(err error) int {
	var rl *retryLaterError
	if errors.As(err, &rl) {
		return max(1, int(math.Ceil(rl.after.Seconds())))
	}
	if be, ok := genpipe.IsBudget(err); ok { // until the budget resets
		return max(1, int(math.Ceil(be.RetryAfter().Seconds())))
	}
	return 2
}
