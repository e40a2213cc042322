package engine

import (
	"context"
	"errors"
	"time"
)

// ErrOverloaded is the error a handler returns, or wraps, when the downstream
// service refused a request because it is at capacity (HTTP 429). The record
// still counts as done, like any handler error; the engine also halves its
// limit. A handler that retries the request itself reports each refusal with
// ReportOverload instead. Errors of other kinds can say the same through
// WithOverloadTest.
var ErrOverloaded = errors.New("engine: downstream service overloaded")

// overloaded reports whether a handler's error says that the downstream
// service is overloaded: it is or wraps ErrOverloaded, or passes the test
// of WithOverloadTest.
func (c *config) overloaded(err error) bool {
	return err != nil && (errors.Is(err, ErrOverloaded) || c.overloadTest != nil && c.overloadTest(err))
}

type engineKey struct{}

// ReportOverload tells the engine running the handler that got ctx that the
// downstream service refused a request because it is at capacity, so the
// engine backs off (see Engine) while the handler retries. It does nothing
// with a context that does not come from an engine.
func ReportOverload(ctx context.Context) {
	if e, ok := ctx.Value(engineKey{}).(*Engine); ok {
		e.mu.Lock()
		e.overloadLocked()
		e.mu.Unlock()
	}
}

// aimd is the state of the adaptive limit between its cuts.
type aimd struct {
	coolUntil time.Time // no cut and no increase before it
	successes int       // since the last increase
}

// overloadLocked halves the limit, at most once per cooldown: the handlers
// running when the service filled up all see 429s at about the same time, and
// one cut answers all of them. The caller holds e.mu.
func (e *Engine) overloadLocked() {
	st := &e.st
	now := time.Now()
	if now.Before(st.lim.coolUntil) {
		return
	}
	st.limit = max(st.limit/2, min(st.share, 1))
	st.lim = aimd{coolUntil: now.Add(e.cfg.cooldown)}
	st.overloads++
	e.log.Info("engine: downstream overloaded; limit cut", "limit", st.limit, "share", st.share, "cooldown", e.cfg.cooldown)
}

// successLocked raises a cut limit by one every increaseAfter successes
// after the cooldown. The caller holds e.mu.
func (e *Engine) successLocked() {
	st := &e.st
	if st.limit >= st.share || time.Now().Before(st.lim.coolUntil) {
		return
	}
	st.lim.successes++
	if st.lim.successes >= e.cfg.increaseAfter {
		st.limit++
		st.lim.successes = 0
	}
}

// recomputeShareLocked sets the share from the partitions the engine owns
// (those not leaving) and the topics' total, and moves the limit with it:
// down at once, up only if the limit was not cut (a cut limit climbs back on
// its own). The caller holds e.mu.
func (e *Engine) recomputeShareLocked() {
	st := &e.st
	var owned []int
	for tp, p := range st.parts {
		if !p.leaving {
			owned = append(owned, st.firsts[tp.Topic]+int(tp.Partition))
		}
	}
	share := shareOf(e.cfg.capacity, st.total, owned)
	if st.limit == st.share || st.limit > share {
		st.limit = share
	}
	st.share = share
}

// shareOf returns the capacity slots of the partitions numbered owned (in
// one row over all topics): partition i of total carries capacity/total
// slots, plus one if i < capacity%total, so the slots of all partitions add
// up to the capacity exactly and the engines of a group, each summing its
// own partitions, use all of it without talking to each other. An engine
// that owns partitions gets at least 1 (it must make progress) and at most
// the capacity. With the total unknown (0; the metadata request failed) it
// returns 1: too little is safe, too much is not.
func shareOf(capacity, total int, owned []int) int {
	switch {
	case len(owned) == 0:
		return 0
	case total == 0:
		return 1
	}
	share := 0
	for _, i := range owned {
		share += capacity / total
		if i < capacity%total {
			share++
		}
	}
	return min(max(share, 1), capacity)
}
