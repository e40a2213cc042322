// Package notifier is the last stage: it reads status events from the
// results topic, records them in the status store (the source of truth for
// GET and SSE), and sends "bot messages": a signed webhook POST for each
// terminal status of a request that asked for one.
//
// Webhooks go through an outbox in the status store, so a crash never loses
// one and a failing receiver never holds up the topic. They follow Standard
// Webhooks (https://www.standardwebhooks.com): each carries a webhook-id
// that its retries share, the timestamp of its attempt, and a signature
// over both and the body; signature.go has Verify for receivers.
package notifier

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/backoff"
	"github.com/genpipe/genpipe/internal/invalid"
	"github.com/genpipe/genpipe/netguard"
)

// Notifier records status changes and delivers webhooks.
type Notifier struct {
	requests  genpipe.RequestStore
	outbox    genpipe.WebhookOutbox
	objects   genpipe.ObjectStore
	key       []byte // the webhook secret's HMAC key (see ParseSecret)
	legacyKey []byte // the secret itself, the key of the legacy signature
	cfg       config
}

type config struct {
	client          *http.Client // set by New: see webhookClient
	allowPrivate    bool
	legacySignature bool
	retryWindow     time.Duration
	maxDelay        time.Duration
	resultTTL       time.Duration
	pollInterval    time.Duration
	concurrency     int
	claimLease      time.Duration
	shutdown        time.Duration
	publishWait     time.Duration
	onTerminal      func(ctx context.Context, status genpipe.Status, took time.Duration)
	onAttempt       func(state genpipe.WebhookState, took time.Duration)
	logger          *slog.Logger
	now             func() time.Time
}

// Defaults of the Notifier's options.
const (
	DefaultRetryWindow     = time.Hour
	DefaultMaxRetryDelay   = 5 * time.Minute
	DefaultPollInterval    = 250 * time.Millisecond
	DefaultConcurrency     = 8
	DefaultClaimLease      = time.Minute
	DefaultShutdownTimeout = 10 * time.Second // the webhook client's timeout: any attempt may finish
	DefaultResultTTL       = genpipe.DefaultResultTTL
	DefaultLegacySignature = true
)

// Option configures a Notifier.
type Option func(*config)

// WithPrivateWebhooks lets the webhook client connect to loopback, private
// and link-local addresses, overriding false. The API refuses such webhook
// URLs when they are submitted; the notifier checks again the address it
// dials, because DNS may answer differently by then (rebinding). Allow
// them only where every part runs on one trusted network (`genpipe up`).
func WithPrivateWebhooks(allow bool) Option { return func(cfg *config) { cfg.allowPrivate = allow } }

// WithResultTTL sets how long the result links in a webhook stay valid,
// overriding DefaultResultTTL (1 hour, the API's default too: give both
// the same value, so that every channel hands out links of one lifetime).
// It must be positive and at most genpipe.MaxPresignTTL (7 days). A
// receiver that needs fresh links GETs the request.
func WithResultTTL(d time.Duration) Option { return func(cfg *config) { cfg.resultTTL = d } }

// WithLegacySignature sets whether webhooks also carry the headers genpipe
// sent before Standard Webhooks, X-Genpipe-Signature (the HMAC-SHA256 of
// the body alone) and X-Genpipe-Delivery, overriding
// DefaultLegacySignature (true), so that receivers that verify the old
// header keep working while they move to webhook-signature. Turn it off
// once they have: a signature over the body alone verifies a captured
// message replayed at any time.
func WithLegacySignature(on bool) Option { return func(cfg *config) { cfg.legacySignature = on } }

// WithRetryWindow sets how long a failing webhook receiver keeps getting
// retries, overriding DefaultRetryWindow (1 hour); it must be positive.
// After it the delivery is abandoned (GET and SSE still show the status).
// Failures retrying cannot fix (a redirect, a 4xx other than 408 and 429,
// an address that is not public) end the delivery at once instead.
func WithRetryWindow(d time.Duration) Option { return func(cfg *config) { cfg.retryWindow = d } }

// WithMaxRetryDelay caps the exponential delay between webhook attempts,
// overriding DefaultMaxRetryDelay (5 minutes); it must be positive.
func WithMaxRetryDelay(d time.Duration) Option { return func(cfg *config) { cfg.maxDelay = d } }

// WithPollInterval sets how often the outbox is checked for due
// deliveries, overriding DefaultPollInterval (250 ms); it must be positive.
func WithPollInterval(d time.Duration) Option { return func(cfg *config) { cfg.pollInterval = d } }

// WithConcurrency sets how many webhook POSTs run at once, overriding
// DefaultConcurrency (8); it must be at least 1.
func WithConcurrency(n int) Option { return func(cfg *config) { cfg.concurrency = n } }

