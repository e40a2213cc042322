// Package worker holds the two AI stages of the pipeline as event
// handlers: Check takes submitted requests and asks the Checking AI, Generate
// takes checked requests and asks the Generative AI. A handler owns its
// retries: the Kafka consumer that runs it only commits, it never retries.
// The record path around a handler (decoding, poison records, dead letters,
// tracing) is kafka.RecordHandler's.
//
// # Paid calls are never abandoned
//
// Users pay for every AI call, so each is claimed per request and stage in
// the status database (see ClaimStore), and a call under way is never cut
// off: when the record's context ends — the consumer lost or gave up the
// partition (a rebalance, a broker outage), or shut down — the call runs to
// its end under a context of its own, bounded by the AI client's timeout
// (aiclient.DefaultTimeout), and no further attempt starts. Its answer is
// recorded in the claim, and the handler returns the context's error
// without emitting anything, so the engine does not commit the record; the
// partition's next owner finds the claim done and re-emits the result
// without a second call (while the call still runs, it finds the claim held
// and waits). A handling given up on between attempts, with no answer to
// keep, hands its claim back at once.
//
// The one exception is a cancel: when the request of a running call is
// canceled (see CancelWatcher), the call's context ends with the cause
// genpipe.ErrCanceled, the AI client tells the AI service to abort it, and
// the stage publishes nothing for it: the user no longer wants it, so it is
// not worth paying for to its end. The call's error then wraps
// genpipe.ErrCanceled (errors.Is), which tells an aborted call from a
// failed one.
//
// The price: after it gave a record up, a process keeps the AI slot busy for
// up to the call's timeout — its engine still counts the handler among its
// running ones, so it starts no other record in that slot — and must not
// exit meanwhile: run the engine with engine.WithAbandonWait at least the AI
// client's timeout.
//
// # The ledger of paid calls
//
// With WithLedger, every AI call is a row of the ledger (genpipe.Ledger),
// written before the call is sent and finished with its outcome and
// duration; a call the AI did not take on (its answer said so: a 429, a
// stored answer replayed, input refused before the model; or it was never
// sent) is forgotten, so the ledger counts what the AI counts. A worker
// killed mid-call leaves its row running under a claim whose lease runs
// out: the ledger counts it abandoned, charged up to its last renewal. With
// WithBudgets the tenant's budgets on the stage are checked in the same
// transaction that writes the row: a spent budget makes no call and fails
// the request (dead-lettered, so `genpipe dlq replay` can retry it once the
// budget resets).
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/backoff"
	"github.com/genpipe/genpipe/internal/invalid"
)

// DefaultLease is how long a claim holds without a renewal (see WithLease).
const DefaultLease = 30 * time.Second

// Option configures a stage.
type Option func(*config)

type config struct {
	retry        backoff.Policy
	publishRetry backoff.Policy
	urlTTL       time.Duration
	lease        time.Duration
	heldPoll     time.Duration
	onOverload   func(context.Context)
	onRetry      func(ctx context.Context, stage genpipe.Stage, err error)
	logger       *slog.Logger
	now          func() time.Time
	watcher      *CancelWatcher // nil: a canceled request's call runs out
	onExpired    func(tenant string)
	ledger       genpipe.Ledger                       // nil: calls are not recorded
	budgets      func(tenant string) []genpipe.Budget // nil: no budgets
	onCall       func(ctx context.Context, stage genpipe.Stage, tenant string, outcome genpipe.CallOutcome, d time.Duration)
	onBudget     func(ctx context.Context, stage genpipe.Stage, e *genpipe.BudgetError)
}

