package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/internal/testenv"
	"github.com/genpipe/genpipe/internal/testutil"
)

// scrapeMetrics GETs url (a /metrics) and returns every sample by its
// series as the text format prints it: name{label="value",...}.
func scrapeMetrics(t *testing.T, url string) map[string]float64 { return testutil.Scrape(t, url) }

// sum adds the samples of metric name whose labels hold every one of
// labels (each `key="value"`), and reports whether there was any.
func sum(samples map[string]float64, name string, labels ...string) (float64, bool) {
	total, found := 0.0, false
	for series, v := range samples {
		metric, rest, _ := strings.Cut(series, "{")
		if metric != name {
			continue
		}
		if !allIn(rest, labels) {
			continue
		}
		total, found = total+v, true
	}
	return total, found
}

func allIn(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// After a request went through `up` and a poison record was set aside, the
// API's /metrics shows the whole system moving: every stage's handling, the
// end-to-end latency, the dead letter, the Kafka clients, the stages' state
// and lag, and the Go runtime.
func TestMetricsOfUp(t *testing.T) {
	url := sys.API + "/metrics"
	before := scrapeMetrics(t, url)

	u := uploadImage(t, "image/png", pngImage(t, 160, 100))
	var a accepted
	if resp := call(t, "POST", "/v1/requests", map[string]string{"objectId": u.ObjectID, "style": "forest", "description": "measured"}, nil, &a); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /v1/requests: %s", resp.Status)
	}
	if v := waitTerminal(t, a.ID, 30*time.Second); v.Status != "done" {
		t.Fatalf("request ended %s (%s), want done", v.Status, v.Error)
	}
	p := testenv.NewProducer(t, sys.Brokers)
	poison := "poison-" + uuid.NewString()
	if err := p.Publish(t.Context(), genpipe.DefaultTopics().Requests, poison, []byte("not json")); err != nil {
		t.Fatal(err)
	}
	waitDeadLetters(t, poison, 1)

	// The notifier records done, then the webhook-less request is over;
	// the dead letter is counted once it is written, before dlq list sees
	// it. Still, give the last handler a moment to return.
	var after map[string]float64
	grew := func(name string, by float64, labels ...string) bool {
		b, _ := sum(before, name, labels...)
		a, _ := sum(after, name, labels...)
		return a-b >= by
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		after = scrapeMetrics(t, url)
		if grew("genpipe_stage_processing_seconds_count", 3, `stage="notifier"`) &&
			grew("genpipe_request_duration_seconds_count", 1, `status="done"`) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}

	for _, c := range []struct {
		name   string
		by     float64
		labels []string
	}{
		// One record per stage, at least; the notifier has three (checking, generating, done).
		{"genpipe_stage_processing_seconds_count", 2, []string{`stage="check"`}}, // the request and the poison record
		{"genpipe_stage_processing_seconds_count", 1, []string{`stage="generate"`}},
		{"genpipe_stage_processing_seconds_count", 3, []string{`stage="notifier"`}},
		{"genpipe_request_duration_seconds_count", 1, []string{`status="done"`}},
		{"genpipe_dead_letters_total", 1, []string{`stage="check"`}},
		{"genpipe_stage_records_total", 2, []string{`stage="check"`, `outcome="ok"`}},
		{"genpipe_kafka_produce_records_total", 1, []string{`client="api-producer"`, `topic="genpipe.requests"`}},
		{"genpipe_kafka_produce_records_total", 1, []string{`client="check-producer"`, `topic="genpipe.checked"`}},
		{"genpipe_kafka_produce_records_total", 1, []string{`client="check-producer"`, `topic="genpipe.deadletters"`}},
		{"genpipe_kafka_fetch_records_total", 2, []string{`client="check-consumer"`, `topic="genpipe.requests"`}},
		{"genpipe_kafka_fetch_records_total", 3, []string{`client="notifier-consumer"`, `topic="genpipe.results"`}},
	} {
		if !grew(c.name, c.by, c.labels...) {
			b, _ := sum(before, c.name, c.labels...)
			a, _ := sum(after, c.name, c.labels...)
			t.Errorf("%s%v went from %g to %g; want it up by %g", c.name, c.labels, b, a, c.by)
		}
	}
	if n, _ := sum(after, "genpipe_request_duration_seconds_sum", `status="done"`); n <= 0 {
		t.Errorf("end-to-end latency sum %g, want > 0", n)
	}
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"genpipe_stage_capacity", []string{`stage="check"`, `group="genpipe-check"`}, 8},
		{"genpipe_stage_capacity", []string{`stage="generate"`, `group="genpipe-generate"`}, 8},
		{"genpipe_stage_share", []string{`stage="generate"`}, 8}, // one process owns every partition
		{"genpipe_stage_owned_partitions", []string{`stage="generate"`}, 4},
	} {
		if got, ok := sum(after, c.name, c.labels...); !ok || got != c.want {
			t.Errorf("%s%v = %g (present %v), want %g", c.name, c.labels, got, ok, c.want)
		}
	}
	for _, stage := range []string{"check", "generate", "notifier"} {
		if _, ok := sum(after, "genpipe_stage_utilization_ratio", `stage="`+stage+`"`); !ok {
			t.Errorf("no genpipe_stage_utilization_ratio for %s", stage)
		}
		lagged := 0
		for series := range after {
			if strings.HasPrefix(series, "genpipe_consumer_lag_records{") && strings.Contains(series, `stage="`+stage+`"`) {
				lagged++
			}
		}
		if lagged != 4 {
			t.Errorf("%d partitions with genpipe_consumer_lag_records for %s, want all 4", lagged, stage)
		}
	}
	if _, ok := after["go_goroutines"]; !ok {
		t.Error("no go_goroutines")
	}
}

