package kafka_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/broker"
	"github.com/genpipe/genpipe/engine"
	"github.com/genpipe/genpipe/internal/testutil"
	"github.com/genpipe/genpipe/kafka"
	"github.com/genpipe/genpipe/kafka/kafkatest"
)

// These tests connect real clients over TCP to kfake brokers that serve TLS
// and require SASL, and run the clients a genpipe process creates (topic
// admin, producer, stage engine, status tail, dead-letter reader) through
// one Conn.

func engineLog(t *testing.T) engine.Option {
	return engine.WithLogger(testutil.Logger(t, "GENPIPE_KAFKA_TEST_LOG"))
}

func newConn(t *testing.T, brokers []string, opts ...kafka.ConnOption) *kafka.Conn {
	t.Helper()
	c, err := kafka.NewConn(brokers, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func tlsConfig(t *testing.T, f kafka.TLSFiles) *tls.Config {
	t.Helper()
	c, err := f.Config()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestRoundTripSASLOverTLS runs every client over SASL_SSL with each
// mechanism: users of all three live on one broker, as on a real cluster.
func TestRoundTripSASLOverTLS(t *testing.T) {
	t.Parallel()
	ca := kafkatest.NewCA(t)
	users := []struct{ mechanism, user, password string }{
		{kafka.SASLScramSHA256, "genpipe-256", "secret 256"},
		{kafka.SASLScramSHA512, "genpipe-512", "secret 512"},
		{kafka.SASLPlain, "genpipe-plain", "secret plain"},
	}
	opts := []broker.Option{broker.WithTLS(ca.ServerTLS(t, false, "127.0.0.1"))}
	for _, u := range users {
		opts = append(opts, broker.WithSASL(u.mechanism, u.user, u.password))
	}
	b := testutil.StartBroker(t, opts...)
	tc := tlsConfig(t, kafka.TLSFiles{CAFile: ca.CAFile(t)})
	for _, u := range users {
		t.Run(u.mechanism, func(t *testing.T) {
			t.Parallel()
			conn := newConn(t, b.Addrs(), kafka.WithTLS(tc), kafka.WithSASL(u.mechanism, u.user, u.password),
				kafka.WithClientID("genpipe-test"), kafka.WithCompression("zstd"))
			roundTrip(t, conn, strings.ToLower(u.mechanism))
		})
	}
}

// roundTrip creates topics, tails one, publishes to it, consumes it with the
// stage engine until every record is handled and committed, and writes and
// reads back a dead letter, all through conn.
func roundTrip(t *testing.T, conn *kafka.Conn, name string) {
	t.Helper()
	ctx := ctxFor(t, 30*time.Second)
	topic, dlqTopic, group := name+"-events", name+"-dlq", name+"-group"
	if err := conn.EnsureTopics(ctx, 4, topic, dlqTopic); err != nil {
		t.Fatal(err)
	}
	tailed := newKeySet()
	from := time.Now()
	stopTail := testutil.Start(t, ctx, "tail", func(ctx context.Context) error {
		return conn.Tail(ctx, topic, func(r *kgo.Record) { tailed.add(string(r.Key)) },
			kafka.WithTailFrom(from), kafka.WithTailLogger(testutil.Logger(t, "GENPIPE_KAFKA_TEST_LOG")))
	})

	p, err := conn.NewProducer(kafka.WithDeliveryTimeout(5 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	const n = 40
	for i := range n {
		if err := p.Publish(ctx, topic, fmt.Sprintf("req-%02d", i), []byte("event")); err != nil {
			t.Fatalf("publish: %v", err)
		}
	}

	handled := newKeySet()
	stop := testutil.Start(t, ctx, "engine", newEngine(t, conn, group, topic, 8, func(_ context.Context, r *kgo.Record) error {
		handled.add(string(r.Key))
		return nil
	}).Run)

	testutil.Eventually(t, 20*time.Second, "the engine handles every record", func() bool { return handled.len() == n })
	testutil.Eventually(t, 20*time.Second, "every record is tailed", func() bool { return tailed.len() == n })
	waitCommitted(t, ctx, conn, group, topic, n)

	dlq := kafka.NewDeadLetters(p, dlqTopic)
	if err := dlq.SendDeadLetter(ctx, genpipe.DeadLetter{Topic: topic, Key: []byte("req-00"), Value: []byte("poison"),
		Stage: "check", Reason: "test", At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	letters, err := conn.ReadDeadLetters(ctx, dlqTopic)
	if err != nil || len(letters) != 1 || string(letters[0].Value) != "poison" {
		t.Fatalf("ReadDeadLetters = %+v, %v; want the one dead letter", letters, err)
	}

	stop()
	stopTail()
}

// newEngine returns an engine of group on topic through conn, running up to
// capacity handlers at once and committing often.
func newEngine(t *testing.T, conn *kafka.Conn, group, topic string, capacity int, h engine.Handler) *engine.Engine {
	t.Helper()
	e, err := engine.New(conn.Brokers(), group, []string{topic}, h, engine.WithCapacity(capacity),
		engine.WithCommitInterval(20*time.Millisecond), engineLog(t), engine.WithClientOpts(conn.Opts()...))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// waitCommitted waits until group's committed offsets of topic add up to n.
func waitCommitted(t *testing.T, ctx context.Context, conn *kafka.Conn, group, topic string, n int64) {
	t.Helper()
	adm := admin(t, conn)
	testutil.Eventually(t, 20*time.Second, "the group commits every offset", func() bool {
		return committed(ctx, adm, group, topic) == n
	})
}

func admin(t *testing.T, conn *kafka.Conn) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(conn.Opts()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// committed returns the sum of the group's committed offsets on topic, -1 on
// error.
func committed(ctx context.Context, adm *kadm.Client, group, topic string) int64 {
	offsets, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return -1
	}
	var sum int64
	offsets.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.Err == nil {
			sum += o.At
		}
	})
	return sum
}

type keySet struct {
	mu   sync.Mutex
	seen map[string]int
}

func newKeySet() *keySet { return &keySet{seen: map[string]int{}} }

func (s *keySet) add(k string) { s.mu.Lock(); s.seen[k]++; s.mu.Unlock() }

func (s *keySet) len() int { s.mu.Lock(); defer s.mu.Unlock(); return len(s.seen) }

func (s *keySet) dups() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := 0
	for _, c := range s.seen {
		d += c - 1
	}
	return d
}

// A refused login fails at once (no retrying until the deadline), with an
// error that names the connection settings to check and never shows the
// password. Kafka answers a failed SASL login with SASL_AUTHENTICATION_FAILED
// before it closes the connection; kfake closes it without an answer, so
// this broker answers PLAIN logins as Kafka does (see refuseLikeKafka).
func TestRefusedLoginFailsAtOnce(t *testing.T) {
	t.Parallel()
	const user, right, wrong = "genpipe", "right password", "wrong password"
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(0), kfake.EnableSASL(),
		kfake.Superuser(kafka.SASLPlain, user, right))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	refuseLikeKafka(c, user, right)
	ok := newConn(t, c.ListenAddrs(), kafka.WithSASL(kafka.SASLPlain, user, right))
	if err := ok.EnsureTopics(ctxFor(t, 10*time.Second), 1, "t"); err != nil {
		t.Fatalf("right credentials: %v", err)
	}

	conn := newConn(t, c.ListenAddrs(), kafka.WithSASL(kafka.SASLPlain, user, wrong))
	start := time.Now()
	wantConnError(t, conn.EnsureTopics(ctxFor(t, 20*time.Second), 1, "t"), start, `SASL PLAIN as "genpipe"`, wrong)
	start = time.Now()
	_, err = conn.ReadDeadLetters(ctxFor(t, 20*time.Second), "t")
	wantConnError(t, err, start, `SASL PLAIN as "genpipe"`, wrong)
	start = time.Now()
	tailErr := conn.Tail(ctxFor(t, 20*time.Second), "t", func(*kgo.Record) {})
	wantConnError(t, tailErr, start, `SASL PLAIN as "genpipe"`, wrong)

	p, err := conn.NewProducer(kafka.WithDeliveryTimeout(3 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	start = time.Now()
	wantConnError(t, p.Ping(ctxFor(t, 20*time.Second)), start, `SASL PLAIN as "genpipe"`, wrong)
	start = time.Now()
	err = p.Publish(ctxFor(t, 20*time.Second), "t", "k", []byte("v"))
	if genpipe.ErrorCode(err) != genpipe.EUNAVAILABLE || strings.Contains(err.Error(), wrong) {
		t.Errorf("Publish = %v, want an EUNAVAILABLE error without the password", err)
	}
	t.Logf("Publish failed after %v: %v", time.Since(start).Round(time.Millisecond), err)
}

// refuseLikeKafka makes c answer a PLAIN login with a wrong password the way
// Kafka does (SaslServerAuthenticator): a SASL_AUTHENTICATION_FAILED
// response with a message. Other logins go to kfake.
func refuseLikeKafka(c *kfake.Cluster, user, password string) {
	c.ControlKey(int16(kmsg.SASLAuthenticate), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		r := req.(*kmsg.SASLAuthenticateRequest)
		parts := strings.Split(string(r.SASLAuthBytes), "\x00")
		if len(parts) != 3 || (parts[1] == user && parts[2] == password) {
			return nil, nil, false
		}
		resp := r.ResponseKind().(*kmsg.SASLAuthenticateResponse)
		resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
		msg := "Authentication failed: Invalid username or password"
		resp.ErrorMessage = &msg
		return resp, nil, true
	})
}

// kfake drops the connection of a failed SCRAM login without an answer,
// which a client cannot tell from a network failure: it retries until the
// deadline, and the error still says how it tried to connect.
func TestWrongSCRAMPassword(t *testing.T) {
	t.Parallel()
	b := testutil.StartBroker(t, broker.WithSASL(kafka.SASLScramSHA256, "genpipe", "right password"))
	ok := newConn(t, b.Addrs(), kafka.WithSASL(kafka.SASLScramSHA256, "genpipe", "right password"))
	if err := ok.EnsureTopics(ctxFor(t, 10*time.Second), 1, "t"); err != nil {
		t.Fatalf("right credentials: %v", err)
	}
	for name, sasl := range map[string][3]string{
		"wrong password":  {kafka.SASLScramSHA256, "genpipe", "wrong password"},
		"unknown user":    {kafka.SASLScramSHA256, "nobody", "right password"},
		"other mechanism": {kafka.SASLScramSHA512, "genpipe", "right password"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			conn := newConn(t, b.Addrs(), kafka.WithSASL(sasl[0], sasl[1], sasl[2]))
			err := conn.EnsureTopics(ctxFor(t, 2*time.Second), 1, "t")
			if err == nil {
				t.Fatal("EnsureTopics succeeded")
			}
			want := fmt.Sprintf("SASL %s as %q", sasl[0], sasl[1])
			if !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), sasl[2]) {
				t.Errorf("error %q: want it to name %s and not the password", err, want)
			}
		})
	}
	// Without SASL the broker drops the connection too.
	if err := newConn(t, b.Addrs()).EnsureTopics(ctxFor(t, time.Second), 1, "t"); err == nil {
		t.Error("EnsureTopics without SASL succeeded")
	}
}

// wantConnError checks that err came within a few seconds of start, names
// the connection settings, and does not hold secret.
func wantConnError(t *testing.T, err error, start time.Time, want, secret string) {
	t.Helper()
	took := time.Since(start)
	if err == nil {
		t.Fatalf("no error, want one about %s", want)
	}
	msg := err.Error()
	if !strings.Contains(msg, "refused the connection, check the TLS and SASL settings") || !strings.Contains(msg, want) {
		t.Errorf("error %q does not name the settings (%s)", msg, want)
	}
	if secret != "" && strings.Contains(msg, secret) {
		t.Errorf("error %q shows the password", msg)
	}
	if took > 5*time.Second {
		t.Errorf("failed after %v: a refused connection must not be retried", took)
	}
	t.Logf("failed after %v: %v", took.Round(time.Millisecond), err)
}

func TestTLS(t *testing.T) {
	t.Parallel()
	ca := kafkatest.NewCA(t)
	b := testutil.StartBroker(t, broker.WithTLS(ca.ServerTLS(t, false, "127.0.0.1", "kafka.genpipe.test")))
	caFile := ca.CAFile(t)
	good := map[string]kafka.TLSFiles{
		"ca":                       {CAFile: caFile},
		"ca and server name":       {CAFile: caFile, ServerName: "kafka.genpipe.test"},
		"insecure skip verify":     {InsecureSkipVerify: true},
		"insecure with wrong name": {ServerName: "elsewhere.test", InsecureSkipVerify: true},
	}
	for name, f := range good {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			conn := newConn(t, b.Addrs(), kafka.WithTLS(tlsConfig(t, f)))
			ctx := ctxFor(t, 20*time.Second)
			topic := strings.ReplaceAll(name, " ", "-")
			if err := conn.EnsureTopics(ctx, 2, topic); err != nil {
				t.Fatal(err)
			}
			p, err := conn.NewProducer()
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			if err := p.Publish(ctx, topic, "k", []byte("v")); err != nil {
				t.Fatal(err)
			}
		})
	}
	other := kafkatest.NewCA(t)
	bad := map[string]*tls.Config{
		"system roots":      nil, // the test CA is in no system store
		"another CA":        tlsConfig(t, kafka.TLSFiles{CAFile: other.CAFile(t)}),
		"wrong server name": tlsConfig(t, kafka.TLSFiles{CAFile: caFile, ServerName: "elsewhere.test"}),
	}
	for name, tc := range bad {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			conn := newConn(t, b.Addrs(), kafka.WithTLS(tc))
			start := time.Now()
			wantConnError(t, conn.EnsureTopics(ctxFor(t, 20*time.Second), 1, "t"), start, "TLS", "")
		})
	}
	// A listener that does not speak the client's language closes the
	// connection: retried until the deadline, like a network failure.
	plain := testutil.StartBroker(t)
	for name, conn := range map[string]*kafka.Conn{
		"TLS to a plaintext broker": newConn(t, plain.Addrs(), kafka.WithTLS(tlsConfig(t, kafka.TLSFiles{CAFile: caFile}))),
		"plaintext to a TLS broker": newConn(t, b.Addrs()),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			err := conn.EnsureTopics(ctxFor(t, time.Second), 1, "t")
			if err == nil || !strings.Contains(err.Error(), conn.String()) {
				t.Errorf("EnsureTopics = %v, want an error naming %s", err, conn)
			}
		})
	}
}

