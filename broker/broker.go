// Package broker runs an embedded single-node Kafka-protocol broker
// (franz-go's kfake) on 127.0.0.1: the broker of `genpipe broker` and
// `genpipe up`, and of the tests.
//
// It is a development server, apart from the client: package kafka talks to
// any Kafka-protocol cluster and never imports this package, so a process
// that only connects to a real cluster does not compile a broker in. The
// broker speaks the same protocol as a real cluster, so producers and
// consumers use the same code against it as in production; it is not meant
// for more than one machine.
package broker

import (
	"cmp"
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/genpipe/genpipe/internal/invalid"
)

// The group session bounds the broker enforces unless told otherwise:
// Apache Kafka's defaults (group.min.session.timeout.ms and
// group.max.session.timeout.ms), so that a client that works here works on
// a stock cluster. A member asking for a session outside them is refused
// with INVALID_SESSION_TIMEOUT.
const (
	DefaultGroupMinSessionTimeout = 6 * time.Second
	DefaultGroupMaxSessionTimeout = 30 * time.Minute
)

// Retention bounds: how long and how much a topic partition keeps its
// records (Kafka's log.retention.ms and log.retention.bytes) unless told
// otherwise (WithRetention), and how often the broker drops what is
// beyond them (Kafka's log.retention.check.interval.ms).
//
// Retention drops records whether or not a consumer has read them, so the
// bounds must be beyond any backlog a consumer may still have to read:
// the defaults keep a record at least a day, which is far longer than a
// stopped worker stays stopped in a development session, and up to 1 GiB
// a partition, millions of genpipe's records of a few hundred bytes. They
// bound the disk, and the index of every record the broker keeps in
// memory (about 100 bytes a batch), of a broker left running for days.
const (
	DefaultRetention      = 24 * time.Hour
	DefaultRetentionBytes = 1 << 30
	DefaultRetentionCheck = 5 * time.Minute
)

// DefaultSegmentBytes is the size at which a partition's log rolls over to
// a new segment (Kafka's log.segment.bytes, 1 GiB there). The broker frees
// what it drops (the segment file, and the index it keeps in memory) a
// whole segment at a time, so its segments are small: what the retention
// or WithDropRead drops is freed but for at most a MiB a partition.
const DefaultSegmentBytes = 1 << 20

// Server is a running broker.
type Server struct {
	c        *kfake.Cluster
	dropRead map[string][]string // see WithDropRead
	log      *slog.Logger
	stop     chan struct{} // ends the retention loop
	done     chan struct{}
	once     sync.Once
}

type config struct {
	dataDir           string
	port              int
	partitions        int32
	minSessionTimeout time.Duration
	kafkaVersion      string
	log               *slog.Logger
	tls               *tls.Config
	users             []user
	retention         time.Duration
	retentionBytes    int64
	keep              []string            // topics exempt from the retention
	dropRead          map[string][]string // topic → every group that reads it
}

type user struct{ mechanism, name, password string }

// Option configures Start.
type Option func(*config)

// WithDataDir persists topics, records, committed offsets and producer state
// under dir, overriding the default of keeping everything in memory. A broker
// started again on the same dir (on any port) has everything the previous one
// had, so a restart keeps queued requests.
//
// Records are written to the segment files as they arrive but fsynced only on
// segment roll and Close (like Kafka's default flush policy): a process crash
// loses nothing the OS already has, a machine crash may lose the last
// records. Only one broker may use a dir at a time.
func WithDataDir(dir string) Option { return func(c *config) { c.dataDir = dir } }

// WithPort listens on 127.0.0.1:port, overriding the default of a free port
// chosen by the OS (0 also means a free port). A fixed port lets clients
// configured with the address survive a broker restart, at the cost of
// failing to start when something else holds the port.
func WithPort(port int) Option { return func(c *config) { c.port = port } }

// WithPartitions sets the partition count of topics created without one
// (CreateTopics with -1 partitions; genpipe's clients always give a count),
// overriding kfake's default of 10. More partitions let more consumers share
// a topic, at the cost of more files and more requests per fetch.
func WithPartitions(n int32) Option { return func(c *config) { c.partitions = n } }

// WithGroupMinSessionTimeout sets the smallest session timeout the broker
// accepts from group members (group.min.session.timeout.ms), overriding
// DefaultGroupMinSessionTimeout (6s, Apache Kafka's). Tests lower it with
// short session timeouts so that a dead member leaves quickly; in
// production a short session turns every GC pause into a rebalance. The
// broker reports it as Kafka does, in its broker configs (DescribeConfigs),
// so clients that read it there see what it enforces.
func WithGroupMinSessionTimeout(d time.Duration) Option {
	return func(c *config) { c.minSessionTimeout = d }
}

// WithKafkaVersion makes the broker speak only the request versions of an
// Apache Kafka release, such as "2.4" or "3.9" (kversion.FromString's
// forms), overriding the newest it has: to test clients against older
// clusters, such as one without KIP-848's consumer group protocol (before
// 4.0). Start fails on a version it does not know.
func WithKafkaVersion(version string) Option {
	return func(c *config) { c.kafkaVersion = version }
}