// A part without an HTTP server serves /metrics and /healthz on
// -metrics-addr until it stops.
func TestMetricsAddr(t *testing.T) {
	obs, err := newObservability(t.Context(), "genpipe-test", kafkaSettings{Brokers: sys.Brokers[0]}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer obs.close()
	url, stop, err := obs.serve(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	obs.metrics.DeadLetter("check")
	if n, _ := sum(scrapeMetrics(t, url+"/metrics"), "genpipe_dead_letters_total", `stage="check"`); n != 1 {
		t.Errorf("genpipe_dead_letters_total = %g, want 1", n)
	}
	resp, err := http.Get(url + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /healthz: %v %v", resp, err)
	}
	resp.Body.Close()
	stop()
	if resp, err := http.Get(url + "/metrics"); err == nil {
		resp.Body.Close()
		t.Error("metrics still served after stop")
	}
	if _, _, err := obs.serve(t.Context(), "256.0.0.1:1"); err == nil {
		t.Error("serve on a bad address succeeded")
	}
	for _, cmd := range []string{"worker", "notifier", "api", "up"} {
		var out bytes.Buffer
		_ = run(t.Context(), []string{cmd, "-h"}, &out, &out)
		if !strings.Contains(out.String(), "-metrics-addr") || !strings.Contains(out.String(), "GENPIPE_METRICS_ADDR") {
			t.Errorf("genpipe %s -h does not offer -metrics-addr ($GENPIPE_METRICS_ADDR)", cmd)
		}
	}
}

// -log-format json writes one JSON object a line, with the request id
// under "request" when a line is about one; text stays the default.
func TestLogFormat(t *testing.T) {
	for _, c := range []struct {
		format string
		json   bool
	}{{"", false}, {"text", false}, {"json", true}} {
		var buf bytes.Buffer
		cfg := common{LogLevel: "info", LogFormat: c.format}
		log, err := cfg.logger(&buf, "check-worker")
		if err != nil {
			t.Fatalf("format %q: %v", c.format, err)
		}
		log.Info("AI call failed, retrying", "stage", "check", "request", "r-1", "attempt", 2)
		var line map[string]any
		err = json.Unmarshal(buf.Bytes(), &line)
		if c.json != (err == nil) {
			t.Errorf("format %q wrote %q; JSON: %v", c.format, buf.String(), err)
		}
		if c.json && (line["request"] != "r-1" || line["part"] != "check-worker" || line["msg"] != "AI call failed, retrying") {
			t.Errorf("JSON line %v lacks request, part or msg", line)
		}
		if !c.json && !strings.Contains(buf.String(), "request=r-1") {
			t.Errorf("text line %q lacks request=r-1", buf.String())
		}
	}
	cfg := common{LogLevel: "info", LogFormat: "yaml"}
	if _, err := cfg.logger(io.Discard, ""); err == nil {
		t.Error("-log-format yaml accepted")
	}
}
