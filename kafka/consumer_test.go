package kafka

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Every record is handled exactly once when handlers succeed (or fail: an
// error still counts as processed), everything is committed, and a second
// consumer in the group gets nothing old.
func TestConsumerHandlesEachRecordOnceAndCommits(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	const topic, group, n = "once", "g-once", 200
	ensureTopic(t, b.Addrs(), 8, topic)
	keys := publishN(t, newProducer(t, b.Addrs()), topic, "req", n)

	seen := newKeyCounter()
	c := newConsumer(t, b.Addrs(), group, topic, func(_ context.Context, r *kgo.Record) error {
		seen.add(string(r.Key))
		if strings.HasSuffix(string(r.Key), "7") {
			return errors.New("a handler bug: logged, and the record counts as processed")
		}
		return nil
	})
	run := start(c)
	waitFor(t, 20*time.Second, "every record handled", func() bool { return seen.unique() == n })
	run.stop(t, 10*time.Second)

	got := seen.snapshot()
	for _, k := range keys {
		if got[k] != 1 {
			t.Errorf("key %s handled %d times, want 1", k, got[k])
		}
	}
	adm := admin(t, b.Addrs())
	ends, commits := endOffsets(t, adm, topic), committed(t, adm, group, topic)
	for p, end := range ends {
		if commits[p] != end {
			t.Errorf("partition %d: committed %d, end %d", p, commits[p], end)
		}
	}

	// A new member of the group starts from the commits: it sees the
	// record published now and nothing old.
	seen2 := newKeyCounter()
	c2 := newConsumer(t, b.Addrs(), group, topic, func(_ context.Context, r *kgo.Record) error {
		seen2.add(string(r.Key))
		return nil
	})
	run2 := start(c2)
	if err := newProducer(t, b.Addrs()).Publish(context.Background(), topic, "new-one", nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the new record", func() bool { return seen2.unique() > 0 })
	time.Sleep(200 * time.Millisecond) // room for anything old to show up
	run2.stop(t, 10*time.Second)
	if got := seen2.snapshot(); len(got) != 1 || got["new-one"] != 1 {
		t.Errorf("second consumer handled %v, want only new-one once", got)
	}
}

// At most WithConcurrency handlers run at once, and a poll never holds more
// than WithMaxPollRecords.
func TestConsumerConcurrencyLimit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name                 string
		concurrency, maxPoll int
		wantMax              int64
	}{
		{"concurrency bounds", 4, 64, 4},
		{"poll bounds", 64, 6, 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := startBroker(t)
			topic := "limit"
			ensureTopic(t, b.Addrs(), 8, topic)
			publishN(t, newProducer(t, b.Addrs()), topic, "req", 40)

			var now, peak atomic.Int64
			seen := newKeyCounter()
			c := newConsumer(t, b.Addrs(), "g-limit", topic, func(_ context.Context, r *kgo.Record) error {
				cur := now.Add(1)
				for {
					p := peak.Load()
					if cur <= p || peak.CompareAndSwap(p, cur) {
						break
					}
				}
				time.Sleep(50 * time.Millisecond)
				now.Add(-1)
				seen.add(string(r.Key))
				return nil
			}, WithConcurrency(tc.concurrency), WithMaxPollRecords(tc.maxPoll))
			run := start(c)
			waitFor(t, 20*time.Second, "every record handled", func() bool { return seen.unique() == 40 })
			run.stop(t, 10*time.Second)
			if got := peak.Load(); got != tc.wantMax {
				t.Errorf("at most %d handlers ran at once, want exactly %d", got, tc.wantMax)
			}
		})
	}
}

