package api

import (
	"testing"
	"time"
)

// The token bucket's arithmetic, on a clock the test moves.
func TestRateLimiterBucket(t *testing.T) {
	l := newRateLimiter(2, 3) // 2 a second, bursts of 3
	t0 := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	take := func(client string, at time.Duration, wantOK bool, wantWait time.Duration) {
		t.Helper()
		wait, ok := l.take(client, t0.Add(at))
		if ok != wantOK || (!ok && (wait < wantWait-time.Millisecond || wait > wantWait+time.Millisecond)) {
			t.Fatalf("take(%s) at +%s = wait %s, ok %v; want ok %v, wait %s", client, at, wait, ok, wantOK, wantWait)
		}
	}
	for range 3 {
		take("a", 0, true, 0)
	}
	take("a", 0, false, 500*time.Millisecond)
	take("b", 0, true, 0) // another client has its own bucket
	take("a", 400*time.Millisecond, false, 100*time.Millisecond)
	take("a", 500*time.Millisecond, true, 0)
	take("a", 10*time.Second, true, 0) // refilled to the burst, not beyond
	take("a", 10*time.Second, true, 0)
	take("a", 10*time.Second, true, 0)
	take("a", 10*time.Second, false, 500*time.Millisecond)
	take("a", 9*time.Second, false, 500*time.Millisecond) // a clock going back refills nothing

	// Clients whose bucket is full again are forgotten, once a minute.
	take("c", 2*time.Minute, true, 0)
	if _, ok := l.buckets["b"]; ok {
		t.Errorf("idle client b still has a bucket after the sweep")
	}
	if _, ok := l.buckets["c"]; !ok {
		t.Errorf("active client c has no bucket")
	}
}
