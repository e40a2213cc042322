// Package contract checks HTTP exchanges with genpipe's API against its
// OpenAPI 3.1 description (api.OpenAPI), with kin-openapi. Tests install a
// Validator's Transport in their HTTP clients, so every request they make
// and every answer they get is held to the description: an answer it does
// not describe, or a request it refuses that the server accepts, fails the
// test that made it, and the description cannot drift from the server.
package contract

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/genpipe/genpipe/api"
)

func init() {
	// Answers the description has as plain text; kin-openapi has no decoder
	// for them.
	openapi3filter.RegisterBodyDecoder("application/openmetrics-text", openapi3filter.PlainBodyDecoder)
}

// Load parses the API's description and validates it as an OpenAPI 3.1
// document (its schemas as JSON Schema 2020-12).
func Load() (*openapi3.T, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(api.OpenAPI())
	if err != nil {
		return nil, fmt.Errorf("load the OpenAPI description: %w", err)
	}
	if !doc.IsOpenAPI31OrLater() {
		return nil, fmt.Errorf("the OpenAPI description is version %s, want 3.1", doc.OpenAPI)
	}
	if err := doc.Validate(loader.Context, openapi3.EnableExamplesValidation(), openapi3.EnableSchemaFormatValidation()); err != nil {
		return nil, fmt.Errorf("the OpenAPI description is not valid: %w", err)
	}
	return doc, nil
}

// Validator checks exchanges with the API servers it watches.
type Validator struct {
	doc    *openapi3.T
	router routers.Router
	event  *openapi3.SchemaRef // the data of an SSE status event

	mu         sync.Mutex
	hosts      map[string]bool // host:port of the API servers watched
	violations []string
}

// New returns a Validator of the API's description that watches no server yet.
func New() (*Validator, error) {
	doc, err := Load()
	if err != nil {
		return nil, err
	}
	// The description's server is relative ("/"): route on the path alone,
	// whatever host a test's server listens on.
	doc.Servers = nil
	router, err := legacy.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("route the OpenAPI description: %w", err)
	}
	event := doc.Components.Schemas["StatusEvent"]
	if event == nil {
		return nil, errors.New("the OpenAPI description has no StatusEvent schema")
	}
	return &Validator{doc: doc, router: router, event: event, hosts: map[string]bool{}}, nil
}

// Watch makes the Validator check the exchanges with the API at baseURL
// (scheme://host:port); exchanges with other hosts (the object store's
// presigned URLs, webhook receivers) pass unchecked.
func (v *Validator) Watch(baseURL string) {
	u, err := url.Parse(baseURL)
	if err != nil {
		panic(fmt.Sprintf("contract: watch %q: %v", baseURL, err))
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.hosts[u.Host] = true
}

func (v *Validator) watched(u *url.URL) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.hosts[u.Host]
}

// Violations returns every breach of the description seen so far, oldest
// first. A test binary's TestMain fails the run when there is any, in
// case the test that met one ignored its error.
func (v *Validator) Violations() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]string(nil), v.violations...)
}

func (v *Validator) record(err error) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.violations = append(v.violations, err.Error())
	return err
}

// Transport returns a RoundTripper that sends through next (nil:
// http.DefaultTransport) and checks each exchange with a watched server:
// the request against its operation, then the answer. A breach is
// returned as the round trip's error, naming the operation, and kept for
// Violations.
func (v *Validator) Transport(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return &transport{v: v, next: next}
}

type transport struct {
	v    *Validator
	next http.RoundTripper
}

// maxBody bounds the bodies the transport reads to check: far above any
// answer of the API's, which a test then sees whole.
const maxBody = 16 << 20

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !t.v.watched(req.URL) || req.Method == http.MethodHead {
		return t.next.RoundTrip(req)
	}
	body, err := readBody(req)
	if err != nil {
		return nil, err
	}
	ex := &exchange{req: req, body: body, op: req.Method + " " + req.URL.Path}
	ex.route, ex.params, ex.routeErr = t.v.router.FindRoute(cloneWith(req, body))
	if ex.routeErr == nil {
		ex.op = fmt.Sprintf("%s %s (%s)", req.Method, ex.route.Path, ex.route.Operation.OperationID)
		ex.reqErr = openapi3filter.ValidateRequest(req.Context(), ex.input(body))
	}
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if err := t.v.check(ex, resp); err != nil {
		resp.Body.Close()
		err = fmt.Errorf("contract: %s → %d: %w", ex.op, resp.StatusCode, err)
		if errors.As(err, new(readError)) {
			return nil, err // the connection failed: no breach of the description
		}
		return nil, t.v.record(err)
	}
	return resp, nil
}