func TestMutualTLS(t *testing.T) {
	t.Parallel()
	ca := kafkatest.NewCA(t)
	b := testutil.StartBroker(t, broker.WithTLS(ca.ServerTLS(t, true, "127.0.0.1")))
	caFile := ca.CAFile(t)
	cert, key := ca.ClientFiles(t, "genpipe-worker")
	conn := newConn(t, b.Addrs(), kafka.WithTLS(tlsConfig(t, kafka.TLSFiles{CAFile: caFile, CertFile: cert, KeyFile: key})))
	roundTrip(t, conn, "mtls")

	otherCert, otherKey := kafkatest.NewCA(t).ClientFiles(t, "stranger")
	for name, f := range map[string]kafka.TLSFiles{
		"no client certificate":     {CAFile: caFile},
		"certificate of another CA": {CAFile: caFile, CertFile: otherCert, KeyFile: otherKey},
	} {
		t.Run(name, func(t *testing.T) {
			conn := newConn(t, b.Addrs(), kafka.WithTLS(tlsConfig(t, f)))
			start := time.Now()
			wantConnError(t, conn.EnsureTopics(ctxFor(t, 20*time.Second), 1, "t"), start, "TLS", "")
		})
	}
}

func TestNewConnRejectsBadSettings(t *testing.T) {
	t.Parallel()
	brokers := []string{"127.0.0.1:9092"}
	for name, opts := range map[string][]kafka.ConnOption{
		"unknown mechanism":   {kafka.WithSASL("GSSAPI", "u", "p")},
		"no password":         {kafka.WithSASL(kafka.SASLScramSHA256, "u", "")},
		"no user":             {kafka.WithSASL(kafka.SASLPlain, "", "p")},
		"unknown compression": {kafka.WithCompression("brotli")},
		"unknown protocol":    {kafka.WithGroupProtocol("streams")},
		"empty client id":     {kafka.WithClientID("")},
		"no mechanism":        {kafka.WithSASL("", "u", "p")},
	} {
		if _, err := kafka.NewConn(brokers, opts...); err == nil {
			t.Errorf("%s: NewConn succeeded", name)
		} else if strings.Contains(err.Error(), "p\"") {
			t.Errorf("%s: error %q may show the password", name, err)
		}
	}
	if _, err := kafka.NewConn([]string{" "}); err == nil {
		t.Error("NewConn without brokers succeeded")
	}
	for _, mech := range []string{"scram-sha-512", "plain"} { // as operators type them
		if _, err := kafka.NewConn(brokers, kafka.WithSASL(mech, "u", "p")); err != nil {
			t.Errorf("mechanism %s: %v", mech, err)
		}
	}

	ca := kafkatest.NewCA(t)
	cert, key := ca.ClientFiles(t, "c")
	for name, f := range map[string]kafka.TLSFiles{
		"missing CA file":    {CAFile: t.TempDir() + "/none.pem"},
		"CA file not PEM":    {CAFile: key + "x"},
		"key is not a cert":  {CAFile: key},
		"cert without key":   {CertFile: cert},
		"key without cert":   {KeyFile: key},
		"cert and wrong key": {CertFile: cert, KeyFile: cert},
	} {
		if _, err := f.Config(); err == nil {
			t.Errorf("%s: TLSFiles.Config succeeded", name)
		}
	}
}

