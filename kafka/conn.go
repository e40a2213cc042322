package kafka

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// SASL mechanisms a Conn can authenticate with.
const (
	// SASLPlain sends the user and password as they are: use it only with
	// TLS, or anyone on the path reads the password.
	SASLPlain = "PLAIN"
	// SASLScramSHA256 and SASLScramSHA512 prove the password without
	// sending it (RFC 5802); the broker stores only a salted hash.
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// Consumer group protocols (see WithGroupProtocol).
const (
	// GroupProtocolClassic is the join/sync group protocol of every Kafka
	// since 0.9: the client assigns partitions (genpipe uses
	// cooperative-sticky, KIP-429, Kafka 2.4+).
	GroupProtocolClassic = "classic"
	// GroupProtocolConsumer is KIP-848's protocol, where the broker
	// assigns partitions (Kafka 4.0+).
	GroupProtocolConsumer = "consumer"
)

// Defaults of a Conn's options, and of the settings genpipe's commands
// connect with.
const (
	DefaultBrokers       = "127.0.0.1:9092" // a local broker, as `genpipe broker` runs one
	DefaultPartitions    = 16               // partitions of each topic genpipe creates (see EnsureTopics)
	DefaultClientID      = "genpipe"
	DefaultCompression   = "snappy"
	DefaultGroupProtocol = GroupProtocolClassic
)

// Conn is how every Kafka client of a process connects to the cluster:
// brokers, client id, TLS, SASL, the compression of what it produces and the
// protocol of the groups it joins. Build it once from the configuration with
// NewConn and create every client through it (NewProducer, EnsureTopics,
// Tail, ReadDeadLetters, NewLagReader(conn.Opts()...) and
// engine.WithClientOpts(conn.Opts()...)), so that no client of the process
// connects differently from the others. A Conn is immutable and safe for
// concurrent use.
type Conn struct {
	brokers []string
	cfg     connConfig // checked by NewConn
}

type connConfig struct {
	clientID      string
	tls           *tls.Config
	saslMechanism string
	saslUser      string
	saslPassword  string
	compression   string
	groupProtocol string
}

// ConnOption configures NewConn.
type ConnOption func(*connConfig)

// WithClientID sets the client id the brokers see in their logs, request
// metrics and quotas (Kafka enforces quotas per user and client id),
// overriding DefaultClientID ("genpipe"). Give each kind of process its own
// to tell them apart in the broker's metrics.
func WithClientID(id string) ConnOption { return func(c *connConfig) { c.clientID = id } }

// WithTLS connects to the brokers over TLS with cfg, overriding the default
// of plaintext. A nil cfg means Go's defaults: the system's root CAs, and
// the broker's host name as the server name to verify. The config is
// cloned; see TLSFiles to build one from PEM files.
func WithTLS(cfg *tls.Config) ConnOption {
	return func(c *connConfig) {
		if cfg == nil {
			cfg = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		c.tls = cfg.Clone()
	}
}

// WithSASL authenticates every connection with mechanism (SASLPlain,
// SASLScramSHA256 or SASLScramSHA512) as user, overriding the default of
// no authentication. The password is kept only in the client's memory;
// Conn never prints it. Kafka's SASL_SSL listeners want WithTLS too,
// SASL_PLAINTEXT ones do not.
func WithSASL(mechanism, user, password string) ConnOption {
	return func(c *connConfig) { c.saslMechanism, c.saslUser, c.saslPassword = mechanism, user, password }
}

// WithCompression sets the codec of the batches genpipe produces: none,
// gzip, snappy, lz4 or zstd, overriding DefaultCompression (snappy,
// franz-go's default). genpipe's records are small JSON events, so the
// choice matters little for the producer; zstd saves the most disk and
// network on the brokers at the most CPU, gzip is the slowest, none
// suits brokers that recompress anyway. It only affects producing clients;
// consumers read whatever codec a batch has.
func WithCompression(codec string) ConnOption {
	return func(c *connConfig) { c.compression = codec }
}

// WithGroupProtocol sets the consumer group protocol of the clients that
// join a group (the stage engines), overriding DefaultGroupProtocol
// (classic).
//
// GroupProtocolClassic works on every Kafka since 2.4 (cooperative-sticky
// rebalancing, KIP-429), Redpanda and MSK. GroupProtocolConsumer (KIP-848)
// lets the broker assign partitions, so a rebalance no longer stops every
// member for a join round; it needs Kafka 4.0+ (franz-go recommends 4.3+,
// where an offset commit can no longer fail with STALE_MEMBER_EPOCH in
// normal operation). Where the broker does not have it, franz-go falls back
// to the classic protocol by itself, and the stage engine logs a warning
// saying so (it checks the brokers' ApiVersions for ConsumerGroupHeartbeat
// v1 at start). Under KIP-848 the session timeout and
// heartbeat interval are the broker's (group.consumer.session.timeout.ms,
// group.consumer.heartbeat.interval.ms): the client's settings for them are
// ignored.
func WithGroupProtocol(protocol string) ConnOption {
	return func(c *connConfig) { c.groupProtocol = protocol }
}

// NewConn checks the connection settings and returns the Conn for the
// cluster at brokers. It does not connect: the first client does.
func NewConn(brokers []string, opts ...ConnOption) (*Conn, error) {
	cfg := defaultConnConfig()
	for _, o := range opts {
		o(&cfg)
	}
	brokers = slices.DeleteFunc(slices.Clone(brokers), func(b string) bool { return strings.TrimSpace(b) == "" })
	if len(brokers) == 0 {
		return nil, errors.New("kafka: connection: no brokers")
	}
	if _, err := cfg.kgoOpts(); err != nil {
		return nil, fmt.Errorf("kafka: connection to %v: %w", brokers, err)
	}
	return &Conn{brokers: brokers, cfg: cfg}, nil
}

func defaultConnConfig() connConfig {
	return connConfig{clientID: DefaultClientID, compression: DefaultCompression, groupProtocol: DefaultGroupProtocol}
}

func (cfg connConfig) kgoOpts() ([]kgo.Opt, error) {
	if cfg.clientID == "" {
		return nil, errors.New("empty client id")
	}
	opts := []kgo.Opt{kgo.ClientID(cfg.clientID)}
	if cfg.tls != nil {
		opts = append(opts, kgo.DialTLSConfig(cfg.tls))
	}
	if cfg.saslMechanism != "" || cfg.saslUser != "" || cfg.saslPassword != "" {
		m, err := cfg.sasl()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.SASL(m))
	}
	codec, err := compression(cfg.compression)
	if err != nil {
		return nil, err
	}
	// Uncompressed as a fallback for a broker that lacks the codec (zstd
	// needs Kafka 2.1+).
	opts = append(opts, kgo.ProducerBatchCompression(codec, kgo.NoCompression()))
	switch cfg.groupProtocol {
	case GroupProtocolClassic:
	case GroupProtocolConsumer:
		// franz-go joins with KIP-848 when asked and the group's first
		// balancer is a sticky or range one (the engine's is
		// cooperative-sticky, which the broker's "uniform" assignor
		// replaces); clients without a group ignore the option.
		opts = append(opts, kgo.ServerSideBalancer())
	default:
		return nil, fmt.Errorf("group protocol %q: want %s or %s", cfg.groupProtocol, GroupProtocolClassic, GroupProtocolConsumer)
	}
	return opts, nil
}

func (cfg connConfig) sasl() (sasl.Mechanism, error) {
	if cfg.saslMechanism == "" {
		return nil, errors.New("a SASL user or password without a mechanism")
	}
	if cfg.saslUser == "" || cfg.saslPassword == "" {
		return nil, fmt.Errorf("SASL %s: a user and a password are required", cfg.saslMechanism)
	}
	switch strings.ToUpper(cfg.saslMechanism) {
	case SASLPlain:
		return plain.Auth{User: cfg.saslUser, Pass: cfg.saslPassword}.AsMechanism(), nil
	case SASLScramSHA256:
		return scram.Auth{User: cfg.saslUser, Pass: cfg.saslPassword}.AsSha256Mechanism(), nil
	case SASLScramSHA512:
		return scram.Auth{User: cfg.saslUser, Pass: cfg.saslPassword}.AsSha512Mechanism(), nil
	}
	return nil, fmt.Errorf("SASL mechanism %q: want %s, %s or %s", cfg.saslMechanism, SASLPlain, SASLScramSHA256, SASLScramSHA512)
}

func compression(codec string) (kgo.CompressionCodec, error) {
	switch strings.ToLower(codec) {
	case "none":
		return kgo.NoCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	}
	return kgo.CompressionCodec{}, fmt.Errorf("compression %q: want none, gzip, snappy, lz4 or zstd", codec)
}

// describe says how the Conn connects, for error messages: TLS or not, and
// the SASL mechanism and user, never the password.
func (cfg connConfig) describe() string {
	d := "plaintext"
	if cfg.tls != nil {
		d = "TLS"
	}
	if cfg.saslMechanism != "" {
		d += fmt.Sprintf(", SASL %s as %q", strings.ToUpper(cfg.saslMechanism), cfg.saslUser)
	}
	return d
}

// Brokers returns the seed brokers.
func (c *Conn) Brokers() []string { return slices.Clone(c.brokers) }

// Opts returns the franz-go options that connect a client the way c says:
// seed brokers, client id, TLS, SASL, compression and group protocol. Add a
// client's own options after them; they override these.
func (c *Conn) Opts() []kgo.Opt {
	// Built anew for every client: franz-go may modify an option's
	// arguments while it builds a client (it dedups the compression
	// codecs in place), so clients must not share them.
	opts, err := c.cfg.kgoOpts()
	if err != nil {
		panic("kafka: Conn settings NewConn accepted fail now: " + err.Error())
	}
	return append([]kgo.Opt{kgo.SeedBrokers(c.brokers...)}, opts...)
}

// String describes the connection without secrets, for logs.
func (c *Conn) String() string {
	return fmt.Sprintf("%s (%s)", strings.Join(c.brokers, ","), c.cfg.describe())
}

// fail wraps err with what failed and how c connects, so that a failure to
// connect names the settings to look at.
func (c *Conn) fail(what string, err error) error {
	if isConnConfigError(err) {
		return fmt.Errorf("kafka: %s via %s: the cluster refused the connection, check the TLS and SASL settings: %w", what, c, err)
	}
	return fmt.Errorf("kafka: %s via %s: %w", what, c, err)
}

// isConnConfigError reports whether err is one that retrying cannot fix: the
// broker refused the credentials or the mechanism, or TLS failed on a
// certificate, on a listener that does not speak TLS, or with an alert from
// the broker (which refused our certificate, or the lack of one).
func isConnConfigError(err error) bool {
	var (
		unknownCA x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		verify    *tls.CertificateVerificationError
		header    tls.RecordHeaderError
		alert     tls.AlertError
		op        *net.OpError
	)
	if errors.As(err, &op) && op.Op == "remote error" { // how crypto/tls reports the peer's alert
		return true
	}
	return errors.Is(err, kerr.SaslAuthenticationFailed) ||
		errors.Is(err, kerr.UnsupportedSaslMechanism) ||
		errors.Is(err, kerr.IllegalSaslState) ||
		errors.Is(err, kerr.ClusterAuthorizationFailed) ||
		errors.Is(err, kerr.TopicAuthorizationFailed) ||
		errors.As(err, &unknownCA) || errors.As(err, &hostname) || errors.As(err, &invalid) ||
		errors.As(err, &verify) || errors.As(err, &header) || errors.As(err, &alert)
}

// TLSFiles names the PEM files and settings of a TLS connection, as an
// operator configures them.
type TLSFiles struct {
	// CAFile holds the CA certificates that sign the brokers' certificates;
	// empty trusts the system's root CAs (public CAs, as MSK uses).
	CAFile string
	// CertFile and KeyFile are the client's certificate and key, for
	// brokers that authenticate clients by certificate (mutual TLS,
	// ssl.client.auth=required); both or neither.
	CertFile, KeyFile string
	// ServerName is the name to verify in the brokers' certificates; empty
	// uses each broker's host name, which is right unless the brokers are
	// reached by an address their certificates do not name.
	ServerName string
	// InsecureSkipVerify accepts any certificate: for tests only, it lets
	// anyone between genpipe and the brokers read and change everything.
	InsecureSkipVerify bool
}

// Config loads the files into a *tls.Config for WithTLS.
func (f TLSFiles) Config() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: f.ServerName, InsecureSkipVerify: f.InsecureSkipVerify}
	if f.CAFile != "" {
		pem, err := os.ReadFile(f.CAFile)
		if err != nil {
			return nil, fmt.Errorf("kafka: TLS CA: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("kafka: TLS CA %s: no PEM certificate in it", f.CAFile)
		}
	}
	if (f.CertFile == "") != (f.KeyFile == "") {
		return nil, errors.New("kafka: TLS client certificate: give both a certificate and a key file, or neither")
	}
	if f.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("kafka: TLS client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
