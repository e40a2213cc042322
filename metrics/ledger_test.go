package metrics_test

import (
	"testing"
	"time"

	"github.com/genpipe/genpipe/metrics"
)

func TestLedgerMetrics(t *testing.T) {
	r := metrics.New(metrics.WithoutRuntimeMetrics())
	r.PaidCall("acme", "generate", "succeeded", 3*time.Second)
	r.PaidCall("acme", "generate", "succeeded", 2500*time.Millisecond)
	r.PaidCall("acme", "check", "abandoned", -time.Second) // clocks apart: 0
	r.BudgetRefused("acme", "generate", metrics.BudgetAtSubmit)
	r.BudgetRefused("acme", "generate", metrics.BudgetAtCall)
	r.BudgetRefused("acme", "generate", metrics.BudgetAtSubmit)

	s := scrape(t, r.Handler())
	want(t, s, `genpipe_ai_seconds_total{outcome="succeeded",stage="generate",tenant="acme"}`, 5.5)
	want(t, s, `genpipe_ai_calls_total{outcome="succeeded",stage="generate",tenant="acme"}`, 2)
	want(t, s, `genpipe_ai_seconds_total{outcome="abandoned",stage="check",tenant="acme"}`, 0)
	want(t, s, `genpipe_ai_calls_total{outcome="abandoned",stage="check",tenant="acme"}`, 1)
	want(t, s, `genpipe_budget_refused_total{stage="generate",tenant="acme",where="submit"}`, 2)
	want(t, s, `genpipe_budget_refused_total{stage="generate",tenant="acme",where="call"}`, 1)
}
