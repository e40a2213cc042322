// Package aiclient is the HTTP client of genpipe's two AI services: Checker
// implements genpipe.Checker against POST {base}/v1/check and Generator
// implements genpipe.Generator against POST {base}/v1/generate. Package
// aisim serves the same contract.
//
// Errors carry genpipe codes, which tell a worker whether to retry:
//
//	429                         genpipe.ETOOMANY (see RetryAfter)
//	5xx, timeout, network error genpipe.EUNAVAILABLE
//	other 4xx                   genpipe.EINVALID, with the service's problem detail
//
// An error's genpipe message is written for the user whose request failed;
// its Error() string adds the cause for logs.
//
// # Which calls are paid
//
// A call whose context carries a genpipe.AICallReceipt has it filled in,
// for genpipe's ledger of paid calls. The contract: a call is paid when its
// request was written to the service (Sent) and its answer did not say
// otherwise — status 429 (over capacity), the header
// genpipe.ChargedHeader "false" (the service refused it before its model
// took it on: bad input, an injected fault, a stored answer), or
// Idempotent-Replayed "true" (a stored answer to the same Idempotency-Key)
// say it was not. Every other answer, and a call sent that got no answer
// (the service may have worked on it until it saw the connection go), was
// paid. package aisim follows it to the call: its Stats.Calls counts
// exactly the paid ones. A service that sends no ChargedHeader is taken to
// charge every answer but 429s and replays.
package aiclient

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/genpipe/genpipe"
)

// ReplayedHeader marks an answer replayed from a stored one for a repeated
// Idempotency-Key: not paid again.
const ReplayedHeader = "Idempotent-Replayed"

// DefaultTimeout bounds one call. It is generous on purpose: a call holds
// the service for its latency (3 s for the Generative AI) plus fetching the
// image, rendering and uploading, all of which slow down when the service
// runs 64 calls at once. Giving up on a call the service is still doing
// would waste its capacity and pay for the call twice when the worker
// retries, so the timeout only catches a service that hangs.
const DefaultTimeout = 60 * time.Second

// Option configures a Checker or a Generator.
type Option func(*config)

type config struct {
	client  *http.Client
	timeout time.Duration
	tracer  trace.Tracer
}

// WithTimeout bounds each call; see DefaultTimeout for the default and why
// it is long. 0 or less means no bound beyond the caller's context.
func WithTimeout(d time.Duration) Option {
	return func(c *config) { c.timeout = d }
}

// WithTracerProvider traces each call: a client span per call, named after
// the service, as a child of the span in the call's context, and a W3C
// traceparent header so that a traced AI service continues the request's
// trace. The default is a no-op provider: no spans, no header.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *config) { c.tracer = tp.Tracer("github.com/genpipe/genpipe/aiclient") }
}

func newConfig(opts []Option) config {
	c := config{timeout: DefaultTimeout}
	for _, o := range opts {
		o(&c)
	}
	// Its own transport, keeping up to 128 idle connections per host:
	// workers call with up to 64 requests at once, and net/http's default
	// of 2 would make most calls open a new connection.
	c.client = &http.Client{Transport: newTransport()}
	if c.tracer == nil {
		c.tracer = noop.NewTracerProvider().Tracer("")
	}
	return c
}

func newTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 256
	t.MaxIdleConnsPerHost = 128
	return t
}

// Checker is the client of the Checking AI. It is safe for concurrent use.
type Checker struct{ c *client }

// NewChecker returns a client of the Checking AI at baseURL
// (e.g. "http://127.0.0.1:8081").
func NewChecker(baseURL string, opts ...Option) *Checker {
	return &Checker{c: newClient("checking AI", baseURL, "/v1/check", opts)}
}

// Check asks the Checking AI about in.ImageURL. A refused image is not an
// error: it is a verdict with Pass false and a Reason.
func (c *Checker) Check(ctx context.Context, in genpipe.CheckInput) (genpipe.CheckVerdict, error) {
	var v genpipe.CheckVerdict
	if err := c.c.call(ctx, in.RequestID, in.IdempotencyKey, in, &v); err != nil {
		return genpipe.CheckVerdict{}, fmt.Errorf("aiclient: check %s: %w", in.RequestID, err)
	}
	return v, nil
}

// Generator is the client of the Generative AI. It is safe for concurrent use.
type Generator struct{ c *client }

// NewGenerator returns a client of the Generative AI at baseURL.
func NewGenerator(baseURL string, opts ...Option) *Generator {
	return &Generator{c: newClient("generative AI", baseURL, "/v1/generate", opts)}
}

// Generate asks the Generative AI for a slide; it returns once the service
// has written all of in.Outputs. An answer that does not report every
// requested file written (bytes > 0) is an EUNAVAILABLE error: a 200
// alone is not proof, and a request must never be done without its files.
func (g *Generator) Generate(ctx context.Context, in genpipe.GenerateInput) error {
	var out struct {
		Outputs map[string]struct {
			Bytes int64 `json:"bytes"`
		} `json:"outputs"`
	}
	if err := g.c.call(ctx, in.RequestID, in.IdempotencyKey, in, &out); err != nil {
		return fmt.Errorf("aiclient: generate %s: %w", in.RequestID, err)
	}
	for _, o := range []struct{ name, url string }{{"png", in.Outputs.PNG}, {"pdf", in.Outputs.PDF}, {"pptx", in.Outputs.PPTX}} {
		if o.url != "" && out.Outputs[o.name].Bytes <= 0 {
			return fmt.Errorf("aiclient: generate %s: %w", in.RequestID,
				genpipe.Errorf(genpipe.EUNAVAILABLE, "the %s answered without writing the %s", g.c.name, o.name))
		}
	}
	return nil
}

var (
	_ genpipe.Checker   = (*Checker)(nil)
	_ genpipe.Generator = (*Generator)(nil)
)

func newClient(name, baseURL, path string, opts []Option) *client {
	base := strings.TrimRight(baseURL, "/")
	return &client{name: name, base: base, endpoint: base + path, cfg: newConfig(opts)}
}
