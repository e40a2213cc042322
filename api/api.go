// Package api is genpipe's HTTP API and web page. It answers at once: a
// request is validated, stored as received, durably queued in Kafka, and
// acknowledged with 202; the slow AI work happens behind the topics.
package api

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/httpjson"
	"github.com/genpipe/genpipe/internal/invalid"
	"github.com/genpipe/genpipe/tenants"
)

//go:embed web
var webFS embed.FS

// Server serves the API.
type Server struct {
	store     genpipe.RequestStore
	submitter *genpipe.Submitter
	objects   genpipe.ObjectStore
	hub       *Hub
	cfg       config
	mux       *http.ServeMux
	plainKeys tenants.Set // WithAPIKeys', fixed; SetTenants merges the file's with them
	reload    sync.Mutex  // one SetTenants at a time
	keys      atomic.Pointer[keyring]
	backlog   *backlogGauge
	limiter   *rateLimiter      // nil without a rate limit
	cancels   *genpipe.Canceler // nil: DELETE answers 405
	predicted predictions       // estimates given at submission (see WithEstimateObserver)
	uploads   *knownUploads     // the uploads this server saw stored
	fresh     freshEstimates    // new requests' recent estimates (see WithEstimateReuse)
}

type config struct {
	uploadTTL     time.Duration
	resultTTL     time.Duration
	maxBody       int64
	maxDescLen    int
	maxTitleLen   int
	maxUpload     int64
	maxBacklog    int
	rateLimit     float64
	rateBurst     int
	apiKeys       []string
	tenants       tenants.Set // WithTenants
	allowPrivate  bool
	lookupNetIP   func(ctx context.Context, host string) ([]netip.Addr, error) // webhook hosts; the fuzz test resolves offline
	pollEvery     time.Duration
	heartbeat     time.Duration
	ready         map[string]func(context.Context) error
	metrics       http.Handler   // nil: no /metrics
	ledger        genpipe.Ledger // nil: no /v1/usage, no budgets at submission (usage.go)
	budgetRefused func(tenant string, stage genpipe.Stage)
	tracer        trace.Tracer // nil: no spans
	logger        *slog.Logger
	now           func() time.Time
	maxWait       time.Duration            // WithMaxWait
	canceler      *genpipe.Canceler        // WithCanceler
	onCancel      func(r *genpipe.Request) // WithCancelHook
	// estimate.go
	estimator       genpipe.Estimator
	maxStartWait    time.Duration
	estimateReuse   time.Duration                      // see WithEstimateReuse
	observeEstimate func(genpipe.Stage, time.Duration) // nil: none
}

// Defaults of the Server's options.
const (
	DefaultUploadTTL     = 15 * time.Minute
	DefaultResultTTL     = genpipe.DefaultResultTTL
	DefaultMaxUploadSize = 10 << 20 // bytes
	DefaultMaxBacklog    = 10000
	DefaultRateBurst     = 20
	// MaxURLTTL is the longest a presigned URL may live (SigV4 allows seven
	// days): the bound of WithUploadTTL and WithResultTTL.
	MaxURLTTL = genpipe.MaxPresignTTL
)

// Option configures a Server.
type Option func(*config)

// WithUploadTTL sets how long an upload URL accepts the image, overriding
// DefaultUploadTTL (15 minutes). It must be positive and at most MaxURLTTL.
func WithUploadTTL(d time.Duration) Option { return func(c *config) { c.uploadTTL = d } }

// WithResultTTL sets how long result links stay valid, overriding
// DefaultResultTTL (1 hour). Every GET presigns fresh links. It must be
// positive and at most MaxURLTTL.
func WithResultTTL(d time.Duration) Option { return func(c *config) { c.resultTTL = d } }

// WithMaxUploadSize sets the largest image, in bytes, that a request may
// use, overriding DefaultMaxUploadSize (10 MiB); it must be positive. POST
// /v1/uploads refuses a larger declared contentLength with 413, and the
// upload URL is signed for the declared size, so the object store refuses
// a larger PUT. POST /v1/requests checks the image it pins too (413), for
// uploads made under a higher limit: the AI is never asked to read one.
func WithMaxUploadSize(n int64) Option { return func(c *config) { c.maxUpload = n } }

// WithMaxBacklog bounds the backlog: published requests not yet started
// (status received). Above it, POST /v1/requests answers 429 with
// Retry-After at once instead of queueing work that would wait long. The
// default is DefaultMaxBacklog (10000); 0 means no bound, less is invalid. The count is read from the status
// store at most once a second (plus this process's own acceptances since),
// so with several API processes the bound may be passed by what they accept
// within a second.
func WithMaxBacklog(n int) Option { return func(c *config) { c.maxBacklog = n } }

