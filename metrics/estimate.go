package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/genpipe/genpipe"
)

// EstimateErrorBuckets span the error of a predicted start, in seconds,
// signed: negative when the call started earlier than predicted. A tenth
// of a second either way is a good estimate of a call that starts at once;
// minutes either way are a backlog's.
var EstimateErrorBuckets = []float64{-600, -300, -120, -60, -30, -10, -5, -2, -1, -.5, -.1, .1, .5, 1, 2, 5, 10, 30, 60, 120, 300, 600}

func newEstimateError() *prometheus.HistogramVec {
	return histogram("estimate_error_seconds",
		"Error of the predicted start of a request's AI call given in its 202, by stage: when the call started (its checking or "+
			"generating status) minus when it was predicted to, in seconds; positive when it started later than predicted.",
		EstimateErrorBuckets, "stage")
}

// ObserveEstimateError records the error of a predicted start: the actual
// start minus the predicted one.
func (r *Registry) ObserveEstimateError(stage genpipe.Stage, err time.Duration) {
	r.estimateErr.WithLabelValues(string(stage)).Observe(err.Seconds())
}
