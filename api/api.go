// Package api is genpipe's HTTP API and web page. It answers at once: a
// request is validated, stored as received, durably queued in Kafka, and
// acknowledged with 202; the slow AI work happens behind the topics.
package api

import (
	"context"
	"embed"
	"encoding/json"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/genpipe/genpipe"
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
func (s *Server) Handler() http.Handler { return s.mux }

func (s *Server) routes() {
	s.mux.HandleFunc("POST /v1/uploads", s.createUpload)
	s.mux.HandleFunc("POST /v1/requests", s.createRequest)
	s.mux.HandleFunc("GET /v1/requests/{id}", s.getRequest)
	s.mux.HandleFunc("GET /v1/requests/{id}/events", s.streamEvents)
	s.mux.HandleFunc("GET /v1/styles", s.listStyles)
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	s.mux.HandleFunc("GET /readyz", s.readyz)
	static, _ := fs.Sub(webFS, "web")
	s.mux.Handle("GET /", http.FileServerFS(static))
	s.mux.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		s.problem(w, r, genpipe.Errorf(genpipe.ENOTFOUND, "no such endpoint: %s %s", r.Method, r.URL.Path))
	})
}

func (s *Server) listStyles(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, genpipe.Styles)
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
	writeJSON(w, status, map[string]any{"ready": ready, "checks": checks})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
