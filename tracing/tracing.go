// Package tracing is genpipe's OpenTelemetry tracing. A request's trace
// starts at the API (or continues the client's traceparent), crosses Kafka
// in the W3C traceparent record header (franz-go's kotel plugin injects it
// when a record is produced and extracts it when one is fetched), and goes
// on through each stage's handling, its AI calls (aiclient sends
// traceparent too) and the notifier: one trace id from the 202 to the
// terminal status.
//
// Spans are exported over OTLP/HTTP only when the standard environment asks
// for it (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
// with the other OTEL_* variables the OpenTelemetry SDK reads). Otherwise
// tracing is off: no provider, no Kafka hooks, no headers, nothing on the
// hot path. There is no global state: the parts get their Tracing passed in.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kotel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// InstrumentationName names genpipe's own spans' tracer.
const InstrumentationName = "github.com/genpipe/genpipe"

// RequestKey is the span attribute holding the genpipe request id.
const RequestKey = attribute.Key("genpipe.request.id")

// Propagator is how a span context crosses HTTP and Kafka headers: W3C
// trace context (traceparent, tracestate) and baggage.
var Propagator propagation.TextMapPropagator = propagation.NewCompositeTextMapPropagator(
	propagation.TraceContext{}, propagation.Baggage{})

// Tracing is one process's tracing, on or off. The zero value and nil are
// off. It is safe for concurrent use.
type Tracing struct {
	tp       trace.TracerProvider // nil when off
	tracer   trace.Tracer
	shutdown func(context.Context) error
}

// Off returns tracing that does nothing.
func Off() *Tracing { return &Tracing{} }

// New returns tracing on with tp, for tests (an SDK provider with
// tracetest's in-memory exporter) and for programs that build their own
// provider. Shutdown does not shut tp down: its owner does.
func New(tp trace.TracerProvider) *Tracing {
	return &Tracing{tp: tp, tracer: tp.Tracer(InstrumentationName)}
}

// Configured reports whether the environment asks for OTLP export:
// OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set,
// and OTEL_SDK_DISABLED and OTEL_TRACES_EXPORTER do not turn it off.
func Configured() bool {
	if disabled, _ := strconv.ParseBool(os.Getenv("OTEL_SDK_DISABLED")); disabled {
		return false
	}
	if os.Getenv("OTEL_TRACES_EXPORTER") == "none" {
		return false
	}
	return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// FromEnv returns tracing exported over OTLP/HTTP when Configured, else Off.
// service is the default service.name (OTEL_SERVICE_NAME and
// OTEL_RESOURCE_ATTRIBUTES override it). The exporter reads the standard
// OTEL_EXPORTER_OTLP_* variables (endpoint, headers, timeout, compression,
// certificates), the provider OTEL_TRACES_SAMPLER(_ARG) and the batcher
// OTEL_BSP_*. Only the http/protobuf protocol is built in (port 4318):
// OTEL_EXPORTER_OTLP_PROTOCOL=grpc is refused rather than silently ignored.
func FromEnv(ctx context.Context, service string) (*Tracing, error) {
	if !Configured() {
		return Off(), nil
	}
	if p := protocol(); p != "" && p != "http/protobuf" {
		return nil, fmt.Errorf("tracing: OTEL_EXPORTER_OTLP_PROTOCOL %q: only http/protobuf is built in (OTLP over HTTP, usually port 4318)", p)
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
	res, err := resource.New(ctx, resource.WithAttributes(attribute.String("service.name", service)),
		resource.WithTelemetrySDK(), resource.WithFromEnv())
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	t := New(tp)
	t.shutdown = tp.Shutdown
	return t, nil
}

func protocol() string {
	if p := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"); p != "" {
		return p
	}
	return os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
}

// On reports whether spans are recorded.
func (t *Tracing) On() bool { return t != nil && t.tp != nil }

// TracerProvider returns the provider, a no-op one when tracing is off.
func (t *Tracing) TracerProvider() trace.TracerProvider {
	if !t.On() {
		return noop.NewTracerProvider()
	}
	return t.tp
}

// Shutdown exports the spans still buffered and stops the exporter, within
// ctx. It does nothing when tracing is off or came from New.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t == nil || t.shutdown == nil {
		return nil
	}
	if err := t.shutdown(ctx); err != nil {
		return fmt.Errorf("tracing: shutdown: %w", err)
	}
	return nil
}

// KafkaHooks returns the kgo hooks (kotel) that carry the trace through
// Kafka: a "TOPIC publish" span per produced record, its context injected
// into the record's headers, and a "TOPIC receive" span per fetched record,
// continuing the trace in its headers. group names the consumer group in
// the spans' attributes ("" for a producer). Nil when tracing is off.
func (t *Tracing) KafkaHooks(group string) []kgo.Hook {
	if !t.On() {
		return nil
	}
	opts := []kotel.TracerOpt{kotel.TracerProvider(t.tp), kotel.TracerPropagator(Propagator)}
	if group != "" {
		opts = append(opts, kotel.ConsumerGroup(group))
	}
	return kotel.NewKotel(kotel.WithTracer(kotel.NewTracer(opts...))).Hooks()
}

// StartRecord starts the span of one record's handling, named name (the
// stage), as a child of the trace the record carries: the receive span
// KafkaHooks put in r.Context, else the traceparent in r's headers. The
// returned context is ctx (its cancellation and values stay) with the span
// in it; end ends the span, marking it failed when err is not nil. When
// tracing is off it returns ctx and an end that does nothing.
func (t *Tracing) StartRecord(ctx context.Context, r *kgo.Record, name string) (context.Context, func(err error)) {
	if !t.On() {
		return ctx, func(error) {}
	}
	if r.Context != nil && trace.SpanContextFromContext(r.Context).IsValid() {
		ctx = trace.ContextWithSpan(ctx, trace.SpanFromContext(r.Context))
	} else {
		remote := trace.SpanContextFromContext(Propagator.Extract(context.Background(), kotel.NewRecordCarrier(r)))
		ctx = trace.ContextWithRemoteSpanContext(ctx, remote)
	}
	ctx, span := t.tracer.Start(ctx, name,
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			RequestKey.String(string(r.Key)),
			attribute.String("messaging.system", "kafka"),
			attribute.String("messaging.destination.name", r.Topic),
			attribute.Int("messaging.kafka.partition", int(r.Partition)),
			attribute.Int64("messaging.kafka.offset", r.Offset),
		))
	return ctx, func(err error) { End(span, err) }
}

// End ends span, recording err (when not nil) as its error status.
func End(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, firstLine(err.Error()))
	}
	span.End()
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// TraceID returns the id of the trace ctx is part of, "" when none: for
// logs that want to point at a trace.
func TraceID(ctx context.Context) string {
	if sc := trace.SpanContextFromContext(ctx); sc.HasTraceID() {
		return sc.TraceID().String()
	}
	return ""
}
