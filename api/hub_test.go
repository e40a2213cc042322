package api

import (
	"testing"

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
