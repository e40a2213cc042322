package metrics

import (
	"maps"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/genpipe/genpipe"
)

// MaxTenantLabels bounds the tenant label: the first MaxTenantLabels
// tenants a registry sees keep their names, and every later one is
// reported as OtherTenant. Tenants are configured, so this only guards a
// configuration (or a bug) with unboundedly many names from turning every
// scrape into an ever larger answer and the time-series database into a
// cardinality problem: three per-tenant families × three priorities ×
// two stages × 100 tenants is 1,800 series at most.
const MaxTenantLabels = 100

// OtherTenant is the tenant label of every tenant beyond MaxTenantLabels,
// and of names no label should carry (empty, over genpipe.MaxTenantLen
// bytes, not UTF-8). Their figures are added up under it.
const OtherTenant = "other"

// SchedulingOverheadBuckets span the time from an AI slot freeing to the
// next call starting on it: well under a millisecond when the dispatcher
// has the next task at hand, tens of milliseconds when it waits for the
// status database.
var SchedulingOverheadBuckets = []float64{.0005, .001, .0025, .005, .01, .02, .05, .1, .25, .5, 1}

// SchedulerStats is a stage dispatcher's state as one scrape reads it (see
// WatchScheduler).
type SchedulerStats struct {
	// Tasks counts the stage's tasks by tenant and priority; a pair with
	// nothing waiting, running or completed may be left out.
	Tasks []TenantTasks
	// Shares is each tenant's share of the stage's capacity over the last
	// minute: the time this process's AI calls for the tenant held a slot
	// in that minute, over the stage's capacity × one minute. Summed over
	// the stage's processes it is the tenant's part of the AI (1: all of
	// it); the tenants' parts add up to the stage's utilization.
	Shares map[string]float64
}

// TenantTasks is one tenant's tasks at one priority in a stage.
type TenantTasks struct {
	Tenant   string           // "" is genpipe.DefaultTenant
	Priority genpipe.Priority // "" is genpipe.DefaultPriority
	// Waiting is how many of the stage's tasks wait in its scheduling
	// queue (stored, not started) as the status database holds them: the
	// whole stage's, the same from every process.
	Waiting int
	// Running is how many AI calls this process runs now.
	Running int
	// Completed is how many tasks this process finished (whatever the
	// outcome) since it started: a counter.
	Completed int64
}

var (
	descTenantWaiting = stageTenantDesc("tenant_waiting_requests",
		"Requests waiting in the stage's scheduling queue (stored, not started), by tenant and priority, as the status database holds them: "+
			"every process of the stage reports the whole queue, so aggregate with max, not sum.", "priority")
	descTenantRunning = stageTenantDesc("tenant_running_calls",
		"AI calls this process runs now, by tenant and priority; summed over the stage's processes, never above the stage's capacity.", "priority")
	descTenantCompleted = stageTenantDesc("tenant_completed_requests_total",
		"Requests whose stage task this process finished (done, rejected or failed), by tenant and priority.", "priority")
	descTenantShare = stageTenantDesc("tenant_capacity_share_ratio",
		"This process's AI call time for the tenant over the last minute, over the stage's capacity × a minute. "+
			"Summed over the stage's processes: the tenant's share of the AI (1 is all of it); with every tenant waiting, "+
			"its weight over the waiting tenants' weights.")
)

func stageTenantDesc(name, help string, extra ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", name), help, append([]string{"stage", "tenant"}, extra...), nil)
}

// WatchScheduler reports a stage dispatcher's per-tenant state at every
// scrape, from stats: waiting requests, running AI calls and completed
// requests by tenant and priority, and each tenant's share of the capacity
// over the last minute. Tenant labels are bounded (MaxTenantLabels). Call
// stop when the dispatcher is gone.
func (r *Registry) WatchScheduler(stage string, stats func() SchedulerStats) (stop func()) {
	r.overhead.WithLabelValues(stage)
	return r.tenants.add(&watchedScheduler{stage: stage, stats: stats})
}

