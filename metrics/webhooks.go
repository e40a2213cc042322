package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// WebhookBuckets span one webhook POST: a receiver on the same network
// answers in milliseconds, the notifier's client gives up after 10 s.
var WebhookBuckets = []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// The outcomes of a webhook attempt (WebhookAttempt's outcome).
const (
	WebhookDelivered = "delivered" // the receiver answered 2xx
	WebhookRetried   = "retried"   // it failed; the delivery goes out again later
	WebhookFailed    = "failed"    // refused in a way retrying cannot fix: not retried
	WebhookAbandoned = "abandoned" // it failed after the retry window: no more attempts
)

// webhooks counts the notifier's webhook attempts. Registered by
// InitWebhooks, so that only the processes that send webhooks show them.
type webhooks struct {
	once     sync.Once
	attempts *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// InitWebhooks registers the webhook metrics with every outcome at 0, so
// that rate() and alerts see a failure from the first one: a series born
// at 1 has no increase.
func (r *Registry) InitWebhooks() *Registry {
	r.webhooks.once.Do(func() {
		r.webhooks.attempts = counter("webhook_attempts_total",
			"Webhook POSTs the notifier made, by outcome: delivered (2xx), retried (failed; sent again later), "+
				"failed (refused in a way retrying cannot fix: a 4xx, a redirect, an address not public) or "+
				"abandoned (failed after the retry window).", "outcome")
		r.webhooks.duration = histogram("webhook_attempt_seconds",
			"Time one webhook POST took, until the receiver's answer or the client's timeout, by outcome.",
			WebhookBuckets, "outcome")
		for _, o := range []string{WebhookDelivered, WebhookRetried, WebhookFailed, WebhookAbandoned} {
			r.webhooks.attempts.WithLabelValues(o)
			r.webhooks.duration.WithLabelValues(o)
		}
		r.reg.MustRegister(r.webhooks.attempts, r.webhooks.duration)
	})
	return r
}

// WebhookAttempt counts one webhook attempt that ended with outcome
// (WebhookDelivered, ...) after d.
func (r *Registry) WebhookAttempt(outcome string, d time.Duration) {
	r.InitWebhooks()
	r.webhooks.attempts.WithLabelValues(outcome).Inc()
	r.webhooks.duration.WithLabelValues(outcome).Observe(max(d, 0).Seconds())
}
