package testutil

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/genpipe/genpipe/broker"
)

// These helpers reach a broker with plain franz-go clients, not package
// kafka: package kafka's own tests use them, and cannot import a package
// that imports kafka (internal/testenv does).

// MinSession is the shortest consumer group session that a broker started
// with FastGroups accepts: tests scale their group timings down to it, so
// that a member that stops heartbeating is out within a second or so.
const MinSession = 100 * time.Millisecond

// FastGroups is the broker option of scaled-down group timings: the broker
// accepts sessions down to MinSession.
func FastGroups() broker.Option { return broker.WithGroupMinSessionTimeout(MinSession) }

// StockMinSession is the shortest session a stock Apache Kafka accepts
// (group.min.session.timeout.ms): a member asking for less is refused with
// INVALID_SESSION_TIMEOUT on every join.
const StockMinSession = broker.DefaultGroupMinSessionTimeout

// StockGroups is the broker option of a stock Apache Kafka's group
// settings: sessions of StockMinSession to 30 minutes, as the broker has
// by default. A test that relies on the broker refusing what a real
// cluster refuses says so with it, rather than leave it to the default.
func StockGroups() broker.Option { return broker.WithGroupMinSessionTimeout(StockMinSession) }

// StartBroker starts an embedded broker with opts and closes it when the
// test ends.
func StartBroker(t testing.TB, opts ...broker.Option) *broker.Server {
	t.Helper()
	b := Must(broker.Start(opts...))(t)
	t.Cleanup(b.Close)
	return b
}

// Admin returns an admin client of brokers (plaintext), closed when the test
// ends.
func Admin(t testing.TB, brokers []string) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// EndOffsets returns the end offset of each partition of topic.
func EndOffsets(t testing.TB, brokers []string, topic string) map[int32]int64 {
	t.Helper()
	listed, err := Admin(t, brokers).ListEndOffsets(Context(t), topic)
	if err == nil {
		err = listed.Error()
	}
	if err != nil {
		t.Fatalf("end offsets of %s: %v", topic, err)
	}
	ends := make(map[int32]int64)
	listed.Each(func(o kadm.ListedOffset) { ends[o.Partition] = o.Offset })
	return ends
}

// ProduceCompressed produces one record of key and value to topic as a
// zstd batch of its own, through a client that takes batches of up to 64
// MiB uncompressed: a value of zeros larger than genpipe.MaxBatchBytes is
// a few kilobytes on the broker, the compressed "bomb" a consumer must not
// inflate.
func ProduceCompressed(t testing.TB, brokers []string, topic, key string, value []byte) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic),
		kgo.ProducerBatchMaxBytes(64<<20), kgo.BrokerMaxWriteBytes(128<<20), kgo.ProducerBatchCompression(kgo.ZstdCompression()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(Context(t), &kgo.Record{Key: []byte(key), Value: value}).FirstErr(); err != nil {
		t.Fatalf("produce to %s: %v", topic, err)
	}
}
