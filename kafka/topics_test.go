package kafka

import (
	"context"
	"testing"
	"time"

	"github.com/genpipe/genpipe/broker"
	"github.com/genpipe/genpipe/internal/testutil"
)

func TestEnsureTopicsCreatesOnceAndLeavesExistingAlone(t *testing.T) {
	t.Parallel()
	b := testutil.StartBroker(t, broker.WithPartitions(3))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	if err := plainConn(t, b.Addrs()).EnsureTopics(ctx, 8, "a", "b", "a"); err != nil {
		t.Fatal(err)
	}
	// Again, with another count and one new topic: a and b stay as they
	// are, c gets the new count.
	if err := plainConn(t, b.Addrs()).EnsureTopics(ctx, 2, "a", "b", "c"); err != nil {
		t.Fatal(err)
	}
	details, err := testutil.Admin(t, b.Addrs()).ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for topic, want := range map[string]int{"a": 8, "b": 8, "c": 2} {
		if got := len(details[topic].Partitions); got != want {
			t.Errorf("topic %s has %d partitions, want %d", topic, got, want)
		}
	}
	if len(details) != 3 {
		t.Errorf("topics %v, want a, b and c", details.Names())
	}
}

func TestEnsureTopicsValidatesAndGivesUp(t *testing.T) {
	t.Parallel()
	b := testutil.StartBroker(t)
	ctx := context.Background()
	if err := plainConn(t, b.Addrs()).EnsureTopics(ctx, 0, "x"); err == nil {
		t.Error("EnsureTopics with 0 partitions succeeded")
	}
	if err := plainConn(t, b.Addrs()).EnsureTopics(ctx, 1); err != nil {
		t.Errorf("EnsureTopics of no topics: %v", err)
	}
	addrs := b.Addrs()
	b.Close()
	ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if err := plainConn(t, addrs).EnsureTopics(ctx, 1, "x"); err == nil {
		t.Error("EnsureTopics with the broker down succeeded")
	}
}
