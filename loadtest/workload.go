package loadtest

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/genpipe/genpipe"
)

// Shapes of a workload.
const (
	ShapeBurst  = "burst"  // BurstSize requests at once, then a pause, so the mean rate is Rate
	ShapeSteady = "steady" // one request every 1/Rate
	ShapeRamp   = "ramp"   // a rate rising linearly from 0 to 2×Rate (mean Rate)
	// ShapeTenants is a report's shape for a multi-tenant workload: each
	// stream has a shape of its own.
	ShapeTenants = "tenants"
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

	// Name names a multi-tenant workload (WorkloadNoisyNeighbor, ...) in
	// the report, and chooses the targets it is checked against.
	Name string
	// Streams, when set, make the workload multi-tenant: each stream sends
	// the requests of one tenant at one priority, and the fields above
	// except Name are ignored.
	Streams []Stream
}

// Stream is one tenant's requests at one priority in a multi-tenant
// workload: a workload of its own (shape, requests, rate, burst size) that
// starts at Start, every request carrying Share.
type Stream struct {
	Share     genpipe.Share
	Start     time.Duration // unscaled, from the run's start
	Shape     string
	Requests  int
	Rate      float64
	BurstSize int
}

// send is one request of a workload's plan: when it is produced (unscaled,
// from the start) and whose it is.
type send struct {
	at    time.Duration
	share genpipe.Share
}

// plan returns every request of the workload in the order they are sent.
// Without streams every request is the default tenant's at normal priority
// (an empty Share, as events of builds before tenants). Streams are merged
// by time; requests due at once alternate between the streams, so two
// bursts at the same instant interleave as two clients sending at once
// would.
func (w Workload) plan(maxRps float64) ([]send, error) {
	if len(w.Streams) == 0 {
		sched, err := w.Schedule(maxRps)
		if err != nil {
			return nil, err
		}
		out := make([]send, len(sched))
		for i, at := range sched {
			out[i] = send{at: at}
		}
		return out, nil
	}
	type indexed struct {
		send
		i, stream int
	}
	var all []indexed
	for k, st := range w.Streams {
		// The share is checked as every event's is: the lab's records
		// carry it as genpipe's do.
		if _, err := genpipe.EncodeEvent(genpipe.Event{Version: genpipe.EventVersion, Type: genpipe.EventStatus,
			RequestID: "x", Status: genpipe.StatusReceived, Share: st.Share}); err != nil {
			return nil, fmt.Errorf("loadtest: stream %d: %w", k, err)
		}
		sched, err := Workload{Shape: st.Shape, Requests: st.Requests, Rate: st.Rate, BurstSize: st.BurstSize}.Schedule(maxRps)
		if err != nil {
			return nil, fmt.Errorf("loadtest: stream %d (%s): %w", k, st.Share.Normalized().Tenant, err)
		}
		for i, at := range sched {
			all = append(all, indexed{send{at: st.Start + at, share: st.Share}, i, k})
		}
	}
	slices.SortStableFunc(all, func(a, b indexed) int {
		switch {
		case a.at != b.at:
			return cmp.Compare(a.at, b.at)
		case a.i != b.i:
			return a.i - b.i
		}
		return a.stream - b.stream
	})
	out := make([]send, len(all))
	for i, a := range all {
		out[i] = a.send
	}
	return out, nil
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
