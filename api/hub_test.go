package api

import (
	"testing"
	"time"

	"github.com/genpipe/genpipe"
)

func TestHubDeliversOnlyToSubscribersOfTheRequest(t *testing.T) {
	h := NewHub()
	a, cancelA := h.Subscribe("a")
	b, cancelB := h.Subscribe("b")
	defer cancelB()
	h.Publish(genpipe.StatusChange{RequestID: "a", Status: genpipe.StatusChecking})
	if got := <-a; got.Status != genpipe.StatusChecking {
		t.Fatalf("a got %v", got)
	}
	select {
	case got := <-b:
		t.Fatalf("b got a's change %v", got)
	default:
	}
	cancelA()
	h.Publish(genpipe.StatusChange{RequestID: "a", Status: genpipe.StatusDone}) // no subscriber: dropped
	if len(h.subs) != 1 {
		t.Fatalf("canceled subscription kept: %v", h.subs)
	}
}

// A slow stream never blocks the feed: Publish drops what does not fit.
func TestHubPublishNeverBlocks(t *testing.T) {
	h := NewHub()
	_, cancel := h.Subscribe("a")
	defer cancel()
	for range 100 {
		h.Publish(genpipe.StatusChange{RequestID: "a", Status: genpipe.StatusChecking})
	}
}

func TestDefaultTitle(t *testing.T) {
	cases := map[string]string{
		"Short one":          "Short one",
		"First line\nsecond": "First line",
		"A rather long description that keeps going well past sixty characters for sure": "A rather long description that keeps going well past sixty…",
	}
	for in, want := range cases {
		if got := defaultTitle(in); got != want {
			t.Errorf("defaultTitle(%q) = %q, want %q", in, got, want)
		}
	}
}

// Watch hands over what the hub saw before, advances only, with the
// subscription: a change is in Known or Live.
func TestHubWatchKnownThenLive(t *testing.T) {
	h := NewHub()
	h.Publish(genpipe.StatusChange{RequestID: "a", Status: genpipe.StatusChecking})
	h.Publish(genpipe.StatusChange{RequestID: "a", Status: genpipe.StatusChecking}) // a redelivery
	w := h.Watch("a", time.Now())
	defer w.Cancel()
	if len(w.Known) != 1 || w.Known[0].Status != genpipe.StatusChecking || !w.Complete {
		t.Fatalf("Watch = %+v; want checking known, complete", w)
	}
	h.Publish(genpipe.StatusChange{RequestID: "a", Status: genpipe.StatusChecking})
	h.Publish(genpipe.StatusChange{RequestID: "a", Status: genpipe.StatusGenerating})
	if got := <-w.Live; got.Status != genpipe.StatusGenerating {
		t.Fatalf("live %v; want generating (the redelivered checking is not an advance)", got)
	}
}

// The hub vouches only for requests created after its feed starts and after
// the last request it forgot.
func TestHubVouchesOnlyForWhatItSawWhole(t *testing.T) {
	h := NewHub()
	clock := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	h.now = func() time.Time { return clock }
	h.From(clock)
	if w := h.Watch("old", clock.Add(-time.Minute)); w.Complete {
		t.Fatal("a request created before the feed started is vouched for")
	}
	if w := h.Watch("new", clock.Add(2*hubClockSkew)); !w.Complete {
		t.Fatal("a request created after the feed started is not vouched for")
	}
	h.max = 2
	created := clock
	for _, id := range []string{"a", "b", "c"} {
		clock = clock.Add(10 * hubClockSkew)
		h.Publish(genpipe.StatusChange{RequestID: id, Status: genpipe.StatusChecking})
	}
	if _, kept := h.recent["a"]; kept || len(h.recent) != 2 {
		t.Fatalf("remembered %v; want the oldest beyond max forgotten", h.recent)
	}
	if w := h.Watch("b", created.Add(2*hubClockSkew)); w.Complete {
		t.Fatal("a request created before the hub forgot one is vouched for")
	}
	// Forgetting goes by first sighting: a request created after the
	// forgotten one was first seen was never forgotten, however recently
	// the hub forgot, so streams of new requests on a busy API stay trusted.
	for what, createdAt := range map[string]time.Time{"after the forgotten requests were first seen": created.Add(22 * hubClockSkew),
		"just now": clock} {
		if w := h.Watch("d", createdAt); !w.Complete {
			t.Fatalf("a request created %s is not vouched for", what)
		}
	}
	clock = clock.Add(DefaultHubKeep + time.Second)
	if w := h.Watch("c", clock.Add(-time.Second)); len(w.Known) != 0 || len(h.recent) != 0 {
		t.Fatalf("remembered %v after keep; want nothing", h.recent)
	}
}
