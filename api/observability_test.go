package api_test

import (
	"bufio"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/genpipe/genpipe/api"
)

// /metrics is served by the given handler, outside the API key guard.
func TestMetricsRouteUnguarded(t *testing.T) {
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "genpipe_test_total 1\n")
	})
	f := newFixture(t, api.WithAPIKeys(keyA), api.WithMetricsHandler(metrics))
	resp, err := http.Get(f.server.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "genpipe_test_total 1\n" {
		t.Errorf("GET /metrics without a key: %s %q; want 200 and the metrics", resp.Status, body)
	}
	if resp, _ := f.do(t, http.MethodGet, "/v1/styles", nil, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /v1/styles without a key: %s; the API must stay guarded", resp.Status)
	}
	if resp, _ := newFixture(t).do(t, http.MethodGet, "/metrics", nil, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /metrics without WithMetricsHandler: %s, want 404", resp.Status)
	}
}

// A traced API continues the client's traceparent in a server span named
// after the route, leaves the probes out, and still streams SSE.
func TestRequestsAreTraced(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	f := newFixture(t, api.WithTracerProvider(tp))
	const (
		traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
		spanID  = "00f067aa0ba902b7"
	)
	resp, body := f.do(t, http.MethodPost, "/v1/requests",
		map[string]string{"objectId": uploaded(t), "style": "minimal", "description": "traced"},
		map[string]string{"traceparent": "00-" + traceID + "-" + spanID + "-01"})
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /v1/requests: %s", resp.Status)
	}
	if resp, _ := f.do(t, http.MethodGet, "/healthz", nil, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /healthz: %s", resp.Status)
	}
	stream := f.openStream(t, body["id"].(string), "")
	line, err := bufio.NewReader(stream.Body).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "id: ") {
		t.Errorf("SSE under tracing: first line %q, %v; want an event flushed at once", line, err)
	}
	stream.Body.Close()

	var spans []sdktrace.ReadOnlySpan
	deadline := time.Now().Add(5 * time.Second) // the stream's span ends when its handler returns
	for len(spans) < 2 && time.Now().Before(deadline) {
		spans = rec.Ended()
		time.Sleep(10 * time.Millisecond)
	}
	if len(spans) != 2 {
		t.Fatalf("%d spans, want POST /v1/requests and the stream (no probe)", len(spans))
	}
	post := spans[0]
	if post.Name() != "POST /v1/requests" || post.SpanKind() != trace.SpanKindServer {
		t.Errorf("span %q kind %s, want a server span POST /v1/requests", post.Name(), post.SpanKind())
	}
	if post.SpanContext().TraceID().String() != traceID || post.Parent().SpanID().String() != spanID {
		t.Errorf("span in trace %s under %s; want the client's trace %s under %s",
			post.SpanContext().TraceID(), post.Parent().SpanID(), traceID, spanID)
	}
	if !hasAttr(post.Attributes(), attribute.Int("http.response.status_code", http.StatusAccepted)) {
		t.Errorf("span attributes %v lack the 202", post.Attributes())
	}
	if spans[1].Name() != "GET /v1/requests/{id}/events" {
		t.Errorf("second span %q, want the SSE stream's", spans[1].Name())
	}
}

// A method outside HTTP's names no span: a client picks the method, and
// span names must stay few.
func TestUnroutedMethodSpanName(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	f := newFixture(t, api.WithTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))))
	for _, method := range []string{"X-ONE", "X-TWO", http.MethodPatch} {
		f.do(t, method, "/nowhere", nil, nil)
	}
	names := map[string]bool{}
	for _, s := range rec.Ended() {
		names[s.Name()] = true
	}
	if len(names) != 2 || !names["_OTHER"] || !names[http.MethodPatch] {
		t.Errorf("span names %v; want _OTHER and PATCH", names)
	}
}

func hasAttr(attrs []attribute.KeyValue, want attribute.KeyValue) bool {
	for _, a := range attrs {
		if a == want {
			return true
		}
	}
	return false
}