func newConfig(opts []Option) (config, error) {
	c := config{
		retry:        backoff.Default,
		publishRetry: backoff.Policy{Base: 100 * time.Millisecond, Max: 5 * time.Second},
		urlTTL:       15 * time.Minute, // outlasts an AI call with its retries
		lease:        DefaultLease,
		heldPoll:     time.Second,
		onOverload:   func(context.Context) {},
		onRetry:      func(context.Context, genpipe.Stage, error) {},
		onExpired:    func(string) {},
		onCall:       func(context.Context, genpipe.Stage, string, genpipe.CallOutcome, time.Duration) {},
		onBudget:     func(context.Context, genpipe.Stage, *genpipe.BudgetError) {},
		logger:       slog.Default(),
		now:          time.Now,
	}
	for _, o := range opts {
		o(&c)
	}
	return c, c.validate()
}

// validate reports every option out of its range, naming the option.
func (c *config) validate() error {
	check := invalid.New("worker")
	check.If(c.retry.Attempts < 1, "AI call attempts %d: want at least 1 (a paid call is never retried without bound)", c.retry.Attempts)
	check.If(c.lease <= 0, "claim lease %v: want more than 0", c.lease)
	check.If(c.heldPoll <= 0, "held poll %v: want more than 0", c.heldPoll)
	check.If(c.budgets != nil && c.ledger == nil, "budgets without a ledger: budgets are checked against the ledger's calls")
	return check.Err()
}

// WithRetry sets how an AI call that answers 429, 5xx or times out is
// retried, overriding backoff.Default. After the last attempt the request
// becomes failed with the reason. Attempts must be at least 1: a paid call
// is never retried without bound.
func WithRetry(p backoff.Policy) Option { return func(c *config) { c.retry = p } }

// WithLease sets how long a claim on a request's stage holds without a
// renewal, overriding DefaultLease (30 seconds); it must be positive. The
// worker renews it every third of it while the AI call runs; when a worker
// dies, the request waits this long before another worker takes it over.
// Shorter takes over sooner and writes to the status database more often.
func WithLease(d time.Duration) Option { return func(c *config) { c.lease = d } }

// WithHeldPoll sets how often a record whose request another worker is
// working on checks whether that one finished, overriding 1 second; it
// must be positive.
func WithHeldPoll(d time.Duration) Option { return func(c *config) { c.heldPoll = d } }

// WithOverloadReport sets a func called with the record's context each
// time the AI answers 429, overriding a no-op. Wire it to
// engine.ReportOverload so the engine lowers this process's concurrency
// while the AI is saturated, instead of only retrying into it.
func WithOverloadReport(report func(context.Context)) Option {
	return func(c *config) { c.onOverload = report }
}

// WithRetryHook sets a func called each time an AI call failed and is
// about to be retried, with the record's context, the stage and the
// attempt's error, overriding a no-op: for metrics (retries by stage and
// error code). It runs on the record's goroutine, so it must be quick.
func WithRetryHook(hook func(ctx context.Context, stage genpipe.Stage, err error)) Option {
	return func(c *config) { c.onRetry = hook }
}

// WithLedger records every AI call in l (see genpipe.Ledger): a row
// written before the call is sent, finished with its outcome and duration,
// forgotten when the AI did not take the call on. Default: not recorded.
func WithLedger(l genpipe.Ledger) Option { return func(c *config) { c.ledger = l } }

// WithBudgets sets where the tenants' budgets are read before each AI
// call, overriding none: a func that returns the budgets in force now (the
// tenants file, re-read on SIGHUP), so a reload applies to the next call.
// A call whose tenant's budget for the stage is spent is not made, and the
// request fails with the budget and when it resets; it needs WithLedger.
func WithBudgets(budgets func(tenant string) []genpipe.Budget) Option {
	return func(c *config) { c.budgets = budgets }
}

// WithCallHook sets funcs called after each paid AI call with its tenant,
// outcome and duration, and each time a budget keeps a call from being
// made, overriding no-ops: for metrics (AI-seconds by tenant and stage).
// They need WithLedger and run on the call's goroutine, so must be quick;
// nil leaves one a no-op.
func WithCallHook(call func(ctx context.Context, stage genpipe.Stage, tenant string, outcome genpipe.CallOutcome, d time.Duration),
	budget func(ctx context.Context, stage genpipe.Stage, e *genpipe.BudgetError)) Option {
	return func(c *config) {
		if call != nil {
			c.onCall = call
		}
		if budget != nil {
			c.onBudget = budget
		}
	}
}

