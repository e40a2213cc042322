package kafka

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/internal/testutil"
)

// Tail sees every record produced after it was called, on every partition,
// and none from before; several tails (API processes) each see all of them.
func TestTailSeesNewRecordsOnly(t *testing.T) {
	t.Parallel()
	const topic = "status"
	b, p := startWithTopic(t, topic, 8)
	publishN(t, p, topic, "old", 20)
	time.Sleep(5 * time.Millisecond) // the old records' timestamps are now in the past

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Tail starts at the moment it is called; the goroutines below may call
	// it after the publishing began, so they are given the moment now.
	from := time.Now()
	conn := plainConn(t, b.Addrs())
	var (
		mu   sync.Mutex
		seen [2]map[string]int
		wg   sync.WaitGroup
	)
	for i := range seen {
		seen[i] = make(map[string]int)
		wg.Go(func() {
			err := conn.Tail(ctx, topic, func(r *kgo.Record) {
				mu.Lock()
				seen[i][string(r.Key)]++
				mu.Unlock()
			}, WithTailFrom(from), WithTailLogger(testLogger(t)))
			if err != nil {
				t.Errorf("Tail: %v", err)
			}
		})
	}
	// No waiting for the tails to be ready: what is produced from then
	// on must be seen regardless.
	keys := publishN(t, p, topic, "new", 40)
	testutil.Eventually(t, 20*time.Second, "both tails to see every new record", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen[0]) >= len(keys) && len(seen[1]) >= len(keys)
	})
	cancel()
	wg.Wait() // Tail returns once ctx is done

	for i, got := range seen {
		for _, k := range keys {
			if got[k] != 1 {
				t.Errorf("tail %d saw %s %d times, want 1", i, k, got[k])
			}
		}
		if len(got) != len(keys) {
			t.Errorf("tail %d saw %d records, want the %d new ones only", i, len(got), len(keys))
		}
	}
}

// Tail started before its topic exists waits for it.
func TestTailWaitsForTopic(t *testing.T) {
	t.Parallel()
	b := testutil.StartBroker(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	from := time.Now()
	got := make(chan string, 1)
	done := make(chan error, 1)
	conn := plainConn(t, b.Addrs())
	go func() {
		done <- conn.Tail(ctx, "later", func(r *kgo.Record) {
			select {
			case got <- string(r.Key):
			default:
			}
		}, WithTailFrom(from), WithTailLogger(testLogger(t)))
	}()
	time.Sleep(200 * time.Millisecond)
	ensureTopic(t, b.Addrs(), 2, "later")
	if err := newProducer(t, b.Addrs()).Publish(ctx, "later", "k", nil); err != nil {
		t.Fatal(err)
	}
	select {
	case k := <-got:
		if k != "k" {
			t.Errorf("got %s", k)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Tail never saw the record")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Tail: %v", err)
	}
}

// A batch that would decompress past genpipe.MaxBatchBytes is not read:
// Tail logs it and goes on with the records after it.
func TestTailSkipsABatchTooLargeToRead(t *testing.T) {
	t.Parallel()
	const topic = "status"
	b, p := startWithTopic(t, topic, 1)
	from := time.Now()
	testutil.ProduceCompressed(t, b.Addrs(), topic, "bomb", make([]byte, genpipe.MaxBatchBytes+1))
	keys := publishN(t, p, topic, "after", 3)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log, logs := testutil.CaptureLogs(t)
	var mu sync.Mutex
	var seen []string
	done := make(chan error, 1)
	go func() {
		done <- plainConn(t, b.Addrs()).Tail(ctx, topic, func(r *kgo.Record) {
			mu.Lock()
			seen = append(seen, string(r.Key))
			mu.Unlock()
		}, WithTailFrom(from), WithTailLogger(log))
	}()
	testutil.Eventually(t, 20*time.Second, "the records after the batch", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) >= len(keys)
	})
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Tail: %v", err)
	}
	slices.Sort(seen) // publishN publishes concurrently: offset order is not key order
	if !slices.Equal(seen, keys) || !logs.Contains("skipping a batch too large to read") {
		t.Errorf("saw %v; want %v, and the batch logged", seen, keys)
	}
}
