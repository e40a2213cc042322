package worker_test

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/backoff"
	"github.com/genpipe/genpipe/internal/testenv"
	"github.com/genpipe/genpipe/internal/testutil"
	"github.com/genpipe/genpipe/worker"
)

// The retry hook hears every retried AI call with its stage and error, and
// nothing else: not the last attempt, not a refusal that is never retried.
func TestRetryHook(t *testing.T) {
	policy := backoff.Policy{Attempts: 3, Base: time.Millisecond, Max: 5 * time.Millisecond}
	for _, tc := range []struct {
		stage    string
		status   int
		attempts int
		want     []string // the codes the hook hears
	}{
		{"check", http.StatusInternalServerError, 3, []string{genpipe.EUNAVAILABLE, genpipe.EUNAVAILABLE}},
		{"generate", http.StatusTooManyRequests, 3, []string{genpipe.ETOOMANY, genpipe.ETOOMANY}},
		{"check", http.StatusBadRequest, 1, nil},
	} {
		t.Run(tc.stage+"/"+http.StatusText(tc.status), func(t *testing.T) {
			var (
				mu    sync.Mutex
				codes []string
			)
			hook := func(ctx context.Context, stage genpipe.Stage, err error) {
				mu.Lock()
				defer mu.Unlock()
				if string(stage) != tc.stage {
					t.Errorf("hook heard stage %q, want %q", stage, tc.stage)
				}
				if ctx == nil || ctx.Err() != nil {
					t.Errorf("hook got a context that is nil or done")
				}
				codes = append(codes, genpipe.ErrorCode(err))
			}
			log, _ := testutil.CaptureLogs(t)
			url := serve(t, &failingAI{status: tc.status, detail: "no"})
			handle, event, _, _ := stageUnderTest(t, tc.stage, url, testenv.New(t),
				worker.WithLogger(log), worker.WithRetry(policy), worker.WithRetryHook(hook))
			wantDeadLetter(t, handle(testutil.Context(t), event), tc.attempts)
			mu.Lock()
			defer mu.Unlock()
			if !slices.Equal(codes, tc.want) {
				t.Errorf("hook heard %v, want %v", codes, tc.want)
			}
		})
	}
}
