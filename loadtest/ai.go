package loadtest

import (
	"errors"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/httpjson"
)

// AI is the load test's stand-in for one AI service: a real HTTP service on
// 127.0.0.1 with the contract of package aiclient (POST /v1/check,
// POST /v1/generate, GET /stats), capacity-limited like aisim (a call that
// finds every slot busy gets 429 at once; the service never queues), whose
// only cost is latency.
//
// The lab measures queueing, not rendering: aisim's Generative AI renders a
// real slide (about 90 ms of CPU a call) and fetches images from S3, which
// would make a 2-core machine, not the AI's capacity, the bottleneck of a
// scaled run. This service holds a slot for the latency and answers a
// passing verdict (check) or an empty output (generate), nothing more.
type AI struct {
	model    string
	latency  time.Duration
	capacity int

	mu       sync.Mutex
	inflight int
	st       AIStats
	seen     map[string]struct{}
	calls    []aiCall // every call that took a slot, in the order they did

	ln  net.Listener
	srv *http.Server
}

// AIStats are an AI's counters, served by GET /stats.
type AIStats struct {
	Calls          int64     `json:"calls"`          // calls that took a slot
	UniqueRequests int64     `json:"uniqueRequests"` // distinct request ids among them; Calls - UniqueRequests were paid twice
	MaxConcurrent  int       `json:"maxConcurrent"`  // most calls in flight at once
	OverCapacity   int64     `json:"overCapacity"`   // calls refused with 429
	InFlight       int       `json:"inFlight"`       // calls holding a slot now
	Capacity       int       `json:"capacity"`       // slots
	FirstCall      time.Time `json:"firstCall"`      // when the first call took a slot; zero before
}

// aiCall is one call as the AI saw it: whose, when it took a slot and
// when it gave it back (zero while it runs).
type aiCall struct {
	id         string
	start, end time.Time
}

// StartAI starts a latency-only AI for model ("check" or "generate") with
// capacity slots, each call holding one for latency, on a free port of
// 127.0.0.1. Close stops it.
func StartAI(model string, capacity int, latency time.Duration) (*AI, error) {
	if model != "check" && model != "generate" {
		return nil, errors.New("loadtest: AI model must be check or generate")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	a := &AI{model: model, latency: latency, capacity: max(capacity, 1), ln: ln, seen: map[string]struct{}{}}
	a.st.Capacity = a.capacity
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/"+model, a.call)
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) { httpjson.Write(w, http.StatusOK, a.Stats()) })
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		httpjson.Write(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	a.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go a.srv.Serve(ln) //nolint:errcheck // returns on Close
	return a, nil
}

// URL is the service's base URL.
func (a *AI) URL() string { return "http://" + a.ln.Addr().String() }

// Close stops the service at once.
func (a *AI) Close() { a.srv.Close() }

// Stats returns the counters since the service started.
func (a *AI) Stats() AIStats {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.st
	st.InFlight = a.inflight
	return st
}

func (a *AI) call(w http.ResponseWriter, r *http.Request) {
	var in struct {
		RequestID string `json:"requestId"`
	}
	if err := httpjson.Decode(w, r, 1<<20, &in); err != nil || in.RequestID == "" {
		httpjson.WriteProblem(w, http.StatusBadRequest, genpipe.EINVALID, "a JSON body with requestId is required")
		return
	}
	call, ok := a.acquire(in.RequestID)
	if !ok {
		w.Header().Set("Retry-After", "1")
		httpjson.WriteProblem(w, http.StatusTooManyRequests, genpipe.ETOOMANY, "at capacity")
		return
	}
	t := time.NewTimer(a.latency)
	select {
	case <-t.C:
	case <-r.Context().Done():
		t.Stop()
	}
	// The slot is free before the answer leaves, so a caller that starts
	// its next call on the answer never finds its own slot still busy.
	a.release(call)
	if a.model == "check" {
		httpjson.Write(w, http.StatusOK, map[string]any{"pass": true})
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"outputs": map[string]any{}})
}

// acquire takes a slot for request id, if one is free, and returns the
// call's index for release.
func (a *AI) acquire(id string) (int, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.inflight >= a.capacity {
		a.st.OverCapacity++
		return 0, false
	}
	now := time.Now()
	a.inflight++
	a.st.Calls++
	if a.st.FirstCall.IsZero() {
		a.st.FirstCall = now
	}
	a.calls = append(a.calls, aiCall{id: id, start: now})
	a.st.MaxConcurrent = max(a.st.MaxConcurrent, a.inflight)
	if _, dup := a.seen[id]; !dup {
		a.seen[id] = struct{}{}
		a.st.UniqueRequests++
	}
	return len(a.calls) - 1, true
}

func (a *AI) release(call int) {
	a.mu.Lock()
	a.inflight--
	a.calls[call].end = time.Now()
	a.mu.Unlock()
}

// callLog returns every call that took a slot so far.
func (a *AI) callLog() []aiCall {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.calls)
}