// WithLogger sets the logger, overriding slog.Default().
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// Check is the check stage: for each submitted request it asks the
// Checking AI about the uploaded image, then forwards the request to the
// checked topic or reports it rejected. Each request's check is claimed
// in claims first, so it is paid for at most once.
type Check struct {
	stage
	ai genpipe.Checker
}

// Generate is the generate stage: for each checked request it asks the
// Generative AI to render the slide into the object store, then reports it
// done with the files' keys. Each request's generation is claimed in claims
// first, so it is paid for at most once.
type Generate struct {
	stage
	ai genpipe.Generator
}

// NewCheck returns the check stage, or an error naming an option out of
// its range.
func NewCheck(ai genpipe.Checker, objects genpipe.ObjectStore, publisher genpipe.Publisher, claims genpipe.ClaimStore,
	topics genpipe.Topics, opts ...Option) (*Check, error) {
	s, err := newStage(genpipe.StageCheck, "checking the image", objects, publisher, claims, topics, opts)
	return built(&Check{ai: ai, stage: s}, err)
}

// NewGenerate returns the generate stage, or an error naming an option
// out of its range.
func NewGenerate(ai genpipe.Generator, objects genpipe.ObjectStore, publisher genpipe.Publisher, claims genpipe.ClaimStore,
	topics genpipe.Topics, opts ...Option) (*Generate, error) {
	s, err := newStage(genpipe.StageGenerate, "generating the slide", objects, publisher, claims, topics, opts)
	return built(&Generate{ai: ai, stage: s}, err)
}

// built is what a stage's constructor returns: s, or nil and err.
func built[S any](s *S, err error) (*S, error) {
	if err != nil {
		return nil, err
	}
	return s, nil
}

// stage holds what both stages do around their AI call.
type stage struct {
	config
	name      genpipe.Stage
	what      string // what the AI call does, for failure reasons
	objects   genpipe.ObjectStore
	publisher genpipe.Publisher
	claims    genpipe.ClaimStore
	topics    genpipe.Topics
	owners    *owners
}

func newStage(name genpipe.Stage, what string, objects genpipe.ObjectStore, publisher genpipe.Publisher,
	claims genpipe.ClaimStore, topics genpipe.Topics, opts []Option) (stage, error) {
	cfg, err := newConfig(opts)
	return stage{config: cfg, name: name, what: what, objects: objects, publisher: publisher,
		claims: claims, topics: topics, owners: newOwners()}, err
}

// fail reports the request failed with the outcome's reason. When this
// handling made the failing attempts, the record also goes to the
// dead-letter topic (a *genpipe.DeadLetterError), once: a redelivery finds
// the claim failed and only repeats the status.
func (s *stage) fail(ctx context.Context, e genpipe.Event, o outcome) error {
	if err := s.setStatus(ctx, e, genpipe.StatusFailed, nil, o.output); err != nil {
		return err
	}
	if o.attempts == 0 {
		return nil
	}
	return &genpipe.DeadLetterError{Reason: o.output, Attempts: o.attempts}
}

// setStatus publishes a change of the status of e's request to the results
// topic, with e's share: every event about a request carries the same.
func (s *stage) setStatus(ctx context.Context, e genpipe.Event, status genpipe.Status, result *genpipe.Result, reason string) error {
	c := genpipe.StatusChange{RequestID: e.RequestID, Status: status, Result: result, Error: reason, At: s.now()}
	changed := genpipe.NewStatusEvent(c)
	changed.Share, changed.StartBy = e.Share, e.StartBy
	return s.publish(ctx, s.topics.Results, changed)
}

