package api_test

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/api"
)

// historyCounter is a status store that counts the history reads of the SSE
// streams: a stream that waits for a poll reads again and again, one that
// hands a live event over at once reads once.
type historyCounter struct {
	genpipe.RequestStore
	reads atomic.Int64
}

func (s *historyCounter) History(ctx context.Context, id string) ([]genpipe.StatusChange, error) {
	s.reads.Add(1)
	return s.RequestStore.History(ctx, id)
}

// newLiveFixture serves the API with hub, the test's, on a store that counts
// history reads; f.store is the store underneath.
func newLiveFixture(t *testing.T, hub *api.Hub) (*fixture, *historyCounter) {
	t.Helper()
	f := newFixture(t)
	counter := &historyCounter{RequestStore: f.store}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := api.NewServer(counter, genpipe.NewSubmitter(f.store, f.env.Producer, f.topics.Requests), f.env.Objects, hub, api.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	f.api, f.server = srv, httptest.NewServer(srv.Handler())
	t.Cleanup(f.server.Close)
	return f, counter
}

// A live event that reaches the stream before the status store has it is
// handed over at once: the stream reads the store once for it (the store
// is the authority for a cancel), and does not wait for it to catch up.
func TestSSELiveEventAheadOfTheStore(t *testing.T) {
	hub := api.NewHub()
	f, counter := newLiveFixture(t, hub)
	id := f.submit(t)
	events := readEvents(openEvents(t, f.server.URL, id, ""))
	if ev := nextEvent(t, events); ev.status != "received" {
		t.Fatalf("first event %+v; want received", ev)
	}
	before := counter.reads.Load()
	hub.Publish(genpipe.StatusChange{RequestID: id, Status: genpipe.StatusChecking, At: time.Now()})
	if ev := nextEvent(t, events); ev.id != "2" || ev.status != "checking" {
		t.Fatalf("event after the live checking %+v; want 2 checking", ev)
	}
	if n := counter.reads.Load() - before; n > 1 {
		t.Fatalf("the stream read the history %d times before it sent the live event; want at most once (no waiting for the store)", n)
	}
	done := &genpipe.Result{PNGKey: "results/" + id + "/slide.png", PDFKey: "results/" + id + "/slide.pdf", PPTXKey: "results/" + id + "/slide.pptx"}
	hub.Publish(genpipe.StatusChange{RequestID: id, Status: genpipe.StatusGenerating, At: time.Now()})
	hub.Publish(genpipe.StatusChange{RequestID: id, Status: genpipe.StatusDone, Result: done, At: time.Now()})
	for _, want := range []string{"generating", "done"} {
		if ev := nextEvent(t, events); ev.status != want {
			t.Fatalf("event %+v; want %s", ev, want)
		}
	}
	if ev, ok := <-events; ok {
		t.Fatalf("the stream went on after done: %+v", ev)
	}
}

// Changes the hub saw before the stream opened, and the store does not have
// yet, are sent at the open, after the stored ones, in order.
func TestSSEChangeBeforeTheStreamOpened(t *testing.T) {
	hub := api.NewHub()
	f, counter := newLiveFixture(t, hub)
	id := f.submit(t)
	hub.Publish(genpipe.StatusChange{RequestID: id, Status: genpipe.StatusChecking, At: time.Now()})
	hub.Publish(genpipe.StatusChange{RequestID: id, Status: genpipe.StatusGenerating, At: time.Now()})
	hub.Publish(genpipe.StatusChange{RequestID: id, Status: genpipe.StatusChecking, At: time.Now()}) // a redelivery
	events := readEvents(openEvents(t, f.server.URL, id, ""))
	var got []string
	for range 3 {
		got = append(got, nextEvent(t, events).status)
	}
	if want := []string{"received", "checking", "generating"}; !slices.Equal(got, want) {
		t.Fatalf("events at the open %v; want %v", got, want)
	}
	if n := counter.reads.Load(); n > 1 {
		t.Fatalf("the stream read the history %d times before it sent what the hub had; want once", n)
	}
	// A client resuming after checking gets only generating from the hub.
	resumed := readEvents(openEvents(t, f.server.URL, id, "2"))
	if ev := nextEvent(t, resumed); ev.id != "3" || ev.status != "generating" {
		t.Fatalf("first event after Last-Event-ID 2: %+v; want 3 generating", ev)
	}
}

// The status store decides a cancel: a done event that raced a cancel the
// store has already is not sent; the stream ends with canceled.
func TestSSEStoreCancelWinsOverALiveDone(t *testing.T) {
	hub := api.NewHub()
	f, _ := newLiveFixture(t, hub)
	id := f.submit(t)
	events := readEvents(openEvents(t, f.server.URL, id, ""))
	if ev := nextEvent(t, events); ev.status != "received" {
		t.Fatalf("first event %+v; want received", ev)
	}
	f.apply(t, id, genpipe.StatusCanceled)
	hub.Publish(genpipe.StatusChange{RequestID: id, Status: genpipe.StatusDone, At: time.Now(),
		Result: &genpipe.Result{PNGKey: "a.png", PDFKey: "a.pdf", PPTXKey: "a.pptx"}})
	if ev := nextEvent(t, events); ev.status != "canceled" {
		t.Fatalf("event after a stored cancel and a live done %+v; want canceled", ev)
	}
	if ev, ok := <-events; ok {
		t.Fatalf("the stream went on after canceled: %+v", ev)
	}
}

// TestSSEDelayMeasured measures the delay a client sees from a live status
// event published to the hub to the SSE event it gets, when the status
// store records the change a little later (as the notifier does). Run:
//
//	go test -run TestSSEDelayMeasured -count=1 -v ./api/
func TestSSEDelayMeasured(t *testing.T) {
	if testing.Short() {
		t.Skip("a measurement")
	}
	const runs, storeLag = 100, 5 * time.Millisecond
	hub := api.NewHub()
	f, _ := newLiveFixture(t, hub)
	var delays []time.Duration
	for range runs {
		id := f.submit(t)
		events := readEvents(openEvents(t, f.server.URL, id, ""))
		nextEvent(t, events) // received
		start := time.Now()
		hub.Publish(genpipe.StatusChange{RequestID: id, Status: genpipe.StatusChecking, At: start})
		go func() {
			time.Sleep(storeLag)
			_, _ = f.store.ApplyStatus(context.Background(), genpipe.StatusChange{RequestID: id, Status: genpipe.StatusChecking, At: start})
		}()
		nextEvent(t, events)
		delays = append(delays, time.Since(start))
	}
	slices.Sort(delays)
	t.Logf("published → received over SSE, %d streams, store %v behind: p50 %v, p90 %v, p99 %v, max %v", runs, storeLag,
		delays[runs/2], delays[runs*9/10], delays[runs*99/100], delays[runs-1])
}
