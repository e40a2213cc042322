package metrics_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/metrics"
)

// fakeScheduler stands for a stage's dispatcher: its stats are whatever
// the test sets.
type fakeScheduler struct {
	mu sync.Mutex
	st metrics.SchedulerStats
}

func (f *fakeScheduler) set(st metrics.SchedulerStats) {
	f.mu.Lock()
	f.st = st
	f.mu.Unlock()
}

func (f *fakeScheduler) stats() metrics.SchedulerStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st
}

func TestTenantMetrics(t *testing.T) {
	r := metrics.New(metrics.WithoutRuntimeMetrics())
	gen := &fakeScheduler{}
	gen.set(metrics.SchedulerStats{
		Tasks: []metrics.TenantTasks{
			{Tenant: "acme", Priority: genpipe.PriorityNormal, Waiting: 4800, Running: 32, Completed: 200},
			{Tenant: "acme", Priority: genpipe.PriorityHigh, Waiting: 1, Running: 0, Completed: 3},
			{Tenant: "", Priority: "", Waiting: 2, Running: 32, Completed: 90}, // the default tenant at normal
		},
		Shares: map[string]float64{"acme": 0.5, "": 0.48},
	})
	stop := r.WatchScheduler("generate", gen.stats)
	r.ObserveSchedulingOverhead("generate", 3*time.Millisecond)
	r.ObserveSchedulingOverhead("generate", 40*time.Millisecond)

	s := scrape(t, r.Handler())
	want(t, s, `genpipe_tenant_waiting_requests{priority="normal",stage="generate",tenant="acme"}`, 4800)
	want(t, s, `genpipe_tenant_waiting_requests{priority="high",stage="generate",tenant="acme"}`, 1)
	want(t, s, `genpipe_tenant_running_calls{priority="normal",stage="generate",tenant="acme"}`, 32)
	want(t, s, `genpipe_tenant_completed_requests_total{priority="high",stage="generate",tenant="acme"}`, 3)
	want(t, s, `genpipe_tenant_waiting_requests{priority="normal",stage="generate",tenant="default"}`, 2)
	want(t, s, `genpipe_tenant_completed_requests_total{priority="normal",stage="generate",tenant="default"}`, 90)
	want(t, s, `genpipe_tenant_capacity_share_ratio{stage="generate",tenant="acme"}`, 0.5)
	want(t, s, `genpipe_tenant_capacity_share_ratio{stage="generate",tenant="default"}`, 0.48)
	want(t, s, `genpipe_scheduler_overhead_seconds_bucket{stage="generate",le="0.005"}`, 1)
	want(t, s, `genpipe_scheduler_overhead_seconds_bucket{stage="generate",le="0.02"}`, 1)
	want(t, s, `genpipe_scheduler_overhead_seconds_count{stage="generate"}`, 2)

	// Read at every scrape: the next one sees the dispatcher's new state.
	gen.set(metrics.SchedulerStats{Tasks: []metrics.TenantTasks{{Tenant: "acme", Waiting: 10, Completed: 4990}}})
	s = scrape(t, r.Handler())
	want(t, s, `genpipe_tenant_waiting_requests{priority="normal",stage="generate",tenant="acme"}`, 10)
	want(t, s, `genpipe_tenant_completed_requests_total{priority="normal",stage="generate",tenant="acme"}`, 4990)

	stop()
	s = scrape(t, r.Handler())
	for series := range s {
		if strings.HasPrefix(series, "genpipe_tenant_") {
			t.Errorf("after stop: %s", series)
		}
	}
	// The overhead histogram stays: it counts what happened.
	want(t, s, `genpipe_scheduler_overhead_seconds_count{stage="generate"}`, 2)
}

// A dispatcher with no scrape yet still shows its stage's overhead
// histogram, at 0, so that alerts on it see it from the start.
func TestSchedulingOverheadFromTheStart(t *testing.T) {
	r := metrics.New(metrics.WithoutRuntimeMetrics())
	defer r.WatchScheduler("check", func() metrics.SchedulerStats { return metrics.SchedulerStats{} })()
	want(t, scrape(t, r.Handler()), `genpipe_scheduler_overhead_seconds_count{stage="check"}`, 0)
}

// Tenant labels are bounded: past MaxTenantLabels names, and for names no
// label should carry, the figures add up under "other", one series per
// stage and priority, and a name keeps its label once given.
func TestTenantLabelsBounded(t *testing.T) {
	r := metrics.New(metrics.WithoutRuntimeMetrics())
	var tasks []metrics.TenantTasks
	shares := map[string]float64{}
	n := metrics.MaxTenantLabels + 50
	for i := range n {
		name := fmt.Sprintf("t%03d", i)
		tasks = append(tasks, metrics.TenantTasks{Tenant: name, Waiting: 1, Running: 1, Completed: 10})
		shares[name] = 1.0 / 1024 // exact in binary, so sums compare exactly
	}
	tasks = append(tasks,
		metrics.TenantTasks{Tenant: strings.Repeat("x", genpipe.MaxTenantLen+1), Waiting: 1},
		metrics.TenantTasks{Tenant: "bad\xff", Waiting: 1},
		metrics.TenantTasks{Tenant: "t000", Priority: "urgent", Waiting: 7}, // an unknown priority
	)
	src := &fakeScheduler{}
	src.set(metrics.SchedulerStats{Tasks: tasks, Shares: shares})
	defer r.WatchScheduler("generate", src.stats)()
	defer r.WatchScheduler("check", src.stats)()

	s := scrape(t, r.Handler())
	names := map[string]bool{}
	for series := range s {
		if !strings.HasPrefix(series, "genpipe_tenant_waiting_requests{") {
			continue
		}
		i := strings.Index(series, `tenant="`)
		names[series[i+8:strings.IndexByte(series[i+8:], '"')+i+8]] = true
	}
	if len(names) != metrics.MaxTenantLabels+1 {
		t.Errorf("%d tenant labels, want %d and other", len(names), metrics.MaxTenantLabels)
	}
	// The first MaxTenantLabels names seen keep theirs; the other 50 and
	// the two bad names add up under other.
	want(t, s, `genpipe_tenant_waiting_requests{priority="normal",stage="generate",tenant="t000"}`, 1)
	want(t, s, `genpipe_tenant_waiting_requests{priority="other",stage="generate",tenant="t000"}`, 7)
	want(t, s, `genpipe_tenant_waiting_requests{priority="normal",stage="generate",tenant="other"}`, 52)
	want(t, s, `genpipe_tenant_running_calls{priority="normal",stage="check",tenant="other"}`, 50)
	want(t, s, `genpipe_tenant_completed_requests_total{priority="normal",stage="generate",tenant="other"}`, 500)
	want(t, s, `genpipe_tenant_capacity_share_ratio{stage="generate",tenant="other"}`, 50.0/1024)
	if _, ok := s[`genpipe_tenant_waiting_requests{priority="normal",stage="generate",tenant="t149"}`]; ok {
		t.Error("a tenant past the bound has a label of its own")
	}

	// A name admitted keeps its label when the others go and come back.
	src.set(metrics.SchedulerStats{Tasks: []metrics.TenantTasks{{Tenant: "newcomer", Waiting: 3}, {Tenant: "t099", Waiting: 2}}})
	s = scrape(t, r.Handler())
	want(t, s, `genpipe_tenant_waiting_requests{priority="normal",stage="generate",tenant="other"}`, 3)
	want(t, s, `genpipe_tenant_waiting_requests{priority="normal",stage="generate",tenant="t099"}`, 2)
}
