package aisim

import (
	"net/http"
	"sync"

	"github.com/genpipe/genpipe/httpjson"
)

// IdempotencyHeader names a call: a call that repeats the key of one that
// succeeded gets the stored answer again, without work and without a slot,
// so a client that lost an answer (it crashed after the model answered,
// before recording it) asks again without paying again. genpipe's workers
// send request/stage/replay.
const IdempotencyHeader = "Idempotency-Key"

// ReplayedHeader marks an answer replayed from a stored one (as Stripe's
// API does): not paid again.
const ReplayedHeader = "Idempotent-Replayed"

// answers keeps each succeeded call's answer by idempotency key. Like the
// gate's request ids, they grow with the number of distinct calls: fine for
// a simulator; a real service keeps them for a bounded time.
type answers struct {
	mu  sync.Mutex
	out map[string]any
}

func (a *answers) get(key string) (any, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	out, ok := a.out[key]
	return out, ok
}

func (a *answers) put(key string, out any) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.out == nil {
		a.out = map[string]any{}
	}
	a.out[key] = out
}

// replay answers r from a stored answer to its idempotency key, if any.
func (s *Service) replay(w http.ResponseWriter, r *http.Request) bool {
	key := r.Header.Get(IdempotencyHeader)
	if key == "" {
		return false
	}
	out, ok := s.answers.get(key)
	if !ok {
		return false
	}
	s.gate.replayed()
	w.Header().Set(ReplayedHeader, "true")
	s.cfg.logger.Debug("answered from a stored answer", "model", s.model.name, "key", key)
	httpjson.Write(w, http.StatusOK, out)
	return true
}