// WithClaimLease sets how long a notifier holds the deliveries it takes from
// the outbox, overriding DefaultClaimLease (1 minute); it must be positive.
// Another notifier on the same status store
// takes them over only after it, so a notifier that dies mid-send delays
// their retry by up to the lease. Keep it above the longest attempt (the
// HTTP client's timeout, and the shutdown timeout at shutdown), or a
// delivery still under way may be sent a second time.
func WithClaimLease(d time.Duration) Option { return func(cfg *config) { cfg.claimLease = d } }

// WithShutdownTimeout sets how long webhook POSTs under way may run once
// RunWebhooks' context is done, overriding DefaultShutdownTimeout (10
// seconds, the webhook client's timeout, so that any attempt may finish).
// Attempts still running after it are canceled and their deliveries handed
// back, due at once; 0 hands them back at once, less is invalid.
func WithShutdownTimeout(d time.Duration) Option { return func(cfg *config) { cfg.shutdown = d } }

// WithEndToEndHook sets a func called once per request when its terminal
// status (done, rejected, failed) is first recorded, with the record's
// context, the status and the time from the request's creation to that
// status change (both stamped by genpipe's own clocks: the API's store and
// the worker that ended it), overriding a no-op: for the end-to-end latency
// metric. A redelivered or out-of-order status does not call it again. It
// runs on the record's goroutine, so it must be quick.
func WithEndToEndHook(hook func(ctx context.Context, status genpipe.Status, took time.Duration)) Option {
	return func(cfg *config) { cfg.onTerminal = hook }
}

// WithAttemptHook sets a func called once per webhook attempt whose outcome
// is known, with the state the attempt left its delivery in (delivered;
// pending: failed, tried again later; failed: refused for good; abandoned:
// failed past the retry window) and the attempt's time, overriding a
// no-op: for the webhook metrics, which tell a failing receiver from a
// healthy one. An attempt cut short by shutdown is not reported: its
// outcome is unknown. It runs on the attempt's goroutine, so it must be
// quick.
func WithAttemptHook(hook func(state genpipe.WebhookState, took time.Duration)) Option {
	return func(cfg *config) { cfg.onAttempt = hook }
}

// WithLogger sets the logger, overriding slog.Default().
func WithLogger(l *slog.Logger) Option { return func(cfg *config) { cfg.logger = l } }

// New returns a Notifier that records status changes in requests, queues
// webhooks in outbox and signs them with secret: whsec_ and a base64 key
// (see NewSecret), or any other string, whose bytes are then the key (see
// ParseSecret). A bad secret, or an option out of its range, is an error
// naming it.
func New(requests genpipe.RequestStore, outbox genpipe.WebhookOutbox, objects genpipe.ObjectStore, secret string, opts ...Option) (*Notifier, error) {
	cfg := config{
		legacySignature: DefaultLegacySignature,
		retryWindow:     DefaultRetryWindow,
		maxDelay:        DefaultMaxRetryDelay,
		resultTTL:       DefaultResultTTL,
		pollInterval:    DefaultPollInterval,
		concurrency:     DefaultConcurrency,
		claimLease:      DefaultClaimLease,
		shutdown:        DefaultShutdownTimeout,
		publishWait:     10 * time.Second,
		onTerminal:      func(context.Context, genpipe.Status, time.Duration) {},
		onAttempt:       func(genpipe.WebhookState, time.Duration) {},
		logger:          slog.Default(),
		now:             time.Now,
	}
	for _, o := range opts {
		o(&cfg)
	}
	key, err := ParseSecret(secret)
	if err := cfg.validate(err); err != nil {
		return nil, err
	}
	if !strings.HasPrefix(secret, secretPrefix) && len(key) < 24 {
		cfg.logger.Warn("the webhook secret is shorter than 24 bytes; generate one with whsec_ and 32 random bytes in base64")
	}
	cfg.client = webhookClient(cfg.allowPrivate)
	return &Notifier{requests: requests, outbox: outbox, objects: objects, key: key, legacyKey: []byte(secret), cfg: cfg}, nil
}

// validate reports every option out of its range, naming the option, and
// the secret's error, if any.
func (c *config) validate(secretErr error) error {
	check := invalid.New("notifier")
	check.If(secretErr != nil, "%v: receivers could not verify what they get", secretErr)
	check.If(c.resultTTL <= 0 || c.resultTTL > genpipe.MaxPresignTTL, "result TTL %v: want more than 0 and at most %v",
		c.resultTTL, genpipe.MaxPresignTTL)
	check.If(c.retryWindow <= 0, "retry window %v: want more than 0", c.retryWindow)
	check.If(c.maxDelay <= 0, "max retry delay %v: want more than 0", c.maxDelay)
	check.If(c.pollInterval <= 0, "poll interval %v: want more than 0", c.pollInterval)
	check.If(c.concurrency < 1, "concurrency %d: want at least 1", c.concurrency)
	check.If(c.claimLease <= 0, "claim lease %v: want more than 0", c.claimLease)
	check.If(c.shutdown < 0, "shutdown timeout %v: want 0 or more", c.shutdown)
	return check.Err()
}

