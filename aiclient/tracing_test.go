package aiclient_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/aiclient"
)

// A traced call is a client span under the caller's span, and the service
// gets a traceparent naming that call's span.
func TestCallIsTraced(t *testing.T) {
	var traceparent string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		traceparent = r.Header.Get("traceparent")
		if r.URL.Path == "/v1/check" {
			_, _ = io.WriteString(w, `{"pass":true}`)
			return
		}
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, problem(http.StatusServiceUnavailable, "down"))
	}))
	defer srv.Close()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	ctx, parent := tp.Tracer("test").Start(context.Background(), "check")

	checker := aiclient.NewChecker(srv.URL, aiclient.WithTracerProvider(tp))
	if _, err := checker.Check(ctx, genpipe.CheckInput{RequestID: "r1", ImageURL: "http://store/obj"}); err != nil {
		t.Fatal(err)
	}
	generator := aiclient.NewGenerator(srv.URL, aiclient.WithTracerProvider(tp))
	if err := generator.Generate(ctx, genpipe.GenerateInput{RequestID: "r1"}); err == nil {
		t.Fatal("Generate against a 503 succeeded")
	}
	parent.End()

	spans := rec.Ended()
	if len(spans) != 3 {
		t.Fatalf("%d spans ended, want the two calls and their parent", len(spans))
	}
	check, generate := spans[0], spans[1]
	for _, s := range []sdktrace.ReadOnlySpan{check, generate} {
		if s.Parent().SpanID() != parent.SpanContext().SpanID() || s.SpanKind() != trace.SpanKindClient {
			t.Errorf("span %q: parent %s kind %s; want a client span under the caller's", s.Name(), s.Parent().SpanID(), s.SpanKind())
		}
	}
	if check.Name() != "checking AI call" || check.Status().Code == codes.Error {
		t.Errorf("check span %q status %v; want a successful checking AI call", check.Name(), check.Status())
	}
	if generate.Status().Code != codes.Error {
		t.Errorf("generate span status %v, want an error for the 503", generate.Status())
	}
	want := "00-" + generate.SpanContext().TraceID().String() + "-" + generate.SpanContext().SpanID().String() + "-01"
	if traceparent != want {
		t.Errorf("the service got traceparent %q, want %q (the call's own span)", traceparent, want)
	}
}

// Without a tracer provider no header goes out.
func TestCallUntracedSendsNoTraceparent(t *testing.T) {
	got := "unset"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Get("traceparent")
		_, _ = io.WriteString(w, `{"pass":true}`)
	}))
	defer srv.Close()
	if _, err := aiclient.NewChecker(srv.URL).Check(context.Background(), genpipe.CheckInput{RequestID: "r1"}); err != nil {
		t.Fatal(err)
	}
	if got != "" {
		t.Errorf("traceparent %q sent without tracing", got)
	}
}
