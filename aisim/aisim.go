// Package aisim simulates genpipe's two AI services, the Checking AI and the
// Generative AI, as real HTTP services that speak the contract of package
// aiclient. They are slow and capacity-limited like the real ones: each call
// holds one of a fixed number of slots for the configured latency, and a call
// that finds every slot busy is refused at once with 429 Too Many Requests
// (the services never queue). The work itself is real: the Checking AI
// fetches and decodes the image, the Generative AI renders the slide with
// package slide and uploads it to the presigned URLs it was given.
//
// Routes:
//
//	POST /v1/check     genpipe.CheckInput    → 200 genpipe.CheckVerdict     (check service)
//	POST /v1/generate  genpipe.GenerateInput → 200 {"outputs":{"png":{"bytes":N},...}} (generate service)
//	GET  /healthz      → 200 {"status":"ok"}
//	GET  /stats        → 200 Stats
//	GET  /duplicates   → 200 [Duplicate]: the requests paid for twice, if any
//
// Errors are application/problem+json (RFC 9457): 400 malformed input, 413
// body over MaxBodyBytes, 422 an unusable image (generate only; check answers
// with a failing verdict instead), 429 over capacity with Retry-After, 502
// when fetching the image or uploading a file failed (worth retrying), 500
// otherwise. WithFaultRate and WithBusyRate make a service answer 500 and
// 429 at random as well, for fault tests.
package aisim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/genpipe/genpipe/backoff"
	"github.com/genpipe/genpipe/httpjson"
)

// Defaults and limits of the simulated services.
const (
	DefaultCheckLatency    = 500 * time.Millisecond // the source article's Checking AI
	DefaultGenerateLatency = 3 * time.Second        // the source article's Generative AI
	DefaultCapacity        = 64                     // concurrent calls per service

	MaxBodyBytes  = 1 << 20  // request body limit
	MaxImageBytes = 50 << 20 // the largest image fetched
	MinImageSide  = 64       // images must be at least 64×64 pixels
	MaxImageSide  = 8000     // and at most 8000×8000
)

// Option configures a Service.
type Option func(*config)

type config struct {
	latency    time.Duration
	latencySet bool // else the model's default
	capacity   int
	faultRate  float64
	busyRate   float64
	seed       uint64
	seeded     bool         // seed was set
	client     *http.Client // fetches images and uploads slides: see defaultClient
	logger     *slog.Logger
}

// WithLatency sets how long each call holds its slot: the model's thinking
// time. The work (fetching, decoding, rendering) runs inside it, so a call
// takes max(latency, work) plus the uploads. Defaults: DefaultCheckLatency
// for the check service, DefaultGenerateLatency for the generate service;
// 0 means no delay beyond the work, which suits tests; less is invalid.
func WithLatency(d time.Duration) Option {
	return func(c *config) { c.latency, c.latencySet = d, true }
}

// WithCapacity sets how many calls may be in flight at once; one more gets
// 429. Default DefaultCapacity; it must be at least 1.
func WithCapacity(n int) Option {
	return func(c *config) { c.capacity = n }
}

// WithFaultRate makes the service answer a call with 500 Internal Server
// Error (a problem+json) with probability p, decided when the call arrives,
// after its input is validated and before it takes a slot: the injected
// failure costs no capacity and never reaches the model, so it is counted
// in Stats.InjectedFaults, not in Calls. Default 0 (never); p must be from
// 0 to 1. For fault tests: a worker must retry these without paying twice.
func WithFaultRate(p float64) Option {
	return func(c *config) { c.faultRate = p }
}

// WithBusyRate makes the service answer a call with 429 Too Many Requests
// and Retry-After: 1 with probability p, decided on arrival like
// WithFaultRate (one draw decides both, so the two rates must add up to
// at most 1). The refusals are counted in Stats.InjectedBusy, not in
// OverCapacity. Default 0 (never); p must be from 0 to 1.
func WithBusyRate(p float64) Option {
	return func(c *config) { c.busyRate = p }
}

// WithFaultSeed seeds the draws of WithFaultRate and WithBusyRate, so that a
// test sees the same sequence of injected failures for the same sequence of
// arriving calls. Default: a random seed per service.
func WithFaultSeed(seed uint64) Option {
	return func(c *config) { c.seed, c.seeded = seed, true }
}

// WithLogger sets the logger. Default: discard. Calls are logged at debug
// level, failures of the service itself at warn.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) { c.logger = l }
}

func newConfig(defaultLatency time.Duration, opts []Option) (config, error) {
	c := config{capacity: DefaultCapacity}
	for _, o := range opts {
		o(&c)
	}
	if !c.latencySet {
		c.latency = defaultLatency
	}
	if err := c.validate(); err != nil {
		return c, err
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	c.client = defaultClient()
	return c, nil
}

// validate reports every option out of its range, naming the option.
func (c *config) validate() error {
	var errs []error
	check := func(bad bool, format string, args ...any) {
		if bad {
			errs = append(errs, fmt.Errorf("aisim: "+format, args...))
		}
	}
	check(c.latency < 0, "latency %v: want 0 or more", c.latency)
	check(c.capacity < 1, "capacity %d: want at least 1", c.capacity)
	check(!(c.faultRate >= 0 && c.faultRate <= 1), "fault rate %g: want 0 to 1", c.faultRate)
	check(!(c.busyRate >= 0 && c.busyRate <= 1), "busy rate %g: want 0 to 1", c.busyRate)
	check(c.faultRate+c.busyRate > 1, "fault rate %g and busy rate %g: want at most 1 together", c.faultRate, c.busyRate)
	return errors.Join(errs...)
}

// defaultClient fetches images from and uploads slides to presigned URLs.
// Its own transport keeps up to 64 idle connections per host (one per slot),
// and a one-minute timeout per request is enough for a MaxImageBytes image
// over a slow link.
func defaultClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 2 * DefaultCapacity
	t.MaxIdleConnsPerHost = DefaultCapacity
	return &http.Client{Transport: t, Timeout: time.Minute}
}