// Lesson 2: handlers slower than the session timeout do not cost the member
// its place in the group, so nothing is handled twice.
func TestConsumerSlowHandlersKeepMembership(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	const topic, n = "slow", 16
	ensureTopic(t, b.Addrs(), 4, topic)
	publishN(t, newProducer(t, b.Addrs()), topic, "req", n)

	seen := newKeyCounter()
	c := newConsumer(t, b.Addrs(), "g-slow", topic, func(_ context.Context, r *kgo.Record) error {
		time.Sleep(3 * session / 2) // every handler outlasts the session timeout
		seen.add(string(r.Key))
		return nil
	}, WithMaxPollRecords(8), WithConcurrency(8))
	run := start(c)
	waitFor(t, 20*time.Second, "every record handled", func() bool { return seen.unique() == n })
	run.stop(t, 10*time.Second)
	for k, times := range seen.snapshot() {
		if times != 1 {
			t.Errorf("key %s handled %d times, want 1", k, times)
		}
	}
}

// A consumer stopped while handlers run lets them finish, commits only what
// finished, and a restart handles the rest: nothing is lost.
func TestConsumerStopMidwayLosesNothing(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	const topic, group, n = "midway", "g-midway", 120
	ensureTopic(t, b.Addrs(), 8, topic)
	keys := publishN(t, newProducer(t, b.Addrs()), topic, "req", n)

	type handled struct {
		partition int32
		offset    int64
	}
	var (
		mu    sync.Mutex
		first []handled
	)
	seen := newKeyCounter()
	c := newConsumer(t, b.Addrs(), group, topic, func(_ context.Context, r *kgo.Record) error {
		time.Sleep(time.Duration(20+r.Offset%5*30) * time.Millisecond) // uneven, so records finish out of order
		mu.Lock()
		first = append(first, handled{r.Partition, r.Offset})
		mu.Unlock()
		seen.add(string(r.Key))
		return nil
	}, WithConcurrency(8), WithMaxPollRecords(24))
	run := start(c)
	waitFor(t, 20*time.Second, "some records handled", func() bool { return seen.unique() >= n/3 })
	run.stop(t, 10*time.Second)

	firstRun := seen.unique()
	if firstRun == n {
		t.Fatalf("all %d records were handled before the stop; the test needs slower handlers", n)
	}
	// Every offset below a commit was handled: commits cover only
	// finished records.
	done := make(map[handled]bool)
	mu.Lock()
	for _, h := range first {
		done[h] = true
	}
	mu.Unlock()
	adm := admin(t, b.Addrs())
	for p, at := range committed(t, adm, group, topic) {
		for off := int64(0); off < at; off++ {
			if !done[handled{p, off}] {
				t.Errorf("partition %d committed up to %d, but offset %d was not handled", p, at, off)
			}
		}
	}

	c2 := newConsumer(t, b.Addrs(), group, topic, func(_ context.Context, r *kgo.Record) error {
		seen.add(string(r.Key))
		return nil
	})
	run2 := start(c2)
	waitFor(t, 20*time.Second, "every record handled after the restart", func() bool { return seen.unique() == n })
	run2.stop(t, 10*time.Second)

	got := seen.snapshot()
	twice := 0
	for _, k := range keys {
		switch {
		case got[k] == 0:
			t.Errorf("key %s lost", k)
		case got[k] > 1:
			twice++
		}
	}
	t.Logf("first run handled %d of %d; %d handled again after the restart", firstRun, n, twice)
	if twice != 0 {
		t.Errorf("%d records handled twice; Run waits for running handlers, so none should be", twice)
	}
}

