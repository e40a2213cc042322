package aisim

import (
	"log/slog"
	"net/http"
	"runtime"
	"time"

	"github.com/genpipe/genpipe/internal/invalid"
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
	noAbort    bool // see WithAbort
	retention  retention
	renders    int // see WithRenders

	maxDecodedBytes int64
	memoryBudget    int64
	extra           int64 // what the model needs beside the largest image: see validate
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

// WithMaxDecodedBytes sets the most memory decoding one image may take, as
// its header tells before any pixel is decoded: width × height × the bytes
// a pixel takes once decoded (1 paletted, 4 for an 8-bit PNG, 8 for a
// 16-bit one; 1 to 4 for a JPEG by its components and subsampling, and 4
// more a sample for a progressive JPEG's coefficients), plus what the
// decoder allocates besides (an interlaced PNG's passes, as large again; a
// 3- or 4-component JPEG's conversion to RGBA or CMYK, 4 a pixel). Charges
// err on the high side where the header cannot tell: a gray PNG costs as
// much as an RGBA one, since a transparency chunk after the header would
// make it one, and every 3-component JPEG pays for the conversion, which
// markers after the header may call for. A larger image is refused with
// the reason (a failing verdict from the check service, 422 from the
// generate service). Default DefaultMaxDecodedBytes; it must be at least 1
// MiB and leave room in the memory budget (see WithMemoryBudget).
func WithMaxDecodedBytes(n int64) Option {
	return func(c *config) { c.maxDecodedBytes = n }
}

// WithMemoryBudget sets how much memory the service's calls may hold at once
// for images: the decoded images, and for the generate service the slide
// renders (slide.RenderBytes) and the rendered files until they are
// uploaded. A call claims its share from the image's header before
// decoding, and waits for it when the budget is spent, holding its slot
// meanwhile, so the capacity and the 429s are the same. Memory.Peak never
// exceeds it. Default DefaultMemoryBudget; it must hold the largest image
// WithMaxDecodedBytes allows, plus a render for the generate service.
func WithMemoryBudget(n int64) Option {
	return func(c *config) { c.memoryBudget = n }
}

// WithRetention sets how long and for how many a service remembers what it
// keeps per request and per call: the request ids that prove no request
// was paid twice (Stats.UniqueRequests, UniqueSucceeded, GET
// /duplicates), the answers replayed for a repeated Idempotency-Key, and
// the calls GET /calls lists. Each is forgotten once older than keep, or,
// the oldest first, when more than max are held, so that a service's
// memory stays flat however many requests it serves. Within the
// retention, duplicates are detected and answers replayed as before; a
// request repeated after it counts as a new one and is served again. The
// counters of Stats are never forgotten. Defaults DefaultRetention and
// DefaultRetentionMax; keep must be positive and max at least 1.
func WithRetention(keep time.Duration, max int) Option {
	return func(c *config) { c.retention = retention{keep: keep, max: max} }
}

// WithRenders sets how many slide renders the generate service runs at
// once; a call that finds them all running waits for a turn, keeping its
// slot and its memory claim. A render is CPU-bound work with an 8 MiB
// canvas, so more at once than the CPUs can run hold more memory for no
// more throughput. Default runtime.GOMAXPROCS(0), read when the service
// is made; it must be at least 1. The check service renders nothing.
func WithRenders(n int) Option {
	return func(c *config) { c.renders = n }
}

// WithLogger sets the logger. Default: discard. Calls are logged at debug
// level, failures of the service itself at warn.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) { c.logger = l }
}

func newConfig(m model, opts []Option) (config, error) {
	c := config{capacity: DefaultCapacity, maxDecodedBytes: DefaultMaxDecodedBytes, memoryBudget: DefaultMemoryBudget,
		retention: retention{keep: DefaultRetention, max: DefaultRetentionMax}, renders: runtime.GOMAXPROCS(0)}
	for _, o := range opts {
		o(&c)
	}
	if !c.latencySet {
		c.latency = m.latency
	}
	c.extra = m.maxExtra
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
	check := invalid.New("aisim")
	check.If(c.latency < 0, "latency %v: want 0 or more", c.latency)
	check.If(c.capacity < 1, "capacity %d: want at least 1", c.capacity)
	check.If(!(c.faultRate >= 0 && c.faultRate <= 1), "fault rate %g: want 0 to 1", c.faultRate)
	check.If(!(c.busyRate >= 0 && c.busyRate <= 1), "busy rate %g: want 0 to 1", c.busyRate)
	check.If(c.faultRate+c.busyRate > 1, "fault rate %g and busy rate %g: want at most 1 together", c.faultRate, c.busyRate)
	check.If(c.renders < 1, "renders %d: want at least 1", c.renders)
	check.If(c.retention.keep <= 0, "retention %v: want more than 0", c.retention.keep)
	check.If(c.retention.max < 1, "retention max %d: want at least 1", c.retention.max)
	check.If(c.maxDecodedBytes < 1<<20, "max decoded bytes %d: want at least 1 MiB", c.maxDecodedBytes)
	need := c.maxDecodedBytes + MaxHeaderBytes + c.extra
	check.If(c.memoryBudget < need, "memory budget %d: want at least %d, the max decoded bytes (%d) plus the most an image's header (%d) and the work beside it (%d) take",
		c.memoryBudget, need, c.maxDecodedBytes, MaxHeaderBytes, c.extra)
	return check.Err()
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
