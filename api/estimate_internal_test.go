package api

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/genpipe/genpipe"
)

type lastStartAt time.Time

func (l lastStartAt) Estimate(context.Context, *genpipe.Request) (genpipe.Estimate, bool, error) {
	return genpipe.Estimate{StartAt: time.Time(l), LastStartAt: time.Time(l), DoneAt: time.Time(l)}, true, nil
}

// A request's own StartBy bounds its predicted start, with or without the
// server's bound, whichever is earlier; Retry-After is the excess.
func TestAdmitStartBy(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name             string
		start, startBy   time.Duration // from now
		bound            time.Duration
		refused          bool
		retryAfterSecond int
	}{
		{"in time", 10 * time.Second, 20 * time.Second, 0, false, 0},
		{"past its startBy", 50 * time.Second, 20 * time.Second, 0, true, 30},
		{"past the bound, before its startBy", 50 * time.Second, time.Minute, 40 * time.Second, true, 10},
		{"past its startBy, before the bound", 50 * time.Second, 45 * time.Second, time.Hour, true, 5},
		{"no startBy, no bound", time.Hour, 0, 0, false, 0},
	} {
		s := &Server{cfg: config{estimator: lastStartAt(now.Add(c.start)), maxStartWait: c.bound,
			now: func() time.Time { return now }, logger: slog.New(slog.DiscardHandler)}}
		r := &genpipe.Request{ID: "x", Status: genpipe.StatusReceived}
		if c.startBy > 0 {
			r.StartBy = now.Add(c.startBy)
		}
		_, ok, err := s.admitStart(t.Context(), r)
		if !ok || (err != nil) != c.refused {
			t.Errorf("%s: admitStart = %v, %v; want refused %v", c.name, ok, err, c.refused)
			continue
		}
		var rl *retryLaterError
		if c.refused && (genpipe.ErrorCode(err) != genpipe.ESTARTTOOLATE || !errors.As(err, &rl) || retryAfterSeconds(err) != c.retryAfterSecond) {
			t.Errorf("%s: %v (Retry-After %d); want %s with Retry-After %d", c.name, err, retryAfterSeconds(err), genpipe.ESTARTTOOLATE, c.retryAfterSecond)
		}
	}
}
