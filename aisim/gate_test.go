package aisim

import (
	"testing"
	"time"
)

func TestGateRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		latency time.Duration
		want    string
	}{
		{0, "1"},
		{500 * time.Millisecond, "1"},
		{3 * time.Second, "3"},
	} {
		g := newGate(1, keepAll)
		if _, _, ok := g.acquire("a", tc.latency); !ok {
			t.Fatal("first acquire refused")
		}
		if _, ra, ok := g.acquire("b", tc.latency); ok || ra != tc.want {
			t.Errorf("latency %v: second acquire ok=%v Retry-After %q, want refused with %q", tc.latency, ok, ra, tc.want)
		}
	}
}

func TestGateReusesFreedSlots(t *testing.T) {
	g := newGate(2, keepAll)
	a, _, _ := g.acquire("a", time.Second)
	b, _, _ := g.acquire("b", time.Second)
	g.release(a, "a", succeeded)
	c, _, ok := g.acquire("c", time.Second)
	if !ok || c != a || c == b {
		t.Errorf("acquire after release: slot %d ok=%v, want slot %d", c, ok, a)
	}
	want := Stats{Calls: 3, UniqueRequests: 3, Succeeded: 1, UniqueSucceeded: 1, MaxConcurrent: 2, InFlight: 2, Capacity: 2}
	if got := g.stats(); got != want {
		t.Errorf("stats %+v, want %+v", got, want)
	}
}

// Every call that took a slot ends in one outcome; only successes count
// towards paid duplicates.
func TestGateCountsOutcomes(t *testing.T) {
	g := newGate(4, keepAll)
	for _, c := range []struct {
		id  string
		res result
	}{
		{"a", failed},    // a 502: a retry of a is not a duplicate payment
		{"a", succeeded}, // the retry
		{"b", succeeded},
		{"b", succeeded}, // paid twice
		{"c", abandoned},
	} {
		slot, _, ok := g.acquire(c.id, time.Second)
		if !ok {
			t.Fatalf("acquire %s refused", c.id)
		}
		g.release(slot, c.id, c.res)
	}
	want := Stats{Calls: 5, UniqueRequests: 3, Succeeded: 3, UniqueSucceeded: 2, Failed: 1, Abandoned: 1,
		MaxConcurrent: 1, Capacity: 4}
	if got := g.stats(); got != want {
		t.Errorf("stats %+v, want %+v", got, want)
	}
}

func BenchmarkGate(b *testing.B) {
	g := newGate(DefaultCapacity, keepAll)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if slot, _, ok := g.acquire("r", time.Second); ok {
				g.release(slot, "r", succeeded)
			}
		}
	})
}
