package metrics_test

import (
	"testing"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/metrics"
)

// The estimate's error is a signed histogram by stage.
func TestEstimateError(t *testing.T) {
	r := metrics.New(metrics.WithoutRuntimeMetrics())
	r.ObserveEstimateError(genpipe.StageCheck, -700*time.Millisecond)
	r.ObserveEstimateError(genpipe.StageGenerate, 3*time.Second)
	r.ObserveEstimateError(genpipe.StageGenerate, 40*time.Second)
	s := scrape(t, r.Handler())
	want(t, s, `genpipe_estimate_error_seconds_bucket{stage="check",le="-0.5"}`, 1)
	want(t, s, `genpipe_estimate_error_seconds_bucket{stage="check",le="-1"}`, 0)
	want(t, s, `genpipe_estimate_error_seconds_count{stage="generate"}`, 2)
	want(t, s, `genpipe_estimate_error_seconds_bucket{stage="generate",le="5"}`, 1)
	want(t, s, `genpipe_estimate_error_seconds_sum{stage="generate"}`, 43)
}
