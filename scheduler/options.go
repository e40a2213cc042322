package scheduler

import (
	"context"
	"log/slog"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/internal/invalid"
)

// Defaults of the dispatcher's options.
const (
	// DefaultCapacity is the AI's concurrent calls, the bound on a stage's
	// running tasks over every process.
	DefaultCapacity = 64
	// DefaultLease is how long a taken task holds without a renewal.
	DefaultLease = 30 * time.Second
	// DefaultPoll is how often an idle dispatcher looks for work that
	// other processes enqueued.
	DefaultPoll = 100 * time.Millisecond
	// DefaultAging is how long a task waits at its priority before it
	// competes one level up.
	DefaultAging = 2 * time.Minute
	// DefaultShutdownTimeout is how long running tasks may finish at
	// shutdown before their contexts are canceled.
	DefaultShutdownTimeout = 30 * time.Second
	// DefaultAbandonWait is how long, after that, a dispatcher waits for
	// handlers whose contexts it canceled.
	DefaultAbandonWait = time.Second
	// DefaultOverloadCooldown and DefaultIncreaseAfter pace the adaptive
	// limit (see Dispatcher).
	DefaultOverloadCooldown = time.Second
	DefaultIncreaseAfter    = 4
)

// Option configures a Dispatcher.
type Option func(*config)

type config struct {
	capacity        int
	lease           time.Duration
	poll            time.Duration
	aging           time.Duration
	shutdownTimeout time.Duration
	abandonWait     time.Duration
	cooldown        time.Duration
	increaseAfter   int
	overloaded      func(error) bool
	onOverhead      func(time.Duration)
	onExpired       func(context.Context, genpipe.Task)
	owner           string
	log             *slog.Logger
}

func newConfig(opts []Option) (config, error) {
	c := config{
		capacity:        DefaultCapacity,
		lease:           DefaultLease,
		poll:            DefaultPoll,
		aging:           DefaultAging,
		shutdownTimeout: DefaultShutdownTimeout,
		abandonWait:     DefaultAbandonWait,
		cooldown:        DefaultOverloadCooldown,
		increaseAfter:   DefaultIncreaseAfter,
		overloaded:      func(error) bool { return false },
		onOverhead:      func(time.Duration) {},
		onExpired:       func(context.Context, genpipe.Task) {},
		log:             slog.Default(),
	}
	for _, o := range opts {
		o(&c)
	}
	check := invalid.New("scheduler")
	check.If(c.capacity < 1, "capacity %d: want at least 1", c.capacity)
	check.If(c.lease < 10*time.Millisecond, "lease %v: want at least 10ms", c.lease)
	check.If(c.poll <= 0, "poll %v: want more than 0", c.poll)
	check.If(c.aging <= 0, "aging %v: want more than 0", c.aging)
	check.If(c.shutdownTimeout < 0, "shutdown timeout %v: want at least 0", c.shutdownTimeout)
	check.If(c.abandonWait < 0, "abandon wait %v: want at least 0", c.abandonWait)
	check.If(c.cooldown < 0, "overload cooldown %v: want at least 0", c.cooldown)
	check.If(c.increaseAfter < 1, "increase after %d successes: want at least 1", c.increaseAfter)
	return c, check.Err()
}

// WithCapacity sets the most tasks of the stage running at once over every
// process that shares the queue, overriding DefaultCapacity (64): the AI's
// concurrent calls. Every dispatcher of a stage must be given the same.
// A process may run all of it when the others are idle, so none strands
// capacity while another has work waiting.
func WithCapacity(n int) Option { return func(c *config) { c.capacity = n } }

// WithLease sets how long a taken task holds without a renewal, overriding
// DefaultLease (30s); at least 10ms. The dispatcher renews its tasks' leases
// every third of it, in one statement. When a process dies, its tasks wait
// this long before another process takes them again. Shorter recovers
// sooner and writes more often.
func WithLease(d time.Duration) Option { return func(c *config) { c.lease = d } }

// WithPoll sets how often the dispatcher looks for waiting tasks when
// nothing happened in its own process, overriding DefaultPoll (100ms): work
// enqueued by another process, or freed by one that died. A dispatcher
// with free slots takes at once what its own process enqueues, and a slot
// that frees takes the next task at once, so the poll matters only when
// slots are idle. Shorter finds such work sooner and reads the database
// more often. While polls find nothing to take, the poll slows down to ten
// times the interval; any event of the process's own brings it back.
func WithPoll(d time.Duration) Option { return func(c *config) { c.poll = d } }

// WithAging sets how long a task waits at its priority before it competes
// one level up, overriding DefaultAging (2m): low then normal, normal then
// high. A low task thus competes as high after twice the aging bound at the
// latest. Shorter bounds the wait of lower priorities sooner and lets them
// mix earlier with higher ones.
func WithAging(d time.Duration) Option { return func(c *config) { c.aging = d } }

// WithShutdownTimeout sets how long running tasks may finish at shutdown,
// overriding DefaultShutdownTimeout (30s); the dispatcher takes nothing new
// meanwhile. After it, their handlers' contexts are canceled and their
// tasks go back to waiting, in their place, for another process.
func WithShutdownTimeout(d time.Duration) Option { return func(c *config) { c.shutdownTimeout = d } }

// WithAbandonWait sets how long Run waits, at shutdown, for handlers whose
// contexts it canceled, overriding DefaultAbandonWait (1s). A handler may
// finish a paid call it must not cut short and record its outcome for the
// task's next run (see package worker): give it the AI client's timeout.
func WithAbandonWait(d time.Duration) Option { return func(c *config) { c.abandonWait = d } }

// WithOverloadTest sets which handler errors say that the AI refused a
// call because it is at capacity (a 429), overriding none. Such a task goes
// back to waiting in its place, and the dispatcher halves its limit (see
// Dispatcher). A handler that retries by itself reports each refusal with
// ReportOverload instead.
func WithOverloadTest(overloaded func(error) bool) Option {
	return func(c *config) { c.overloaded = overloaded }
}

// WithOverloadCooldown sets how long after a cut the limit neither cuts
// again nor grows, overriding DefaultOverloadCooldown (1s).
func WithOverloadCooldown(d time.Duration) Option { return func(c *config) { c.cooldown = d } }

// WithIncreaseAfter sets how many successes after the cooldown raise a cut
// limit by one, overriding DefaultIncreaseAfter (4).
func WithIncreaseAfter(n int) Option { return func(c *config) { c.increaseAfter = n } }

// WithOverheadHook sets a func called with each scheduling overhead
// measured, overriding a no-op: the time from a slot freeing to the next
// task starting in it, for slots that freed while work waited (a slot that
// frees with nothing to take is idle, not overhead). For metrics. It runs
// on the dispatcher's loop, so it must be quick.
func WithOverheadHook(hook func(time.Duration)) Option {
	return func(c *config) { c.onOverhead = hook }
}

// WithExpiredHook sets a func called with each task the queue removed
// because its StartBy passed while it waited (genpipe.Task.Expired),
// overriding a no-op: the queue ended its request expired already (history
// and webhook); the hook reports it, as a status event on the results
// topic for the SSE streams. It runs on a goroutine of its own, with a
// context that ends when the dispatcher's shutdown does.
func WithExpiredHook(hook func(ctx context.Context, t genpipe.Task)) Option {
	return func(c *config) { c.onExpired = hook }
}

// WithOwner sets the name the dispatcher's leases are held under,
// overriding one made of the host name, the process id and a random part.
// It must be unique per dispatcher.
func WithOwner(owner string) Option { return func(c *config) { c.owner = owner } }

// WithLogger sets the logger, overriding slog.Default().
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }
