package metrics_test

import (
	"strings"
	"testing"
	"time"

	"github.com/genpipe/genpipe/metrics"
)

// The webhook metrics show every outcome at 0 once the notifier starts,
// and nowhere else; attempts count by outcome.
func TestWebhookMetrics(t *testing.T) {
	r := metrics.New(metrics.WithoutRuntimeMetrics())
	for series := range scrape(t, r.Handler()) {
		if strings.HasPrefix(series, "genpipe_webhook_") {
			t.Errorf("before InitWebhooks: %s", series)
		}
	}
	r.InitWebhooks()
	s := scrape(t, r.Handler())
	for _, o := range []string{metrics.WebhookDelivered, metrics.WebhookRetried, metrics.WebhookFailed, metrics.WebhookAbandoned} {
		want(t, s, `genpipe_webhook_attempts_total{outcome="`+o+`"}`, 0)
		want(t, s, `genpipe_webhook_attempt_seconds_count{outcome="`+o+`"}`, 0)
	}
	r.WebhookAttempt(metrics.WebhookRetried, 30*time.Millisecond)
	r.WebhookAttempt(metrics.WebhookRetried, 10*time.Second)
	r.WebhookAttempt(metrics.WebhookDelivered, 20*time.Millisecond)
	s = scrape(t, r.Handler())
	want(t, s, `genpipe_webhook_attempts_total{outcome="retried"}`, 2)
	want(t, s, `genpipe_webhook_attempts_total{outcome="delivered"}`, 1)
	want(t, s, `genpipe_webhook_attempt_seconds_bucket{outcome="retried",le="0.05"}`, 1)
	want(t, s, `genpipe_webhook_attempt_seconds_bucket{outcome="retried",le="10"}`, 2)
}
