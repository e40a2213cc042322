package aisim_test

import (
	"context"
	"errors"
	"net/http"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/aiclient"
	"github.com/genpipe/genpipe/aisim"
)

// runningCall is a check call under way on a service of one slot.
type runningCall struct {
	svc    *aisim.Service
	base   string // the service's URL
	cancel context.CancelCauseFunc
	done   chan error // the call's error once it returns
}

// startCall starts a check call on a one-slot service with opts and waits
// until the service runs it.
func startCall(t *testing.T, opts ...aisim.Option) runningCall {
	t.Helper()
	st := newStore(t)
	svc := service(t, "check", append([]aisim.Option{aisim.WithCapacity(1), aisim.WithLatency(time.Hour)}, opts...)...)
	c := runningCall{svc: svc, base: serve(t, svc), done: make(chan error, 1)}
	url := st.add("img", pngOf(t, picture(64, 64)))
	checker := aiclient.NewChecker(c.base)
	var ctx context.Context
	ctx, c.cancel = context.WithCancelCause(context.Background())
	go func() {
		_, err := checker.Check(ctx, genpipe.CheckInput{RequestID: "slow", ImageURL: url, IdempotencyKey: "slow/check/0"})
		c.done <- err
	}()
	waitFor(t, func() bool { return svc.Stats().InFlight == 1 })
	return c
}

// A call whose request is canceled (its context ends with the cause
// genpipe.ErrCanceled) is aborted: the client tells the service, which
// stops the work, frees the slot and counts the call aborted, not
// abandoned; the slot takes the next call at once.
func TestAbortFreesSlotAndCountsAborted(t *testing.T) {
	c := startCall(t)
	c.cancel(genpipe.ErrCanceled)
	if err := <-c.done; err == nil {
		t.Fatal("the aborted call succeeded")
	}
	s := c.svc.Stats()
	if s.Aborted != 1 || s.Abandoned != 0 || s.InFlight != 0 || s.Succeeded != 0 {
		t.Errorf("stats after the abort: %+v; want 1 aborted, none abandoned or in flight", s)
	}
	// Aborting a call that does not run answers 404.
	req, _ := http.NewRequest(http.MethodDelete, c.base+"/v1/calls/nothing", nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("DELETE of no running call = %v, %v; want 404", resp, err)
	}
}

// A call given up for another reason (a timeout, a shutdown) is not
// aborted: the service sees its client go away (abandoned).
func TestCancelWithoutCauseIsAbandoned(t *testing.T) {
	c := startCall(t)
	c.cancel(nil)
	<-c.done
	waitFor(t, func() bool { return c.svc.Stats().InFlight == 0 })
	if s := c.svc.Stats(); s.Abandoned != 1 || s.Aborted != 0 {
		t.Errorf("stats: %+v; want 1 abandoned, 0 aborted", s)
	}
}

// A service that does not abort answers the abort 501 and runs the call
// to its end, though its client went away: the answer is paid, and
// discarded.
func TestServiceWithoutAbortRunsCallOut(t *testing.T) {
	c := startCall(t, aisim.WithLatency(300*time.Millisecond), aisim.WithAbort(false))
	c.cancel(genpipe.ErrCanceled)
	if err := <-c.done; err == nil {
		t.Error("the canceled call returned an answer")
	}
	waitFor(t, func() bool { return c.svc.Stats().InFlight == 0 })
	if s := c.svc.Stats(); s.Succeeded != 1 || s.Aborted != 0 || s.Abandoned != 0 {
		t.Errorf("stats: %+v; want the call run out (1 succeeded)", s)
	}
}

// TestAbortLatency measures how long an abort takes from the client's
// cancel to the slot freed, over many calls (skipped under -short: a
// figure, not an assertion). Run:
//
//	go test -run TestAbortLatency -v ./aisim/
func TestAbortLatency(t *testing.T) {
	if testing.Short() {
		t.Skip("a measurement: run without -short")
	}
	st := newStore(t)
	svc := service(t, "check", aisim.WithCapacity(64), aisim.WithLatency(time.Hour))
	url := st.add("img", pngOf(t, picture(64, 64)))
	checker := aiclient.NewChecker(serve(t, svc))
	const n = 200
	var lat []time.Duration
	for i := range n {
		ctx, cancel := context.WithCancelCause(context.Background())
		done := make(chan error, 1)
		go func() {
			_, err := checker.Check(ctx, genpipe.CheckInput{RequestID: strconv.Itoa(i), ImageURL: url, IdempotencyKey: strconv.Itoa(i) + "/check/0"})
			done <- err
		}()
		waitFor(t, func() bool { return svc.Stats().InFlight == 1 })
		start := time.Now()
		cancel(genpipe.ErrCanceled)
		for svc.Stats().InFlight != 0 {
			time.Sleep(50 * time.Microsecond)
		}
		lat = append(lat, time.Since(start))
		if err := <-done; err == nil || !errors.Is(context.Cause(ctx), genpipe.ErrCanceled) {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	t.Logf("abort latency (cancel → slot freed) over %d calls: p50 %v, p99 %v, max %v", n, lat[n/2], lat[n*99/100], lat[n-1])
	if s := svc.Stats(); s.Aborted != n {
		t.Errorf("aborted %d; want %d", s.Aborted, n)
	}
}
