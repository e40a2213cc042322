// Package testenv starts what genpipe's parts run against, for their tests:
// an embedded Kafka broker (package broker), the embedded object store
// (package objectstore) and a status store, with genpipe's topics and a
// client of each. Every package whose tests need them sets them up here, so
// that they are set up one way.
//
// The object store is one per test binary: versitygw allows one per process
// and changes the process's working directory while it runs, so a package
// that uses it runs its tests through Run, from TestMain, and opens files by
// absolute paths (t.TempDir gives those). Everything else is one per test,
// in t.TempDir, and goes away when the test ends.
//
//	func TestMain(m *testing.M) { os.Exit(testenv.Run(m)) }
//
//	func TestSomething(t *testing.T) {
//		env := testenv.New(t)
//		... env.Producer, env.Objects, env.Store, env.Topics ...
//	}
package testenv

import (
	"path/filepath"
	"testing"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/kafka"
	"github.com/genpipe/genpipe/s3"
)

// Env is one test's dependencies, each closed when the test ends.
type Env struct {
	// Kafka is an embedded broker of the test's own.
	Kafka *Kafka
	// Topics are genpipe.DefaultTopics(), created on Kafka.
	Topics genpipe.Topics
	// Producer publishes to Kafka through Kafka.Conn.
	Producer *kafka.Producer
	// Objects is a client of the test binary's object store, on its bucket
	// (Bucket), which every test of the binary shares: use keys of the
	// test's own.
	Objects *s3.Store
	// Store is a status store of the test's own, in the file StorePath.
	Store     *StatusStore
	StorePath string
}

type config struct {
	partitions int32
	producer   []kafka.ProducerOption
}

// Option configures New.
type Option func(*config)

// WithPartitions gives each of the topics n partitions, overriding the
// default of 4, the count `genpipe up` runs with in the tests of
// cmd/genpipe. Fewer partitions make reading a topic back quicker; more
// spread requests over more of them.
func WithPartitions(n int32) Option { return func(c *config) { c.partitions = n } }

// WithProducer creates Env.Producer with opts, overriding the producer's
// defaults; kafka.WithDeliveryTimeout shortens how long a test waits for a
// broker it stopped.
func WithProducer(opts ...kafka.ProducerOption) Option {
	return func(c *config) { c.producer = append(c.producer, opts...) }
}

// New starts an environment for t: a broker with genpipe's topics and a
// producer, a status store, and a client of the test binary's object store
// (which Run must have started).
func New(t testing.TB, opts ...Option) *Env {
	t.Helper()
	cfg := config{partitions: 4}
	for _, o := range opts {
		o(&cfg)
	}
	e := &Env{Topics: genpipe.DefaultTopics(), Objects: Objects(t)}
	e.Kafka = StartKafka(t)
	e.Kafka.EnsureTopics(t, cfg.partitions, e.Topics.All()...)
	e.Producer = e.Kafka.NewProducer(t, cfg.producer...)
	e.StorePath = filepath.Join(t.TempDir(), "genpipe.db")
	e.Store = OpenStatusStore(t, e.StorePath)
	return e
}
