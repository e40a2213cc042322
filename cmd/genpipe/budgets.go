package main

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/metrics"
	"github.com/genpipe/genpipe/tenants"
)

// watchBudgets reads the tenants file at path and re-reads it at each
// SIGHUP (a bad file keeps the budgets in force), and returns the budgets
// in force now of a tenant, for the workers to check before each AI call:
// a reload applies to the next call.
func watchBudgets(path string, log *slog.Logger) (budgets func(tenant string) []genpipe.Budget, stop func(), err error) {
	set, err := tenants.Load(path)
	if err != nil {
		return nil, nil, err
	}
	var current atomic.Pointer[tenants.Set]
	current.Store(&set)
	stop = onHangup(func() {
		set, err := tenants.Load(path)
		if err != nil {
			log.Error("tenants file not reloaded: the budgets in force stay", "file", path, "err", err)
			return
		}
		current.Store(&set)
		log.Info("tenants file reloaded: budgets", "file", path)
	})
	return func(tenant string) []genpipe.Budget {
		t, _ := current.Load().Tenant(tenant)
		return t.Budgets
	}, stop, nil
}

// callHook counts a paid AI call and its AI-seconds by tenant and stage.
func (o *observability) callHook(ctx context.Context, stage genpipe.Stage, tenant string, outcome genpipe.CallOutcome, d time.Duration) {
	o.metrics.PaidCall(tenant, string(stage), string(outcome), d)
}

// budgetHook counts an accepted request failed by its tenant's budget
// before its AI call.
func (o *observability) budgetHook(ctx context.Context, stage genpipe.Stage, e *genpipe.BudgetError) {
	o.metrics.BudgetRefused(e.Tenant, string(stage), metrics.BudgetAtCall)
}