// A handler still running at the end of the shutdown timeout is abandoned:
// Run returns, its context is canceled, its record is not committed, and the
// group hands it out again.
func TestConsumerShutdownTimeoutAbandonsHandlers(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	const topic, group = "stuck", "g-stuck"
	ensureTopic(t, b.Addrs(), 1, topic)
	if err := newProducer(t, b.Addrs()).Publish(context.Background(), topic, "stuck-one", nil); err != nil {
		t.Fatal(err)
	}

	started := make(chan struct{})
	canceled := make(chan struct{})
	c := newConsumer(t, b.Addrs(), group, topic, func(ctx context.Context, _ *kgo.Record) error {
		close(started)
		<-ctx.Done() // as a handler waiting on an AI call would
		close(canceled)
		return ctx.Err()
	}, WithShutdownTimeout(200*time.Millisecond))
	run := start(c)
	select {
	case <-started:
	case <-time.After(20 * time.Second):
		t.Fatal("handler never started")
	}
	began := time.Now()
	run.stop(t, 5*time.Second)
	t.Logf("Run returned %v after cancel", time.Since(began))
	select {
	case <-canceled:
	case <-time.After(time.Second):
		t.Error("the abandoned handler's context was not canceled")
	}
	if at := committed(t, admin(t, b.Addrs()), group, topic)[0]; at != 0 {
		t.Errorf("committed %d for an unfinished record, want nothing", at)
	}

	again := make(chan string, 1)
	c2 := newConsumer(t, b.Addrs(), group, topic, func(_ context.Context, r *kgo.Record) error {
		select {
		case again <- string(r.Key):
		default:
		}
		return nil
	})
	run2 := start(c2)
	defer run2.stop(t, 10*time.Second)
	select {
	case k := <-again:
		if k != "stuck-one" {
			t.Errorf("got %s", k)
		}
	case <-time.After(20 * time.Second):
		t.Error("the abandoned record was not handed out again")
	}
}

// Two members share the partitions; while the second joins, the first gives
// some up in a cooperative rebalance with handlers running. Nothing is lost,
// and in the end every partition is committed to its end: the first member
// never commits over the new owner.
func TestConsumerRebalanceLosesNothing(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	const topic, group, n = "rebalance", "g-rebalance", 160
	ensureTopic(t, b.Addrs(), 8, topic)
	keys := publishN(t, newProducer(t, b.Addrs()), topic, "req", n)

	seen := newKeyCounter()
	var byMember [2]atomic.Int64
	handler := func(member int) Handler {
		return func(_ context.Context, r *kgo.Record) error {
			time.Sleep(40 * time.Millisecond)
			byMember[member].Add(1)
			seen.add(string(r.Key))
			return nil
		}
	}
	opts := []ConsumerOption{WithConcurrency(4), WithMaxPollRecords(8)}
	run1 := start(newConsumer(t, b.Addrs(), group, topic, handler(0), opts...))
	waitFor(t, 20*time.Second, "first member under way", func() bool { return seen.unique() >= 16 })
	run2 := start(newConsumer(t, b.Addrs(), group, topic, handler(1), opts...))
	waitFor(t, 30*time.Second, "every record handled", func() bool { return seen.unique() == n })
	run1.stop(t, 10*time.Second)
	run2.stop(t, 10*time.Second)

	got := seen.snapshot()
	again := 0
	for _, k := range keys {
		if got[k] == 0 {
			t.Errorf("key %s lost", k)
		}
		again += got[k] - 1
	}
	t.Logf("member 1 handled %d, member 2 %d, %d handled twice", byMember[0].Load(), byMember[1].Load(), again)
	if byMember[1].Load() == 0 {
		t.Error("the second member never got a record; no rebalance was exercised")
	}
	adm := admin(t, b.Addrs())
	ends, commits := endOffsets(t, adm, topic), committed(t, adm, group, topic)
	for p, end := range ends {
		if commits[p] != end {
			t.Errorf("partition %d: committed %d, end %d", p, commits[p], end)
		}
	}
}

func TestConsumerRunTwiceAtOnce(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	ensureTopic(t, b.Addrs(), 1, "twice")
	c := newConsumer(t, b.Addrs(), "g-twice", "twice", func(context.Context, *kgo.Record) error { return nil })
	run := start(c)
	defer run.stop(t, 10*time.Second)
	waitFor(t, 5*time.Second, "Run to start", c.running.Load)
	if err := c.Run(context.Background()); err == nil {
		t.Error("a second concurrent Run succeeded")
	}
}

