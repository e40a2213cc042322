package engine

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// BenchmarkDispatch measures the engine's own cost per record, without
// Kafka: take a polled record in, start its handler (which returns at once),
// track its offset and release its slot, with 64 slots and a buffer of 128
// as in production.
func BenchmarkDispatch(b *testing.B) {
	for _, ordered := range []bool{false, true} {
		name := "unordered"
		opts := []Option{WithCapacity(64), WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))}
		if ordered {
			name = "order-by-key"
			opts = append(opts, WithOrderByKey())
		}
		b.Run(name, func(b *testing.B) { benchDispatch(b, opts...) })
	}
}

func benchDispatch(b *testing.B, opts ...Option) {
	h := func(context.Context, *kgo.Record) error { return nil }
	e, err := New([]string{"127.0.0.1:1"}, "bench", []string{"t"}, h, opts...)
	if err != nil {
		b.Fatal(err)
	}
	e.mu.Lock()
	e.st.reset(context.Background())
	e.st.total = 1
	e.st.newPartition(TopicPartition{"t", 0})
	e.recomputeShareLocked()
	e.mu.Unlock()

	const batch = 64 // a poll's worth
	keys := make([][]byte, 1024)
	for i := range keys {
		keys[i] = []byte{byte(i), byte(i >> 8)}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for off := 0; off < b.N; off += batch {
		m := min(batch, b.N-off)
		if !e.waitUntil(func() bool { return e.cfg.maxBuffered-e.st.buffered >= m }, time.Minute) {
			b.Fatal("no room within a minute")
		}
		recs := make([]*kgo.Record, m)
		for i := range recs {
			o := int64(off + i)
			recs[i] = &kgo.Record{Topic: "t", Offset: o, Key: keys[o%int64(len(keys))]}
		}
		e.enqueue(recs, 0)
	}
	if !e.waitUntil(func() bool { return e.st.buffered == 0 }, time.Minute) {
		b.Fatal("not drained within a minute")
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	if got := e.Stats().Handled; got != int64(b.N) {
		b.Fatalf("handled %d of %d", got, b.N)
	}
}
