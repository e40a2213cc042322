package aisim

import (
	"net/http"
	"time"

	"github.com/genpipe/genpipe/httpjson"
)

// Call is one call that took a slot, as the service saw it: for the load
// lab, which checks from the AI's side when each request's calls started
// and ended (no call after a cancel or a deadline; how soon an aborted
// call let go of its slot).
type Call struct {
	RequestID string    `json:"requestId"`
	Start     time.Time `json:"start"`          // when it took its slot
	End       time.Time `json:"end,omitzero"`   // when it let go of it; zero while it runs
	Outcome   string    `json:"outcome"`        // running, succeeded, failed, abandoned or aborted (see Stats)
	Slot      int       `json:"slot"`           // which of the Capacity slots it held
	Stage     string    `json:"stage"`          // the service's model: check or generate
	Seq       int64     `json:"seq"`            // the call's number, from 1, in the order calls took slots
	Latency   float64   `json:"latencySeconds"` // End - Start in seconds; 0 while it runs
}

// maxCalls bounds the calls a service remembers; later ones are counted in
// Stats.Calls but not listed.
const maxCalls = 500_000

// outcomeNames are the names of a call's results in Call.Outcome.
var outcomeNames = map[result]string{abandoned: "abandoned", failed: "failed", succeeded: "succeeded", aborted: "aborted"}

// callLog is the calls a gate admitted, in order; g.mu guards it.
type callLog struct {
	calls  []Call
	bySlot []int // the index in calls of each slot's call; -1 when not listed
}

func newCallLog(capacity int) callLog {
	l := callLog{bySlot: make([]int, capacity)}
	for i := range l.bySlot {
		l.bySlot[i] = -1
	}
	return l
}

func (l *callLog) start(slot int, requestID string, now time.Time) {
	l.bySlot[slot] = -1
	if len(l.calls) < maxCalls {
		l.bySlot[slot] = len(l.calls)
		l.calls = append(l.calls, Call{RequestID: requestID, Start: now, Outcome: "running", Slot: slot, Seq: int64(len(l.calls) + 1)})
	}
}

func (l *callLog) end(slot int, res result, now time.Time) {
	if l.bySlot[slot] < 0 {
		return
	}
	c := &l.calls[l.bySlot[slot]]
	c.End, c.Outcome, c.Latency = now, outcomeNames[res], now.Sub(c.Start).Seconds()
}

// Calls returns the calls that took a slot, in the order they took it,
// those of requestID only when it is not "" (up to the first 500,000).
func (s *Service) Calls(requestID string) []Call {
	s.gate.mu.Lock()
	defer s.gate.mu.Unlock()
	out := []Call{}
	for _, c := range s.gate.log.calls {
		if requestID == "" || c.RequestID == requestID {
			c.Stage = s.model.name
			out = append(out, c)
		}
	}
	return out
}

// Running returns the listed calls that hold a slot now.
func (s *Service) Running() []Call {
	s.gate.mu.Lock()
	defer s.gate.mu.Unlock()
	out := []Call{}
	for slot, i := range s.gate.log.bySlot {
		if i >= 0 && !s.gate.busy[slot].IsZero() && s.gate.log.calls[i].End.IsZero() {
			c := s.gate.log.calls[i]
			c.Stage = s.model.name
			out = append(out, c)
		}
	}
	return out
}

// serveCalls answers GET /calls[?request=ID] with Calls, and GET
// /calls?running=1 with Running.
func (s *Service) serveCalls(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("running") != "" {
		httpjson.Write(w, http.StatusOK, s.Running())
		return
	}
	httpjson.Write(w, http.StatusOK, s.Calls(r.URL.Query().Get("request")))
}