// readBody reads a request's body and puts it back, for the send.
func readBody(req *http.Request) ([]byte, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return nil, nil
	}
	data, err := io.ReadAll(io.LimitReader(req.Body, maxBody+1))
	req.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("contract: read the request body of %s %s: %w", req.Method, req.URL.Path, err)
	}
	if len(data) > maxBody {
		return nil, fmt.Errorf("contract: the request body of %s %s is over %d bytes", req.Method, req.URL.Path, maxBody)
	}
	req.Body = io.NopCloser(bytes.NewReader(data))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
	return data, nil
}

// cloneWith returns a copy of req reading body, for the validator to consume.
func cloneWith(req *http.Request, body []byte) *http.Request {
	c := req.Clone(req.Context())
	c.Body = io.NopCloser(bytes.NewReader(body))
	if body == nil {
		c.Body = http.NoBody
	}
	return c
}

// exchange is one request to a watched server and what the description
// says of it.
type exchange struct {
	req      *http.Request
	body     []byte
	op       string // for messages: method, path and operationId
	route    *routers.Route
	params   map[string]string
	routeErr error // no operation for the method and path
	reqErr   error // the request breaks its operation's description
}

func (ex *exchange) input(body []byte) *openapi3filter.RequestValidationInput {
	return &openapi3filter.RequestValidationInput{
		Request: cloneWith(ex.req, body), PathParams: ex.params, Route: ex.route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true},
	}
}

// check holds an answer to the description. A request the description
// has no operation for must get a 404 or 405 problem (only paths under
// /v1/ are the API's: others, such as the web page's, pass); a request it
// refuses must be refused with a problem the operation lists; any other
// must get an answer the operation lists, whatever its status.
func (v *Validator) check(ex *exchange, resp *http.Response) error {
	if ex.routeErr != nil {
		if !strings.HasPrefix(ex.req.URL.Path, "/v1/") && !isDescribed(v.doc, ex.req.URL.Path) {
			return nil
		}
		if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMethodNotAllowed {
			return fmt.Errorf("the description has no such operation (%v), yet the server answered it", ex.routeErr)
		}
		return v.checkProblem(resp)
	}
	if ex.reqErr != nil && resp.StatusCode < 400 {
		return fmt.Errorf("the server accepted a request the description refuses: %w", ex.reqErr)
	}
	input := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: ex.input(ex.body), Status: resp.StatusCode, Header: resp.Header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	if isEventStream(resp) {
		// The stream lasts as long as the request: check its headers now
		// and each event's data as the test reads it.
		input.Options.ExcludeResponseBody = true
		if err := openapi3filter.ValidateResponse(ex.req.Context(), input); err != nil {
			return err
		}
		if err := v.checkContentType(ex, resp); err != nil {
			return err
		}
		resp.Body = &eventChecker{v: v, op: ex.op, body: resp.Body, r: bufio.NewReader(resp.Body)}
		return nil
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	resp.Body.Close()
	if err != nil {
		return readError{err}
	}
	resp.Body = io.NopCloser(bytes.NewReader(data))
	input.SetBodyBytes(data)
	if err := openapi3filter.ValidateResponse(ex.req.Context(), input); err != nil {
		return err
	}
	resp.Body = io.NopCloser(bytes.NewReader(data))
	return nil
}

// readError is an answer that could not be read: the connection's
// failure, not the server's breach of the description.
type readError struct{ err error }

func (e readError) Error() string { return "read the answer: " + e.err.Error() }
func (e readError) Unwrap() error { return e.err }

// isDescribed reports whether the description has p among its paths.
func isDescribed(doc *openapi3.T, p string) bool { return doc.Paths.Value(p) != nil }

// checkProblem checks that an answer is a problem as the description has it.
func (v *Validator) checkProblem(resp *http.Response) error {
	if ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); ct != "application/problem+json" {
		return fmt.Errorf("want an application/problem+json answer, got Content-Type %q", resp.Header.Get("Content-Type"))
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(data))
	if err != nil {
		return readError{err}
	}
	var value any
	if err := json.Unmarshal(data, &value); err != nil {
		return fmt.Errorf("the problem is not JSON: %w", err)
	}
	if err := v.doc.Components.Schemas["Problem"].Value.VisitJSON(value, openapi3.EnableJSONSchema2020(), openapi3.MultiErrors()); err != nil {
		return fmt.Errorf("the problem does not match the Problem schema: %w", err)
	}
	return nil
}

