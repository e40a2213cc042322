package loadtest

import (
	"math"
	"sort"
	"sync"
	"time"
)

// Stages, for counting handles.
const (
	stageCheck    = 0
	stageGenerate = 1
)

// recorder is what the lab sees happen in one profile run: when each
// request was produced, each time a stage handled it, and when its
// completion record arrived.
type recorder struct {
	mu        sync.Mutex
	produced  map[string]time.Time
	handles   [2]map[string]int
	completed map[string]time.Time
	order     []time.Time // completion times, in arrival order
}

func newRecorder() *recorder {
	return &recorder{
		produced:  map[string]time.Time{},
		handles:   [2]map[string]int{{}, {}},
		completed: map[string]time.Time{},
	}
}

func (r *recorder) produce(id string, at time.Time) {
	r.mu.Lock()
	r.produced[id] = at
	r.mu.Unlock()
}

func (r *recorder) handle(stage int, id string) {
	r.mu.Lock()
	r.handles[stage][id]++
	r.mu.Unlock()
}

// complete records a completion record; a second one for the same request
// (a redelivered generate stage) does not count again.
func (r *recorder) complete(id string, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.completed[id]; dup {
		return
	}
	r.completed[id] = at
	r.order = append(r.order, at)
}

func (r *recorder) counts() (produced, completed int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.produced), len(r.completed)
}

// redeliveries is how many times records were handled beyond once per
// request and stage.
func (r *recorder) redeliveries() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range r.handles {
		for _, c := range m {
			n += c - 1
		}
	}
	return n
}

// figures fills the timing figures of res. start is the first produce,
// genFirst when the Generative AI took its first call; scale the time scale.
func (r *recorder) figures(res *Result, start, genFirst time.Time, scale float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	unscaled := func(d time.Duration) float64 { return d.Seconds() / scale }

	res.LatenciesMs = make([]float64, 0, len(r.completed))
	for id, at := range r.completed {
		if p, ok := r.produced[id]; ok {
			res.LatenciesMs = append(res.LatenciesMs, unscaled(at.Sub(p))*1000)
		}
	}
	sort.Float64s(res.LatenciesMs)
	res.P50Ms = percentile(res.LatenciesMs, 50)
	res.P95Ms = percentile(res.LatenciesMs, 95)
	res.P99Ms = percentile(res.LatenciesMs, 99)

	var last time.Time
	res.CompletionsPerSecond = []float64{}
	for _, at := range r.order {
		sec := int(unscaled(at.Sub(start)))
		for len(res.CompletionsPerSecond) <= sec {
			res.CompletionsPerSecond = append(res.CompletionsPerSecond, 0)
		}
		res.CompletionsPerSecond[sec]++
		if at.After(last) {
			last = at
		}
	}
	// The saturated window runs from the Generative AI's first call (the
	// bottleneck stage starting work) to the last completion, so a
	// pipeline that keeps the bottleneck busy all along scores its limit
	// and one that idles part of it (waiting partitions, rebalances, a long
	// tail in one partition) scores less.
	if len(r.order) > 0 && !genFirst.IsZero() && last.After(genFirst) {
		res.ThroughputRps = float64(len(r.order)) / unscaled(last.Sub(genFirst))
	}
}

// percentile is the nearest-rank p-th percentile of sorted xs; 0 when empty.
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// maxOverMean is the fullest count over the mean count; 0 without records.
func maxOverMean(counts []int64) float64 {
	var sum, top int64
	for _, c := range counts {
		sum += c
		top = max(top, c)
	}
	if sum == 0 {
		return 0
	}
	return float64(top) / (float64(sum) / float64(len(counts)))
}
