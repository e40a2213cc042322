package kafka

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Broker is an embedded single-node Kafka-protocol broker (franz-go's kfake)
// listening on 127.0.0.1, for `genpipe up` and tests. It speaks the same
// protocol as a real cluster, so producers and consumers use the same code
// against it as in production; it is not meant for more than one machine.
type Broker struct {
	c *kfake.Cluster
}

type brokerConfig struct {
	dataDir           string
	port              int
	partitions        int32
	minSessionTimeout time.Duration
	log               *slog.Logger
	tls               *tls.Config
	users             []brokerUser
}

type brokerUser struct{ mechanism, user, password string }

// BrokerOption configures StartBroker.
type BrokerOption func(*brokerConfig)

// WithDataDir persists topics, records, committed offsets and producer state
// under dir, overriding the default of keeping everything in memory. A broker
// started again on the same dir (on any port) has everything the previous one
// had, so a restart keeps queued requests.
//
// Records are written to the segment files as they arrive but fsynced only on
// segment roll and Close (like Kafka's default flush policy): a process crash
// loses nothing the OS already has, a machine crash may lose the last
// records. Only one broker may use a dir at a time.
func WithDataDir(dir string) BrokerOption { return func(c *brokerConfig) { c.dataDir = dir } }

// WithPort listens on 127.0.0.1:port, overriding the default of a free port
// chosen by the OS (0 also means a free port). A fixed port lets clients
// configured with the address survive a broker restart.
func WithPort(port int) BrokerOption { return func(c *brokerConfig) { c.port = port } }

// WithPartitions sets the partition count of topics created without one
// (CreateTopics with -1 partitions, which EnsureTopics never sends), overriding
// kfake's default of 10.
func WithPartitions(n int32) BrokerOption { return func(c *brokerConfig) { c.partitions = n } }

// WithGroupMinSessionTimeout lowers the smallest session timeout the broker
// accepts from group members, overriding Kafka's default of 6s. Tests use it
// with short session timeouts so that a dead member leaves quickly; in
// production a short session turns every GC pause into a rebalance.
func WithGroupMinSessionTimeout(d time.Duration) BrokerOption {
	return func(c *brokerConfig) { c.minSessionTimeout = d }
}

// WithBrokerLogger sends kfake's logs to l, overriding the default of logging
// nothing. kfake logs little above debug: failed requests and persistence
// problems.
func WithBrokerLogger(l *slog.Logger) BrokerOption { return func(c *brokerConfig) { c.log = l } }

// WithBrokerTLS serves TLS with cfg (which holds the broker's certificate),
// overriding the default of plaintext. kfake has one listener: every client
// must then connect with TLS. With cfg.ClientAuth set, it checks client
// certificates too.
func WithBrokerTLS(cfg *tls.Config) BrokerOption { return func(c *brokerConfig) { c.tls = cfg } }

// WithBrokerSASL requires every client to authenticate, and adds a user
// allowed to do everything, with mechanism (SASLPlain, SASLScramSHA256 or
// SASLScramSHA512), overriding the default of no authentication. Give it
// once per user and mechanism.
func WithBrokerSASL(mechanism, user, password string) BrokerOption {
	return func(c *brokerConfig) { c.users = append(c.users, brokerUser{mechanism, user, password}) }
}

// StartBroker starts a one-node broker on 127.0.0.1 and returns once it
// accepts connections. With WithDataDir it first loads what a previous broker
// persisted there.
func StartBroker(opts ...BrokerOption) (*Broker, error) {
	var cfg brokerConfig
	for _, o := range opts {
		o(&cfg)
	}
	kopts := []kfake.Opt{
		kfake.NumBrokers(1), // kfake defaults to 3 nodes on 3 ports; one is enough on one machine
		kfake.Ports(cfg.port),
	}
	if cfg.dataDir != "" {
		kopts = append(kopts, kfake.DataDir(cfg.dataDir))
	}
	if cfg.partitions > 0 {
		kopts = append(kopts, kfake.DefaultNumPartitions(int(cfg.partitions)))
	}
	if cfg.minSessionTimeout > 0 {
		kopts = append(kopts, kfake.GroupMinSessionTimeout(cfg.minSessionTimeout))
	}
	if cfg.log != nil {
		kopts = append(kopts, kfake.WithLogger(kfakeLogger{cfg.log}))
	}
	if cfg.tls != nil {
		kopts = append(kopts, kfake.TLS(cfg.tls))
	}
	if len(cfg.users) > 0 {
		kopts = append(kopts, kfake.EnableSASL())
	}
	for _, u := range cfg.users {
		kopts = append(kopts, kfake.Superuser(u.mechanism, u.user, u.password))
	}
	c, err := kfake.NewCluster(kopts...)
	if err != nil {
		if cfg.dataDir != "" {
			return nil, fmt.Errorf("kafka: start broker on port %d with data dir %s: %w", cfg.port, cfg.dataDir, err)
		}
		return nil, fmt.Errorf("kafka: start broker on port %d: %w", cfg.port, err)
	}
	return &Broker{c: c}, nil
}

// Addrs returns the broker's host:port addresses, to use as seed brokers.
func (b *Broker) Addrs() []string { return b.c.ListenAddrs() }

// Close stops listening, drops client connections and, with WithDataDir,
// saves the rest of the broker's state to disk. It is safe to call more than
// once.
func (b *Broker) Close() { b.c.Close() }
