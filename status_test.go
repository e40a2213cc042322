package genpipe_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/genpipe/genpipe"
)

func TestStatusOrder(t *testing.T) {
	order := []genpipe.Status{genpipe.StatusReceived, genpipe.StatusChecking, genpipe.StatusGenerating, genpipe.StatusDone}
	for i := 1; i < len(order); i++ {
		if order[i].Rank() <= order[i-1].Rank() {
			t.Fatalf("%s does not rank above %s", order[i], order[i-1])
		}
	}
	for _, s := range []genpipe.Status{genpipe.StatusDone, genpipe.StatusRejected, genpipe.StatusFailed} {
		if !s.Terminal() || !s.Valid() {
			t.Fatalf("%s should be a valid terminal status", s)
		}
	}
	if genpipe.StatusGenerating.Terminal() || genpipe.Status("bogus").Valid() {
		t.Fatal("generating is not terminal and bogus is not valid")
	}
}

func TestErrorCodeAndMessage(t *testing.T) {
	wrapped := fmt.Errorf("outer: %w", genpipe.Errorf(genpipe.ENOTFOUND, "request %s not found", "x"))
	if genpipe.ErrorCode(wrapped) != genpipe.ENOTFOUND || genpipe.ErrorMessage(wrapped) != "request x not found" {
		t.Fatalf("code %q message %q", genpipe.ErrorCode(wrapped), genpipe.ErrorMessage(wrapped))
	}
	other := errors.New("disk on fire")
	if genpipe.ErrorCode(other) != genpipe.EINTERNAL || genpipe.ErrorMessage(other) != "internal error" {
		t.Fatal("a plain error must be internal, with its detail hidden")
	}
	if genpipe.ErrorCode(nil) != "" {
		t.Fatal("nil has no code")
	}
}

func TestStyles(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range genpipe.Styles {
		if seen[s.ID] {
			t.Fatalf("duplicate style %s", s.ID)
		}
		seen[s.ID] = true
		if got, ok := genpipe.StyleByID(s.ID); !ok || got != s {
			t.Fatalf("StyleByID(%s) = %+v, %v", s.ID, got, ok)
		}
	}
	if _, ok := genpipe.StyleByID("nope"); ok {
		t.Fatal("unknown style found")
	}
}
