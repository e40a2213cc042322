// Package aisim simulates genpipe's two AI services, the Checking AI and the
// Generative AI, as real HTTP services that speak the contract of package
// aiclient. They are slow and capacity-limited like the real ones: each call
// holds one of a fixed number of slots for the configured latency, and a call
// that finds every slot busy is refused at once with 429 Too Many Requests
// (the services never queue). The work itself is real: the Checking AI
// fetches and decodes the image, the Generative AI renders the slide with
// package slide and uploads it to the presigned URLs it was given.
//
// Their memory is bounded too, whatever the images. An image is judged from
// its header before it is decoded, and refused with the reason when
// decoding it would take more than WithMaxDecodedBytes. The others are
// decoded once the service's memory budget (WithMemoryBudget) has room for
// the decoded image and, for the Generative AI, the slide render and its
// files until they are uploaded; a call waiting for memory keeps its slot.
//
// Routes:
//
//	POST /v1/check     genpipe.CheckInput    → 200 genpipe.CheckVerdict     (check service)
//	POST /v1/generate  genpipe.GenerateInput → 200 {"outputs":{"png":{"bytes":N},...}} (generate service)
//	DELETE /v1/calls/{Idempotency-Key} → 200 {"aborted":true} once the call with that key stopped and freed its slot;
//	                   404 when no such call runs; 501 when the service does not abort (WithAbort(false))
//	GET  /healthz      → 200 {"status":"ok"}
//	GET  /stats        → 200 Stats, and MemoryStats as "memory"
//	GET  /duplicates   → 200 [Duplicate]: the requests paid for twice, if any
//	GET  /calls        → 200 [Call]: each call that took a slot, when it started and ended, and how
//	                     (?request=ID: its calls only; ?running=1: the calls holding a slot now)
//
// Errors are application/problem+json (RFC 9457): 400 malformed input, 413
// body over MaxBodyBytes, 422 an unusable image (generate only; check answers
// with a failing verdict instead), 429 over capacity with Retry-After, 502
// when fetching the image or uploading a file failed (worth retrying), 500
// otherwise. WithFaultRate and WithBusyRate make a service answer 500 and
// 429 at random as well, for fault tests.
//
// # Which calls are paid
//
// Every answer says whether its call was paid, in the header
// genpipe.ChargedHeader: "true" on the answers of calls that took a slot
// (counted in Stats.Calls, by outcome in Succeeded and Failed), "false" on
// every other answer — input refused (400, 413, 415), an injected fault
// (500 or 429), over capacity (429), and a stored answer replayed for a
// repeated Idempotency-Key (200, with Idempotent-Replayed: true; counted in
// Replayed). A call whose client went away before its answer took a slot
// and is counted Abandoned. A client that records every call sent except
// those answered "false" (package aiclient fills a genpipe.AICallReceipt
// for it) thus counts exactly Stats.Calls.
package aisim

import (
	"context"
	"errors"
	"fmt"
	"image"
	"net/http"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/backoff"
	"github.com/genpipe/genpipe/httpjson"
)

// Defaults and limits of the simulated services.
const (
	DefaultCheckLatency    = 500 * time.Millisecond // the source article's Checking AI
	DefaultGenerateLatency = 3 * time.Second        // the source article's Generative AI
	DefaultCapacity        = 64                     // concurrent calls per service

	// DefaultRetention and DefaultRetentionMax are the defaults of
	// WithRetention: a service remembers each request id, idempotent
	// answer and call for an hour, and at most the 2,000 latest of each:
	// far more than any retry or replay of genpipe's workers needs (it
	// comes seconds after the call, a few capacities of calls later), and
	// a few MB per service, so that `genpipe up` stays as large after
	// 30,000 requests as after 3,000.
	DefaultRetention    = time.Hour
	DefaultRetentionMax = 2_000

	// DefaultMaxDecodedBytes is the default of WithMaxDecodedBytes: the
	// most memory decoding one image may take. It lets ordinary photos
	// through: a 24-megapixel baseline JPEG is charged 127 MiB (4:2:0,
	// with the conversion to RGBA a 3-component JPEG may need), a
	// 24-megapixel 8-bit PNG 92 MiB, any 8-bit PNG up to MaxImageSide
	// square 245 MiB. It refuses images that cost more than their size
	// suggests: the 8000×8000 16-bit PNG (489 MiB), a progressive JPEG
	// over about 23 megapixels (4:2:0; 14 at 4:4:4), for which the decoder
	// keeps 4 bytes of coefficients a sample.
	DefaultMaxDecodedBytes = 256 << 20
	// DefaultMemoryBudget is the default of WithMemoryBudget: room for the
	// largest image the default WithMaxDecodedBytes allows and a slide
	// render (slide.RenderBytes, at most 90 MiB) beside it, or several
	// ordinary photos at once. Two services at the default, as in
	// `genpipe up`, hold at most 768 MiB for images.
	DefaultMemoryBudget = 384 << 20

	MaxBodyBytes   = 1 << 20              // request body limit
	MaxImageBytes  = 50 << 20             // the largest image fetched
	MaxHeaderBytes = 1 << 20              // the most an image may hold before its pixels (metadata: EXIF, ICC, XMP)
	MinImageSide   = genpipe.MinImageSide // images must be at least 64×64 pixels
	MaxImageSide   = genpipe.MaxImageSide // and at most 8000×8000
)

