package testenv

import (
	"context"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/genpipe/genpipe/broker"
	"github.com/genpipe/genpipe/internal/testutil"
	"github.com/genpipe/genpipe/kafka"
)

// Kafka is an embedded broker of one test, on a port and a data directory of
// its own, so that it can be stopped and started again with its topics,
// records and offsets, at the same address.
type Kafka struct {
	// Conn connects to the broker with the defaults (plaintext).
	Conn *kafka.Conn
	opts []broker.Option

	mu  sync.Mutex
	srv *broker.Server // nil while stopped
}

// StartKafka starts a broker for t, with its data in t.TempDir() and on a
// free port of 127.0.0.1, and closes it when the test ends. opts come after
// those two settings and may override them.
func StartKafka(t testing.TB, opts ...broker.Option) *Kafka {
	t.Helper()
	port := testutil.FreePort(t)
	k := &Kafka{opts: append([]broker.Option{
		broker.WithDataDir(filepath.Join(t.TempDir(), "kafka")),
		broker.WithPort(port),
	}, opts...)}
	k.Start(t)
	t.Cleanup(k.Stop)
	k.Conn = Conn(t, k.srv.Addrs())
	return k
}

// Conn returns a connection to brokers with the defaults (plaintext).
func Conn(t testing.TB, brokers []string) *kafka.Conn {
	t.Helper()
	return testutil.Must(kafka.NewConn(brokers))(t)
}

// EnsureTopics creates topics on brokers with partitions partitions each,
// unless they exist.
func EnsureTopics(t testing.TB, brokers []string, partitions int32, topics ...string) {
	t.Helper()
	if err := Conn(t, brokers).EnsureTopics(testutil.Context(t), partitions, topics...); err != nil {
		t.Fatal(err)
	}
}

// NewProducer returns a producer to brokers with the connection defaults,
// configured with opts, closed when the test ends.
func NewProducer(t testing.TB, brokers []string, opts ...kafka.ProducerOption) *kafka.Producer {
	t.Helper()
	p := testutil.Must(Conn(t, brokers).NewProducer(opts...))(t)
	t.Cleanup(p.Close)
	return p
}

// Addrs returns the broker's addresses, the same before and after a restart.
func (k *Kafka) Addrs() []string { return k.Conn.Brokers() }

// Stop closes the broker, keeping its data; clients see a broker that is
// down. It does nothing to a stopped broker.
func (k *Kafka) Stop() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.srv != nil {
		k.srv.Close()
		k.srv = nil
	}
}

// Start starts the stopped broker again, on the same port and data.
func (k *Kafka) Start(t testing.TB) {
	t.Helper()
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.srv != nil {
		t.Fatal("testenv: the broker is running")
	}
	srv, err := broker.Start(k.opts...)
	if err != nil {
		t.Fatal(err)
	}
	k.srv = srv
}

// EnsureTopics creates topics with partitions partitions each, unless they
// exist.
func (k *Kafka) EnsureTopics(t testing.TB, partitions int32, topics ...string) {
	t.Helper()
	EnsureTopics(t, k.Addrs(), partitions, topics...)
}

// NewProducer returns a producer to the broker, closed when the test ends.
func (k *Kafka) NewProducer(t testing.TB, opts ...kafka.ProducerOption) *kafka.Producer {
	t.Helper()
	return NewProducer(t, k.Addrs(), opts...)
}

// Records returns every record topic holds now, in offset order per
// partition and partition after partition: one key's records are in the
// order they were published.
func (k *Kafka) Records(t testing.TB, topic string) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(k.Conn.Opts()...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	want := map[int32]int64{} // partition → end offset
	start := map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
			start[o.Partition] = kgo.NewOffset().AtStart()
		}
	})
	if len(want) == 0 {
		return nil
	}
	cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{topic: start})
	var recs []*kgo.Record
	for len(want) > 0 {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("testenv: reading %s: %v (still waiting for partitions %v)", topic, ctx.Err(), want)
		}
		fetches.EachError(func(_ string, p int32, err error) { t.Logf("testenv: fetch %s/%d: %v", topic, p, err) })
		fetches.EachRecord(func(r *kgo.Record) {
			if end, ok := want[r.Partition]; ok && r.Offset < end {
				recs = append(recs, r)
				if r.Offset >= end-1 {
					delete(want, r.Partition)
				}
			}
		})
	}
	slices.SortFunc(recs, func(a, b *kgo.Record) int {
		if a.Partition != b.Partition {
			return int(a.Partition - b.Partition)
		}
		return int(a.Offset - b.Offset)
	})
	return recs
}
