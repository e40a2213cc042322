package kafka

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/genpipe/genpipe/broker"
	"github.com/genpipe/genpipe/internal/testutil"
)

// Scaled-down group timings: kfake accepts sessions down to minSession, and a
// member that stops heartbeating is out after session.
const (
	minSession = 100 * time.Millisecond
	session    = 1 * time.Second
	rebalance  = 2 * time.Second
)

// testLogger logs to the test log; GENPIPE_KAFKA_TEST_LOG=debug logs everything.
func testLogger(t *testing.T) *slog.Logger { return testutil.Logger(t, "GENPIPE_KAFKA_TEST_LOG") }

// startBroker starts a broker that accepts short sessions and closes it when
// the test ends.
func startBroker(t *testing.T, opts ...broker.Option) *broker.Server {
	t.Helper()
	b, err := broker.Start(append([]broker.Option{broker.WithGroupMinSessionTimeout(minSession)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// plainConn is a Conn to brokers with the defaults: plaintext, no SASL.
func plainConn(t *testing.T, brokers []string) *Conn {
	t.Helper()
	c, err := NewConn(brokers)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ensureTopic(t *testing.T, brokers []string, partitions int32, topic string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := plainConn(t, brokers).EnsureTopics(ctx, partitions, topic); err != nil {
		t.Fatal(err)
	}
}

func newProducer(t *testing.T, brokers []string, opts ...ProducerOption) *Producer {
	t.Helper()
	p, err := plainConn(t, brokers).NewProducer(append([]ProducerOption{WithProducerLogger(testLogger(t))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
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

// readGroup reads topic in group until want distinct keys were seen or
// limit passes, commits what it read, and leaves the group: a plain kgo
// group member, enough to check what a broker kept.
func readGroup(t *testing.T, brokers []string, group, topic string, want int, limit time.Duration) map[string]int {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.DisableAutoCommit(), kgo.SessionTimeout(session), kgo.HeartbeatInterval(session/3), kgo.RebalanceTimeout(rebalance),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	seen := newKeyCounter()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	for seen.unique() < want && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { seen.add(string(r.Key)) })
	}
	if err := cl.CommitUncommittedOffsets(context.Background()); err != nil {
		t.Fatalf("commit: %v", err)
	}
	return seen.snapshot()
}

// keyCounter counts how often each key was seen.
type keyCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func newKeyCounter() *keyCounter { return &keyCounter{n: make(map[string]int)} }

func (k *keyCounter) add(key string) {
	k.mu.Lock()
	k.n[key]++
	k.mu.Unlock()
}

func (k *keyCounter) unique() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.n)
}

func (k *keyCounter) snapshot() map[string]int {
	k.mu.Lock()
	defer k.mu.Unlock()
	m := make(map[string]int, len(k.n))
	for key, n := range k.n {
		m[key] = n
	}
	return m
}

func admin(t *testing.T, brokers []string) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// endOffsets returns each partition's end offset.
func endOffsets(t *testing.T, adm *kadm.Client, topic string) map[int32]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	listed, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if err := listed.Error(); err != nil {
		t.Fatal(err)
	}
	ends := make(map[int32]int64)
	listed.Each(func(o kadm.ListedOffset) { ends[o.Partition] = o.Offset })
	return ends
}

// committed returns the group's committed offset per partition of topic.
func committed(t *testing.T, adm *kadm.Client, group, topic string) map[int32]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resps, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	if err := resps.Error(); err != nil {
		t.Fatal(err)
	}
	out := make(map[int32]int64)
	for p, o := range resps[topic] {
		out[p] = o.At
	}
	return out
}
