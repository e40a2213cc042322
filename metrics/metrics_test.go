package metrics_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/genpipe/genpipe/engine"
	"github.com/genpipe/genpipe/internal/testenv"
	"github.com/genpipe/genpipe/internal/testutil"
	"github.com/genpipe/genpipe/metrics"
)

// scrape GETs /metrics from h and returns every sample by its series, as
// the text format prints it: name{label="value",...} (labels sorted).
func scrape(t *testing.T, h http.Handler) map[string]float64 {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	return testutil.Scrape(t, srv.URL)
}

func want(t *testing.T, samples map[string]float64, series string, value float64) {
	t.Helper()
	got, ok := samples[series]
	switch {
	case !ok:
		t.Errorf("no sample %s", series)
	case got != value:
		t.Errorf("%s = %g, want %g", series, got, value)
	}
}

func TestPipelineMetrics(t *testing.T) {
	r := metrics.New(metrics.WithoutRuntimeMetrics())
	r.InitStage("generate")
	r.ObserveProcessing("check", 30*time.Millisecond)
	r.ObserveProcessing("check", 3*time.Second)
	r.ObserveEndToEnd("done", 4*time.Second)
	r.ObserveEndToEnd("rejected", -time.Second) // clocks apart: counted as 0
	r.AIRetry("generate", "too_many_requests")
	r.AIRetry("generate", "too_many_requests")
	r.AIRetry("check", "unavailable")
	r.DeadLetter("notifier")

	s := scrape(t, r.Handler())
	want(t, s, `genpipe_stage_processing_seconds_count{stage="check"}`, 2)
	want(t, s, `genpipe_stage_processing_seconds_sum{stage="check"}`, 3.03)
	want(t, s, `genpipe_stage_processing_seconds_bucket{stage="check",le="0.05"}`, 1)
	want(t, s, `genpipe_stage_processing_seconds_bucket{stage="check",le="5"}`, 2)
	want(t, s, `genpipe_stage_processing_seconds_count{stage="generate"}`, 0) // InitStage
	want(t, s, `genpipe_request_duration_seconds_count{status="done"}`, 1)
	want(t, s, `genpipe_request_duration_seconds_sum{status="done"}`, 4)
	want(t, s, `genpipe_request_duration_seconds_sum{status="rejected"}`, 0)
	want(t, s, `genpipe_ai_retries_total{code="too_many_requests",stage="generate"}`, 2)
	want(t, s, `genpipe_ai_retries_total{code="unavailable",stage="check"}`, 1)
	want(t, s, `genpipe_dead_letters_total{stage="notifier"}`, 1)
	want(t, s, `genpipe_dead_letters_total{stage="generate"}`, 0) // InitStage
	for series := range s {
		if strings.HasPrefix(series, "go_") || strings.HasPrefix(series, "process_") {
			t.Fatalf("runtime metric %s despite WithoutRuntimeMetrics", series)
		}
	}
	if s := scrape(t, metrics.New().Handler()); s["go_goroutines"] == 0 {
		t.Error("no go_goroutines by default")
	}
}

