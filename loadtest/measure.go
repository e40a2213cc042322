package loadtest

import (
	"cmp"
	"math"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/internal/span"
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
	shares    map[string]genpipe.Share // normalized, by request
	handles   [2]map[string]int
	completed map[string]time.Time
	order     []time.Time // completion times, in arrival order
}

func newRecorder() *recorder {
	return &recorder{
		produced:  map[string]time.Time{},
		shares:    map[string]genpipe.Share{},
		handles:   [2]map[string]int{{}, {}},
		completed: map[string]time.Time{},
	}
}

func (r *recorder) produce(id string, at time.Time, share genpipe.Share) {
	r.mu.Lock()
	r.produced[id] = at
	r.shares[id] = share.Normalized()
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

// tenantFigures fills res.Tenants and res.ContendedCalls: one row per
// tenant and priority, from what was produced, the Generative AI's calls
// (capacity slots) and the completions. start is the first produce,
// genFirst the AI's first call; scale the time scale.
func (r *recorder) tenantFigures(res *Result, calls []aiCall, capacity int, start, genFirst time.Time, scale float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	unscaledMs := func(d time.Duration) float64 { return d.Seconds() / scale * 1000 }

	type rowKey struct {
		tenant   string
		priority genpipe.Priority
	}
	rowOf := map[rowKey]int{}
	var keys []rowKey
	weights := map[rowKey]int{}
	for _, sh := range r.shares {
		k := rowKey{sh.Tenant, sh.Priority}
		if _, ok := rowOf[k]; !ok {
			rowOf[k] = 0
			keys = append(keys, k)
		}
		weights[k] = max(weights[k], sh.Weight)
	}
	slices.SortFunc(keys, func(a, b rowKey) int {
		return cmp.Or(cmp.Compare(a.tenant, b.tenant), cmp.Compare(b.priority.Rank(), a.priority.Rank()))
	})
	rows := make([]TenantResult, len(keys))
	for i, k := range keys {
		rowOf[k] = i
		rows[i] = TenantResult{Tenant: k.tenant, Priority: k.priority, Weight: weights[k], CompletionsPerSecond: []float64{}}
	}
	row := func(id string) (int, bool) {
		sh, ok := r.shares[id]
		if !ok {
			return 0, false
		}
		return rowOf[rowKey{sh.Tenant, sh.Priority}], true
	}

	// A request's wait ends when its first generative call takes a slot;
	// a call paid again later does not make it wait longer.
	firstStart := map[string]time.Time{}
	ended := map[string]bool{}
	var lastEnd time.Time
	for _, c := range calls {
		if s, ok := firstStart[c.id]; !ok || c.start.Before(s) {
			firstStart[c.id] = c.start
		}
		if !c.end.IsZero() {
			ended[c.id] = true
			lastEnd = span.Later(lastEnd, c.end)
		}
	}
	waits := make([][]float64, len(rows))
	lastStart := make([]time.Time, len(rows))
	for id, at := range r.produced {
		i, _ := row(id)
		rows[i].Requests++
		if s, ok := firstStart[id]; ok {
			rows[i].Started++
			waits[i] = append(waits[i], unscaledMs(s.Sub(at)))
			lastStart[i] = span.Later(lastStart[i], s)
		} else {
			lastStart[i] = span.Later(lastStart[i], lastEnd) // never started: it waited to the end
		}
	}
	for i := range rows {
		sort.Float64s(waits[i])
		rows[i].WaitP50Ms = percentile(waits[i], 50)
		rows[i].WaitP95Ms = percentile(waits[i], 95)
		rows[i].WaitP99Ms = percentile(waits[i], 99)
		rows[i].WaitMaxMs = percentile(waits[i], 100)
	}

	// Shares of the generative calls that completed, each request once.
	done := 0
	for id := range ended {
		if i, ok := row(id); ok {
			rows[i].Share++
			done++
		}
	}
	for i := range rows {
		if done > 0 {
			rows[i].Share /= float64(done)
		}
	}

	res.ContendedCalls = r.contended(rows, firstStart, row)

	for i := range rows {
		rows[i].UtilizationWhileWaiting = busy(calls, capacity, genFirst, lastStart[i])
	}

	for id, at := range r.completed {
		i, ok := row(id)
		if !ok {
			continue
		}
		sec := max(int(at.Sub(start).Seconds()/scale), 0)
		cps := &rows[i].CompletionsPerSecond
		for len(*cps) <= sec {
			*cps = append(*cps, 0)
		}
		(*cps)[sec]++
		rows[i].Completed++
	}
	res.Tenants = rows
}

// contended counts, per row, the generative calls that started while every
// row had a request waiting (produced, its call not started), sets each
// row's ContendedShare and returns the total.
func (r *recorder) contended(rows []TenantResult, firstStart map[string]time.Time, row func(string) (int, bool)) int {
	type change struct {
		at    time.Time
		row   int
		start bool // a call started (the request stops waiting); else it was produced
	}
	var changes []change
	for id, at := range r.produced {
		i, _ := row(id)
		changes = append(changes, change{at, i, false})
		if s, ok := firstStart[id]; ok {
			changes = append(changes, change{s, i, true})
		}
	}
	slices.SortFunc(changes, func(a, b change) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		switch { // a produce before a start at the same instant
		case a.start == b.start:
			return 0
		case a.start:
			return 1
		}
		return -1
	})
	waiting := make([]int, len(rows))
	contended := make([]int, len(rows))
	total := 0
	for _, c := range changes {
		if !c.start {
			waiting[c.row]++
			continue
		}
		if !slices.Contains(waiting, 0) {
			contended[c.row]++
			total++
		}
		waiting[c.row]--
	}
	for i := range rows {
		if total > 0 {
			rows[i].ContendedShare = float64(contended[i]) / float64(total)
		}
	}
	return total
}