// WithRetention bounds how long (age, by the records' timestamps) and how
// much (bytes, per partition) each topic partition keeps, overriding
// DefaultRetention and DefaultRetentionBytes; a negative value for either
// means no bound (Kafka's -1). The broker drops what is beyond them every
// DefaultRetentionCheck, read or not: keep both beyond the longest backlog
// a stopped consumer may come back to. Topics created with retention.ms or
// retention.bytes of their own keep them.
func WithRetention(age time.Duration, bytes int64) Option {
	return func(c *config) { c.retention, c.retentionBytes = age, bytes }
}

// WithKeep exempts topics from the retention (WithRetention): the broker
// keeps their records until deleted, as a dead-letter topic's must be
// until someone looks at them. It gives each such topic, when it is
// created, retention.ms and retention.bytes of -1 of its own; a topic
// that already existed (in WithDataDir) keeps the configs it has.
func WithKeep(topics ...string) Option {
	return func(c *config) { c.keep = append(c.keep, topics...) }
}

// WithDropRead makes the broker also drop, at each retention check, the
// records of topic that each of groups has committed past, as an
// operator's DeleteRecords would: a broker whose consumers keep up keeps
// only their backlog, in memory and on disk, however long it runs, and the
// retention (WithRetention) still bounds a backlog nobody reads. groups
// must be every group that reads topic: one left out may find its records
// gone. A partition where one of them has committed nothing keeps its
// records. Give it once per topic; by default the broker drops only what
// the retention does.
func WithDropRead(topic string, groups ...string) Option {
	return func(c *config) {
		if c.dropRead == nil {
			c.dropRead = make(map[string][]string)
		}
		c.dropRead[topic] = groups
	}
}

// WithLogger sends kfake's logs to l, overriding the default of logging
// nothing. kfake logs little above debug: failed requests and persistence
// problems; at debug, every request.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// WithTLS serves TLS with cfg (which holds the broker's certificate),
// overriding the default of plaintext. kfake has one listener: every client
// must then connect with TLS. With cfg.ClientAuth set, it checks client
// certificates too.
func WithTLS(cfg *tls.Config) Option { return func(c *config) { c.tls = cfg } }

// WithSASL requires every client to authenticate, and adds a user allowed to
// do everything, overriding the default of no authentication. mechanism is
// Kafka's name of it: "PLAIN", "SCRAM-SHA-256" or "SCRAM-SHA-512" (the
// kafka.SASL* constants). Give it once per user and mechanism.
func WithSASL(mechanism, name, password string) Option {
	return func(c *config) { c.users = append(c.users, user{mechanism, name, password}) }
}

// Start starts a one-node broker on 127.0.0.1 and returns once it accepts
// connections. With WithDataDir it first loads what a previous broker
// persisted there.
func Start(opts ...Option) (*Server, error) {
	cfg := config{retention: DefaultRetention, retentionBytes: DefaultRetentionBytes}
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	minSession := cmp.Or(cfg.minSessionTimeout, DefaultGroupMinSessionTimeout)
	kopts := []kfake.Opt{
		kfake.NumBrokers(1), // kfake defaults to 3 nodes on 3 ports; one is enough on one machine
		kfake.Ports(cfg.port),
		// As broker configs rather than kfake's own session options, so
		// that DescribeConfigs reports what the broker enforces.
		kfake.BrokerConfigs(map[string]string{
			"group.min.session.timeout.ms": strconv.FormatInt(minSession.Milliseconds(), 10),
			"group.max.session.timeout.ms": strconv.FormatInt(DefaultGroupMaxSessionTimeout.Milliseconds(), 10),
			"log.retention.ms":             strconv.FormatInt(retentionMs(cfg.retention), 10),
			"log.retention.bytes":          strconv.FormatInt(cfg.retentionBytes, 10),
			"log.segment.bytes":            strconv.Itoa(DefaultSegmentBytes),
		}),
	}
	if cfg.kafkaVersion != "" {
		v := kversion.FromString(cfg.kafkaVersion)
		if v == nil {
			return nil, fmt.Errorf("broker: Kafka version %q: want a release such as 2.4 or 3.9", cfg.kafkaVersion)
		}
		kopts = append(kopts, kfake.MaxVersions(v))
	}
	if cfg.dataDir != "" {
		kopts = append(kopts, kfake.DataDir(cfg.dataDir))
	}
	if cfg.partitions > 0 {
		kopts = append(kopts, kfake.DefaultNumPartitions(int(cfg.partitions)))
	}
	if cfg.log != nil {
		kopts = append(kopts, kfake.WithLogger(logger{cfg.log}))
	}
	if cfg.tls != nil {
		kopts = append(kopts, kfake.TLS(cfg.tls))
	}
	if len(cfg.users) > 0 {
		kopts = append(kopts, kfake.EnableSASL())
	}
	for _, u := range cfg.users {
		kopts = append(kopts, kfake.Superuser(u.mechanism, u.name, u.password))
	}
	c, err := kfake.NewCluster(kopts...)
	if err != nil {
		if cfg.dataDir != "" {
			return nil, fmt.Errorf("broker: start on port %d with data dir %s: %w", cfg.port, cfg.dataDir, err)
		}
		return nil, fmt.Errorf("broker: start on port %d: %w", cfg.port, err)
	}
	keepForever(c, cfg.keep)
	srv := &Server{c: c, dropRead: cfg.dropRead, log: cmp.Or(cfg.log, slog.Default()), stop: make(chan struct{}), done: make(chan struct{})}
	go srv.retain(DefaultRetentionCheck)
	return srv, nil
}

