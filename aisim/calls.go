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

// outcomeNames are the names of a call's results in Call.Outcome.
var outcomeNames = map[result]string{abandoned: "abandoned", failed: "failed", succeeded: "succeeded", aborted: "aborted"}

// callLog is the calls a gate admitted within the retention
// (WithRetention), in order; g.mu guards it. Older calls are dropped from
// the front, those over the count first, so that the log stays bounded
// however long the service runs; Seq still numbers every call.
type callLog struct {
	r      retention
	calls  []Call
	seq    int64   // the calls ever started
	bySlot []int64 // the Seq of each slot's call; 0 when none
}

func newCallLog(capacity int, r retention) callLog {
	return callLog{r: r, bySlot: make([]int64, capacity)}
}

// at returns the listed call numbered seq, or nil once it was dropped.
func (l *callLog) at(seq int64) *Call {
	if seq == 0 || len(l.calls) == 0 {
		return nil
	}
	i := seq - l.calls[0].Seq
	if i < 0 || i >= int64(len(l.calls)) {
		return nil
	}
	return &l.calls[i]
}

func (l *callLog) start(slot int, requestID string, now time.Time) {
	l.seq++
	l.bySlot[slot] = l.seq
	l.calls = append(l.calls, Call{RequestID: requestID, Start: now, Outcome: "running", Slot: slot, Seq: l.seq})
	l.forget(now)
}

func (l *callLog) end(slot int, res result, now time.Time) {
	if c := l.at(l.bySlot[slot]); c != nil {
		c.End, c.Outcome, c.Latency = now, outcomeNames[res], now.Sub(c.Start).Seconds()
	}
	l.bySlot[slot] = 0
}

// forget drops the calls over the count and those that started longer
// than the retention ago.
func (l *callLog) forget(now time.Time) {
	n := 0
	for n < len(l.calls) && (len(l.calls)-n > l.r.max || now.Sub(l.calls[n].Start) >= l.r.keep) {
		n++
	}
	if n > 0 {
		clear(l.calls[:n])
		l.calls = l.calls[n:]
	}
}

// Calls returns the calls that took a slot within the retention
// (WithRetention), in the order they took it, those of requestID only when
// it is not "".
func (s *Service) Calls(requestID string) []Call {
	s.gate.mu.Lock()
	defer s.gate.mu.Unlock()
	s.gate.log.forget(s.gate.now())
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
	for slot, seq := range s.gate.log.bySlot {
		if c := s.gate.log.at(seq); c != nil && !s.gate.busy[slot].IsZero() && c.End.IsZero() {
			c := *c
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
