package api

import (
	"context"
	"errors"
	"log/slog"
	"sync"
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

// countingEstimator counts its estimates and the ids it was asked about.
type countingEstimator struct {
	mu    sync.Mutex
	calls int
	ids   []string
}

func (c *countingEstimator) Estimate(_ context.Context, r *genpipe.Request) (genpipe.Estimate, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	c.ids = append(c.ids, r.ID)
	at := time.Unix(int64(c.calls), 0)
	return genpipe.Estimate{StartAt: at, LastStartAt: at, DoneAt: at}, true, nil
}

// With WithEstimateReuse, new requests of one share within the reuse get
// the estimate of the first, read once; another share, or a later
// request, is estimated anew. New requests are placed without their id:
// they have no task or claim to look for. Without reuse, each is estimated.
func TestEstimateReuse(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	est := &countingEstimator{}
	s := &Server{cfg: config{estimator: est, estimateReuse: 100 * time.Millisecond,
		now: func() time.Time { return now }, logger: slog.New(slog.DiscardHandler)}}
	admit := func(tenant string) time.Time {
		t.Helper()
		r := &genpipe.Request{ID: "11111111-1111-4111-8111-111111111111", Status: genpipe.StatusReceived,
			Share: genpipe.Share{Tenant: tenant}}
		e, ok, err := s.admitStart(t.Context(), r)
		if !ok || err != nil {
			t.Fatalf("admitStart = %v, %v", ok, err)
		}
		return e.StartAt
	}
	first := admit("a")
	if again := admit("a"); again != first || est.calls != 1 {
		t.Errorf("a second request within the reuse: start %v (first %v), %d estimates; want the first's, 1", again, first, est.calls)
	}
	admit("b")
	if est.calls != 2 {
		t.Errorf("another tenant's request: %d estimates; want 2", est.calls)
	}
	now = now.Add(100 * time.Millisecond)
	if later := admit("a"); later == first || est.calls != 3 {
		t.Errorf("a request after the reuse: start %v, %d estimates; want a new one, 3", later, est.calls)
	}
	for _, id := range est.ids {
		if id != "" {
			t.Errorf("a new request was estimated with its id %q; want none", id)
		}
	}

	s.cfg.estimateReuse = 0
	admit("a")
	admit("a")
	if est.calls != 5 {
		t.Errorf("without reuse: %d estimates after two more requests; want 5", est.calls)
	}
}

// blockingEstimator counts its estimates, each of which waits for release.
type blockingEstimator struct {
	countingEstimator
	release chan struct{}
}

func (b *blockingEstimator) Estimate(ctx context.Context, r *genpipe.Request) (genpipe.Estimate, bool, error) {
	b.mu.Lock()
	b.calls++
	b.mu.Unlock()
	select {
	case <-b.release:
	case <-ctx.Done():
		return genpipe.Estimate{}, false, ctx.Err()
	}
	at := time.Unix(1, 0)
	return genpipe.Estimate{StartAt: at, LastStartAt: at, DoneAt: at}, true, nil
}

func (b *blockingEstimator) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls
}

// With WithEstimateReuse, new requests of one share that come while the
// share's estimate is being made wait for it instead of reading the
// queues themselves: when the last estimate ages out under load, one
// reading, not one per request in flight.
func TestEstimateReuseWaitsForReading(t *testing.T) {
	est := &blockingEstimator{release: make(chan struct{})}
	s := &Server{cfg: config{estimator: est, estimateReuse: 100 * time.Millisecond,
		now: time.Now, logger: slog.New(slog.DiscardHandler)}}
	const n = 8
	starts := make([]time.Time, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r := &genpipe.Request{Status: genpipe.StatusReceived, Share: genpipe.Share{Tenant: "a"}}
			e, ok, err := s.admitStart(t.Context(), r)
			if !ok || err != nil {
				t.Errorf("admitStart = %v, %v", ok, err)
			}
			starts[i] = e.StartAt
		})
	}
	// Until every request is either reading the queues or waiting for a
	// reading.
	for est.count()+int(s.fresh.waiting.Load()) < n {
		time.Sleep(time.Millisecond)
	}
	close(est.release)
	wg.Wait()
	if got := est.count(); got != 1 {
		t.Errorf("%d concurrent new requests of one share read the queues %d times; want once", n, got)
	}
	for i, at := range starts {
		if !at.Equal(time.Unix(1, 0)) {
			t.Errorf("request %d: start %v; want the reading's", i, at)
		}
	}
}

// Once half the reuse has passed, one new request of the share reads the
// queues again while the others keep the last estimate, which is still
// within the reuse, instead of waiting for the reading.
func TestEstimateReuseReadsAhead(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	est := &blockingEstimator{release: make(chan struct{}, 2)}
	s := &Server{cfg: config{estimator: est, estimateReuse: 100 * time.Millisecond,
		now: clock, logger: slog.New(slog.DiscardHandler)}}
	admit := func(ctx context.Context) bool {
		r := &genpipe.Request{Status: genpipe.StatusReceived, Share: genpipe.Share{Tenant: "a"}}
		_, ok, err := s.admitStart(ctx, r)
		return ok && err == nil
	}
	est.release <- struct{}{}
	if !admit(t.Context()) {
		t.Fatal("the first request has no estimate")
	}

	mu.Lock()
	now = now.Add(60 * time.Millisecond)
	mu.Unlock()
	ahead := make(chan bool, 1)
	go func() { ahead <- admit(t.Context()) }() // reads again, and waits for the estimator
	for est.count() < 2 && len(ahead) == 0 {
		time.Sleep(time.Millisecond)
	}
	if est.count() < 2 {
		t.Fatal("past half the reuse, no request read the queues again")
	}
	// A request that waited for the reading, or read too, would see its
	// context ended and have no estimate.
	gone, leave := context.WithCancel(t.Context())
	leave()
	if !admit(gone) {
		t.Error("a request while another reads ahead has no estimate; want the last one")
	}
	est.release <- struct{}{}
	if !<-ahead {
		t.Error("the request that read ahead has no estimate")
	}
	if got := est.count(); got != 2 {
		t.Errorf("%d readings; want 2: the first, and one ahead", got)
	}
}
