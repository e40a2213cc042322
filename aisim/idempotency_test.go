package aisim_test

import (
	"context"
	"testing"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/aiclient"
	"github.com/genpipe/genpipe/aisim"
)

// A call that repeats the idempotency key of one that succeeded gets the
// same answer without work or a slot (not paid again); another key, or no
// key, is a new call.
func TestIdempotencyKeyReplaysAnswer(t *testing.T) {
	st := newStore(t)
	svc := service(t, "check")
	checker := aiclient.NewChecker(serve(t, svc))
	url := st.add("img", pngOf(t, picture(64, 64)))
	ctx := context.Background()
	call := func(key string) genpipe.CheckVerdict {
		t.Helper()
		v, err := checker.Check(ctx, genpipe.CheckInput{RequestID: "r1", ImageURL: url, IdempotencyKey: key})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	first := call("r1/check/0")
	if again := call("r1/check/0"); again != first {
		t.Errorf("replayed verdict %+v, want the stored %+v", again, first)
	}
	if got := svc.Stats(); got.Calls != 1 || got.Succeeded != 1 || got.Replayed != 1 {
		t.Errorf("after a repeat: calls %d, succeeded %d, replayed %d; want 1, 1, 1", got.Calls, got.Succeeded, got.Replayed)
	}
	call("r1/check/1") // an operator's replay: a new call
	call("")           // no key: a new call
	if got := svc.Stats(); got.Calls != 3 || got.Replayed != 1 {
		t.Errorf("after a new key and none: calls %d, replayed %d; want 3, 1", got.Calls, got.Replayed)
	}
}

// A failed call leaves nothing to replay: the next call with its key works.
func TestIdempotencyKeyNotStoredOnFailure(t *testing.T) {
	svc := service(t, "check", aisim.WithFaultRate(1))
	checker := aiclient.NewChecker(serve(t, svc))
	for range 2 {
		if _, err := checker.Check(context.Background(), genpipe.CheckInput{RequestID: "r1", ImageURL: "http://x.invalid/", IdempotencyKey: "k"}); err == nil {
			t.Fatal("Check against an AI that always fails succeeded")
		}
	}
	if got := svc.Stats(); got.Replayed != 0 || got.InjectedFaults != 2 {
		t.Errorf("stats %+v; want 2 injected faults, nothing replayed", got)
	}
}