// Opts carries every setting to franz-go; String shows how it connects but
// never the password.
func TestConnOpts(t *testing.T) {
	t.Parallel()
	conn := newConn(t, []string{"127.0.0.1:1", "127.0.0.1:2"}, kafka.WithClientID("genpipe-api"),
		kafka.WithSASL(kafka.SASLScramSHA512, "svc", "hunter2"), kafka.WithTLS(nil),
		kafka.WithCompression("lz4"), kafka.WithGroupProtocol(kafka.GroupProtocolConsumer))
	cl, err := kgo.NewClient(conn.Opts()...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if got := cl.OptValue(kgo.ClientID); got != "genpipe-api" {
		t.Errorf("client id %v", got)
	}
	if got := cl.OptValue(kgo.SeedBrokers); !slices.Equal(got.([]string), conn.Brokers()) {
		t.Errorf("seed brokers %v", got)
	}
	if got := cl.OptValue(kgo.DialTLSConfig); got == nil || got.(*tls.Config) == nil {
		t.Error("no TLS config")
	}
	if got := cl.OptValue(kgo.ServerSideBalancer); got != true {
		t.Errorf("ServerSideBalancer %v, want true for the consumer protocol", got)
	}
	codecs := cl.OptValue(kgo.ProducerBatchCompression).([]kgo.CompressionCodec)
	if len(codecs) != 2 || codecs[0] != kgo.Lz4Compression() || codecs[1] != kgo.NoCompression() {
		t.Errorf("compression %v, want lz4 then none", codecs)
	}
	want := "127.0.0.1:1,127.0.0.1:2 (TLS, SASL SCRAM-SHA-512 as \"svc\")"
	if s := conn.String(); s != want {
		t.Errorf("String() = %q, want %q", s, want)
	}

	def := newConn(t, []string{"127.0.0.1:1"})
	cl2, err := kgo.NewClient(def.Opts()...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl2.Close()
	if got := cl2.OptValue(kgo.ClientID); got != kafka.DefaultClientID {
		t.Errorf("default client id %v", got)
	}
	if got := cl2.OptValue(kgo.ServerSideBalancer); got != false {
		t.Errorf("default ServerSideBalancer %v, want false (classic)", got)
	}
	if got := cl2.OptValue(kgo.DialTLSConfig); got.(*tls.Config) != nil {
		t.Error("default TLS config set")
	}
}

// KIP-848: kfake has the consumer group protocol. Two engines share a topic
// under it: the broker assigns the partitions, a member joining mid-stream
// takes some over through a cooperative revoke, every record is handled and
// every offset committed, and the capacity stays shared.
func TestEngineWithConsumerGroupProtocol(t *testing.T) {
	t.Parallel()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(0),
		// Kafka's default 5s heartbeat makes each step of a KIP-848
		// rebalance wait up to 5s.
		kfake.BrokerConfigs(map[string]string{"group.consumer.heartbeat.interval.ms": "100"}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	ctx := ctxFor(t, 60*time.Second)
	conn := newConn(t, c.ListenAddrs(), kafka.WithGroupProtocol(kafka.GroupProtocolConsumer))
	const topic, group, partitions, capacity = "kip848", "kip848-group", 8, 12
	if err := conn.EnsureTopics(ctx, partitions, topic); err != nil {
		t.Fatal(err)
	}
	p, err := conn.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	publish := func(from, to int) {
		for i := from; i < to; i++ {
			if err := p.Publish(ctx, topic, fmt.Sprintf("req-%03d", i), []byte("v")); err != nil {
				t.Fatal(err)
			}
		}
	}

	handled := newKeySet()
	handle := func(ctx context.Context, r *kgo.Record) error {
		select { // slow enough that a rebalance finds records running
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
		handled.add(string(r.Key))
		return nil
	}
	var wg sync.WaitGroup
	runCtx, stop := context.WithCancel(ctx)
	defer func() { stop(); wg.Wait() }()
	run := func(e *engine.Engine) {
		wg.Go(func() {
			if err := e.Run(runCtx); err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("engine: %v", err)
			}
		})
	}

	a := newEngine(t, conn, group, topic, capacity, handle)
	run(a)
	publish(0, 200)
	testutil.Eventually(t, 20*time.Second, "the first engine handles records", func() bool { return handled.len() >= 50 })
	b := newEngine(t, conn, group, topic, capacity, handle)
	run(b)
	testutil.Eventually(t, 20*time.Second, "the broker gives the second engine partitions", func() bool {
		return a.Stats().Owned > 0 && b.Stats().Owned > 0 && a.Stats().Owned+b.Stats().Owned == partitions
	})
	publish(200, 400)
	testutil.Eventually(t, 30*time.Second, "every record is handled", func() bool { return handled.len() == 400 })
	waitCommitted(t, ctx, conn, group, topic, 400)

	sa, sb := a.Stats(), b.Stats()
	if sa.Share+sb.Share != capacity {
		t.Errorf("shares %d + %d, want the capacity %d", sa.Share, sb.Share, capacity)
	}
	if sa.Revokes == 0 {
		t.Errorf("the first engine saw no revoke when the second joined")
	}
	if sa.Losses+sb.Losses != 0 {
		t.Errorf("partitions lost: %d, %d", sa.Losses, sb.Losses)
	}
	listed, err := admin(t, conn).ListGroupsByType(ctx, []string{"consumer"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := listed[group]; !ok {
		t.Errorf("group %s is not a KIP-848 consumer group: %v", group, listed)
	}
	t.Logf("owned %d + %d, shares %d + %d, revokes %d, duplicates %d", sa.Owned, sb.Owned, sa.Share, sb.Share,
		sa.Revokes, handled.dups())
	if d := handled.dups(); d != 0 {
		t.Errorf("%d records handled twice: a clean KIP-848 rebalance commits before it hands partitions over", d)
	}
}

// The classic protocol stays the default: the same engine joins a classic
// group on the same broker.
func TestEngineClassicGroupProtocolByDefault(t *testing.T) {
	t.Parallel()
	b := testutil.StartBroker(t, testutil.FastGroups())
	conn := newConn(t, b.Addrs())
	roundTrip(t, conn, "classic")
	listed, err := admin(t, conn).ListGroupsByType(ctxFor(t, 10*time.Second), []string{"classic"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := listed["classic-group"]; !ok {
		t.Errorf("classic-group is not a classic group: %v", listed)
	}
}

// Older brokers, as kfake pretends to be with the request versions of a
// Kafka release: every client works with the API versions of Kafka 2.4, the
// oldest genpipe supports (cooperative-sticky needs it), and asking for
// KIP-848 on a broker without it (3.9 has only the early-access v0) falls
// back to a classic group.
func TestOlderBrokers(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]struct {
		versions  *kversion.Versions
		protocol  string
		groupType string // as ListGroups (3.8+) reports it; "" to skip
	}{
		"2.4 classic":       {kversion.V2_4_0(), kafka.GroupProtocolClassic, ""},
		"3.9 asked for 848": {kversion.V3_9_0(), kafka.GroupProtocolConsumer, "classic"},
		"4.0 848":           {kversion.V4_0_0(), kafka.GroupProtocolConsumer, "consumer"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cl, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(0), kfake.MaxVersions(c.versions),
				kfake.GroupMinSessionTimeout(100*time.Millisecond),
				kfake.BrokerConfigs(map[string]string{"group.consumer.heartbeat.interval.ms": "100"}))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(cl.Close)
			conn := newConn(t, cl.ListenAddrs(), kafka.WithGroupProtocol(c.protocol))
			prefix := strings.ReplaceAll(strings.ReplaceAll(name, " ", "-"), ".", "")
			roundTrip(t, conn, prefix)
			if c.groupType == "" {
				return
			}
			listed, err := admin(t, conn).ListGroupsByType(ctxFor(t, 10*time.Second), []string{c.groupType})
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := listed[prefix+"-group"]; !ok {
				t.Errorf("%s-group is not a %s group: %v", prefix, c.groupType, listed)
			}
		})
	}
}
