package kafka

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/internal/testutil"
)

// Lesson 1: a burst of keyed records spreads over every partition, even
// though concurrent publishing lets franz-go batch them.
func TestPublishSpreadsKeysOverAllPartitions(t *testing.T) {
	t.Parallel()
	const topic, partitions, n = "spread", 8, 200
	b, p := startWithTopic(t, topic, partitions, WithLinger(50*time.Millisecond)) // a long linger batches hard

	publishN(t, p, topic, "req", n)

	ends := testutil.EndOffsets(t, b.Addrs(), topic)
	if len(ends) != partitions {
		t.Fatalf("%d partitions, want %d", len(ends), partitions)
	}
	var total int64
	for part, end := range ends {
		if end == 0 {
			t.Errorf("partition %d got no record; per-partition ends: %v", part, ends)
		}
		total += end
	}
	if total != n {
		t.Errorf("%d records in the topic, want %d", total, n)
	}
	t.Logf("records per partition: %v", ends)
}

// A key always goes to the same partition, so one request's events stay in
// order.
func TestPublishSameKeySamePartition(t *testing.T) {
	t.Parallel()
	b, p := startWithTopic(t, "same", 8)
	ctx := context.Background()
	for range 5 {
		if err := p.Publish(ctx, "same", "one-request", []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	nonEmpty := 0
	for _, end := range testutil.EndOffsets(t, b.Addrs(), "same") {
		if end > 0 {
			nonEmpty++
		}
	}
	if nonEmpty != 1 {
		t.Errorf("records of one key landed in %d partitions, want 1", nonEmpty)
	}
}

func TestPublishRefusesEmptyKey(t *testing.T) {
	t.Parallel()
	b, p := startWithTopic(t, "t", 1)
	err := p.Publish(context.Background(), "t", "", []byte("keyless"))
	if err == nil {
		t.Fatal("Publish with an empty key succeeded")
	}
	if code := genpipe.ErrorCode(err); code != genpipe.EINTERNAL {
		t.Errorf("error code %q, want %q (a programming error, not an outage): %v", code, genpipe.EINTERNAL, err)
	}
	if end := testutil.EndOffsets(t, b.Addrs(), "t")[0]; end != 0 {
		t.Errorf("%d records written, want 0", end)
	}
}

func TestPublishHeadersRoundTrip(t *testing.T) {
	t.Parallel()
	b, p := startWithTopic(t, "dead", 1)
	err := p.PublishHeaders(context.Background(), "dead", "k", []byte("v"),
		map[string]string{"reason": "poison", "origin": "genpipe.requests/3@17"})
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...), kgo.ConsumeTopics("dead"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	recs := cl.PollFetches(ctx).Records()
	if len(recs) != 1 {
		t.Fatalf("got %d records, want 1", len(recs))
	}
	got := map[string]string{}
	var order []string
	for _, h := range recs[0].Headers {
		got[h.Key] = string(h.Value)
		order = append(order, h.Key)
	}
	if got["reason"] != "poison" || got["origin"] != "genpipe.requests/3@17" || len(got) != 2 {
		t.Errorf("headers %v", got)
	}
	if order[0] != "origin" {
		t.Errorf("headers in order %v, want key order", order)
	}
}

// A broker that went away makes Publish fail with EUNAVAILABLE within the
// delivery timeout, and Ping too.
func TestPublishBrokerDownIsUnavailable(t *testing.T) {
	t.Parallel()
	const timeout = time.Second
	b, p := startWithTopic(t, "down", 4, WithDeliveryTimeout(timeout))
	ctx := context.Background()
	if err := p.Publish(ctx, "down", "before", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := p.Ping(ctx); err != nil {
		t.Fatalf("Ping with the broker up: %v", err)
	}

	b.Close()

	began := time.Now()
	err := p.Publish(ctx, "down", "after", []byte("x"))
	took := time.Since(began)
	if err == nil {
		t.Fatal("Publish to a closed broker succeeded")
	}
	if code := genpipe.ErrorCode(err); code != genpipe.EUNAVAILABLE {
		t.Errorf("error code %q, want %q: %v", code, genpipe.EUNAVAILABLE, err)
	}
	if took > timeout+500*time.Millisecond {
		t.Errorf("Publish took %v, want about the delivery timeout %v", took, timeout)
	}
	t.Logf("Publish failed after %v: %v", took, err)

	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := p.Ping(pctx); genpipe.ErrorCode(err) != genpipe.EUNAVAILABLE {
		t.Errorf("Ping with the broker down: %v, want an EUNAVAILABLE error", err)
	}
}

// A broker that was never there is the same outage; the caller's context
// can shorten the wait.
func TestPublishNoBrokerHonoursContext(t *testing.T) {
	t.Parallel()
	addr := testutil.FreeAddr(t) // a port nobody listens on
	p := newProducer(t, []string{addr}, WithDeliveryTimeout(time.Minute))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	began := time.Now()
	err := p.Publish(ctx, "t", "k", []byte("x"))
	if code := genpipe.ErrorCode(err); code != genpipe.EUNAVAILABLE {
		t.Fatalf("error code %q, want %q: %v", code, genpipe.EUNAVAILABLE, err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v does not wrap the context's", err)
	}
	if took := time.Since(began); took > time.Second {
		t.Errorf("Publish took %v with a 300ms context", took)
	}
}

func TestNewProducerRejectsBadTimeout(t *testing.T) {
	t.Parallel()
	if _, err := plainConn(t, []string{"127.0.0.1:1"}).NewProducer(WithDeliveryTimeout(0)); err == nil {
		t.Error("NewProducer accepted a zero delivery timeout")
	}
}

// Whatever the connection settings, the producer keeps acks=all and
// idempotence, and takes the connection's client id and compression.
func TestProducerOverConnKeepsAcksAllAndIdempotence(t *testing.T) {
	t.Parallel()
	conn, err := NewConn([]string{"127.0.0.1:1"}, WithClientID("genpipe-worker"), WithCompression("zstd"),
		WithSASL(SASLScramSHA256, "u", "p"), WithTLS(nil), WithGroupProtocol(GroupProtocolConsumer))
	if err != nil {
		t.Fatal(err)
	}
	p := producerOn(t, conn)
	if acks := p.cl.OptValue(kgo.RequiredAcks).(kgo.Acks); acks != kgo.AllISRAcks() {
		t.Errorf("acks %v, want all", acks)
	}
	if off := p.cl.OptValue(kgo.DisableIdempotentWrite); off != false {
		t.Errorf("idempotent writes disabled: %v", off)
	}
	if id := p.cl.OptValue(kgo.ClientID); id != "genpipe-worker" {
		t.Errorf("client id %v", id)
	}
	if c := p.cl.OptValue(kgo.ProducerBatchCompression).([]kgo.CompressionCodec); c[0] != kgo.ZstdCompression() {
		t.Errorf("compression %v, want zstd first", c)
	}
}