func isEventStream(resp *http.Response) bool {
	ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	return ct == "text/event-stream"
}

// checkContentType checks that the operation lists the answer's type for
// its status; ValidateResponse does only when it reads the body.
func (v *Validator) checkContentType(ex *exchange, resp *http.Response) error {
	r := ex.route.Operation.Responses.Status(resp.StatusCode)
	if r == nil || r.Value.Content.Get(resp.Header.Get("Content-Type")) == nil {
		return fmt.Errorf("the description lists no %q answer with status %d", resp.Header.Get("Content-Type"), resp.StatusCode)
	}
	return nil
}

// eventChecker passes an event stream through, checking the data of each
// event against the StatusEvent schema as the reader reads it; a breach is
// the read's error.
type eventChecker struct {
	v    *Validator
	op   string
	body io.ReadCloser
	r    *bufio.Reader
	buf  []byte // read, not yet handed out
	err  error
}

func (e *eventChecker) Read(p []byte) (int, error) {
	for len(e.buf) == 0 {
		if e.err != nil {
			return 0, e.err
		}
		line, err := e.r.ReadBytes('\n')
		// A line cut short by a failed connection is not the server's to answer for.
		if data, ok := bytes.CutPrefix(line, []byte("data:")); ok && bytes.HasSuffix(line, []byte("\n")) {
			if cerr := e.checkEvent(bytes.TrimSpace(data)); cerr != nil {
				err = e.v.record(fmt.Errorf("contract: %s: event data %s: %w", e.op, bytes.TrimSpace(data), cerr))
			}
		}
		e.buf, e.err = line, err
	}
	n := copy(p, e.buf)
	e.buf = e.buf[n:]
	return n, nil
}

func (e *eventChecker) checkEvent(data []byte) error {
	var value any
	if err := json.Unmarshal(data, &value); err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	return e.v.event.Value.VisitJSON(value, openapi3.EnableJSONSchema2020(), openapi3.MultiErrors())
}

func (e *eventChecker) Close() error { return e.body.Close() }

// CheckWebhook checks a webhook delivery (its headers and body) against
// the description's requestEnded webhook; a breach is returned and kept
// for Violations.
func (v *Validator) CheckWebhook(h http.Header, body []byte) error {
	item := v.doc.Webhooks["requestEnded"]
	if item == nil || item.Post == nil {
		return v.record(errors.New("contract: the description has no requestEnded webhook"))
	}
	op := item.Post
	var errs []error
	for _, p := range op.Parameters {
		if p.Value.In == openapi3.ParameterInHeader && p.Value.Required && h.Get(p.Value.Name) == "" {
			errs = append(errs, fmt.Errorf("header %s missing", p.Value.Name))
		}
	}
	var value any
	if err := json.Unmarshal(body, &value); err != nil {
		errs = append(errs, fmt.Errorf("body not JSON: %w", err))
	} else if err := op.RequestBody.Value.Content.Get("application/json").Schema.Value.VisitJSON(value,
		openapi3.EnableJSONSchema2020(), openapi3.MultiErrors()); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return v.record(fmt.Errorf("contract: webhook requestEnded: %w", err))
	}
	return nil
}

// ErrViolations is what Report returns when a run met breaches.
var ErrViolations = errors.New("the API broke its OpenAPI description")

// Report returns ErrViolations, with every breach, when there was any.
func (v *Validator) Report() error {
	if got := v.Violations(); len(got) > 0 {
		return fmt.Errorf("%w %d times:\n%s", ErrViolations, len(got), strings.Join(got, "\n"))
	}
	return nil
}

// Install wraps http.DefaultClient's transport with a new Validator's, so
// that every test using http.DefaultClient or http.Get is checked, and
// returns the Validator; it panics when the description does not load,
// which only a broken description does.
func Install() *Validator {
	v, err := New()
	if err != nil {
		panic(err)
	}
	http.DefaultClient.Transport = v.Transport(http.DefaultClient.Transport)
	return v
}
