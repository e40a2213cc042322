package kafka

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// countHook counts the records a producer buffers.
type countHook struct{ n atomic.Int64 }

func (h *countHook) OnProduceRecordBuffered(*kgo.Record) { h.n.Add(1) }

func TestProducerHooks(t *testing.T) {
	h := &countHook{}
	_, p := startWithTopic(t, "hooked", 1, WithProducerHooks(h))
	if err := p.Publish(t.Context(), "hooked", "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if n := h.n.Load(); n != 1 {
		t.Errorf("hook saw %d records, want 1", n)
	}
}

func TestLagReader(t *testing.T) {
	b, p := startWithTopic(t, "lagging", 2)
	for _, key := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		if err := p.PublishHeaders(t.Context(), "lagging", key, []byte(key), nil); err != nil {
			t.Fatal(err)
		}
	}
	ends, err := kadm.NewClient(p.cl).ListEndOffsets(t.Context(), "lagging")
	if err != nil {
		t.Fatal(err)
	}
	end0, _ := ends.Lookup("lagging", 0)
	end1, _ := ends.Lookup("lagging", 1)
	// The group committed 1 record of partition 0 and all of partition 1.
	offsets := kadm.Offsets{}
	offsets.Add(kadm.Offset{Topic: "lagging", Partition: 0, At: 1, LeaderEpoch: -1})
	offsets.Add(kadm.Offset{Topic: "lagging", Partition: 1, At: end1.Offset, LeaderEpoch: -1})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := kadm.NewClient(p.cl).CommitAllOffsets(ctx, "lag-group", offsets); err != nil {
		t.Fatal(err)
	}

	l, err := NewLagReader(kgo.SeedBrokers(b.Addrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	lag, err := l.Lag(ctx, "lag-group")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := lag["lagging"][0], end0.Offset-1; got != want || end0.Offset < 2 {
		t.Errorf("lag of partition 0 = %d, want %d (end %d - committed 1)", got, want, end0.Offset)
	}
	if got := lag["lagging"][1]; got != 0 {
		t.Errorf("lag of partition 1 = %d, want 0 (all committed)", got)
	}
}
