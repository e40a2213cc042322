package aiclient

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/httpjson"
)

// maxResponseBytes bounds what is read of an answer.
const maxResponseBytes = 1 << 20

// client makes the calls of one AI service.
type client struct {
	name     string // for messages: "checking AI"
	base     string // the service's base URL, for DELETE /v1/calls/{key}
	endpoint string
	cfg      config
}

// call POSTs in as JSON for the request id, with the idempotency key when
// not empty, and decodes a 2xx answer into out (nil: discard). It is traced
// (see WithTracerProvider).
func (c *client) call(ctx context.Context, id, idempotencyKey string, in, out any) (err error) {
	ctx, span := c.cfg.tracer.Start(ctx, c.name+" call", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("genpipe.request.id", id), attribute.String("http.request.method", http.MethodPost),
			attribute.String("url.full", c.endpoint)))
	defer func() {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, genpipe.ErrorMessage(err))
		}
		span.End()
	}()
	body, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("encode input: %w", err)
	}
	ctx, stop := c.abortable(ctx, idempotencyKey)
	defer stop()
	if c.cfg.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%w: %w", genpipe.Errorf(genpipe.EINVALID, "the %s address is not valid", c.name), err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, application/problem+json")
	if idempotencyKey != "" {
		req.Header.Set("Idempotency-Key", idempotencyKey)
	}
	// W3C trace context only: a header the AI service may read, nothing
	// else of ours (baggage) leaves for it.
	propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(req.Header))
	receipt := genpipe.AICallReceiptFrom(ctx)
	// The transport reports the request written from its own goroutine,
	// which may finish writing the body after the answer came: the flag is
	// atomic, and only this goroutine fills in the receipt.
	var wrote atomic.Bool
	if receipt != nil {
		req = req.WithContext(httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
			WroteRequest: func(info httptrace.WroteRequestInfo) {
				if info.Err == nil {
					wrote.Store(true)
				}
			},
		}))
	}
	resp, err := c.cfg.client.Do(req)
	if receipt != nil {
		// An answer means the request arrived, whatever the trace saw.
		receipt.Sent = err == nil || wrote.Load()
	}
	if err != nil {
		return c.failed(ctx, err)
	}
	defer resp.Body.Close()
	if receipt != nil {
		receipt.Status = resp.StatusCode
		receipt.Replayed = resp.Header.Get(ReplayedHeader) == "true"
		receipt.NotPaid = resp.StatusCode == http.StatusTooManyRequests ||
			resp.Header.Get(genpipe.ChargedHeader) == "false" || receipt.Replayed
	}
	span.SetAttributes(attribute.Int("http.response.status_code", resp.StatusCode))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return c.statusError(resp)
	}
	return c.decode(ctx, resp.Body, out)
}

// decode reads a successful answer into out.
func (c *client) decode(ctx context.Context, body io.Reader, out any) error {
	r := io.LimitReader(body, maxResponseBytes)
	if out == nil {
		if _, err := io.Copy(io.Discard, r); err != nil {
			return c.failed(ctx, err)
		}
		return nil
	}
	if err := json.NewDecoder(r).Decode(out); err != nil {
		if ctx.Err() != nil {
			return c.failed(ctx, err)
		}
		return fmt.Errorf("%w: %w", genpipe.Errorf(genpipe.EUNAVAILABLE, "the %s answered malformed JSON", c.name), err)
	}
	return nil
}

// failed is a call that got no complete answer: a network error or a
// timeout. Either may pass, so it is EUNAVAILABLE.
func (c *client) failed(ctx context.Context, err error) error {
	msg := fmt.Sprintf("the %s is unreachable", c.name)
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		msg = fmt.Sprintf("the %s did not answer in time", c.name)
	}
	return fmt.Errorf("%w: %w", genpipe.Errorf(genpipe.EUNAVAILABLE, "%s", msg), err)
}

// statusError turns an error answer into a coded error carrying the
// service's problem detail and, when given, its Retry-After.
func (c *client) statusError(resp *http.Response) error {
	detail := problemDetail(resp)
	var err *genpipe.Error
	switch code := resp.StatusCode; {
	case code == http.StatusTooManyRequests:
		err = genpipe.Errorf(genpipe.ETOOMANY, "the %s is busy: %s", c.name, detail)
	case code >= 500:
		err = genpipe.Errorf(genpipe.EUNAVAILABLE, "the %s failed (HTTP %d): %s", c.name, code, detail)
	case code >= 400:
		err = genpipe.Errorf(genpipe.EINVALID, "the %s refused the input (HTTP %d): %s", c.name, code, detail)
	default:
		err = genpipe.Errorf(genpipe.EUNAVAILABLE, "the %s answered HTTP %d", c.name, code)
	}
	if d, ok := httpjson.RetryAfter(resp.Header, time.Now()); ok {
		return &retryAfterError{err: err, after: d}
	}
	return err
}

// problemDetail is the detail of an RFC 9457 problem answer, else the
// start of a text/plain answer, else the status text (HTML error pages
// from proxies are not worth showing to a user).
func problemDetail(resp *http.Response) string {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt == "application/problem+json" || mt == "application/json" {
		var p struct {
			Detail string `json:"detail"`
			Title  string `json:"title"`
		}
		if json.Unmarshal(body, &p) == nil && (p.Detail != "" || p.Title != "") {
			return cmp.Or(p.Detail, p.Title)
		}
	}
	if text := strings.TrimSpace(string(body)); text != "" && mt == "text/plain" {
		return truncate(text, 200)
	}
	return http.StatusText(resp.StatusCode)
}

func truncate(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

// retryAfterError is an error answer that said when to retry. It unwraps to
// its *genpipe.Error, so genpipe.ErrorCode still sees the code.
type retryAfterError struct {
	err   *genpipe.Error
	after time.Duration
}

func (e *retryAfterError) Error() string {
	return e.err.Error() + " (retry after " + e.after.String() + ")"
}
func (e *retryAfterError) Unwrap() error { return e.err }

// RetryAfter lets callers that do not import this package find the wait
// with errors.As(err, &interface{ RetryAfter() time.Duration }).
func (e *retryAfterError) RetryAfter() time.Duration { return e.after }

// RetryAfter returns how long the service asked the caller to wait before
// retrying, when err (or an error it wraps) is an answer with a
// Retry-After header: a 429 from a service at capacity, or a 503.
func RetryAfter(err error) (time.Duration, bool) {
	var ra *retryAfterError
	if errors.As(err, &ra) {
		return ra.after, true
	}
	return 0, false
}