// busy is the AI's utilization from `from` to `to`: the time its calls held
// slots within the window over capacity × the window; 0 for an empty window.
func busy(calls []aiCall, capacity int, from, to time.Time) float64 {
	if from.IsZero() || !to.After(from) || capacity <= 0 {
		return 0
	}
	var held time.Duration
	for _, c := range calls {
		end := c.end
		if end.IsZero() {
			end = to // still running
		}
		held += span.Overlap(c.start, end, from, to)
	}
	return held.Seconds() / (float64(capacity) * to.Sub(from).Seconds())
}

// slotGaps returns, in real (not unscaled) milliseconds and sorted, how
// long each of the Generative AI's slots stayed free before the next call
// took it, counting only slots freed while at least capacity requests were
// ready for it (their check call done, their generative call not started):
// with that much work at hand a free slot is the scheduler's overhead, not
// a lack of work. Slots free from the start are not counted. A start takes
// the slot that has been free longest.
//
// The time is real because a scheduler's overhead (a database round trip, a
// wake-up) does not shrink with the lab's time scale.
func slotGaps(checks, gens []aiCall, capacity int) []float64 {
	const (
		checkEnd = iota // a request becomes ready
		genEnd          // a slot frees
		genStart        // a slot is taken
	)
	type change struct {
		at   time.Time
		kind int
		id   string
	}
	var changes []change
	for _, c := range checks {
		if !c.end.IsZero() {
			changes = append(changes, change{c.end, checkEnd, c.id})
		}
	}
	for _, c := range gens {
		changes = append(changes, change{c.start, genStart, c.id})
		if !c.end.IsZero() {
			changes = append(changes, change{c.end, genEnd, c.id})
		}
	}
	// At one instant a request is ready, and a slot free, before a call
	// takes it (the AI frees a slot before it answers).
	slices.SortStableFunc(changes, func(a, b change) int {
		return cmp.Or(a.at.Compare(b.at), cmp.Compare(a.kind, b.kind))
	})
	type freed struct {
		at      time.Time
		counted bool
	}
	var free []freed  // slots freed, oldest first
	never := capacity // slots not taken yet: free longest of all
	ready, started, checked := 0, map[string]bool{}, map[string]bool{}
	var gaps []float64
	for _, c := range changes {
		switch c.kind {
		case checkEnd:
			if !checked[c.id] && !started[c.id] {
				ready++
			}
			checked[c.id] = true
		case genEnd:
			free = append(free, freed{c.at, ready >= capacity})
		case genStart:
			if !started[c.id] && checked[c.id] {
				ready--
			}
			started[c.id] = true
			if never > 0 || len(free) == 0 {
				never--
				continue // a slot free from the start
			}
			if f := free[0]; f.counted {
				gaps = append(gaps, float64(c.at.Sub(f.at))/float64(time.Millisecond))
			}
			free = free[1:]
		}
	}
	sort.Float64s(gaps)
	return gaps
}
