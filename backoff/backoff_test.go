package backoff

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

func TestDelayStaysUnderGrowingCeiling(t *testing.T) {
	p := Policy{Attempts: 10, Base: 100 * time.Millisecond, Max: time.Second}
	ceilings := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i, c := range ceilings {
		for range 200 {
			if d := p.Delay(i + 1); d < 0 || d > c*time.Millisecond {
				t.Fatalf("Delay(%d) = %v, want within [0, %v]", i+1, d, c*time.Millisecond)
			}
		}
	}
}

func TestDelayIsJittered(t *testing.T) {
	p := Policy{Base: time.Second, Max: time.Second}
	seen := map[time.Duration]bool{}
	for range 50 {
		seen[p.Delay(1)] = true
	}
	if len(seen) < 10 {
		t.Fatalf("50 delays took only %d distinct values; want jitter", len(seen))
	}
}

func TestSleepStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Sleep(ctx, time.Hour); err != context.Canceled {
		t.Fatalf("Sleep on canceled ctx = %v, want context.Canceled", err)
	}
}

// Every calls f d apart until its context ends (here, in the third call).
func TestEveryUntilCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	start := time.Now()
	calls := 0
	Every(ctx, 10*time.Millisecond, func() {
		if calls++; calls == 3 {
			cancel()
		}
	})
	if took := time.Since(start); calls < 3 || took < 30*time.Millisecond {
		t.Fatalf("Every returned after %d calls in %v; want 3 calls 10ms apart, then its context ended", calls, took)
	}
}

func TestConstantIsNotJittered(t *testing.T) {
	p := Constant(30 * time.Millisecond)
	for attempt := 1; attempt < 10; attempt++ {
		if d := p.Delay(attempt); d != 30*time.Millisecond {
			t.Fatalf("Delay(%d) = %v, want 30ms", attempt, d)
		}
	}
}

var fast = Policy{Base: time.Millisecond, Max: time.Millisecond}

// Retry calls again until the operation succeeds, reporting each failure
// that it retries.
func TestRetryUntilSuccess(t *testing.T) {
	calls := 0
	var retried []int
	err := Retry(t.Context(), fast, func() error {
		if calls++; calls < 4 {
			return errors.New("down")
		}
		return nil
	}, OnRetry(func(attempt int, err error) { retried = append(retried, attempt) }))
	if err != nil || calls != 4 || !slices.Equal(retried, []int{1, 2, 3}) {
		t.Fatalf("Retry = %v after %d calls, retried %v; want nil after 4, retried [1 2 3]", err, calls, retried)
	}
}

// An error RetryIf refuses ends Retry at once, as it is.
func TestRetryStopsOnErrorNotRetried(t *testing.T) {
	bug := errors.New("bug")
	calls := 0
	err := Retry(t.Context(), fast, func() error {
		if calls++; calls < 2 {
			return errors.New("down")
		}
		return bug
	}, RetryIf(func(err error) bool { return err != bug }))
	if err != bug || calls != 2 {
		t.Fatalf("Retry = %v after %d calls; want the bug after 2", err, calls)
	}
}

// Attempts bounds the calls; the failure that ends Retry is not reported
// as retried.
func TestRetryAttempts(t *testing.T) {
	calls, retried := 0, 0
	last := errors.New("still down")
	p := fast
	p.Attempts = 3
	err := Retry(t.Context(), p, func() error { calls++; return last }, OnRetry(func(int, error) { retried++ }))
	if err != last || calls != 3 || retried != 2 {
		t.Fatalf("Retry = %v after %d calls, %d retried; want the last error after 3 calls, 2 retried", err, calls, retried)
	}
}

// Without a bound Retry goes on until ctx ends, and then says both why the
// operation failed and that the retries stopped. It always tries once.
func TestRetryUntilContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	down := errors.New("down")
	calls := 0
	err := Retry(ctx, fast, func() error {
		if calls++; calls == 5 {
			cancel()
		}
		return down
	})
	if !errors.Is(err, down) || !errors.Is(err, context.Canceled) || calls != 5 {
		t.Fatalf("Retry = %v after %d calls; want down and context.Canceled after 5", err, calls)
	}
	calls = 0
	if err := Retry(ctx, fast, func() error { calls++; return ctx.Err() }); err != context.Canceled || calls != 1 {
		t.Fatalf("Retry on a done context = %v after %d calls; want context.Canceled after 1", err, calls)
	}
}

type retryAfter time.Duration

func (r retryAfter) Error() string             { return "busy" }
func (r retryAfter) RetryAfter() time.Duration { return time.Duration(r) }

// An error that asks for a longer wait gets it, up to Max.
func TestRetryHonorsRetryAfter(t *testing.T) {
	p := Policy{Base: time.Millisecond, Max: 50 * time.Millisecond}
	if d := p.delay(1, retryAfter(20*time.Millisecond)); d < 20*time.Millisecond || d > 50*time.Millisecond {
		t.Errorf("delay after a Retry-After of 20ms = %v, want 20ms", d)
	}
	if d := p.delay(1, fmt.Errorf("call: %w", retryAfter(time.Hour))); d != 50*time.Millisecond {
		t.Errorf("delay after a Retry-After of 1h = %v, want Max (50ms)", d)
	}
	if d := p.delay(1, errors.New("down")); d > time.Millisecond {
		t.Errorf("delay without a Retry-After = %v, want at most Base", d)
	}
}
