package aisim_test

import (
	"context"
	"testing"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/aiclient"
	"github.com/genpipe/genpipe/aisim"
)

// Every answer says whether its call was paid, so that a client counting
// the calls not answered "not paid" counts exactly Stats.Calls: a call
// that took a slot (succeeded or failed), and no other — refused input, an
// injected 500 or 429, over capacity, a stored answer replayed.
func TestEveryAnswerSaysWhetherItWasPaid(t *testing.T) {
	st := newStore(t)
	url := st.add("img", pngOf(t, picture(64, 64)))
	ctx := context.Background()
	check := func(svc *aisim.Service, in genpipe.CheckInput) *genpipe.AICallReceipt {
		t.Helper()
		r := &genpipe.AICallReceipt{}
		_, _ = aiclient.NewChecker(serve(t, svc)).Check(genpipe.WithAICallReceipt(ctx, r), in)
		return r
	}
	svc := service(t, "check")
	var paid int64
	for _, tc := range []struct {
		name     string
		svc      *aisim.Service
		in       genpipe.CheckInput
		paid     bool
		replayed bool
	}{
		{"succeeded", svc, genpipe.CheckInput{RequestID: "r1", ImageURL: url, IdempotencyKey: "r1/check/0"}, true, false},
		{"replayed", svc, genpipe.CheckInput{RequestID: "r1", ImageURL: url, IdempotencyKey: "r1/check/0"}, false, true},
		{"failed after its slot (image not found)", svc, genpipe.CheckInput{RequestID: "r2", ImageURL: url + "-missing"}, true, false},
		{"refused input", svc, genpipe.CheckInput{RequestID: "r3", ImageURL: "not a url"}, false, false},
		{"injected 500", service(t, "check", aisim.WithFaultRate(1)), genpipe.CheckInput{RequestID: "r4", ImageURL: url}, false, false},
		{"injected 429", service(t, "check", aisim.WithBusyRate(1)), genpipe.CheckInput{RequestID: "r5", ImageURL: url}, false, false},
	} {
		r := check(tc.svc, tc.in)
		if !r.Sent || r.Status == 0 || r.Paid() != tc.paid || r.Replayed != tc.replayed {
			t.Errorf("%s: receipt %+v (paid %v); want sent, answered, paid %v, replayed %v", tc.name, *r, r.Paid(), tc.paid, tc.replayed)
		}
		if tc.paid && tc.svc == svc {
			paid++
		}
	}
	if got := svc.Stats().Calls; got != paid {
		t.Errorf("the service counted %d calls; the answers said %d were paid", got, paid)
	}

	// Over capacity: one call holds the only slot, the next is refused.
	busy := service(t, "check", aisim.WithCapacity(1), aisim.WithLatency(time.Second))
	base := serve(t, busy)
	go func() {
		_, _ = aiclient.NewChecker(base).Check(ctx, genpipe.CheckInput{RequestID: "slow", ImageURL: url})
	}()
	for busy.Stats().InFlight == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	r := &genpipe.AICallReceipt{}
	_, err := aiclient.NewChecker(base).Check(genpipe.WithAICallReceipt(ctx, r), genpipe.CheckInput{RequestID: "r6", ImageURL: url})
	if genpipe.ErrorCode(err) != genpipe.ETOOMANY || r.Paid() || r.Status != 429 {
		t.Errorf("over capacity: %v, receipt %+v; want a 429, not paid", err, *r)
	}

	// Never sent: nothing listens.
	r = &genpipe.AICallReceipt{}
	_, _ = aiclient.NewChecker("http://127.0.0.1:1").Check(genpipe.WithAICallReceipt(ctx, r), genpipe.CheckInput{RequestID: "r7", ImageURL: url})
	if r.Sent || r.Paid() {
		t.Errorf("unreachable service: receipt %+v; want not sent, not paid", *r)
	}
}
