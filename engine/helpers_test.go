package engine

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/genpipe/genpipe/internal/testenv"
	"github.com/genpipe/genpipe/internal/testutil"
	"github.com/genpipe/genpipe/kafka"
)

// Scaled-down group timings, for brokers with testutil.FastGroups.
const (
	session   = time.Second
	rebalance = 3 * time.Second
)

// testLogger logs to the test log; GENPIPE_ENGINE_TEST_LOG=debug logs everything.
func testLogger(t testing.TB) *slog.Logger { return testutil.Logger(t, "GENPIPE_ENGINE_TEST_LOG") }

// setup starts a broker with a topic of the given partitions and produces n
// records with unique keys k0000..; it returns the brokers.
func setup(t *testing.T, topic string, partitions int32, n int) []string {
	t.Helper()
	k := testenv.StartKafka(t, testutil.FastGroups())
	k.EnsureTopics(t, partitions, topic)
	produce(t, k.Addrs(), topic, n, func(i int) string { return fmt.Sprintf("k%04d", i) })
	return k.Addrs()
}

// produce publishes n records to topic with the keys key(0..n-1), in order.
func produce(t *testing.T, brokers []string, topic string, n int, key func(int) string) {
	t.Helper()
	p := testenv.NewProducer(t, brokers)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range n {
		if err := p.Publish(ctx, topic, key(i), []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
}

// newEngine returns an engine with scaled-down group timings and a test
// logger; opts override them.
func newEngine(t testing.TB, brokers []string, group, topic string, h Handler, opts ...Option) *Engine {
	t.Helper()
	log := testLogger(t)
	base := []Option{
		WithSessionTimeout(session),
		WithRebalanceTimeout(rebalance),
		WithShutdownTimeout(time.Second),
		WithCommitInterval(50 * time.Millisecond),
		WithLogger(log),
		WithClientOpts(kgo.FetchMaxWait(100*time.Millisecond), kgo.WithLogger(kafka.NewKgoLogger(log.With("group", group)))),
	}
	e, err := New(brokers, group, []string{topic}, h, append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// start runs e until the test ends or the returned stop is called; stop
// waits for Run to return.
func start(t testing.TB, e *Engine) (stop func()) {
	t.Helper()
	return testutil.Start(t, context.Background(), "run", e.Run)
}

// committed returns the group's committed offset of topic/partition, -1 if
// none.
func committed(t testing.TB, brokers []string, group, topic string, partition int32) int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	offs, err := kadm.NewClient(cl).FetchOffsets(ctx, group)
	if err != nil {
		t.Fatalf("fetch offsets of %s: %v", group, err)
	}
	o, ok := offs.Lookup(topic, partition)
	if !ok {
		return -1
	}
	return o.At
}

// gauge tracks a current count and its maximum.
type gauge struct {
	cur, peak atomic.Int64
}

func (g *gauge) inc() {
	n := g.cur.Add(1)
	for {
		p := g.peak.Load()
		if n <= p || g.peak.CompareAndSwap(p, n) {
			return
		}
	}
}

func (g *gauge) dec() { g.cur.Add(-1) }

// busyHandler takes d to handle a record, counting the handlers running in
// g and the keys handled in keys.
func busyHandler(g *gauge, keys *keySet, d time.Duration) Handler {
	return func(_ context.Context, r *kgo.Record) error {
		g.inc()
		defer g.dec()
		time.Sleep(d)
		keys.add(string(r.Key))
		return nil
	}
}

// keySet records the keys handled, safely from many handlers.
type keySet struct {
	mu   sync.Mutex
	seen map[string]int
}

func (s *keySet) add(k string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen == nil {
		s.seen = make(map[string]int)
	}
	s.seen[k]++
}

func (s *keySet) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seen)
}