// announce publishes a change of the status of e's request, as setStatus
// does, while the work it announces gets ready (the claim, the call's
// input): waiting for Kafka's acknowledgment (acks=all) first would add it
// to the time between one AI call and the next. The func it returns waits
// for the publish and returns its error, the same at every call. Call it
// before the AI call's ledger row is written, so that no call is paid for
// while the request's status cannot be told (Kafka away); before anything
// else about the request is published, so that its events reach the results
// topic in the order they happened; and before the handling ends, so that a
// record is committed only once its statuses are in Kafka.
func (s *stage) announce(ctx context.Context, e genpipe.Event, status genpipe.Status) (wait func() error) {
	published := make(chan error, 1)
	go func() { published <- s.setStatus(ctx, e, status, nil, "") }()
	return sync.OnceValue(func() error { return <-published })
}

// publish writes an event keyed by its request id. Kafka being away is not
// a reason to drop a request: it retries until ctx is done.
func (s *stage) publish(ctx context.Context, topic string, e genpipe.Event) error {
	value, err := genpipe.EncodeEvent(e)
	if err != nil {
		return fmt.Errorf("%s: encode %s: %w", s.name, e, err)
	}
	err = backoff.Retry(ctx, s.publishRetry, func() error {
		return s.publisher.Publish(ctx, topic, e.RequestID, value)
	}, backoff.OnRetry(func(attempt int, err error) {
		s.logger.Warn("publish failed, retrying", "stage", s.name, "topic", topic, "request", e.RequestID, "attempt", attempt, "err", err)
	}))
	if err != nil {
		return fmt.Errorf("%s: publish %s to %s: %w", s.name, e, topic, err)
	}
	return nil
}

// callAI runs call until it succeeds, fails for good, runs out of attempts,
// or ctx ends; it returns the attempts made and the last error. A wait is
// at least the Retry-After the AI asked for (see backoff.Retry), and each
// 429 is reported, so the engine lowers the concurrency while the AI is
// full instead of only retrying into it.
//
// Each attempt runs detached from ctx, bounded by the AI client's own
// timeout: ctx ending stops the retries, never a call under way, which is
// paid for whether or not its answer is read (see the package doc). No
// attempt starts once ctx has ended.
func (s *stage) callAI(ctx context.Context, id string, call func(ctx context.Context, attempt int) error) (attempts int, err error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	// A cancel of the request ends the call (the client aborts it) and
	// the retries; the record's context ending ends only the retries.
	callCtx, stopCall := follow(context.WithoutCancel(ctx), ctx)
	defer stopCall()
	retryCtx, stopRetry := follow(ctx, ctx)
	defer stopRetry()
	err = backoff.Retry(retryCtx, s.retry, func() error {
		attempts++
		return call(callCtx, attempts)
	}, backoff.RetryIf(func(err error) bool { return callCtx.Err() == nil && retryable(err) }), backoff.OnRetry(func(attempt int, err error) {
		s.logger.Info("AI call failed, retrying", "stage", s.name, "request", id, "attempt", attempt, "err", err)
		s.onRetry(ctx, s.name, err)
		if genpipe.ErrorCode(err) == genpipe.ETOOMANY {
			s.onOverload(ctx)
		}
	}))
	if errors.Is(context.Cause(callCtx), genpipe.ErrCanceled) && err != nil {
		// Aborted by a cancel: the ledger's "aborted", not a failure.
		err = fmt.Errorf("%s: %w (%w)", s.name, genpipe.ErrCanceled, err)
	}
	return attempts, err
}

// retryable reports whether an AI error may pass: over capacity, or down.
func retryable(err error) bool {
	code := genpipe.ErrorCode(err)
	return code == genpipe.ETOOMANY || code == genpipe.EUNAVAILABLE || code == genpipe.EINTERNAL
}

// failure is the reason shown to the user when an AI call failed for good.
// Its text is stored with the failed claim and shown again on redelivery.
func failure(what string, attempts int, err error) string {
	if _, ok := genpipe.IsBudget(err); ok {
		return fmt.Sprintf("%s was not started: %s", what, genpipe.ErrorMessage(err))
	}
	return fmt.Sprintf("%s failed after %d attempt(s): %s", what, attempts, genpipe.ErrorMessage(err))
}
