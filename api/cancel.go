package api

import (
	"net/http"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/httpjson"
)

// DefaultMaxWait is the default of WithMaxWait: no deadline for requests
// that bring none.
const DefaultMaxWait time.Duration = 0

// WithMaxWait sets the deadline of requests that bring no startBy or
// maxWaitSeconds: they must start their AI calls within d of their
// submission, or end expired. 0 (DefaultMaxWait) gives them none; more
// than genpipe.MaxWait is invalid.
func WithMaxWait(d time.Duration) Option { return func(c *config) { c.maxWait = d } }

// WithCanceler sets what DELETE /v1/requests/{id} cancels through: the
// status store, then the canceled status event on the results topic.
// Without one, a store that is a genpipe.CancelStore cancels without an
// event (the webhook is queued all the same); with neither, DELETE
// answers 405.
func WithCanceler(c *genpipe.Canceler) Option { return func(cfg *config) { cfg.canceler = c } }

// WithCancelHook sets a func called with each request a DELETE canceled
// (not one canceled already): for metrics.
func WithCancelHook(hook func(r *genpipe.Request)) Option {
	return func(c *config) { c.onCancel = hook }
}

// canceler returns the server's canceler, or nil for none.
func (s *Server) canceler() *genpipe.Canceler {
	if s.cfg.canceler != nil {
		return s.cfg.canceler
	}
	if cs, ok := s.store.(genpipe.CancelStore); ok {
		return genpipe.NewCanceler(cs, nil, "")
	}
	return nil
}

// cancelRequest cancels the request named in the path, seen as GET sees
// it (another owner's is not found), and answers 200 with its view:
// canceled, whether by this call or an earlier one. A request that ended
// otherwise is a 409 problem.
func (s *Server) cancelRequest(w http.ResponseWriter, r *http.Request) {
	req, err := s.findRequest(r)
	if err != nil {
		s.problem(w, r, err)
		return
	}
	if req.Status.Terminal() && req.Status != genpipe.StatusCanceled {
		s.problem(w, r, genpipe.Errorf(genpipe.ECONFLICT, "request %s has ended %s: only a request that has not ended can be canceled", req.ID, req.Status))
		return
	}
	canceled, changed, err := s.cancels.Cancel(r.Context(), req.ID)
	if err != nil {
		s.problem(w, r, err)
		return
	}
	if changed && s.cfg.onCancel != nil {
		s.cfg.onCancel(canceled)
	}
	view, err := genpipe.NewRequestView(r.Context(), canceled, s.objects, s.cfg.resultTTL)
	if err != nil {
		s.problem(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, view)
}

// deadline returns the StartBy of a new request from its startBy or
// maxWaitSeconds, or the server's max wait; every complaint names the
// field. explicit reports a startBy given as a time, which a retry with
// the same Idempotency-Key must repeat.
func (s *Server) deadline(in genpipe.SubmitBody) (startBy time.Time, explicit bool, err error) {
	now := s.cfg.now()
	switch {
	case in.StartBy != "" && in.MaxWaitSeconds != nil:
		return time.Time{}, false, genpipe.Errorf(genpipe.EINVALID, "give startBy or maxWaitSeconds, not both")
	case in.StartBy != "":
		t, err := time.Parse(time.RFC3339Nano, in.StartBy)
		switch {
		case err != nil:
			return time.Time{}, false, genpipe.Errorf(genpipe.EINVALID, "startBy %q is not an RFC 3339 time such as 2026-01-02T15:04:05Z", truncateField(in.StartBy))
		case !t.After(now):
			return time.Time{}, false, genpipe.Errorf(genpipe.EINVALID, "startBy %s is not in the future", t.UTC().Format(time.RFC3339))
		case t.Sub(now) > genpipe.MaxWait:
			return time.Time{}, false, genpipe.Errorf(genpipe.EINVALID, "startBy %s is more than %v away; the most is %v", t.UTC().Format(time.RFC3339), genpipe.MaxWait, genpipe.MaxWait)
		}
		return t.UTC(), true, nil
	case in.MaxWaitSeconds != nil:
		n := *in.MaxWaitSeconds
		switch {
		case n <= 0:
			return time.Time{}, false, genpipe.Errorf(genpipe.EINVALID, "maxWaitSeconds must be a positive number of seconds, not %d", n)
		case n > int64(genpipe.MaxWait/time.Second):
			return time.Time{}, false, genpipe.Errorf(genpipe.EINVALID, "maxWaitSeconds %d is over the most, %d (%v)", n, int64(genpipe.MaxWait/time.Second), genpipe.MaxWait)
		}
		return now.Add(time.Duration(n) * time.Second).UTC(), false, nil
	case s.cfg.maxWait > 0:
		return now.Add(s.cfg.maxWait).UTC(), false, nil
	}
	return time.Time{}, false, nil
}

// sameDeadline reports whether a retry with an Idempotency-Key asks for
// the deadline the stored request has: the same startBy when it gave one,
// else a deadline or none as the stored one has (a maxWaitSeconds or the
// server's max wait counts from each attempt, so only its presence is
// compared).
func sameDeadline(stored, retry time.Time, explicit bool) bool {
	if explicit {
		return stored.Equal(retry)
	}
	return stored.IsZero() == retry.IsZero()
}

func truncateField(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
