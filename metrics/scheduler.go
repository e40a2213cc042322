package metrics

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/scheduler"
)

// CountsFunc returns a stage's tasks in its scheduling queue, over every
// process (scheduler.Dispatcher.Counts).
type CountsFunc func(ctx context.Context) ([]genpipe.TaskCount, error)

// WatchScheduler reports a stage dispatcher's figures at every scrape:
// from counts (the queue, over every process) the tasks waiting by tenant
// and priority and running by tenant; from stats (this process) the tasks
// completed and the share of the capacity over the last minute by tenant,
// and the scheduling overhead. Every process of a stage reports the same
// queue counts: aggregate them with max, and the per-process figures with
// sum. Call stop when the dispatcher is gone.
func (r *Registry) WatchScheduler(stats func() scheduler.Stats, counts CountsFunc) (stop func()) {
	r.schedOnce.Do(func() {
		r.sched = &schedulerCollector{timeout: r.cfg.lagTimeout, log: r.cfg.log, watched: map[*watchedScheduler]struct{}{}}
		r.reg.MustRegister(r.sched)
	})
	w := &watchedScheduler{stats: stats, counts: counts}
	r.sched.mu.Lock()
	r.sched.watched[w] = struct{}{}
	r.sched.mu.Unlock()
	return func() {
		r.sched.mu.Lock()
		delete(r.sched.watched, w)
		r.sched.mu.Unlock()
	}
}

type watchedScheduler struct {
	stats  func() scheduler.Stats
	counts CountsFunc
}

type schedulerCollector struct {
	timeout time.Duration
	log     interface {
		Debug(msg string, args ...any)
	}
	mu      sync.Mutex
	watched map[*watchedScheduler]struct{}
}

func schedDesc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", name), help, append([]string{"stage"}, labels...), nil)
}

var (
	descWaiting = schedDesc("tasks_waiting",
		"Tasks waiting in the stage's scheduling queue, over every process, by tenant and the priority the request asked for (the same in every process: aggregate with max).",
		"tenant", "priority")
	descRunning = schedDesc("tasks_running",
		"Tasks running (AI calls under way or retrying), over every process, by tenant (the same in every process: aggregate with max).",
		"tenant")
	descCompleted = schedDesc("tasks_completed_total",
		"Tasks this process finished, by tenant (sum over processes).", "tenant")
	descTenantShare = schedDesc("tenant_capacity_share_ratio",
		"The tenant's share of the stage's capacity over the last minute in this process: busy slot-seconds over capacity × 60 s (sum over processes: 1 is the whole AI).",
		"tenant")
	descOverhead = schedDesc("scheduling_overhead_seconds",
		"Time from a slot freeing to the next task starting in it, for slots that freed while work waited.")
)

func (c *schedulerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descWaiting, descRunning, descCompleted, descTenantShare, descOverhead} {
		ch <- d
	}
}

func (c *schedulerCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	ws := make([]*watchedScheduler, 0, len(c.watched))
	for w := range c.watched {
		ws = append(ws, w)
	}
	c.mu.Unlock()
	for _, w := range ws {
		s := w.stats()
		stage := string(s.Stage)
		for tenant, n := range s.Completed {
			ch <- prometheus.MustNewConstMetric(descCompleted, prometheus.CounterValue, float64(n), stage, tenant)
		}
		for tenant, v := range s.Share {
			ch <- prometheus.MustNewConstMetric(descTenantShare, prometheus.GaugeValue, v, stage, tenant)
		}
		buckets := map[float64]uint64{}
		var cum uint64
		for i, b := range s.Overhead.Bounds {
			cum += s.Overhead.Counts[i]
			buckets[b] = cum
		}
		ch <- prometheus.MustNewConstHistogram(descOverhead, s.Overhead.Count, s.Overhead.Sum, buckets, stage)
		c.collectCounts(ch, stage, w)
	}
}

// collectCounts reports the queue's counts; a failed read leaves them out
// of this scrape.
func (c *schedulerCollector) collectCounts(ch chan<- prometheus.Metric, stage string, w *watchedScheduler) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	counts, err := w.counts(ctx)
	if err != nil {
		c.log.Debug("metrics: task counts", "stage", stage, "err", err)
		return
	}
	running := map[string]int{}
	for _, n := range counts {
		if n.Running {
			running[n.Tenant] += n.N
			continue
		}
		ch <- prometheus.MustNewConstMetric(descWaiting, prometheus.GaugeValue, float64(n.N), stage, n.Tenant, string(n.Priority))
	}
	for tenant, n := range running {
		ch <- prometheus.MustNewConstMetric(descRunning, prometheus.GaugeValue, float64(n), stage, tenant)
	}
}
