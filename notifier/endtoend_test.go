package notifier_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/notifier"
)

// The end-to-end hook hears each request once, at its terminal status, with
// the time since the request was created; not at other statuses, not at a
// redelivery, not for a terminal status that lost to another.
func TestEndToEndHook(t *testing.T) {
	type call struct {
		status genpipe.Status
		took   time.Duration
	}
	var (
		mu    sync.Mutex
		calls []call
	)
	hook := func(ctx context.Context, status genpipe.Status, took time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, call{status, took})
	}
	e := newEnv(t, notifier.WithEndToEndHook(hook))
	done, rejected := e.request(t, ""), e.request(t, "")
	time.Sleep(20 * time.Millisecond) // so that the durations are measurably above 0
	keys := genpipe.ResultKeys(done.ID)
	before := time.Now()
	e.handle(t, done.ID, genpipe.StatusChecking, nil, "")
	e.handle(t, done.ID, genpipe.StatusGenerating, nil, "")
	e.handle(t, done.ID, genpipe.StatusDone, &keys, "")
	e.handle(t, done.ID, genpipe.StatusDone, &keys, "")         // redelivered
	e.handle(t, done.ID, genpipe.StatusFailed, nil, "too late") // lost to done
	e.handle(t, rejected.ID, genpipe.StatusChecking, nil, "")
	e.handle(t, rejected.ID, genpipe.StatusRejected, nil, "not an image")
	after := time.Now()

	mu.Lock()
	defer mu.Unlock()
	if len(calls) != 2 || calls[0].status != genpipe.StatusDone || calls[1].status != genpipe.StatusRejected {
		t.Fatalf("hook calls %+v, want one for done, then one for rejected", calls)
	}
	const slack = time.Millisecond // stores keep times to the microsecond
	for i, r := range []*genpipe.Request{done, rejected} {
		low, high := before.Sub(r.CreatedAt)-slack, after.Sub(r.CreatedAt)+slack
		if took := calls[i].took; took < low || took > high {
			t.Errorf("%s took %v; want the time from creation to the status, between %v and %v", calls[i].status, took, low, high)
		}
	}
}
