package kafka

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/genpipe/genpipe/broker"
	"github.com/genpipe/genpipe/internal/testutil"
)

// testLogger logs to the test log; GENPIPE_KAFKA_TEST_LOG=debug logs everything.
func testLogger(t *testing.T) *slog.Logger { return testutil.Logger(t, "GENPIPE_KAFKA_TEST_LOG") }

// startWithTopic starts a broker with topic, of partitions partitions, and
// returns it with a producer to it configured with opts.
func startWithTopic(t *testing.T, topic string, partitions int32, opts ...ProducerOption) (*broker.Server, *Producer) {
	t.Helper()
	b := testutil.StartBroker(t)
	ensureTopic(t, b.Addrs(), partitions, topic)
	return b, newProducer(t, b.Addrs(), opts...)
}

// plainConn is a Conn to brokers with the defaults: plaintext, no SASL.
func plainConn(t *testing.T, brokers []string) *Conn {
	t.Helper()
	return testutil.Must(NewConn(brokers))(t)
}

func ensureTopic(t *testing.T, brokers []string, partitions int32, topic string) {
	t.Helper()
	if err := plainConn(t, brokers).EnsureTopics(testutil.Context(t), partitions, topic); err != nil {
		t.Fatal(err)
	}
}

// newProducer returns a producer to brokers that logs to the test log,
// configured with opts.
func newProducer(t *testing.T, brokers []string, opts ...ProducerOption) *Producer {
	t.Helper()
	return producerOn(t, plainConn(t, brokers), append([]ProducerOption{WithProducerLogger(testLogger(t))}, opts...)...)
}

// producerOn returns a producer on conn, closed when the test ends.
func producerOn(t *testing.T, conn *Conn, opts ...ProducerOption) *Producer {
	t.Helper()
	p := testutil.Must(conn.NewProducer(opts...))(t)
	t.Cleanup(p.Close)
	return p
}

// publishN publishes n records with keys prefix-0000... from 16 goroutines,
// so that franz-go batches them (lesson 1 is about batching), and returns the
// keys.
func publishN(t *testing.T, p *Producer, topic, prefix string, n int) []string {
	t.Helper()
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("%s-%04d", prefix, i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	work := make(chan string)
	for range 16 {
		wg.Go(func() {
			for k := range work {
				if err := p.Publish(ctx, topic, k, []byte("value of "+k)); err != nil {
					errs <- err
				}
			}
		})
	}
	for _, k := range keys {
		work <- k
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return keys
}