// Handle records e, a status event of the results topic, and, for a
// terminal status of a request with a webhook, queues its delivery. It is
// idempotent: a redelivered event changes nothing and queues nothing twice.
// A failing status store is retried until ctx is done, since a status once
// committed past is never read again; only then does Handle return an
// error. A status the store refuses as invalid (EINVALID: no retry would
// change that) is a *genpipe.DeadLetterError. A terminal status of a
// request that is not published yet is retried for up to 10 seconds, then
// recorded without a webhook.
func (n *Notifier) Handle(ctx context.Context, e genpipe.Event) error {
	start := n.cfg.now()
	err := backoff.Retry(ctx, backoff.Policy{Base: 50 * time.Millisecond, Max: 5 * time.Second}, func() error {
		err := n.record(ctx, e)
		if genpipe.ErrorCode(err) == genpipe.ENOTFOUND && n.cfg.now().Sub(start) >= n.cfg.publishWait {
			// The status applied, so the request exists, but it is not
			// published: either the API's MarkPublished has not returned
			// yet (wait for it), or it failed after queuing the request, so
			// the client got no 202 and is owed no webhook. Waiting forever
			// would hold one of the notifier's slots, and every later status
			// of the request behind it (records of one key are handled in
			// order), so give up after publishWait.
			n.cfg.logger.Warn("terminal status of a request never published: no webhook", "request", e.RequestID, "status", e.Status)
			return nil
		}
		return err
	}, backoff.RetryIf(passable), backoff.OnRetry(func(attempt int, err error) {
		if genpipe.ErrorCode(err) == genpipe.ENOTFOUND {
			n.cfg.logger.Info("request not published yet, waiting", "request", e.RequestID, "attempt", attempt)
			return
		}
		n.cfg.logger.Warn("status store failed, retrying", "request", e.RequestID, "attempt", attempt, "err", err)
	}))
	if genpipe.ErrorCode(err) == genpipe.EINVALID {
		return &genpipe.DeadLetterError{Reason: "the status store refuses the status: " + err.Error()}
	}
	return err
}

// passable reports whether a failure of the status store may pass with a
// retry: not a value it refuses (EINVALID).
func passable(err error) bool { return genpipe.ErrorCode(err) != genpipe.EINVALID }

// record applies one status change and queues its webhook.
func (n *Notifier) record(ctx context.Context, e genpipe.Event) error {
	applied, err := n.requests.ApplyStatus(ctx, e.StatusChange())
	if err != nil {
		if genpipe.ErrorCode(err) == genpipe.ENOTFOUND {
			n.cfg.logger.Warn("status for an unknown request", "request", e.RequestID, "status", e.Status)
			return nil
		}
		return fmt.Errorf("notifier: record %s: %w", e, err)
	}
	if !e.Status.Terminal() {
		return nil
	}
	r, err := n.requests.Request(ctx, e.RequestID)
	if err != nil {
		return fmt.Errorf("notifier: read request %s: %w", e.RequestID, err)
	}
	if applied {
		// Only the change that applied: a retry of this record after a
		// failed enqueue, or a redelivery, finds it applied already.
		n.cfg.onTerminal(ctx, e.Status, e.At.Sub(r.CreatedAt))
	}
	return n.enqueueWebhook(ctx, e, r)
}

func (n *Notifier) enqueueWebhook(ctx context.Context, e genpipe.Event, r *genpipe.Request) error {
	// A terminal event that lost to another terminal status (a redelivered
	// record handled again, say done after failed) applied nothing: the
	// request's webhook was queued for the status that won.
	if r.WebhookURL == "" || r.Status != e.Status {
		return nil
	}
	d := genpipe.WebhookDelivery{RequestID: r.ID, Status: e.Status, URL: r.WebhookURL,
		State: genpipe.WebhookPending, NextAttemptAt: n.cfg.now(), CreatedAt: n.cfg.now()}
	if err := n.outbox.EnqueueWebhook(ctx, d); err != nil {
		return fmt.Errorf("notifier: queue webhook of %s: %w", r.ID, err)
	}
	return nil
}

// webhookClient is the client for webhook POSTs: a 10 s timeout (a
// receiver slower than that counts as failed and is retried), no
// redirects followed (the answer is the 3xx itself: re-posting the signed
// body to wherever a receiver points would let it aim the notifier at any
// URL), and unless allowPrivate, connections to public addresses only.
func webhookClient(allowPrivate bool) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	if !allowPrivate {
		t.Proxy = nil // a proxy would dial for us, unchecked
		t.DialContext = netguard.PublicDialer(5 * time.Second).DialContext
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: t,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}