// Service is one simulated AI service. Its Handler is safe for concurrent use.
type Service struct {
	model   model
	cfg     config
	gate    *gate
	faults  *injector
	answers answers // by IdempotencyHeader
}

// model is what differs between the two services.
type model struct {
	name    string        // "check" or "generate": its call is POST /v1/{name}
	latency time.Duration // the default of WithLatency
	input   func() input  // a new, empty body of its call
}

// input is the body of a model's call. It is decoded and validated before
// the call takes a slot, so bad input never costs capacity.
type input interface {
	requestID() string // checked first, by parse
	validate() error   // the rest
	// run does the call's work holding the slot. It must call wait, which
	// spends what is left of the latency, before its result is final (a
	// check answers after it, a generate uploads after it).
	run(ctx context.Context, s *Service, wait func() error) (any, error)
}

// New returns the service of the named model: "check" (NewCheckService)
// or "generate" (NewGenerateService). It is for callers that pick the
// model at run time, such as a command-line flag.
func New(model string, opts ...Option) (*Service, error) {
	switch model {
	case "check":
		return NewCheckService(opts...)
	case "generate":
		return NewGenerateService(opts...)
	}
	return nil, fmt.Errorf("aisim: unknown model %q: want check or generate", model)
}

func newService(m model, opts []Option) (*Service, error) {
	cfg, err := newConfig(m.latency, opts)
	if err != nil {
		return nil, err
	}
	return &Service{model: m, cfg: cfg, gate: newGate(cfg.capacity),
		faults: newInjector(cfg.faultRate, cfg.busyRate, cfg.seed, cfg.seeded)}, nil
}

// Handler returns the service's HTTP handler: its model's route, GET
// /healthz, GET /stats and GET /duplicates.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/"+s.model.name, s.serveCall)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		httpjson.Write(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
		httpjson.Write(w, http.StatusOK, s.Stats())
	})
	mux.HandleFunc("GET /duplicates", func(w http.ResponseWriter, _ *http.Request) {
		httpjson.Write(w, http.StatusOK, s.Duplicates())
	})
	return mux
}

// Stats returns the service's counters since it started.
func (s *Service) Stats() Stats {
	st := s.gate.stats()
	st.InjectedFaults, st.InjectedBusy = s.faults.counts()
	return st
}

// Duplicates returns the requests whose calls succeeded more than once
// (Stats.Succeeded - Stats.UniqueSucceeded counts the extra calls), sorted
// by request id: what a test names when a request was paid for twice.
func (s *Service) Duplicates() []Duplicate {
	if dups := s.gate.paidTwice(); dups != nil {
		return dups
	}
	return []Duplicate{} // JSON [], not null
}

// parse decodes and validates the body of a call.
func (s *Service) parse(w http.ResponseWriter, r *http.Request) (input, error) {
	in := s.model.input()
	if err := httpjson.Decode(w, r, MaxBodyBytes, in); err != nil {
		return nil, err
	}
	if err := checkRequestID(in.requestID()); err != nil {
		return nil, err
	}
	if err := in.validate(); err != nil {
		return nil, err
	}
	return in, nil
}

// serveCall parses a call, answers an injected failure if one is drawn,
// takes a slot or refuses with 429, runs the call and answers with its
// result.
func (s *Service) serveCall(w http.ResponseWriter, r *http.Request) {
	in, err := s.parse(w, r)
	if err != nil {
		s.problem(w, r, err)
		return
	}
	id := in.requestID()
	if s.replay(w, r) || s.inject(w, id) {
		return
	}
	slot, retryAfter, ok := s.gate.acquire(id, s.cfg.latency)
	if !ok {
		w.Header().Set("Retry-After", retryAfter)
		s.problem(w, r, errTooMany(s.model.name, s.cfg.capacity))
		return
	}
	// Released (and counted) when the handler returns, before the
	// buffered answer is flushed: a client that reads /stats right after
	// its answer finds its call counted.
	res := abandoned
	defer func() { s.gate.release(slot, id, res) }()

	ctx, start := r.Context(), time.Now()
	wait := func() error { return sleepUntil(ctx, start.Add(s.cfg.latency)) }
	out, err := in.run(ctx, s, wait)
	switch {
	case ctx.Err() != nil:
		s.cfg.logger.Debug("call abandoned by the client", "model", s.model.name, "request", id, "after", time.Since(start))
	case err != nil:
		res = failed
		s.problem(w, r, err)
	default:
		res = succeeded
		if key := r.Header.Get(IdempotencyHeader); key != "" {
			s.answers.put(key, out)
		}
		s.cfg.logger.Debug("call done", "model", s.model.name, "request", id, "took", time.Since(start))
		httpjson.Write(w, http.StatusOK, out)
	}
}

// sleepUntil waits until t or until ctx is done, returning ctx.Err() then.
func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	return backoff.Sleep(ctx, d)
}