// WithRateLimit limits each client to rps requests a second on average to
// the /v1/ endpoints, with bursts of up to burst (at least 1;
// DefaultRateBurst is what genpipe's -rate-burst offers); over it the
// API answers 429 with Retry-After. A client is its API key when keys are
// on, else its remote IP address (for IPv6 its /64), taken from the
// connection, not from headers a client can forge: behind a proxy, every
// client is the proxy. An SSE stream costs one request when it opens. The
// default, rps 0, is no limit.
func WithRateLimit(rps float64, burst int) Option {
	return func(c *config) { c.rateLimit, c.rateBurst = rps, burst }
}

// WithAPIKeys makes every /v1/ endpoint require "Authorization: Bearer KEY"
// with one of keys (401 otherwise), and makes each request visible only to
// the key that created it: another key gets 404, as for an unknown id. The
// store keeps a SHA-256 hash of the key as the request's owner, never the
// key, so keys should be long and random. Each key is a tenant of its own
// (tenants.FromKeys): weight 1, priorities up to normal. The default is no
// keys: the API is open, every request is genpipe.DefaultTenant's and may
// ask for any priority, and requests made with a key stay invisible to
// callers without one. Empty keys are ignored.
func WithAPIKeys(keys ...string) Option {
	return func(c *config) { c.apiKeys = append(c.apiKeys, keys...) }
}

// WithTenants adds the tenants of a tenants file (tenants.Load) and their
// API keys, which work as WithAPIKeys' do, each for its own tenant: a
// request is its key's tenant's, carries the tenant's weight, and may ask
// for priorities up to the tenant's MaxPriority (403 above). A key or a
// tenant name also among WithAPIKeys' is an error. SetTenants replaces
// these tenants while the server runs. The default is none.
func WithTenants(set tenants.Set) Option { return func(c *config) { c.tenants = set } }

// WithAllowPrivateWebhooks lets webhook URLs point at loopback, private,
// link-local and other internal addresses. The default, false, refuses
// such a URL with 400, whether its host is such an address or resolves to
// one, so that a client cannot make the notifier call internal services;
// allow it when receivers run on the same machine or network (genpipe up,
// tests).
func WithAllowPrivateWebhooks(allow bool) Option { return func(c *config) { c.allowPrivate = allow } }

// WithReadinessCheck adds a dependency that /readyz pings; the server is
// ready only when all answer.
func WithReadinessCheck(name string, ping func(context.Context) error) Option {
	return func(c *config) { c.ready[name] = ping }
}

// WithMetricsHandler serves h at GET /metrics (Prometheus), outside the API
// key guard and the rate limit, as scrapers expect. The default is no
// /metrics route.
func WithMetricsHandler(h http.Handler) Option { return func(c *config) { c.metrics = h } }

// WithTracerProvider traces every API request but the probes and /metrics:
// a server span named after its route ("POST /v1/requests"), continuing the
// client's W3C traceparent when it sends one. The span is in the request's
// context, so the request's event carries it on through Kafka (with a
// traced producer). The default is no tracing.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *config) { c.tracer = tp.Tracer("github.com/genpipe/genpipe/api") }
}

// WithLogger sets the logger, overriding slog.Default().
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// NewServer returns the API. It reads requests from store and takes new
// ones in through submitter; hub delivers live status changes to SSE
// streams (fed from the results topic). An option out of its range is an
// error naming it.
func NewServer(store genpipe.RequestStore, submitter *genpipe.Submitter, objects genpipe.ObjectStore, hub *Hub, opts ...Option) (*Server, error) {
	cfg := config{
		uploadTTL:   DefaultUploadTTL,
		resultTTL:   DefaultResultTTL,
		maxBody:     1 << 20,
		maxDescLen:  genpipe.MaxDescriptionRunes,
		maxTitleLen: genpipe.MaxTitleRunes,
		maxUpload:   DefaultMaxUploadSize,
		maxBacklog:  DefaultMaxBacklog,
		lookupNetIP: func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		},
		pollEvery: time.Second,
		heartbeat: 15 * time.Second,
		ready:     map[string]func(context.Context) error{},
		logger:    slog.Default(),
		now:       time.Now,
	}
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Server{store: store, submitter: submitter, objects: objects, hub: hub, cfg: cfg, mux: http.NewServeMux(),
		plainKeys: tenants.FromKeys(cfg.apiKeys), backlog: &backlogGauge{max: cfg.maxBacklog, store: store},
		uploads: newKnownUploads()}
	s.keys.Store(&keyring{})
	if err := s.SetTenants(cfg.tenants); err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	if cfg.observeEstimate != nil && hub != nil {
		hub.observe(s.observeStart)
	}
	if cfg.rateLimit > 0 {
		s.limiter = newRateLimiter(cfg.rateLimit, cfg.rateBurst)
	}
	s.cancels = s.canceler()
	if err := s.routes(); err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	return s, nil
}

