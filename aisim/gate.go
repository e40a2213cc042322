package aisim

import (
	"math"
	"strconv"
	"sync"
	"time"
)

// Stats are a service's counters, served by GET /stats.
type Stats struct {
	// Calls is how many calls took a slot and reached the model.
	Calls int64 `json:"calls"`
	// UniqueRequests is how many distinct request ids those calls carried;
	// Calls - UniqueRequests is the number of calls paid for twice.
	UniqueRequests int64 `json:"uniqueRequests"`
	// MaxConcurrent is the most calls ever in flight at once.
	MaxConcurrent int `json:"maxConcurrent"`
	// OverCapacity is how many calls were refused with 429.
	OverCapacity int64 `json:"overCapacity"`
	// InFlight is how many calls hold a slot now.
	InFlight int `json:"inFlight"`
	// Capacity is the number of slots.
	Capacity int `json:"capacity"`
}

// gate is the capacity core: a fixed set of slots taken without waiting,
// and the counters.
type gate struct {
	mu   sync.Mutex
	busy []time.Time // when each slot's call should end; zero when free
	st   Stats
	// seen holds every request id that reached the model. It grows with
	// the number of distinct requests, which is fine for a simulator and is
	// what lets it prove that no request was paid for twice.
	seen map[string]struct{}
}

func newGate(capacity int) *gate {
	return &gate{busy: make([]time.Time, capacity), st: Stats{Capacity: capacity}, seen: map[string]struct{}{}}
}

// acquire takes a free slot for a call expected to last latency. When none
// is free it returns ok=false and the Retry-After value: whole seconds until
// the earliest busy slot should free, at least 1.
func (g *gate) acquire(requestID string, latency time.Duration) (slot int, retryAfter string, ok bool) {
	now := time.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	earliest := time.Duration(math.MaxInt64)
	for i, until := range g.busy {
		if until.IsZero() {
			g.busy[i] = now.Add(max(latency, time.Nanosecond))
			g.admit(requestID)
			return i, "", true
		}
		earliest = min(earliest, until.Sub(now))
	}
	g.st.OverCapacity++
	secs := int64(math.Ceil(earliest.Seconds()))
	return -1, strconv.FormatInt(max(secs, 1), 10), false
}

// admit counts a call that took a slot; g.mu is held.
func (g *gate) admit(requestID string) {
	g.st.Calls++
	g.st.InFlight++
	g.st.MaxConcurrent = max(g.st.MaxConcurrent, g.st.InFlight)
	if _, dup := g.seen[requestID]; !dup {
		g.seen[requestID] = struct{}{}
		g.st.UniqueRequests++
	}
}

// release frees a slot taken by acquire.
func (g *gate) release(slot int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.busy[slot] = time.Time{}
	g.st.InFlight--
}

func (g *gate) stats() Stats {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.st
}
