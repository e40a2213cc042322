package loadtest

import (
	"fmt"
	"math"
	"time"
)

// Shapes of a workload.
const (
	ShapeBurst  = "burst"  // BurstSize requests at once, then a pause, so the mean rate is Rate
	ShapeSteady = "steady" // one request every 1/Rate
	ShapeRamp   = "ramp"   // a rate rising linearly from 0 to 2×Rate (mean Rate)
)

// Defaults of a workload.
const (
	DefaultBurstSize = 128
	DefaultRequests  = 2560
	// DefaultOverload is the offered rate when Rate is 0, as a multiple of
	// the scenario's maxRps: a little above the limit, so that a pipeline
	// that can reach the limit does, and one that cannot shows it.
	DefaultOverload = 1.25
)

// Workload is what the lab sends: when each request is produced. Times are
// unscaled (the lab multiplies them by the time scale).
type Workload struct {
	Shape     string        // ShapeBurst (default), ShapeSteady or ShapeRamp
	Requests  int           // how many; 0 means Duration × Rate, or DefaultRequests without a Duration
	Duration  time.Duration // how long to send for, when Requests is 0
	Rate      float64       // mean requests per second; 0 means DefaultOverload × maxRps
	BurstSize int           // requests per burst (burst shape); 0 means DefaultBurstSize
}

// Schedule returns when each request is sent, as offsets from the start,
// unscaled, in order. maxRps is the scenario's limit, for the default rate.
func (w Workload) Schedule(maxRps float64) ([]time.Duration, error) {
	rate := w.Rate
	if rate <= 0 {
		rate = DefaultOverload * maxRps
	}
	if rate <= 0 || math.IsInf(rate, 0) || math.IsNaN(rate) {
		return nil, fmt.Errorf("loadtest: bad rate %v", rate)
	}
	n := w.Requests
	if n <= 0 {
		if w.Duration > 0 {
			n = int(math.Round(w.Duration.Seconds() * rate))
		} else {
			n = DefaultRequests
		}
	}
	if n <= 0 {
		return nil, fmt.Errorf("loadtest: a workload needs at least one request")
	}
	sec := func(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
	out := make([]time.Duration, n)
	switch shape := w.shape(); shape {
	case ShapeBurst:
		size := w.BurstSize
		if size <= 0 {
			size = DefaultBurstSize
		}
		pause := float64(size) / rate
		for i := range out {
			out[i] = sec(float64(i/size) * pause)
		}
	case ShapeSteady:
		for i := range out {
			out[i] = sec(float64(i) / rate)
		}
	case ShapeRamp:
		// rate(t) = 2·rate·t/T, so the i-th request goes at T·sqrt(i/n)
		// with T = n/rate.
		total := float64(n) / rate
		for i := range out {
			out[i] = sec(total * math.Sqrt(float64(i)/float64(n)))
		}
	default:
		return nil, fmt.Errorf("loadtest: unknown shape %q (burst, steady or ramp)", shape)
	}
	return out, nil
}

func (w Workload) shape() string {
	if w.Shape == "" {
		return ShapeBurst
	}
	return w.Shape
}