// SetTenants replaces the tenants of WithTenants, atomically: a request
// already authenticated keeps the tenant it was found to be, and the next
// is authenticated with the new keys. A set whose keys or names clash with
// WithAPIKeys', or that would turn keys off while they are on, is an error
// and changes nothing.
func (s *Server) SetTenants(set tenants.Set) error {
	s.reload.Lock()
	defer s.reload.Unlock()
	merged, err := tenants.Merge(s.plainKeys, set)
	if err != nil {
		return err
	}
	k := newKeyring(merged)
	if !k.enabled() && s.keys.Load().enabled() {
		return errors.New("tenants: the new tenants have no API key, which would leave the API open; keeping the old ones")
	}
	s.keys.Store(k)
	return nil
}

// validate reports every option out of its range, naming the option.
func (c *config) validate() error {
	check := invalid.New("api")
	check.If(c.uploadTTL <= 0 || c.uploadTTL > MaxURLTTL, "upload TTL %v: want more than 0 and at most %v", c.uploadTTL, MaxURLTTL)
	check.If(c.resultTTL <= 0 || c.resultTTL > MaxURLTTL, "result TTL %v: want more than 0 and at most %v", c.resultTTL, MaxURLTTL)
	check.If(c.maxUpload < 1, "max upload size %d: want at least 1 byte", c.maxUpload)
	check.If(c.maxBacklog < 0, "max backlog %d: want 0 (no bound) or more", c.maxBacklog)
	check.If(c.maxStartWait < 0, "max start wait %v: want 0 (no bound) or more", c.maxStartWait)
	check.If(c.estimateReuse < 0 || c.estimateReuse > MaxEstimateReuse, "estimate reuse %v: want 0 to %v", c.estimateReuse, MaxEstimateReuse)
	check.If(c.maxStartWait > 0 && c.estimator == nil, "max start wait %v: needs an estimator", c.maxStartWait)
	check.If(c.rateLimit < 0, "rate limit %g: want 0 (no limit) or more", c.rateLimit)
	check.If(c.rateLimit > 0 && c.rateBurst < 1, "rate burst %d: want at least 1", c.rateBurst)
	check.If(c.maxWait < 0 || c.maxWait > genpipe.MaxWait, "max wait %v: want 0 (none) to %v", c.maxWait, genpipe.MaxWait)
	return check.Err()
}

// Handler returns the HTTP handler.
func (s *Server) Handler() http.Handler {
	if s.cfg.tracer != nil {
		return http.HandlerFunc(s.serveTraced)
	}
	return http.HandlerFunc(s.serveHTTP)
}

// untraced are the routes that would only add noise to traces.
var untraced = map[string]bool{"GET /healthz": true, "GET /readyz": true, "GET /metrics": true}

// knownMethod returns m if it is one of HTTP's methods, else "_OTHER", as
// OpenTelemetry's conventions name the rest: a client picks the method, and
// span names and attributes must not take any token it sends.
func knownMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete,
		http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return m
	}
	return "_OTHER"
}

// serveTraced serves r under a server span continuing the client's trace.
func (s *Server) serveTraced(w http.ResponseWriter, r *http.Request) {
	_, route := s.mux.Handler(r)
	if untraced[route] {
		s.serveHTTP(w, r)
		return
	}
	method := knownMethod(r.Method)
	name := route
	if name == "" {
		name = method // no route: the span name must stay low-cardinality
	}
	ctx := propagation.TraceContext{}.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	ctx, span := s.cfg.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("http.request.method", method), attribute.String("http.route", route),
			attribute.String("url.path", r.URL.Path)))
	defer span.End()
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	s.serveHTTP(sw, r.WithContext(ctx))
	span.SetAttributes(attribute.Int("http.response.status_code", sw.status))
	if sw.status >= 500 {
		span.SetStatus(codes.Error, http.StatusText(sw.status))
	}
}

