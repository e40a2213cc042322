package aisim

import (
	"math"
	"strings"
	"testing"
	"time"
)

// The draws follow the rates, and the same seed gives the same sequence.
func TestInjectorRates(t *testing.T) {
	const n = 20000
	a := newInjector(0.1, 0.2, 42, true)
	b := newInjector(0.1, 0.2, 42, true)
	counts := map[fault]int{}
	for i := range n {
		fa, fb := a.draw(), b.draw()
		if fa != fb {
			t.Fatalf("draw %d: %v and %v from the same seed", i, fa, fb)
		}
		counts[fa]++
	}
	for _, c := range []struct {
		f    fault
		rate float64
	}{{faultError, 0.1}, {faultBusy, 0.2}, {noFault, 0.7}} {
		// 5 standard deviations: a seeded draw either passes or not, for good.
		sd := math.Sqrt(n * c.rate * (1 - c.rate))
		if got := float64(counts[c.f]); math.Abs(got-n*c.rate) > 5*sd {
			t.Errorf("fault %d drawn %v times in %d, want about %v", c.f, got, n, n*c.rate)
		}
	}
	if e, busy := a.counts(); e != int64(counts[faultError]) || busy != int64(counts[faultBusy]) {
		t.Errorf("counts %d, %d; want %d, %d", e, busy, counts[faultError], counts[faultBusy])
	}
}

// Rates of 0 and 1 draw only the one outcome.
func TestInjectorEdges(t *testing.T) {
	for _, tc := range []struct {
		name                string
		errorRate, busyRate float64
		only                fault
	}{
		{name: "none", only: noFault},
		{name: "always 500", errorRate: 1, only: faultError},
		{name: "always 429", busyRate: 1, only: faultBusy},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := newInjector(tc.errorRate, tc.busyRate, 1, true)
			for range 100 {
				if f := in.draw(); f != tc.only {
					t.Fatalf("drew %d, want only %d", f, tc.only)
				}
			}
		})
	}
}

// Rates out of range are refused with an error naming them, not clamped.
func TestRatesOutOfRange(t *testing.T) {
	for _, tc := range []struct {
		opts []Option
		want string
	}{
		{[]Option{WithFaultRate(-1)}, "fault rate"},
		{[]Option{WithFaultRate(math.NaN())}, "fault rate"},
		{[]Option{WithBusyRate(7)}, "busy rate"},
		{[]Option{WithFaultRate(0.8), WithBusyRate(0.5)}, "at most 1 together"},
		{[]Option{WithCapacity(0)}, "capacity"},
		{[]Option{WithLatency(-time.Second)}, "latency"},
	} {
		if _, err := NewCheckService(tc.opts...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewCheckService with a bad %s = %v; want an error naming it", tc.want, err)
		}
	}
}
