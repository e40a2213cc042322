package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/genpipe/genpipe"
)

// DefaultDeliveryTimeout is how long Publish waits for a record to be
// acknowledged unless WithDeliveryTimeout says otherwise.
const DefaultDeliveryTimeout = 10 * time.Second

// Producer publishes keyed records with acks=all and franz-go's idempotent
// producer, so a record the broker acknowledged is on every in-sync replica
// and the client's own retries never write it twice. It implements
// genpipe.Publisher and is safe for concurrent use.
type Producer struct {
	cl              *kgo.Client
	conn            *Conn
	deliveryTimeout time.Duration
}

var _ genpipe.Publisher = (*Producer)(nil)

type producerConfig struct {
	linger          *time.Duration
	log             *slog.Logger
	deliveryTimeout time.Duration
	hooks           []kgo.Hook // see WithProducerHooks
}

// ProducerOption configures Conn.NewProducer.
type ProducerOption func(*producerConfig)

// WithLinger sets how long a partition's batch waits for more records before
// it is sent, overriding franz-go's default of 10ms. Publish is synchronous
// and ends the linger of its own partition at once, so linger only batches
// the records that concurrent Publish calls send to the same partition: a
// longer linger means fewer, larger produce requests under load. 0 sends
// every batch at once.
//
// Batching does not change partitioning: every genpipe record has a key, and
// keyed records go to the partition their key hashes to whatever the linger
// (the first lesson in the package documentation).
func WithLinger(d time.Duration) ProducerOption {
	return func(c *producerConfig) { c.linger = &d }
}

// WithProducerLogger sends franz-go's producer logs to l, overriding the
// default of logging nothing. At info level franz-go logs connections and
// metadata changes; at debug, every request.
func WithProducerLogger(l *slog.Logger) ProducerOption { return func(c *producerConfig) { c.log = l } }

// WithDeliveryTimeout bounds how long Publish waits for the broker to
// acknowledge a record, overriding DefaultDeliveryTimeout (10s; franz-go's
// own default is to wait forever). A shorter timeout answers callers sooner
// when the broker is down, at the cost of failing records a slow broker would
// have taken. The caller's context can only shorten it.
func WithDeliveryTimeout(d time.Duration) ProducerOption {
	return func(c *producerConfig) { c.deliveryTimeout = d }
}

// NewProducer returns a producer that connects as c says. It does not
// connect until the first Publish or Ping.
func (c *Conn) NewProducer(opts ...ProducerOption) (*Producer, error) {
	cfg := producerConfig{deliveryTimeout: DefaultDeliveryTimeout}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.deliveryTimeout <= 0 {
		return nil, fmt.Errorf("kafka: new producer: delivery timeout %v, want more than 0", cfg.deliveryTimeout)
	}
	// The connection's options first: the producer's own come after and
	// win, so no connection setting can turn off acks=all or idempotence.
	kopts := append(c.Opts(),
		kgo.DisableClientMetrics(),         // KIP-714 telemetry: nothing reads it, and it delays Close after a broker restart
		kgo.RequiredAcks(kgo.AllISRAcks()), // franz-go's default, stated because genpipe relies on it
		kgo.RecordDeliveryTimeout(cfg.deliveryTimeout),
	)
	if cfg.linger != nil {
		kopts = append(kopts, kgo.ProducerLinger(*cfg.linger))
	}
	if cfg.log != nil {
		kopts = append(kopts, kgo.WithLogger(kgoLogger{cfg.log}))
	}
	if len(cfg.hooks) > 0 {
		kopts = append(kopts, kgo.WithHooks(cfg.hooks...))
	}
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		return nil, fmt.Errorf("kafka: new producer: %w", err)
	}
	return &Producer{cl: cl, conn: c, deliveryTimeout: cfg.deliveryTimeout}, nil
}

// Publish writes value to topic under key and returns once the broker has
// acknowledged it from all in-sync replicas. key must not be empty: keyless
// records pile a burst into one partition (the first lesson in the package
// documentation).
//
// If the record is not acknowledged within the delivery timeout or before ctx
// is done, Publish returns an error whose genpipe.ErrorCode is EUNAVAILABLE.
// Such a record may still reach the broker later (it may have been in flight
// when the wait ended), so a caller that retries can publish it twice;
// genpipe's consumers are idempotent for that reason.
func (p *Producer) Publish(ctx context.Context, topic, key string, value []byte) error {
	return p.PublishHeaders(ctx, topic, key, value, nil)
}

// PublishHeaders is Publish with record headers, for example the reason and
// origin of a dead letter. Headers are written in key order.
func (p *Producer) PublishHeaders(ctx context.Context, topic, key string, value []byte, headers map[string]string) error {
	if topic == "" {
		return errors.New("kafka: publish: empty topic")
	}
	if key == "" {
		return fmt.Errorf("kafka: publish to %s: empty key (genpipe never produces keyless records: they pile into one partition)", topic)
	}
	r := &kgo.Record{Topic: topic, Key: []byte(key), Value: value}
	for _, k := range slices.Sorted(maps.Keys(headers)) {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: k, Value: []byte(headers[k])})
	}

	ctx, cancel := context.WithTimeout(ctx, p.deliveryTimeout)
	defer cancel()
	// With the idempotent producer, franz-go does not fail a record that
	// is in flight (sent, no answer yet), whatever its context says: it
	// cannot know whether the broker wrote it, and failing it would break
	// the sequence numbers that deduplicate its retries. So we stop
	// waiting here instead, which keeps Publish's bound; franz-go goes on
	// delivering the record in the background.
	done := make(chan error, 1)
	go func() { done <- p.cl.ProduceSync(ctx, r).FirstErr() }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		return publishError(topic, err)
	}
	return nil
}

// publishError classifies a produce failure. Everything but a record that can
// never fit is the broker being unreachable, slow or shutting down, which a
// caller should answer with "retry later".
func publishError(topic string, err error) error {
	if errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.RecordListTooLarge) {
		return fmt.Errorf("kafka: publish to %s: %w", topic, err)
	}
	return fmt.Errorf("kafka: publish to %s: %w: %w", topic, err,
		genpipe.Errorf(genpipe.EUNAVAILABLE, "the event queue is unavailable, retry later"))
}

// Ping checks that a broker answers a metadata request. It returns an
// EUNAVAILABLE error when none does before ctx is done; it is meant for
// readiness checks.
func (p *Producer) Ping(ctx context.Context) error {
	if err := p.cl.Ping(ctx); err != nil {
		return fmt.Errorf("%w: %w", p.conn.fail("ping", err),
			genpipe.Errorf(genpipe.EUNAVAILABLE, "the event queue is unavailable"))
	}
	return nil
}

// Close waits up to the delivery timeout for records being published, then
// closes the connections. Publish calls still waiting fail with EUNAVAILABLE.
func (p *Producer) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), p.deliveryTimeout)
	defer cancel()
	_ = p.cl.Flush(ctx) // what does not flush in time fails its Publish; nothing to add here
	p.cl.Close()
}