func TestNewConsumerValidates(t *testing.T) {
	t.Parallel()
	h := func(context.Context, *kgo.Record) error { return nil }
	for _, tc := range []struct {
		brokers []string
		group   string
		topics  []string
		h       Handler
		opts    []ConsumerOption
	}{
		{nil, "g", []string{"t"}, h, nil},
		{[]string{"b"}, "", []string{"t"}, h, nil},
		{[]string{"b"}, "g", nil, h, nil},
		{[]string{"b"}, "g", []string{"t"}, nil, nil},
		{[]string{"b"}, "g", []string{"t"}, h, []ConsumerOption{WithConcurrency(0)}},
		{[]string{"b"}, "g", []string{"t"}, h, []ConsumerOption{WithMaxPollRecords(0)}},
	} {
		if _, err := NewConsumer(tc.brokers, tc.group, tc.topics, tc.h, tc.opts...); err == nil {
			t.Errorf("NewConsumer(%v, %q, %v, handler %v, %d options) succeeded", tc.brokers, tc.group, tc.topics, tc.h != nil, len(tc.opts))
		}
	}
}

// A member that loses partitions while their handlers still run commits
// nothing for them afterwards, even when those handlers finish after the new
// owner committed further: otherwise it would move the new owner's commit
// back. The rebalance itself does not wait for the handlers.
func TestConsumerRevokedPartitionsAreNotCommittedLate(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	const topic, group, parts = "late", "g-late", 8
	ensureTopic(t, b.Addrs(), parts, topic)
	produceRound := func(round int) {
		t.Helper()
		cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		for p := range int32(parts) {
			r := &kgo.Record{Topic: topic, Partition: p, Key: fmt.Appendf(nil, "round%d-p%d", round, p)}
			if err := cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	produceRound(1) // offset 0 of every partition

	seen := newKeyCounter()
	release := make(chan struct{})
	var inFlight atomic.Int64
	first := newConsumer(t, b.Addrs(), group, topic, func(ctx context.Context, r *kgo.Record) error {
		if r.Offset == 0 { // the first round blocks until released
			inFlight.Add(1)
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
		seen.add(string(r.Key))
		return nil
	}, WithConcurrency(parts), WithMaxPollRecords(parts))
	run1 := start(first)
	waitFor(t, 20*time.Second, "the first member to hold every partition's record", func() bool { return inFlight.Load() == parts })

	produceRound(2) // offset 1 of every partition
	var secondGot atomic.Int64
	second := newConsumer(t, b.Addrs(), group, topic, func(_ context.Context, r *kgo.Record) error {
		secondGot.Add(1)
		seen.add(string(r.Key))
		return nil
	})
	run2 := start(second)

	// The rebalance completes while the first member's handlers block, and
	// the second member commits both rounds of the partitions it got.
	adm := admin(t, b.Addrs())
	var moved []int32
	waitFor(t, 20*time.Second, "the second member to commit its partitions", func() bool {
		moved = moved[:0]
		for p, at := range committed(t, adm, group, topic) {
			if at == 2 {
				moved = append(moved, p)
			}
		}
		return len(moved) > 0 && int64(len(moved))*2 == secondGot.Load()
	})
	t.Logf("partitions moved to the second member: %v", moved)

	close(release) // the first member's stragglers finish now
	waitFor(t, 20*time.Second, "both rounds handled", func() bool { return seen.unique() == 2*parts })
	time.Sleep(200 * time.Millisecond) // room for a late commit to land
	run1.stop(t, 10*time.Second)
	run2.stop(t, 10*time.Second)

	for p, at := range committed(t, adm, group, topic) {
		if at != 2 {
			t.Errorf("partition %d committed at %d, want 2 (a late commit from the old owner?)", p, at)
		}
	}
	dups := 0
	for _, n := range seen.snapshot() {
		dups += n - 1
	}
	if dups != len(moved) {
		t.Errorf("%d records handled twice, want %d: the first round of each moved partition", dups, len(moved))
	}
}
