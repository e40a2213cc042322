package main

import (
	"compress/gzip"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// collector is an OTLP/HTTP trace receiver: the tests' `up` exports its
// spans to it through the standard environment, as a deployment would to
// a real collector, so that the tests see what leaves the process.
var collector = startCollector()

func init() {
	// Before TestMain starts `up`, which reads them (tracing.FromEnv). The
	// processes the standalone tests start inherit them and export here too.
	os.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url)
	os.Setenv("OTEL_BSP_SCHEDULE_DELAY", "100") // milliseconds: export soon, the test waits for it
	os.Unsetenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	os.Unsetenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	os.Unsetenv("OTEL_SDK_DISABLED")
}

// exported is a span as the collector received it.
type exported struct {
	TraceID, SpanID, ParentID, Name, Service string
}

type otlpCollector struct {
	url   string
	mu    sync.Mutex
	spans []exported
}

func startCollector() *otlpCollector {
	c := &otlpCollector{}
	srv := httptest.NewServer(http.HandlerFunc(c.receive)) // lives as long as the test binary
	c.url = srv.URL
	return c
}

func (c *otlpCollector) receive(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" {
		http.NotFound(w, r)
		return
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	data, err := io.ReadAll(body)
	var req coltracepb.ExportTraceServiceRequest
	if err == nil {
		err = proto.Unmarshal(data, &req)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	for _, rs := range req.GetResourceSpans() {
		service := ""
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				service = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				c.spans = append(c.spans, exported{TraceID: hex.EncodeToString(s.GetTraceId()), SpanID: hex.EncodeToString(s.GetSpanId()),
					ParentID: hex.EncodeToString(s.GetParentSpanId()), Name: s.GetName(), Service: service})
			}
		}
	}
	c.mu.Unlock()
	resp, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(resp)
}

// trace returns the spans received so far of one trace.
func (c *otlpCollector) trace(id string) []exported {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []exported
	for _, s := range c.spans {
		if s.TraceID == id {
			out = append(out, s)
		}
	}
	return out
}

func randomID(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// A request's spans share the trace id of the traceparent its client sent,
// from the API through both stages, their AI calls and Kafka hops, to the
// notifier, and form one tree under the client's span.
func TestTraceCrossesThePipeline(t *testing.T) {
	traceID, clientSpan := randomID(t, 16), randomID(t, 8)
	u := uploadImage(t, "image/png", pngImage(t, 160, 100))
	var a accepted
	resp := call(t, "POST", "/v1/requests", map[string]string{"objectId": u.ObjectID, "style": "neon", "description": "traced"},
		map[string]string{"traceparent": "00-" + traceID + "-" + clientSpan + "-01"}, &a)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /v1/requests: %s", resp.Status)
	}
	if v := waitTerminal(t, a.ID, 30*time.Second); v.Status != "done" {
		t.Fatalf("request ended %s (%s), want done", v.Status, v.Error)
	}

	// Every part's span, including the notifier's for the done status.
	want := []string{"POST /v1/requests", "genpipe.requests publish", "genpipe.requests receive", "check", "checking AI call",
		"genpipe.checked publish", "genpipe.checked receive", "generate", "generative AI call",
		"genpipe.results publish", "genpipe.results receive", "notifier"}
	// Spans arrive in batches, a child's often before its parent's (the
	// parent ends later): wait until the trace is complete, not merely begun.
	var spans []exported
	deadline := time.Now().Add(15 * time.Second)
	for {
		spans = collector.trace(traceID)
		if traceComplete(spans, want, clientSpan) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if missing := missingNames(spans, want); len(missing) > 0 {
		t.Fatalf("trace %s lacks spans %v; it has:\n%s", traceID, missing, describe(spans))
	}
	if n := countNamed(spans, "notifier"); n < 3 {
		t.Errorf("%d notifier spans, want one for each status change (checking, generating, done)", n)
	}
	// One tree: every span's parent is a span of the trace, but the API's,
	// whose parent is the client's.
	ids := spanIDs(spans, clientSpan)
	for _, s := range spans {
		if !ids[s.ParentID] {
			t.Errorf("span %q has parent %q, not a span of the trace", s.Name, s.ParentID)
		}
		if s.Name == "POST /v1/requests" && s.ParentID != clientSpan {
			t.Errorf("the API's span has parent %s, want the client's %s", s.ParentID, clientSpan)
		}
	}
	if t.Failed() || testing.Verbose() {
		t.Logf("trace %s:\n%s", traceID, describe(spans))
	}
}

// traceComplete reports whether spans hold every wanted name, a notifier
// span per status change, and every span's parent.
func traceComplete(spans []exported, want []string, root string) bool {
	if len(missingNames(spans, want)) > 0 || countNamed(spans, "notifier") < 3 {
		return false
	}
	ids := spanIDs(spans, root)
	return !slices.ContainsFunc(spans, func(s exported) bool { return !ids[s.ParentID] })
}

func countNamed(spans []exported, name string) int {
	n := 0
	for _, s := range spans {
		if s.Name == name {
			n++
		}
	}
	return n
}

func spanIDs(spans []exported, root string) map[string]bool {
	ids := map[string]bool{root: true}
	for _, s := range spans {
		ids[s.SpanID] = true
	}
	return ids
}

func missingNames(spans []exported, want []string) []string {
	var missing []string
	for _, name := range want {
		if !slices.ContainsFunc(spans, func(s exported) bool { return s.Name == name }) {
			missing = append(missing, name)
		}
	}
	return missing
}

func describe(spans []exported) string {
	lines := make([]string, len(spans))
	for i, s := range spans {
		lines[i] = "  " + s.Name + " " + s.SpanID + " parent " + s.ParentID + " (" + s.Service + ")"
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}