// validate reports the options out of their range.
func (c *config) validate() error {
	check := invalid.New("broker")
	check.If(c.retention >= 0 && c.retention < time.Millisecond, "retention %v: want at least 1ms, or less than 0 for none", c.retention)
	check.If(c.retentionBytes == 0, "retention bytes 0: want more than 0, or less than 0 for none")
	for topic, groups := range c.dropRead {
		check.If(len(groups) == 0, "dropping the read records of %s: no groups named", topic)
	}
	return check.Err()
}

// keepForever makes every CreateTopics of one of topics give it unbounded
// retention, then lets the broker handle the request as usual.
func keepForever(c *kfake.Cluster, topics []string) {
	if len(topics) == 0 {
		return
	}
	forever := []kmsg.CreateTopicsRequestTopicConfig{
		{Name: "retention.ms", Value: kmsg.StringPtr("-1")},
		{Name: "retention.bytes", Value: kmsg.StringPtr("-1")},
	}
	c.ControlKey(int16(kmsg.CreateTopics), func(r kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		req := r.(*kmsg.CreateTopicsRequest)
		for i := range req.Topics {
			t := &req.Topics[i]
			if slices.Contains(topics, t.Topic) {
				t.Configs = append(slices.DeleteFunc(t.Configs, func(c kmsg.CreateTopicsRequestTopicConfig) bool {
					return c.Name == "retention.ms" || c.Name == "retention.bytes"
				}), forever...)
			}
		}
		return nil, nil, false
	})
}

// retentionMs is Kafka's form of a retention: milliseconds, -1 for none.
func retentionMs(d time.Duration) int64 {
	if d < 0 {
		return -1
	}
	return d.Milliseconds()
}

// retain applies the retention every interval until Close. kfake applies
// the broker-wide retention only when told (its own timer runs only for
// topics with retention configs of their own).
func (s *Server) retain(interval time.Duration) {
	defer close(s.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.ApplyRetention()
		}
	}
}

// ApplyRetention drops now the records beyond the retention (WithRetention)
// and those read (WithDropRead), as the broker does every
// DefaultRetentionCheck.
func (s *Server) ApplyRetention() {
	s.c.ApplyRetention()
	for topic, groups := range s.dropRead {
		s.dropReadOf(topic, groups)
	}
}

// dropReadOf drops, on each partition of topic, the records below the
// lowest offset groups committed there.
func (s *Server) dropReadOf(topic string, groups []string) {
	infos := make([]*kfake.GroupInfo, 0, len(groups))
	for _, g := range groups {
		info := s.c.GroupInfo(g)
		if info == nil {
			return // not started yet: it will read from the start
		}
		infos = append(infos, info)
	}
	for _, p := range s.c.PartitionInfos(topic) {
		read, ok := readByAll(infos, topic, p.Partition)
		if !ok || read <= p.LogStartOffset {
			continue
		}
		if err := s.c.DeleteRecords(topic, p.Partition, read); err != nil {
			s.log.Warn("drop read records", "topic", topic, "partition", p.Partition, "below", read, "err", err)
		}
	}
}

// readByAll returns the lowest offset groups committed on partition p of
// topic: every record below it was read by all of them. ok is false when
// one of them has committed nothing there.
func readByAll(groups []*kfake.GroupInfo, topic string, p int32) (offset int64, ok bool) {
	for i, g := range groups {
		c, found := g.Commits[topic][p]
		if !found {
			return 0, false
		}
		if i == 0 || c.Offset < offset {
			offset = c.Offset
		}
	}
	return offset, len(groups) > 0
}

// Addrs returns the broker's host:port addresses, to use as seed brokers.
func (s *Server) Addrs() []string { return s.c.ListenAddrs() }

// Close stops listening, drops client connections and, with WithDataDir,
// saves the rest of the broker's state to disk. It is safe to call more than
// once.
func (s *Server) Close() {
	s.once.Do(func() { close(s.stop); <-s.done })
	s.c.Close()
}

// logger adapts an *slog.Logger to kfake's printf-style Logger.
type logger struct{ l *slog.Logger }

func (k logger) Logf(level kfake.LogLevel, format string, args ...any) {
	lvl := slogLevel(level)
	if !k.l.Enabled(context.Background(), lvl) {
		return
	}
	k.l.Log(context.Background(), lvl, "kfake: "+fmt.Sprintf(format, args...))
}

func slogLevel(level kfake.LogLevel) slog.Level {
	switch level {
	case kfake.LogLevelError:
		return slog.LevelError
	case kfake.LogLevelWarn:
		return slog.LevelWarn
	case kfake.LogLevelInfo:
		return slog.LevelInfo
	default:
		return slog.LevelDebug
	}
}