// ObserveSchedulingOverhead records the time from one of stage's AI slots
// freeing to the next call starting on it (when a task was waiting).
func (r *Registry) ObserveSchedulingOverhead(stage string, d time.Duration) {
	r.overhead.WithLabelValues(stage).Observe(max(d, 0).Seconds())
}

type watchedScheduler struct {
	stage string
	stats func() SchedulerStats
}

// tenantCollector collects every watched dispatcher, tenant labels bounded
// over all of them.
type tenantCollector struct {
	watched watchSet[*watchedScheduler]

	mu     sync.Mutex
	labels map[string]struct{} // tenant names admitted as labels
}

func newTenantCollector() *tenantCollector {
	return &tenantCollector{labels: map[string]struct{}{}}
}

func (c *tenantCollector) add(w *watchedScheduler) func() { return c.watched.add(w) }

// label returns tenant's label: its name when it has one or there is room
// for it, else OtherTenant. A name keeps its label once given, so a
// tenant's counters never move between series. Call with c.mu held.
func (c *tenantCollector) label(tenant string) string {
	if tenant == "" {
		tenant = genpipe.DefaultTenant
	}
	if _, ok := c.labels[tenant]; ok {
		return tenant
	}
	if len(c.labels) >= MaxTenantLabels || len(tenant) > genpipe.MaxTenantLen || !utf8.ValidString(tenant) || tenant == OtherTenant {
		return OtherTenant
	}
	c.labels[tenant] = struct{}{}
	return tenant
}

// priorityLabel is p's label; anything unknown is "other".
func priorityLabel(p genpipe.Priority) string {
	switch {
	case p == "":
		return string(genpipe.DefaultPriority)
	case p.Valid():
		return string(p)
	}
	return OtherTenant
}

func (c *tenantCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descTenantWaiting, descTenantRunning, descTenantCompleted, descTenantShare} {
		ch <- d
	}
}

// tasksKey is one series of the per-priority families.
type tasksKey struct{ tenant, priority string }

func (c *tenantCollector) Collect(ch chan<- prometheus.Metric) {
	for _, w := range c.watched.all() {
		c.collect(ch, w.stage, w.stats())
	}
}

// collect reports one dispatcher's stats, adding up what falls under one
// label (tenants beyond the bound; a source that lists a pair twice) so
// that no series is reported twice.
func (c *tenantCollector) collect(ch chan<- prometheus.Metric, stage string, s SchedulerStats) {
	tasks := map[tasksKey]*TenantTasks{}
	var keys []tasksKey
	shares := map[string]float64{}
	c.mu.Lock()
	for _, t := range s.Tasks {
		k := tasksKey{c.label(t.Tenant), priorityLabel(t.Priority)}
		sum, ok := tasks[k]
		if !ok {
			sum = &TenantTasks{}
			tasks[k] = sum
			keys = append(keys, k)
		}
		sum.Waiting += t.Waiting
		sum.Running += t.Running
		sum.Completed += t.Completed
	}
	for tenant, v := range s.Shares {
		shares[c.label(tenant)] += v
	}
	c.mu.Unlock()
	for _, k := range keys {
		t := tasks[k]
		ch <- prometheus.MustNewConstMetric(descTenantWaiting, prometheus.GaugeValue, float64(t.Waiting), stage, k.tenant, k.priority)
		ch <- prometheus.MustNewConstMetric(descTenantRunning, prometheus.GaugeValue, float64(t.Running), stage, k.tenant, k.priority)
		ch <- prometheus.MustNewConstMetric(descTenantCompleted, prometheus.CounterValue, float64(t.Completed), stage, k.tenant, k.priority)
	}
	for _, tenant := range slices.Sorted(maps.Keys(shares)) {
		ch <- prometheus.MustNewConstMetric(descTenantShare, prometheus.GaugeValue, shares[tenant], stage, tenant)
	}
}
