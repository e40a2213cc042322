package aisim

import (
	"math"
	"testing"
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

func TestInjectorClamps(t *testing.T) {
	for _, tc := range []struct {
		name                string
		errorRate, busyRate float64
		wantError, wantBusy float64
		onlyFault           fault
		checkOnlyFaultDrawn bool
	}{
		{name: "none", onlyFault: noFault, checkOnlyFaultDrawn: true},
		{name: "negative", errorRate: -1, busyRate: math.NaN(), onlyFault: noFault, checkOnlyFaultDrawn: true},
		{name: "always 500", errorRate: 1, busyRate: 0.5, wantError: 1, onlyFault: faultError, checkOnlyFaultDrawn: true},
		{name: "always 429", busyRate: 7, wantBusy: 1, onlyFault: faultBusy, checkOnlyFaultDrawn: true},
		{name: "sum over 1", errorRate: 0.8, busyRate: 0.5, wantError: 0.8, wantBusy: 0.2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := newInjector(tc.errorRate, tc.busyRate, 1, true)
			if in.errorRate != tc.wantError || math.Abs(in.busyRate-tc.wantBusy) > 1e-12 {
				t.Errorf("rates %v, %v; want %v, %v", in.errorRate, in.busyRate, tc.wantError, tc.wantBusy)
			}
			if !tc.checkOnlyFaultDrawn {
				return
			}
			for range 100 {
				if f := in.draw(); f != tc.onlyFault {
					t.Fatalf("drew %d, want only %d", f, tc.onlyFault)
				}
			}
		})
	}
}
