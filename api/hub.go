package api

import (
	"sync"
	"time"

	"github.com/genpipe/genpipe"
)

// Defaults of the Hub's memory of recent changes.
const (
	// DefaultHubKeep is how long the hub remembers a request's changes
	// after the first of them: long enough for any stream opened while the
	// status store catches up on them.
	DefaultHubKeep = time.Minute
	// DefaultHubRequests bounds how many requests' changes the hub
	// remembers (a few hundred bytes each); the oldest go first.
	DefaultHubRequests = 20000
)

// hubClockSkew is how far apart the clocks that stamp a request's creation
// and the hub's own may be: a request created less than this after the hub
// began to see everything (or after it forgot a request) is not vouched for.
const hubClockSkew = time.Second

// Hub fans live status changes out to the SSE streams of this process. It
// is fed from the results topic, so every API process sees every change,
// in the topic's order, as the notifier does. It remembers the changes of
// recent requests, so a stream that opens after a change the status store
// does not have yet still sends it at once (see Watch).
type Hub struct {
	mu   sync.Mutex
	subs map[string]map[chan genpipe.StatusChange]struct{}
	// observers see every change (see WithEstimateObserver).
	observers []func(genpipe.StatusChange)

	// recent holds the advances of each remembered request (each change
	// that ranks above the one before it, as the status store applies
	// them), forgotten in the order the requests were first seen.
	recent map[string][]genpipe.StatusChange
	order  []seen // first sightings, oldest first
	// since is when the hub last may have missed a change: before it, the
	// hub did not see every change (it had not started), or forgot some
	// (the first sighting of the latest request it forgot: it forgets in
	// that order, so a request created after it was never forgotten).
	since time.Time
	keep  time.Duration
	max   int
	now   func() time.Time
}

type seen struct {
	id string
	at time.Time
}

// NewHub returns an empty hub. It vouches for every request until told
// where its feed starts (From): a hub fed by hand sees every change.
func NewHub() *Hub {
	return &Hub{subs: map[string]map[chan genpipe.StatusChange]struct{}{}, recent: map[string][]genpipe.StatusChange{},
		keep: DefaultHubKeep, max: DefaultHubRequests, now: time.Now}
}

// From tells the hub that it is fed every change stamped from t on (the
// results topic tailed from t); the hub vouches only for requests created
// after it.
func (h *Hub) From(t time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.since = t
}

// Publish hands c to the streams watching its request and remembers it. It
// never blocks: a stream is sent only advances, at most one per rank, which
// its buffer holds.
func (h *Hub) Publish(c genpipe.StatusChange) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, observe := range h.observers {
		observe(c)
	}
	if !h.remember(c) {
		return // not an advance: the streams have it, or a later one
	}
	for ch := range h.subs[c.RequestID] {
		select {
		case ch <- c:
		default:
		}
	}
}

// remember records c if it advances its request; it reports whether it did.
func (h *Hub) remember(c genpipe.StatusChange) bool {
	now := h.now()
	h.forget(now)
	changes, known := h.recent[c.RequestID]
	if n := len(changes); n > 0 && c.Status.Rank() <= changes[n-1].Status.Rank() {
		return false
	}
	if !known {
		h.order = append(h.order, seen{c.RequestID, now})
	}
	h.recent[c.RequestID] = append(changes, c)
	return true
}

// forget drops the requests first seen longer than keep ago, and the
// oldest beyond max. It forgets in the order the requests were first seen,
// so the hub may have missed changes of requests created until the first
// sighting of the last one it forgot; of any created later it forgot
// nothing. (Moving since to now instead would distrust every stream
// opened within hubClockSkew of any forgetting: on an API busy for longer
// than keep, that is most of them, and each then waits for the store.)
func (h *Hub) forget(now time.Time) {
	for len(h.order) > 0 && (len(h.order) >= h.max || now.Sub(h.order[0].at) > h.keep) {
		delete(h.recent, h.order[0].id)
		if h.order[0].at.After(h.since) {
			h.since = h.order[0].at
		}
		h.order = h.order[1:] // append moves the rest to a new array when it needs room
	}
}

// observe calls f with every change published from now on.
func (h *Hub) observe(f func(genpipe.StatusChange)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.observers = append(h.observers, f)
}

// Watch is a stream's view of the hub for one request.
type Watch struct {
	// Live has the request's advances published from now on.
	Live <-chan genpipe.StatusChange
	// Known has the advances the hub saw before, oldest first.
	Known []genpipe.StatusChange
	// Complete says Known holds every change published for the request
	// (created at the createdAt given to Watch) that the hub was fed: the
	// hub has seen every change since then and forgotten none of it. A
	// stream may then send what the hub has at once; otherwise a live
	// change may follow one that the hub never saw.
	Complete bool
	// Cancel ends the subscription.
	Cancel func()
}

// Watch subscribes to the live changes of request id, created at createdAt,
// and returns them with the changes the hub has already, taken at the same
// moment: each change is in Known or in Live, never lost between them.
func (h *Hub) Watch(id string, createdAt time.Time) Watch {
	ch := make(chan genpipe.StatusChange, 8) // more than the ranks of the statuses
	h.mu.Lock()
	defer h.mu.Unlock()
	h.forget(h.now())
	if h.subs[id] == nil {
		h.subs[id] = map[chan genpipe.StatusChange]struct{}{}
	}
	h.subs[id][ch] = struct{}{}
	return Watch{
		Live: ch, Known: append([]genpipe.StatusChange(nil), h.recent[id]...),
		Complete: h.since.IsZero() || createdAt.After(h.since.Add(hubClockSkew)),
		Cancel: func() {
			h.mu.Lock()
			defer h.mu.Unlock()
			delete(h.subs[id], ch)
			if len(h.subs[id]) == 0 {
				delete(h.subs, id)
			}
		},
	}
}

// Subscribe returns the live changes of request id and a cancel func.
func (h *Hub) Subscribe(id string) (<-chan genpipe.StatusChange, func()) {
	w := h.Watch(id, time.Time{})
	return w.Live, w.Cancel
}