func TestWatchStage(t *testing.T) {
	r := metrics.New(metrics.WithoutRuntimeMetrics(), metrics.WithLagTimeout(100*time.Millisecond))
	stats := engine.Stats{Capacity: 64, Share: 32, Limit: 16, InFlight: 16, Buffered: 40, Paused: true, Owned: 2,
		Handled: 10, Failed: 3, Abandoned: 1, Overloads: 2, Revokes: 4, Losses: 1,
		Partitions: map[engine.TopicPartition]engine.PartitionStats{{Topic: "t", Partition: 0}: {}, {Topic: "t", Partition: 1}: {}}}
	lagErr := error(nil)
	lag := func(ctx context.Context, group string) (map[string]map[int32]int64, error) {
		if group != "g" {
			t.Errorf("lag asked for group %q, want g", group)
		}
		// Partition 2 belongs to another process of the group: not ours to report.
		return map[string]map[int32]int64{"t": {0: 5, 1: 7, 2: 9}}, lagErr
	}
	stop := r.WatchStage("generate", "g", func() engine.Stats { return stats }, lag)

	s := scrape(t, r.Handler())
	const l = `{group="g",stage="generate"}`
	want(t, s, "genpipe_stage_capacity"+l, 64)
	want(t, s, "genpipe_stage_share"+l, 32)
	want(t, s, "genpipe_stage_limit"+l, 16)
	want(t, s, "genpipe_stage_in_flight"+l, 16)
	want(t, s, "genpipe_stage_utilization_ratio"+l, 0.25)
	want(t, s, "genpipe_stage_buffered_records"+l, 40)
	want(t, s, "genpipe_stage_fetch_paused"+l, 1)
	want(t, s, "genpipe_stage_owned_partitions"+l, 2)
	want(t, s, `genpipe_stage_records_total{group="g",outcome="ok",stage="generate"}`, 7)
	want(t, s, `genpipe_stage_records_total{group="g",outcome="failed",stage="generate"}`, 3)
	want(t, s, `genpipe_stage_records_total{group="g",outcome="abandoned",stage="generate"}`, 1)
	want(t, s, "genpipe_stage_overloads_total"+l, 2)
	want(t, s, `genpipe_consumer_rebalances_total{group="g",kind="revoked",stage="generate"}`, 4)
	want(t, s, `genpipe_consumer_rebalances_total{group="g",kind="lost",stage="generate"}`, 1)
	want(t, s, `genpipe_consumer_lag_records{group="g",partition="0",stage="generate",topic="t"}`, 5)
	want(t, s, `genpipe_consumer_lag_records{group="g",partition="1",stage="generate",topic="t"}`, 7)
	if _, ok := s[`genpipe_consumer_lag_records{group="g",partition="2",stage="generate",topic="t"}`]; ok {
		t.Error("lag of a partition the engine does not own is reported")
	}

	// A failed lag lookup leaves the lag out, not the scrape.
	lagErr = errors.New("brokers away")
	s = scrape(t, r.Handler())
	want(t, s, "genpipe_stage_capacity"+l, 64)
	if _, ok := s[`genpipe_consumer_lag_records{group="g",partition="0",stage="generate",topic="t"}`]; ok {
		t.Error("lag reported although the lookup failed")
	}

	stop()
	if _, ok := scrape(t, r.Handler())["genpipe_stage_capacity"+l]; ok {
		t.Error("a stage still reported after stop")
	}
}

// A lag lookup that hangs costs a scrape the lag timeout, no more.
func TestWatchStageLagTimeout(t *testing.T) {
	r := metrics.New(metrics.WithoutRuntimeMetrics(), metrics.WithLagTimeout(50*time.Millisecond))
	stats := engine.Stats{Capacity: 1, Partitions: map[engine.TopicPartition]engine.PartitionStats{{Topic: "t"}: {}}}
	r.WatchStage("check", "g", func() engine.Stats { return stats }, func(ctx context.Context, _ string) (map[string]map[int32]int64, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})
	start := time.Now()
	s := scrape(t, r.Handler())
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("scrape took %v with a hanging lag lookup", took)
	}
	want(t, s, `genpipe_stage_capacity{group="g",stage="check"}`, 1)
}

// Kafka clients report through kprom under their own client label, also
// two clients given one name, and their metrics leave when they close.
func TestKafkaHooks(t *testing.T) {
	b := testenv.StartKafka(t)
	b.EnsureTopics(t, 1, "metrics-test")
	r := metrics.New(metrics.WithoutRuntimeMetrics())
	var clients []*kgo.Client
	for range 2 {
		cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...), kgo.WithHooks(r.KafkaHooks("api-producer")))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		clients = append(clients, cl)
	}
	for i, cl := range clients {
		for range i + 1 {
			if err := cl.ProduceSync(t.Context(), &kgo.Record{Topic: "metrics-test", Key: []byte("k"), Value: []byte("v")}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	// franz-go may call the batch-written hook, which counts the records,
	// just after the produce's promise.
	series := map[string]float64{
		`genpipe_kafka_produce_records_total{client="api-producer",node_id="0",topic="metrics-test"}`:   1,
		`genpipe_kafka_produce_records_total{client="api-producer-2",node_id="0",topic="metrics-test"}`: 2,
	}
	testutil.Eventually(t, 10*time.Second, "the produced records counted", func() bool {
		s := scrape(t, r.Handler())
		for name, value := range series {
			if s[name] != value {
				return false
			}
		}
		return true
	})
	clients[0].Close()
	s := scrape(t, r.Handler())
	for series := range s {
		if strings.Contains(series, `client="api-producer"`) {
			t.Fatalf("%s still reported after its client closed", series)
		}
	}
	want(t, s, `genpipe_kafka_produce_records_total{client="api-producer-2",node_id="0",topic="metrics-test"}`, 2)
}

// An AI stage's retry counters show at 0 from the start, for every code a
// retried attempt has, so the first retry is an increase.
func TestInitAIStage(t *testing.T) {
	r := metrics.New(metrics.WithoutRuntimeMetrics())
	r.InitAIStage("generate")
	s := scrape(t, r.Handler())
	for _, code := range []string{"too_many_requests", "unavailable", "internal"} {
		want(t, s, `genpipe_ai_retries_total{code="`+code+`",stage="generate"}`, 0)
	}
}
