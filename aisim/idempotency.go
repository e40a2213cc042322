package aisim

import (
	"net/http"
	"sync"
	"time"

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

// answers keeps each succeeded call's answer by idempotency key for the
// retention (WithRetention), as a real service keeps them for a bounded
// time: a client that asks again within it gets the stored answer; one
// that asks after it is served (and paid) again.
type answers struct {
	mu  sync.Mutex
	out *recent[any]
	now func() time.Time
}

func newAnswers(r retention) *answers {
	return &answers{out: newRecent[any](r), now: time.Now}
}

func (a *answers) get(key string) (any, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.out.get(key, a.now())
}

func (a *answers) put(key string, out any) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.out.put(key, out, a.now())
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
