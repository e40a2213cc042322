package engine

import (
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Defaults of the engine's options.
const (
	DefaultCapacity          = 64
	DefaultShutdownTimeout   = 30 * time.Second
	DefaultSessionTimeout    = 45 * time.Second // franz-go's and the Java client's default
	DefaultCommitInterval    = time.Second
	DefaultOverloadCooldown  = time.Second
	DefaultIncreaseAfter     = 4
	DefaultAbandonWait       = time.Second
	defaultBufferedPerHandle = 2 // DefaultMaxBuffered is this times the capacity
)

type config struct {
	capacity         int
	maxBuffered      int // 0: defaultBufferedPerHandle × capacity
	orderByKey       bool
	shutdownTimeout  time.Duration
	sessionTimeout   time.Duration
	rebalanceTimeout time.Duration
	commitInterval   time.Duration
	cooldown         time.Duration
	increaseAfter    int
	abandonWait      time.Duration
	overloadTest     func(error) bool // nil: ErrOverloaded only
	log              *slog.Logger
	clientOpts       []kgo.Opt
}

func defaultConfig() config {
	return config{
		capacity:        DefaultCapacity,
		shutdownTimeout: DefaultShutdownTimeout,
		sessionTimeout:  DefaultSessionTimeout,
		commitInterval:  DefaultCommitInterval,
		cooldown:        DefaultOverloadCooldown,
		increaseAfter:   DefaultIncreaseAfter,
		abandonWait:     DefaultAbandonWait,
	}
}

// Option configures New.
type Option func(*config)

// WithCapacity sets how many requests the downstream service (the AI) takes at
// once, summed over every engine of the group, overriding DefaultCapacity
// (64). Each engine runs at most its share of it: capacity × the partitions
// it owns / the topics' partitions, rounded down and at least 1 (see Engine).
// More than the service's real capacity only queues inside it or earns 429s;
// less leaves it idle.
func WithCapacity(n int) Option { return func(c *config) { c.capacity = n } }

// WithMaxBuffered bounds how many records the engine holds at once, queued or
// running, over all its partitions, overriding the default of twice the
// capacity. The bound is exact: a poll asks for at most the room left. When it
// is reached the engine pauses fetching, which also makes franz-go drop what
// it fetched ahead (at most one fetch per broker, see kgo.FetchMaxBytes), and
// resumes once half of it has drained. A larger buffer keeps handlers busy across fetch
// round trips and ordering waits; a smaller one bounds memory and the records
// a rebalance throws back to the group. It must be at least 1.
func WithMaxBuffered(n int) Option { return func(c *config) { c.maxBuffered = n } }

// WithOrderByKey runs the records of one partition that share a key one at a
// time, in offset order; records with other keys still run concurrently. By
// default every record runs as soon as there is room. Ordering costs
// concurrency when a partition holds many records of one key, and a blocked
// key holds its queued records in the buffer. Records without a key are not
// ordered.
func WithOrderByKey() Option { return func(c *config) { c.orderByKey = true } }

// WithShutdownTimeout bounds how long the engine waits for running handlers
// of partitions it gives up, on a revoke or when Run's context is done,
// overriding DefaultShutdownTimeout (30s). After it, their handlers' context
// is canceled and their records are not committed: the partition's next owner
// handles them again (a handler may finish a call under way and record its
// outcome for that owner, see Handler). Longer wastes less paid work, shorter rebalances
// sooner. Keep it below the rebalance timeout, or a slow revoke stalls the
// group until the member is kicked out; 0 gives up at once.
func WithShutdownTimeout(d time.Duration) Option {
	return func(c *config) { c.shutdownTimeout = d }
}

// WithSessionTimeout sets how long the group waits for a heartbeat from this
// member before it declares it dead and rebalances, overriding
// DefaultSessionTimeout (45s). Heartbeats come from a background goroutine,
// so handler time never counts. Shorter detects crashed members sooner but
// rebalances on long GC or network pauses; it must be within the broker's
// group.min/max.session.timeout.ms (6s to 30m on a stock Apache Kafka,
// which refuses a join outside them: Run then returns a
// *SessionTimeoutError naming the bounds; see SessionTimeoutBounds to read
// them first). The heartbeat interval is set to a third of it, at most
// franz-go's default of 3s.
func WithSessionTimeout(d time.Duration) Option {
	return func(c *config) { c.sessionTimeout = d }
}

// WithAbandonWait sets how long Run, before it returns, waits for the
// handlers it gave up on (canceled at the end of the shutdown timeout, or
// earlier at a revoke or a lost partition) to return, overriding
// DefaultAbandonWait (1s). Their records are not committed whatever they
// do; the wait is for handlers that finish work they must not cut short
// after their context ends and record its outcome for the next owner (see
// Handler), such as a paid call: a process that exits when Run returns
// would cut it off. Set it to the longest such work can take (the call's
// own timeout); a handler that honours its context returns at once and
// costs nothing. 0 does not wait.
func WithAbandonWait(d time.Duration) Option { return func(c *config) { c.abandonWait = d } }

// WithRebalanceTimeout sets how long the group waits for members to rejoin
// once a rebalance has begun, overriding franz-go's default of 60s. A revoke
// waits up to the shutdown timeout for running handlers, so keep this above
// it.
func WithRebalanceTimeout(d time.Duration) Option {
	return func(c *config) { c.rebalanceTimeout = d }
}

// WithCommitInterval sets how often the engine commits the offsets that
// became committable, overriding DefaultCommitInterval (1s). It also commits
// on every revoke and at shutdown, so the interval only bounds what a crash
// makes the group handle again; shorter costs more commit requests.
func WithCommitInterval(d time.Duration) Option {
	return func(c *config) { c.commitInterval = d }
}

// WithOverloadBackoff tunes how the engine backs off when the downstream
// service is overloaded (see ErrOverloaded): it halves its limit (at least 1)
// and holds it for cooldown, overriding DefaultOverloadCooldown (1s), then
// raises it by one every increaseAfter successful handlers, overriding
// DefaultIncreaseAfter (4), until it is back at its share. A short cooldown
// and a small step regain throughput quickly but risk another round of 429s;
// the defaults recover from 32 to 64 in about 130 records.
func WithOverloadBackoff(cooldown time.Duration, increaseAfter int) Option {
	return func(c *config) { c.cooldown, c.increaseAfter = cooldown, increaseAfter }
}

// WithOverloadTest makes the engine also take a handler error for which
// overloaded reports true as a sign that the downstream service is
// overloaded, as it takes ErrOverloaded (and errors wrapping it) by
// default: for services whose clients report a 429 with errors of their
// own. Such an error makes the engine back off (see Engine) and is logged
// as a warning rather than an error. overloaded is called only with errors
// that are not nil, on the handler's goroutine or under the engine's lock,
// so it must be quick.
func WithOverloadTest(overloaded func(err error) bool) Option {
	return func(c *config) { c.overloadTest = overloaded }
}

// WithLogger sends the engine's logs (handler errors, commit and fetch
// errors, rebalances) to l, overriding slog.Default(). franz-go's own logs
// go where a kgo.WithLogger passed with WithClientOpts sends them; without
// one, franz-go logs nothing.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// WithClientOpts adds franz-go client options after the engine's own, so they
// override them: for tests (shorter fetch waits) and tuning profiles. Do not
// pass options that take over what the engine relies on: auto-commit,
// BlockRebalanceOnPoll, or the OnPartitions callbacks.
func WithClientOpts(opts ...kgo.Opt) Option {
	return func(c *config) { c.clientOpts = append(c.clientOpts, opts...) }
}
