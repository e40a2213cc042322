package worker

import (
	"context"
	"errors"
	"testing"

	"github.com/genpipe/genpipe"
)

func TestCallOutcome(t *testing.T) {
	live := context.Background()
	canceled, cancel := context.WithCancelCause(live)
	cancel(errors.New("the request was canceled")) // a cause of the canceler's own
	timedOut, stop := context.WithTimeout(live, 0)
	defer stop()
	<-timedOut.Done()
	failed := errors.New("HTTP 502")
	for _, tc := range []struct {
		name string
		ctx  context.Context
		r    genpipe.AICallReceipt
		err  error
		want genpipe.CallOutcome
	}{
		{"answered", live, genpipe.AICallReceipt{Sent: true, Status: 200}, nil, genpipe.CallSucceeded},
		{"error answer", live, genpipe.AICallReceipt{Sent: true, Status: 502}, failed, genpipe.CallFailed},
		{"no answer: timeout or connection lost", live, genpipe.AICallReceipt{Sent: true}, failed, genpipe.CallAbandoned},
		{"canceled, no answer", canceled, genpipe.AICallReceipt{Sent: true}, context.Canceled, genpipe.CallAborted},
		{"canceled as an error answer came", canceled, genpipe.AICallReceipt{Sent: true, Status: 499}, failed, genpipe.CallAborted},
		{"the call's own deadline", timedOut, genpipe.AICallReceipt{Sent: true}, context.DeadlineExceeded, genpipe.CallAbandoned},
	} {
		if got := callOutcome(tc.ctx, &tc.r, tc.err); got != tc.want {
			t.Errorf("%s: %s; want %s", tc.name, got, tc.want)
		}
	}
}
