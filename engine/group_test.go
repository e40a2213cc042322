package engine

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/genpipe/genpipe/internal/testutil"
)

// TestTwoEnginesShareCapacity runs two engines in one group on 8 partitions
// with a total capacity of 8: their limits never add up past 8, neither do
// their running handlers, every record is handled, and once one engine stops
// the other's share is the whole capacity.
func TestTwoEnginesShareCapacity(t *testing.T) {
	t.Parallel()
	const topic, n, capacity = "shared", 800, 8
	brokers := setup(t, topic, 8, n)
	var g gauge
	var keys keySet
	h := busyHandler(&g, &keys, 20*time.Millisecond)
	a := newEngine(t, brokers, "g", topic, h, WithCapacity(capacity))
	b := newEngine(t, brokers, "g", topic, h, WithCapacity(capacity))
	start(t, a)
	testutil.Eventually(t, 10*time.Second, "a owns every partition", func() bool { return a.Stats().Share == capacity })
	stopB := start(t, b)

	// Sample the limits while the group rebalances and works.
	var overLimit atomic.Int64
	sampling, stopSampling := context.WithCancel(context.Background())
	defer stopSampling()
	go func() {
		for sampling.Err() == nil {
			if sum := a.Stats().Limit + b.Stats().Limit; sum > capacity {
				overLimit.Store(int64(sum))
			}
			time.Sleep(time.Millisecond)
		}
	}()

	testutil.Eventually(t, 15*time.Second, "both engines own partitions", func() bool {
		return a.Stats().Owned == 4 && b.Stats().Owned == 4
	})
	if sa, sb := a.Stats(), b.Stats(); sa.Share != 4 || sb.Share != 4 {
		t.Errorf("shares %d and %d, want 4 and 4", sa.Share, sb.Share)
	}
	if sa := a.Stats(); sa.Revokes < 1 || sa.Losses != 0 {
		t.Errorf("a gave partitions to b: revokes %d losses %d, want ≥ 1 and 0", sa.Revokes, sa.Losses)
	}
	testutil.Eventually(t, 20*time.Second, "all records handled", func() bool { return keys.len() == n })
	stopB()
	testutil.Eventually(t, 15*time.Second, "a's share back to the capacity", func() bool { return a.Stats().Share == capacity })
	stopSampling()
	if sum := overLimit.Load(); sum != 0 {
		t.Errorf("limits added up to %d, over the capacity %d", sum, capacity)
	}
	if peak := g.peak.Load(); peak > capacity {
		t.Errorf("peak concurrency over both engines %d, over the capacity %d", peak, capacity)
	}
}

// TestShutdownCommitsDoneOnly stops an engine while handlers run: the done
// records are committed, the unfinished ones are not, and a restarted engine
// handles the rest, so no record is lost.
func TestShutdownCommitsDoneOnly(t *testing.T) {
	t.Parallel()
	const topic, n, firstStuck = "shutdown", 20, 10
	brokers := setup(t, topic, 1, n)
	var keys keySet
	var running atomic.Int64
	stuck := func(ctx context.Context, r *kgo.Record) error {
		if r.Offset >= firstStuck {
			running.Add(1)
			<-ctx.Done() // until the engine gives up on it
			return ctx.Err()
		}
		keys.add(string(r.Key))
		return nil
	}
	e := newEngine(t, brokers, "g", topic, stuck, WithCapacity(4), WithShutdownTimeout(200*time.Millisecond))
	stop := start(t, e)
	testutil.Eventually(t, 10*time.Second, "the first records done and the rest stuck", func() bool {
		return keys.len() == firstStuck && running.Load() == 4
	})
	stop()
	if got := committed(t, brokers, "g", topic, 0); got != firstStuck {
		t.Fatalf("committed %d after shutdown, want %d (done records only)", got, firstStuck)
	}
	if s := e.Stats(); s.Abandoned != 4 || s.Handled != firstStuck {
		t.Errorf("abandoned %d handled %d, want 4 and %d", s.Abandoned, s.Handled, firstStuck)
	}

	var again atomic.Int64
	rest := func(ctx context.Context, r *kgo.Record) error {
		if r.Offset < firstStuck {
			return fmt.Errorf("offset %d handled again after its commit", r.Offset)
		}
		again.Add(1)
		keys.add(string(r.Key))
		return nil
	}
	e2 := newEngine(t, brokers, "g", topic, rest, WithCapacity(4))
	start(t, e2)
	testutil.Eventually(t, 10*time.Second, "every record handled", func() bool { return keys.len() == n })
	testutil.Eventually(t, 5*time.Second, "the end committed", func() bool { return committed(t, brokers, "g", topic, 0) == n })
	if s := e2.Stats(); s.Failed != 0 || again.Load() != n-firstStuck {
		t.Errorf("restarted engine: %d failed, %d handled, want 0 and %d", s.Failed, again.Load(), n-firstStuck)
	}
}

// TestLostPartitionsDropped checks that a lost partition's queued records are
// dropped, its running handlers canceled, and nothing of it committed again.
func TestLostPartitionsDropped(t *testing.T) {
	t.Parallel()
	canceled := make(chan struct{}, 4)
	h := func(ctx context.Context, r *kgo.Record) error {
		<-ctx.Done()
		canceled <- struct{}{}
		return ctx.Err()
	}
	e, err := New([]string{"127.0.0.1:1"}, "g", []string{"t"}, h, WithCapacity(2), WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	tp := TopicPartition{"t", 0}
	e.mu.Lock()
	e.st.reset(context.Background())
	e.st.total = 1
	e.st.newPartition(tp)
	e.recomputeShareLocked()
	e.mu.Unlock()
	var recs []*kgo.Record
	for off := range int64(5) {
		recs = append(recs, &kgo.Record{Topic: "t", Offset: off})
	}
	e.enqueue(recs, 0)
	if s := e.Stats(); s.InFlight != 2 || s.Buffered != 5 {
		t.Fatalf("before the loss: %+v, want 2 running of 5 buffered", s)
	}

	e.onLost(context.Background(), nil, map[string][]int32{"t": {0}})
	for range 2 {
		select {
		case <-canceled:
		case <-time.After(5 * time.Second):
			t.Fatal("running handlers of a lost partition not canceled")
		}
	}
	testutil.Eventually(t, 5*time.Second, "the lost partition's records gone", func() bool {
		s := e.Stats()
		return s.Buffered == 0 && s.InFlight == 0 && s.Owned == 0 && len(s.Partitions) == 0 && s.Share == 0
	})
	e.mu.Lock()
	offsets, _ := e.committableLocked(nil)
	e.mu.Unlock()
	if len(offsets) != 0 {
		t.Errorf("offsets to commit after the loss: %v", offsets)
	}
	if s := e.Stats(); s.Abandoned != 2 || s.Handled != 0 {
		t.Errorf("abandoned %d handled %d, want 2 and 0", s.Abandoned, s.Handled)
	}

	// Records polled before the loss and registered after it are dropped.
	e.enqueue([]*kgo.Record{{Topic: "t", Offset: 5}}, 0)
	if s := e.Stats(); s.Buffered != 0 {
		t.Errorf("a record fetched before the loss was taken in: %+v", s)
	}
}
