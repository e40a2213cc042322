package aisim

import (
	"math/rand/v2"
	"net/http"
	"sync"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/httpjson"
)

// injectedRetryAfter is the Retry-After of an injected 429, in whole
// seconds: the smallest value the header can say, since no slot is
// actually busy.
const injectedRetryAfter = "1"

// fault is what the injector decided for one arriving call.
type fault int

const (
	noFault    fault = iota
	faultError       // answer 500
	faultBusy        // answer 429 with Retry-After
)

// injector draws the simulated failures of WithFaultRate and WithBusyRate.
// It has its own lock so that a service without faults never takes it.
type injector struct {
	errorRate, busyRate float64 // errorRate + busyRate ≤ 1

	mu     sync.Mutex
	rng    *rand.Rand
	errors int64
	busy   int64
}

// newInjector draws with rates from [0, 1] that add up to at most 1 (the
// options' validation sees to it), so one uniform draw decides between the
// two.
func newInjector(errorRate, busyRate float64, seed uint64, seeded bool) *injector {
	in := &injector{errorRate: errorRate, busyRate: busyRate}
	if !seeded {
		seed = rand.Uint64()
	}
	in.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	return in
}

// draw decides the fate of one arriving call and counts it.
func (in *injector) draw() fault {
	if in.errorRate == 0 && in.busyRate == 0 {
		return noFault
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	switch u := in.rng.Float64(); {
	case u < in.errorRate:
		in.errors++
		return faultError
	case u < in.errorRate+in.busyRate:
		in.busy++
		return faultBusy
	}
	return noFault
}

// counts returns how many 500s and 429s were injected.
func (in *injector) counts() (errors, busy int64) {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.errors, in.busy
}

// inject answers an arriving call with a simulated failure when the
// injector draws one, and reports whether it did. It runs before the call
// takes a slot: an injected failure costs no capacity, like a real
// overloaded or crashing front end, and is logged at debug level only
// (it is expected, unlike the service's own 5xx).
func (s *Service) inject(w http.ResponseWriter, requestID string) bool {
	switch s.faults.draw() {
	case faultError:
		s.cfg.logger.Debug("injected fault", "model", s.model.name, "request", requestID, "status", http.StatusInternalServerError)
		httpjson.WriteProblem(w, http.StatusInternalServerError, genpipe.EINTERNAL,
			"the "+s.model.name+" service failed (injected fault)")
		return true
	case faultBusy:
		s.cfg.logger.Debug("injected fault", "model", s.model.name, "request", requestID, "status", http.StatusTooManyRequests)
		w.Header().Set("Retry-After", injectedRetryAfter)
		httpjson.WriteProblem(w, http.StatusTooManyRequests, genpipe.ETOOMANY,
			"the "+s.model.name+" service is busy (injected fault); retry later")
		return true
	}
	return false
}
