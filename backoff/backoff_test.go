package backoff

import (
	"context"
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

func TestMaxAttemptsAtLeastOne(t *testing.T) {
	if got := (Policy{}).MaxAttempts(); got != 1 {
		t.Fatalf("MaxAttempts of zero policy = %d, want 1", got)
	}
}
