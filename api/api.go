// Package api is genpipe's HTTP API and web page. It answers at once: a
// request is validated, stored as received, durably queued in Kafka, and
// acknowledged with 202; the slow AI work happens behind the topics.
package api

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/httpjson"
)

//go:embed web
var webFS embed.FS

// Server serves the API.
type Server struct {
	store     genpipe.RequestStore
	objects   genpipe.ObjectStore
	publisher genpipe.Publisher
	hub       *Hub
	topics    genpipe.Topics
	cfg       config
	mux       *http.ServeMux
}

type config struct {
	uploadTTL   time.Duration
	resultTTL   time.Duration
	maxBody     int64
	maxDescLen  int
	maxTitleLen int
	pollEvery   time.Duration
	heartbeat   time.Duration
	ready       map[string]func(context.Context) error
	logger      *slog.Logger
	now         func() time.Time
}

// Option configures a Server.
type Option func(*config)

// WithUploadTTL sets how long an upload URL accepts the image, overriding
// 15 minutes.
func WithUploadTTL(d time.Duration) Option { return func(c *config) { c.uploadTTL = d } }

// WithResultTTL sets how long result links stay valid, overriding 1 hour.
// Every GET presigns fresh links.
func WithResultTTL(d time.Duration) Option { return func(c *config) { c.resultTTL = d } }

// WithReadinessCheck adds a dependency that /readyz pings; the server is
// ready only when all answer.
func WithReadinessCheck(name string, ping func(context.Context) error) Option {
	return func(c *config) { c.ready[name] = ping }
}

// WithLogger sets the logger, overriding slog.Default().
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithStatusPoll sets how often an SSE stream rereads the status store in
// case it missed a live event, overriding 1 second.
func WithStatusPoll(d time.Duration) Option { return func(c *config) { c.pollEvery = d } }

// NewServer returns the API. hub delivers live status changes to SSE
// streams (fed from the results topic); topics names where requests go.
func NewServer(store genpipe.RequestStore, objects genpipe.ObjectStore, publisher genpipe.Publisher, hub *Hub, topics genpipe.Topics, opts ...Option) *Server {
	cfg := config{
		uploadTTL:   15 * time.Minute,
		resultTTL:   time.Hour,
		maxBody:     1 << 20,
		maxDescLen:  2000,
		maxTitleLen: 200,
		pollEvery:   time.Second,
		heartbeat:   15 * time.Second,
		ready:       map[string]func(context.Context) error{},
		logger:      slog.Default(),
		now:         time.Now,
	}
	for _, o := range opts {
		o(&cfg)
	}
	s := &Server{store: store, objects: objects, publisher: publisher, hub: hub, topics: topics, cfg: cfg, mux: http.NewServeMux()}
	s.routes()
	return s
}

// Handler returns the HTTP handler.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// serveHTTP answers requests no route matches with problem+json too: the
// mux decides 404 or 405 (and the Allow header), we write the body.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
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

// headerOnly keeps a handler's status and headers and drops its body.
type headerOnly struct {
	header http.Header
	status int
}

func (h *headerOnly) Header() http.Header         { return h.header }
func (h *headerOnly) Write(b []byte) (int, error) { return len(b), nil }
func (h *headerOnly) WriteHeader(status int)      { h.status = status }

func (s *Server) routes() {
	s.mux.HandleFunc("POST /v1/uploads", s.createUpload)
	s.mux.HandleFunc("POST /v1/requests", s.createRequest)
	s.mux.HandleFunc("GET /v1/requests/{id}", s.getRequest)
	s.mux.HandleFunc("GET /v1/requests/{id}/events", s.streamEvents)
	s.mux.HandleFunc("GET /v1/styles", s.listStyles)
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		httpjson.Write(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	s.mux.HandleFunc("GET /readyz", s.readyz)
	static, _ := fs.Sub(webFS, "web")
	s.mux.Handle("GET /{$}", http.FileServerFS(static))
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