// Service is one simulated AI service. Its Handler is safe for concurrent use.
type Service struct {
	model   model
	cfg     config
	gate    *gate
	budget  *budget
	renders *turns // the generate service's slide renders
	faults  *injector
	answers *answers // by IdempotencyHeader
	calls   calls    // running, by IdempotencyHeader: what DELETE /v1/calls/{key} aborts
}

// model is what differs between the two services.
type model struct {
	name    string        // "check" or "generate": its call is POST /v1/{name}
	latency time.Duration // the default of WithLatency
	input   func() input  // a new, empty body of its call
	// extra is the memory a call needs besides decoding its image, for
	// an image of the given size (nil for none), and maxExtra the most it
	// is for any image up to MaxImageSide a side: the memory budget must
	// hold it beside the largest image allowed.
	extra    func(image.Point) int64
	maxExtra int64
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
	cfg, err := newConfig(m, opts)
	if err != nil {
		return nil, err
	}
	return &Service{model: m, cfg: cfg, gate: newGate(cfg.capacity, cfg.retention), answers: newAnswers(cfg.retention), budget: newBudget(cfg.memoryBudget),
		renders: newTurns(cfg.renders),
		faults:  newInjector(cfg.faultRate, cfg.busyRate, cfg.seed, cfg.seeded)}, nil
}

// Handler returns the service's HTTP handler: its model's route, GET
// /healthz, GET /stats and GET /duplicates.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/"+s.model.name, s.serveCall)
	mux.HandleFunc("DELETE /v1/calls/{key...}", s.serveAbort)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		httpjson.Write(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
		httpjson.Write(w, http.StatusOK, struct {
			Stats
			Memory MemoryStats `json:"memory"`
		}{s.Stats(), s.Memory()})
	})
	mux.HandleFunc("GET /calls", s.serveCalls)
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

// Memory returns the accounting of the service's memory budget.
func (s *Service) Memory() MemoryStats {
	m := s.budget.stats()
	m.renderStats = s.renders.stats()
	return m
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
	// Every answer before the call takes a slot says it was not paid:
	// refused input, an injected fault, over capacity, a stored answer.
	w.Header().Set(genpipe.ChargedHeader, "false")
	in, err := s.parse(w, r)
	if err != nil {
		s.problem(w, r, err)
		return
	}
	id := in.requestID()
	if s.replay(w, r) || s.inject(w, id) {
		return
	}
	// Abortable from before it takes a slot, so that an abort that comes
	// as soon as the call counts in /stats finds it.
	ctx, abortCh, done := s.track(r.Context(), r.Header.Get(IdempotencyHeader))
	defer done()
	slot, retryAfter, ok := s.gate.acquire(id, s.cfg.latency)
	if !ok {
		w.Header().Set("Retry-After", retryAfter)
		s.problem(w, r, errTooMany(s.model.name, s.cfg.capacity))
		return
	}
	// From here on the call holds a slot and is counted in Calls: paid.
	w.Header().Set(genpipe.ChargedHeader, "true")
	// Released (and counted) when the handler returns, before the
	// buffered answer is flushed: a client that reads /stats right after
	// its answer finds its call counted; an abort is answered after it.
	res := abandoned
	start := time.Now()
	defer func() { s.gate.release(slot, id, res) }()

	wait := func() error { return sleepUntil(ctx, start.Add(s.cfg.latency)) }
	out, err := work(ctx, abortCh, func(ctx context.Context) (any, error) { return in.run(ctx, s, wait) })
	switch {
	case errors.Is(context.Cause(ctx), errAborted):
		res = aborted
		s.cfg.logger.Debug("call aborted by the client", "model", s.model.name, "request", id, "after", time.Since(start))
		s.problem(w, r, genpipe.Errorf(genpipe.ECONFLICT, "the call was aborted by its client"))
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
