package aisim

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Stats are a service's counters, served by GET /stats. Every call that
// passed input validation ends in exactly one of: InjectedFaults,
// InjectedBusy, OverCapacity (refused on arrival, no slot taken) or Calls
// (took a slot); and every finished call in exactly one of Succeeded,
// Failed, Abandoned and Aborted, so Calls = Succeeded + Failed + Abandoned + Aborted + InFlight.
type Stats struct {
	// Calls is how many calls took a slot and reached the model, whatever
	// their outcome: a retry of a failed call counts again.
	Calls int64 `json:"calls"`
	// UniqueRequests is how many distinct request ids those calls carried;
	// Calls - UniqueRequests counts every repeated call, retries of failed
	// ones included.
	UniqueRequests int64 `json:"uniqueRequests"`
	// Succeeded is how many calls answered 200: the work a user pays for
	// (a check that rejects the image is a success too).
	Succeeded int64 `json:"succeeded"`
	// UniqueSucceeded is how many distinct request ids the succeeded calls
	// carried: Succeeded - UniqueSucceeded is the number of calls paid for
	// twice, which idempotent workers keep at 0.
	UniqueSucceeded int64 `json:"uniqueSucceeded"`
	// Failed is how many calls took a slot and then answered an error:
	// 502 when the object store failed, 422 for an unusable image, 500.
	Failed int64 `json:"failed"`
	// Abandoned is how many calls took a slot and were given up by their
	// client (timeout, canceled) before the answer.
	Abandoned int64 `json:"abandoned"`
	// Aborted is how many calls took a slot and were stopped by their
	// client's abort (DELETE /v1/calls/{key}) before the answer.
	Aborted int64 `json:"aborted"`
	// MaxConcurrent is the most calls ever in flight at once.
	MaxConcurrent int `json:"maxConcurrent"`
	// OverCapacity is how many calls were refused with 429 because every
	// slot was busy (injected 429s are counted in InjectedBusy instead).
	OverCapacity int64 `json:"overCapacity"`
	// InjectedFaults is how many calls were answered 500 on arrival by
	// WithFaultRate, without taking a slot.
	InjectedFaults int64 `json:"injectedFaults"`
	// InjectedBusy is how many calls were answered 429 on arrival by
	// WithBusyRate, without taking a slot.
	InjectedBusy int64 `json:"injectedBusy"`
	// Replayed is how many calls repeated the Idempotency-Key of a call
	// that succeeded and got its stored answer: no work, no slot, not
	// paid again, and not counted in Calls.
	Replayed int64 `json:"replayed"`
	// InFlight is how many calls hold a slot now.
	InFlight int `json:"inFlight"`
	// Capacity is the number of slots.
	Capacity int `json:"capacity"`
}

// Duplicate is a request whose calls succeeded more than once: paid twice.
type Duplicate struct {
	RequestID string `json:"requestId"`
	Succeeded int    `json:"succeeded"` // calls that answered 200
}

// gate is the capacity core: a fixed set of slots taken without waiting,
// and the counters.
type gate struct {
	mu   sync.Mutex
	busy []time.Time // when each slot's call should end; zero when free
	st   Stats
	// seen holds the request ids that reached the model, succeeded how
	// many calls of each answered 200: what lets the service prove that no
	// request was paid for twice, and name any that was. They are kept for
	// the retention (WithRetention) so that they stay bounded: a call that
	// repeats a request forgotten by then counts as a new request, in
	// UniqueRequests and UniqueSucceeded. The counters themselves never
	// forget.
	seen      *recent[struct{}]
	succeeded *recent[int]
	log       callLog // calls.go
	now       func() time.Time
}

// result is how a call that took a slot ended.
type result int

const (
	abandoned result = iota // the client went away first
	failed                  // answered an error
	succeeded               // answered 200
	aborted                 // stopped by its client's abort
)

func newGate(capacity int, r retention) *gate {
	return &gate{busy: make([]time.Time, capacity), st: Stats{Capacity: capacity},
		seen: newRecent[struct{}](r), succeeded: newRecent[int](r), log: newCallLog(capacity, r), now: time.Now}
}

// acquire takes a free slot for a call expected to last latency. When none
// is free it returns ok=false and the Retry-After value: whole seconds until
// the earliest busy slot should free, at least 1.
func (g *gate) acquire(requestID string, latency time.Duration) (slot int, retryAfter string, ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	earliest := time.Duration(math.MaxInt64)
	for i, until := range g.busy {
		if until.IsZero() {
			g.busy[i] = now.Add(max(latency, time.Nanosecond))
			g.admit(requestID, now)
			g.log.start(i, requestID, now)
			return i, "", true
		}
		earliest = min(earliest, until.Sub(now))
	}
	g.st.OverCapacity++
	secs := int64(math.Ceil(earliest.Seconds()))
	return -1, strconv.FormatInt(max(secs, 1), 10), false
}

// admit counts a call that took a slot; g.mu is held.
func (g *gate) admit(requestID string, now time.Time) {
	g.st.Calls++
	g.st.InFlight++
	g.st.MaxConcurrent = max(g.st.MaxConcurrent, g.st.InFlight)
	if _, dup := g.seen.get(requestID, now); !dup {
		g.seen.put(requestID, struct{}{}, now)
		g.st.UniqueRequests++
	}
}

// replayed counts a call answered from a stored answer.
func (g *gate) replayed() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.st.Replayed++
}

// release frees a slot taken by acquire for requestID's call and counts
// how the call ended.
func (g *gate) release(slot int, requestID string, res result) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	g.busy[slot] = time.Time{}
	g.log.end(slot, res, now)
	g.st.InFlight--
	switch res {
	case abandoned:
		g.st.Abandoned++
	case aborted:
		g.st.Aborted++
	case failed:
		g.st.Failed++
	case succeeded:
		g.st.Succeeded++
		n, _ := g.succeeded.get(requestID, now)
		if g.succeeded.put(requestID, n+1, now); n == 0 {
			g.st.UniqueSucceeded++
		}
	}
}

// paidTwice returns the request ids whose calls succeeded more than once
// within the retention, sorted, with how many times each did.
func (g *gate) paidTwice() []Duplicate {
	g.mu.Lock()
	defer g.mu.Unlock()
	var dups []Duplicate
	g.succeeded.all(g.now(), func(id string, n int) {
		if n > 1 {
			dups = append(dups, Duplicate{RequestID: id, Succeeded: n})
		}
	})
	slices.SortFunc(dups, func(a, b Duplicate) int { return strings.Compare(a.RequestID, b.RequestID) })
	return dups
}

func (g *gate) stats() Stats {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.st
}
