package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ledgerMetrics are the ledger's and the budgets': what the AI calls cost
// each tenant, and what budgets refused.
type ledgerMetrics struct {
	aiSeconds     *prometheus.CounterVec
	aiCalls       *prometheus.CounterVec
	budgetRefused *prometheus.CounterVec
}

func newLedgerMetrics() ledgerMetrics {
	return ledgerMetrics{
		aiSeconds: counter("ai_seconds_total",
			"AI time of the paid calls this process made, by tenant, stage and outcome "+
				"(succeeded, failed, aborted by a cancel, abandoned without an answer): what the ledger charges.",
			"tenant", "stage", "outcome"),
		aiCalls: counter("ai_calls_total",
			"Paid AI calls this process made, by tenant, stage and outcome (calls the AI did not take on — 429s, "+
				"replayed answers — are not counted, as in the ledger).",
			"tenant", "stage", "outcome"),
		budgetRefused: counter("budget_refused_total",
			"Requests refused because their tenant's daily budget was spent, by tenant, stage of the budget, and where: "+
				"submit (429 at POST /v1/requests) or call (an accepted request failed before its AI call).",
			"tenant", "stage", "where"),
	}
}

func (m ledgerMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.aiSeconds, m.aiCalls, m.budgetRefused}
}

// Where a budget refused a request (BudgetRefused's where).
const (
	BudgetAtSubmit = "submit"
	BudgetAtCall   = "call"
)

// PaidCall counts one paid AI call of tenant at stage, ended with outcome
// after d.
func (r *Registry) PaidCall(tenant, stage, outcome string, d time.Duration) {
	r.ledger.aiCalls.WithLabelValues(tenant, stage, outcome).Inc()
	r.ledger.aiSeconds.WithLabelValues(tenant, stage, outcome).Add(max(d, 0).Seconds())
}

// BudgetRefused counts one request of tenant refused by its budget on
// stage, where (BudgetAtSubmit or BudgetAtCall).
func (r *Registry) BudgetRefused(tenant, stage, where string) {
	r.ledger.budgetRefused.WithLabelValues(tenant, stage, where).Inc()
}
