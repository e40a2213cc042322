package metrics

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/genpipe/genpipe/engine"
)

// LagFunc returns the lag of group's partitions, in records (end offset
// minus the group's committed offset), by topic and partition.
// kafka.LagReader.Lag is one.
type LagFunc func(ctx context.Context, group string) (map[string]map[int32]int64, error)

// WatchStage reports a stage engine's state at every scrape, from stats
// (engine.Engine.Stats): capacity, share, limit, in-flight handlers and
// utilization, buffered records, owned partitions, records by outcome,
// overloads and rebalances. With lag not nil it also reports the lag of
// the partitions the engine owns, so that the processes of one group
// report disjoint series. Reading at scrape time, rather than the engine
// pushing updates, keeps the engine free of metrics code and costs nothing
// between scrapes. Call stop when the engine is gone.
func (r *Registry) WatchStage(stage, group string, stats func() engine.Stats, lag LagFunc) (stop func()) {
	r.InitStage(stage)
	return r.stages.add(&watched{stage: stage, group: group, stats: stats, lag: lag})
}

type watched struct {
	stage, group string
	stats        func() engine.Stats
	lag          LagFunc
}

// stageCollector collects every watched stage: one collector with variable
// labels, so that the stages of one process (`up` runs three) share the
// metric descriptions.
type stageCollector struct {
	lagTimeout time.Duration
	log        *slog.Logger
	watched    watchSet[*watched]
}

func newStageCollector(lagTimeout time.Duration, log *slog.Logger) *stageCollector {
	return &stageCollector{lagTimeout: lagTimeout, log: log}
}

func (c *stageCollector) add(w *watched) func() { return c.watched.add(w) }

func stageDesc(name, help string, extra ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", name), help, append([]string{"stage", "group"}, extra...), nil)
}

var (
	descCapacity = stageDesc("stage_capacity",
		"Concurrent calls the stage's AI (its downstream service) takes, shared by every process of the stage's consumer group.")
	descShare = stageDesc("stage_share",
		"The part of the stage's capacity this process may use, from the partitions it owns (they add up to the capacity over the group).")
	descLimit = stageDesc("stage_limit",
		"Handlers this process allows at once now: its share, or less after the AI answered 429 (halved, then regained one at a time).")
	descInFlight = stageDesc("stage_in_flight",
		"Handlers running now in this process (for check and generate: AI calls under way or retrying).")
	descUtilization = stageDesc("stage_utilization_ratio",
		"In-flight handlers over the stage's capacity. For check and generate, summed over the group's processes, this is the AI's utilization: 1 is every AI slot busy.")
	descBuffered = stageDesc("stage_buffered_records",
		"Records polled and not finished (queued or running); fetching pauses at the bound, twice the capacity by default.")
	descPaused = stageDesc("stage_fetch_paused",
		"1 while fetching is paused because the buffer is full (the stage is saturated), else 0.")
	descOwned   = stageDesc("stage_owned_partitions", "Partitions this process owns in the stage's consumer group.")
	descRecords = stageDesc("stage_records_total",
		"Records finished by this process, by outcome: ok, failed (the handler returned an error; the record is still committed) "+
			"or abandoned (canceled at a revoke or shutdown; the partition's next owner handles it again).", "outcome")
	descOverloads = stageDesc("stage_overloads_total",
		"Times this process cut its limit because the stage's AI answered 429 (at most once per cooldown).")
	descRebalances = stageDesc("consumer_rebalances_total",
		"Rebalances that took partitions from this process: revoked (a clean hand-over: running records finish and are committed) "+
			"or lost (the session expired: unfinished records are handled again by the next owner).", "kind")
	descLag = stageDesc("consumer_lag_records",
		"Records of a partition this process owns that its group has not committed yet: end offset minus committed offset.", "topic", "partition")
)

func (c *stageCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descCapacity, descShare, descLimit, descInFlight, descUtilization, descBuffered,
		descPaused, descOwned, descRecords, descOverloads, descRebalances, descLag} {
		ch <- d
	}
}

func (c *stageCollector) Collect(ch chan<- prometheus.Metric) {
	var wg sync.WaitGroup
	for _, w := range c.watched.all() {
		s := w.stats()
		collectStats(ch, w, s)
		if w.lag != nil && len(s.Partitions) > 0 {
			wg.Go(func() { c.collectLag(ch, w, s) }) // the groups' lookups overlap instead of adding up
		}
	}
	wg.Wait()
}

func collectStats(ch chan<- prometheus.Metric, w *watched, s engine.Stats) {
	gauge := func(d *prometheus.Desc, v float64, extra ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append([]string{w.stage, w.group}, extra...)...)
	}
	counter := func(d *prometheus.Desc, v int64, extra ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), append([]string{w.stage, w.group}, extra...)...)
	}
	gauge(descCapacity, float64(s.Capacity))
	gauge(descShare, float64(s.Share))
	gauge(descLimit, float64(s.Limit))
	gauge(descInFlight, float64(s.InFlight))
	utilization := 0.0
	if s.Capacity > 0 {
		utilization = float64(s.InFlight) / float64(s.Capacity)
	}
	gauge(descUtilization, utilization)
	gauge(descBuffered, float64(s.Buffered))
	paused := 0.0
	if s.Paused {
		paused = 1
	}
	gauge(descPaused, paused)
	gauge(descOwned, float64(s.Owned))
	counter(descRecords, s.Handled-s.Failed, "ok")
	counter(descRecords, s.Failed, "failed")
	counter(descRecords, s.Abandoned, "abandoned")
	counter(descOverloads, s.Overloads)
	counter(descRebalances, s.Revokes, "revoked")
	counter(descRebalances, s.Losses, "lost")
}

// collectLag reports the lag of the partitions s says the engine owns. A
// failed lookup leaves the lag out of this scrape.
func (c *stageCollector) collectLag(ch chan<- prometheus.Metric, w *watched, s engine.Stats) {
	ctx, cancel := context.WithTimeout(context.Background(), c.lagTimeout)
	defer cancel()
	lags, err := w.lag(ctx, w.group)
	if err != nil {
		c.log.Debug("metrics: consumer lag", "group", w.group, "err", err)
		return
	}
	for tp := range s.Partitions {
		lag, ok := lags[tp.Topic][tp.Partition]
		if !ok {
			continue
		}
		ch <- prometheus.MustNewConstMetric(descLag, prometheus.GaugeValue, float64(max(lag, 0)),
			w.stage, w.group, tp.Topic, strconv.Itoa(int(tp.Partition)))
	}
}
