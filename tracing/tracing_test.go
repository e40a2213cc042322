package tracing_test

import (
	"context"
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/genpipe/genpipe/tracing"
)

func clearEnv(t *testing.T) {
	for _, k := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SDK_DISABLED",
		"OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"} {
		t.Setenv(k, "")
	}
}

func TestFromEnv(t *testing.T) {
	for _, c := range []struct {
		name    string
		env     map[string]string
		on, bad bool
	}{
		{"unset", nil, false, false},
		{"endpoint", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, true, false},
		{"traces endpoint", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, true, false},
		{"disabled", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "true"}, false, false},
		{"exporter none", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_TRACES_EXPORTER": "none"}, false, false},
		{"grpc", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			clearEnv(t)
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			tr, err := tracing.FromEnv(context.Background(), "genpipe-test")
			if c.bad {
				if err == nil {
					t.Fatal("FromEnv accepted it")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Shutdown(context.Background())
			if tr.On() != c.on {
				t.Errorf("On() = %v, want %v", tr.On(), c.on)
			}
			if hooks := tr.KafkaHooks("g"); (len(hooks) > 0) != c.on {
				t.Errorf("%d Kafka hooks with tracing on=%v", len(hooks), c.on)
			}
		})
	}
}

// Off costs nothing: the context passes through untouched.
func TestOffPassesThrough(t *testing.T) {
	for _, tr := range []*tracing.Tracing{nil, tracing.Off()} {
		ctx := context.WithValue(context.Background(), struct{}{}, 1)
		got, end := tr.StartRecord(ctx, &kgo.Record{Topic: "t"}, "check")
		end(errors.New("ignored"))
		if got != ctx {
			t.Error("StartRecord changed the context with tracing off")
		}
		if tr.On() || tr.TracerProvider() == nil || tr.Shutdown(context.Background()) != nil {
			t.Error("off tracing misbehaves")
		}
	}
}

// StartRecord continues the trace in a record's traceparent header when no
// hook put a span in the record's context, and keeps the handler's context.
func TestStartRecordContinuesHeaders(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tr := tracing.New(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	r := &kgo.Record{Topic: "genpipe.checked", Key: []byte("req-1"), Partition: 3, Offset: 7,
		Headers: []kgo.RecordHeader{{Key: "traceparent", Value: []byte("00-" + traceID + "-" + parentID + "-01")}}}
	type key struct{}
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), key{}, "kept"))
	hctx, end := tr.StartRecord(ctx, r, "generate")
	if hctx.Value(key{}) != "kept" {
		t.Error("the handler's context values are lost")
	}
	cancel()
	if hctx.Err() == nil {
		t.Error("the handler's context no longer cancels with the engine's")
	}
	end(errors.New("the AI failed"))
	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans, want 1", len(spans))
	}
	s := spans[0]
	if s.Name() != "generate" || s.SpanKind() != trace.SpanKindConsumer || s.Status().Code != codes.Error {
		t.Errorf("span %q kind %s status %v; want a failed consumer span generate", s.Name(), s.SpanKind(), s.Status())
	}
	if s.SpanContext().TraceID().String() != traceID || s.Parent().SpanID().String() != parentID {
		t.Errorf("span in trace %s under %s; want %s under %s", s.SpanContext().TraceID(), s.Parent().SpanID(), traceID, parentID)
	}
	found := false
	for _, a := range s.Attributes() {
		found = found || (a.Key == tracing.RequestKey && a.Value.AsString() == "req-1")
	}
	if !found {
		t.Errorf("span attributes %v lack the request id", s.Attributes())
	}
}