// statusWriter keeps the status a handler writes. It forwards Flush, which
// the SSE stream needs, and unwraps for http.ResponseController.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	w.status = status
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// serveHTTP answers requests no route matches with problem+json too: the
// mux decides 404 or 405 (and the Allow header), we write the body.
//
// A path not in canonical form ("//v1/styles", "/v1/../v1/styles") is a
// 404 as well, where the mux would redirect to the cleaned path with an
// HTML body. No correct client sends one, and a redirect would have
// clients send a POST body and their API key a second time, to a place
// they did not name; the detail names the canonical path instead.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if clean := cleanPath(r.URL.Path); clean != r.URL.Path {
		s.problem(w, r, genpipe.Errorf(genpipe.ENOTFOUND, "no such endpoint: %s %s (paths are not cleaned: did you mean %s?)",
			r.Method, r.URL.Path, clean))
		return
	}
	h, pattern := s.mux.Handler(r)
	if pattern != "" {
		s.mux.ServeHTTP(w, r)
		return
	}
	verdict := &headerOnly{header: http.Header{}}
	h.ServeHTTP(verdict, r)
	if allow := verdict.header.Get("Allow"); allow != "" {
		w.Header().Set("Allow", allow)
	}
	if verdict.status == http.StatusMethodNotAllowed {
		httpjson.WriteProblem(w, verdict.status, "method_not_allowed", fmt.Sprintf("%s is not allowed on %s; allowed: %s", r.Method, r.URL.Path, verdict.header.Get("Allow")))
		return
	}
	s.problem(w, r, genpipe.Errorf(genpipe.ENOTFOUND, "no such endpoint: %s %s", r.Method, r.URL.Path))
}

// cleanPath is p as http.ServeMux cleans it before matching: rooted, without
// "." and ".." elements or repeated slashes, keeping a trailing slash.
func cleanPath(p string) string {
	if p == "" || p[0] != '/' {
		p = "/" + p
	}
	clean := path.Clean(p)
	if strings.HasSuffix(p, "/") && clean != "/" {
		clean += "/"
	}
	return clean
}

// headerOnly keeps a handler's status and headers and drops its body.
type headerOnly struct {
	header http.Header
	status int
}

func (h *headerOnly) Header() http.Header         { return h.header }
func (h *headerOnly) Write(b []byte) (int, error) { return len(b), nil }
func (h *headerOnly) WriteHeader(status int)      { h.status = status }

func (s *Server) routes() error {
	// Every /v1/ endpoint is guarded: API key, then rate limit.
	s.mux.Handle("POST /v1/uploads", s.guard(jsonBody(s.createUpload)))
	s.mux.Handle("POST /v1/requests", s.guard(jsonBody(s.createRequest)))
	s.mux.Handle("GET /v1/requests/{id}", s.guard(s.getRequest))
	if s.cancels != nil {
		s.mux.Handle("DELETE /v1/requests/{id}", s.guard(s.cancelRequest))
	}
	s.mux.Handle("GET /v1/requests/{id}/events", s.guard(s.streamEvents))
	s.mux.Handle("GET /v1/styles", s.guard(s.listStyles))
	if s.cfg.ledger != nil {
		s.mux.Handle("GET /v1/usage", s.guard(s.getUsage))
	}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		httpjson.Write(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.HandleFunc("GET /openapi.json", serveOpenAPI)
	if s.cfg.metrics != nil {
		s.mux.Handle("GET /metrics", s.cfg.metrics)
	}
	// The web page, and the page of one request (page.go).
	page, err := s.pageHandler()
	if err != nil {
		return err
	}
	s.mux.Handle("GET /{$}", page)
	s.mux.Handle("GET /requests/{id}", page)
	return s.routeAssets()
}

// jsonBody refuses, with 415, a body whose Content-Type is not
// application/json (with at most a charset parameter, utf-8), before
// anything else reads it. Browsers send a cross-site POST of text/plain or
// of a form without asking the API first (no CORS preflight), so a page on
// any site could make a visitor's browser submit requests; a JSON body
// makes them ask, and the API's answer grants no other origin.
func jsonBody(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if contentType := r.Header.Get("Content-Type"); !isJSON(contentType) {
			httpjson.WriteProblem(w, http.StatusUnsupportedMediaType, "unsupported_media_type",
				fmt.Sprintf("the body must be JSON, sent with Content-Type: application/json, not %q", contentType))
			return
		}
		next(w, r)
	}
}

func isJSON(contentType string) bool {
	mediaType, params, err := mime.ParseMediaType(contentType)
	if err != nil || mediaType != "application/json" {
		return false
	}
	for name, value := range params {
		if name != "charset" || !strings.EqualFold(value, "utf-8") {
			return false
		}
	}
	return true
}

func (s *Server) listStyles(w http.ResponseWriter, r *http.Request) {
	httpjson.Write(w, http.StatusOK, genpipe.Styles)
}

// readyz pings every dependency with a short deadline.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	checks := map[string]string{}
	ready := true
	for name, ping := range s.cfg.ready {
		if err := ping(ctx); err != nil {
			checks[name], ready = err.Error(), false
			continue
		}
		checks[name] = "ok"
	}
	status := http.StatusOK
	if !ready {
		status = http.StatusServiceUnavailable
	}
	httpjson.Write(w, status, map[string]any{"ready": ready, "checks": checks})
}
