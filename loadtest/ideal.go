package loadtest

import (
	"cmp"
	"slices"
	"time"
)

// Arrival is one request of a schedule as the ideal pipeline sees it: when
// it arrives and which path it takes.
type Arrival struct {
	At time.Duration // unscaled, from the run's start
	// Rejected requests are turned down by the check and complete at its
	// end, without a generative call.
	Rejected bool
}

// IdealRun is what a pipeline without overhead makes of a schedule of
// arrivals, measured as the lab measures a profile: ThroughputRps is the
// completions over the window from the first generative call to the last
// completion, Utilization that over the scenario's MaxRps.
type IdealRun struct {
	Completed      int
	FirstGenerate  time.Duration // unscaled, from the run's start; 0 without a generative call
	LastCompletion time.Duration
	ThroughputRps  float64
	Utilization    float64
}

// Ideal simulates sc's two AI stages, with their capacities and latencies,
// on arrivals with nothing in between: hand-over from one stage to the
// next is instant, and a slot never stays free while a request waits for
// it. Requests take the stages in the order they reach them.
//
// That is the best any pipeline can do on the schedule: every call of a
// stage takes the same time, so serving the earliest-ready request as soon
// as a slot frees makes each stage's k-th completion as early as it can
// be, and so the last completion. The window starts at the earliest
// possible first generative call: a pipeline could score higher only by
// holding back that call while work waits, which no scheduler should.
//
// A scenario without capacity or latency, or a schedule without a
// generative call, has no utilization (0, as the measured figure).
func Ideal(sc Scenario, arrivals []Arrival) IdealRun {
	if len(arrivals) == 0 {
		return IdealRun{}
	}
	sorted := slices.Clone(arrivals)
	slices.SortStableFunc(sorted, func(a, b Arrival) int { return cmp.Compare(a.At, b.At) })

	ready := make([]time.Duration, len(sorted))
	for i, a := range sorted {
		ready[i] = a.At
	}
	checked := stageEnds(ready, sc.CheckCapacity, sc.CheckLatency)

	run := IdealRun{Completed: len(sorted)}
	var toGenerate []time.Duration // check ends of the passing requests, in order
	for i, a := range sorted {
		if a.Rejected {
			run.LastCompletion = max(run.LastCompletion, checked[i])
			continue
		}
		toGenerate = append(toGenerate, checked[i])
	}
	if len(toGenerate) == 0 {
		return run
	}
	generated := stageEnds(toGenerate, sc.GenerateCapacity, sc.GenerateLatency)
	run.FirstGenerate = generated[0] - sc.GenerateLatency
	run.LastCompletion = max(run.LastCompletion, generated[len(generated)-1])
	window := run.LastCompletion - run.FirstGenerate
	if maxRps := sc.MaxRps(); window > 0 && maxRps > 0 && sc.CheckCapacity > 0 && sc.GenerateCapacity > 0 {
		run.ThroughputRps = float64(run.Completed) / window.Seconds()
		run.Utilization = run.ThroughputRps / maxRps
	}
	return run
}

// stageEnds returns when each request of ready (sorted) leaves a stage of
// capacity slots, each call taking latency, served in order as soon as a
// slot is free. Calls all take the same time, so the slot the k-th call
// takes is the one the (k−capacity)-th freed: its start is the later of
// its request being ready and that call's end.
func stageEnds(ready []time.Duration, capacity int, latency time.Duration) []time.Duration {
	capacity = max(capacity, 1)
	ends := make([]time.Duration, len(ready))
	for k, at := range ready {
		start := at
		if k >= capacity {
			start = max(start, ends[k-capacity])
		}
		ends[k] = start + latency
	}
	return ends
}
