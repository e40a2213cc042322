package scheduler

import (
	"context"
	"maps"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/internal/span"
)

// Stats is a snapshot of a dispatcher, for metrics. Every figure is this
// process's; the queue's own counts over every process are Counts'.
type Stats struct {
	Stage    genpipe.Stage
	Capacity int // the stage's capacity over every process
	Limit    int // this process's adaptive limit (see Dispatcher)
	Running  int // tasks this process runs now
	// Tenants holds this process's running and completed tasks by tenant
	// and priority.
	Tenants map[TenantPriority]TenantStats
	// Share is each tenant's share of the stage's capacity over the last
	// minute in this process: its busy slot-seconds over capacity × 60 s.
	// Summed over the processes of a stage, a tenant's shares make its
	// share of the AI.
	Share map[string]float64
	// Taken, Released and Overloads count since the start: tasks taken,
	// handed back to waiting (overload, shutdown), and limit cuts.
	Taken, Released, Overloads int64
}

// TenantPriority keys figures by tenant and the priority a request asked
// for.
type TenantPriority struct {
	Tenant   string
	Priority genpipe.Priority
}

// TenantStats are one tenant's tasks at one priority in this process.
type TenantStats struct {
	Running   int   // now
	Completed int64 // since the start, whatever the outcome
}

// window is the span Stats.Share covers.
const window = time.Minute

// counters are a dispatcher's running figures, under its mutex.
type counters struct {
	capacity                   int
	completed                  map[TenantPriority]int64
	taken, released, overloads int64
	// Busy slot-seconds by tenant in one-second buckets over the window:
	// second[i] is the Unix second bucket i holds.
	second [60]int64
	slots  [60]map[string]float64
}

func newCounters(capacity int) counters {
	return counters{capacity: capacity, completed: map[TenantPriority]int64{}}
}

// busy adds tenant's slot time from start to end, within the window.
func (c *counters) busy(tenant string, start, end time.Time) {
	start = span.Later(start, end.Add(-window))
	for sec := start.Unix(); sec <= end.Unix(); sec++ {
		held := span.Overlap(start, end, time.Unix(sec, 0), time.Unix(sec+1, 0))
		if held == 0 {
			continue
		}
		i := sec % 60
		if c.second[i] != sec || c.slots[i] == nil {
			c.second[i], c.slots[i] = sec, map[string]float64{}
		}
		c.slots[i][tenant] += held.Seconds()
	}
}

// shares returns each tenant's busy slot-seconds over the window before
// now, divided by capacity × window.
func (c *counters) shares(now time.Time) map[string]float64 {
	out := map[string]float64{}
	oldest := now.Add(-window).Unix()
	for i, sec := range c.second {
		if sec > oldest && sec <= now.Unix() {
			for tenant, s := range c.slots[i] {
				out[tenant] += s
			}
		}
	}
	for tenant, s := range out {
		out[tenant] = s / (float64(c.capacity) * window.Seconds())
	}
	return out
}

// Stats returns a snapshot of the dispatcher.
func (d *Dispatcher) Stats() Stats {
	now := time.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	// Running tasks count up to now: a copy of the counters takes them in.
	c := d.st.stats
	c.slots = [60]map[string]float64{}
	for i, m := range d.st.stats.slots {
		c.slots[i] = maps.Clone(m)
	}
	tenants := map[TenantPriority]TenantStats{}
	for k, n := range d.st.stats.completed {
		tenants[k] = TenantStats{Completed: n}
	}
	for _, run := range d.st.running {
		c.busy(run.task.Share.Tenant, run.start, now)
		k := keyOf(run.task)
		ts := tenants[k]
		ts.Running++
		tenants[k] = ts
	}
	return Stats{Stage: d.stage, Capacity: d.cfg.capacity, Limit: d.st.limit, Running: len(d.st.running),
		Tenants: tenants, Share: c.shares(now), Taken: c.taken, Released: c.released, Overloads: c.overloads}
}

func keyOf(t genpipe.Task) TenantPriority {
	return TenantPriority{Tenant: t.Share.Tenant, Priority: t.Share.Priority}
}

// Counts returns the stage's tasks in the queue, over every process, by
// tenant, priority and state: waiting by tenant and priority, running by
// tenant.
func (d *Dispatcher) Counts(ctx context.Context) ([]genpipe.TaskCount, error) {
	return d.q.CountTasks(ctx, d.stage)
}
