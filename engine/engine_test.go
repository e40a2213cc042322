package engine

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/internal/testutil"
)

// TestConcurrencyBeyondPartitions checks that records of one partition run
// concurrently: two partitions keep 16 handlers busy, and never more.
func TestConcurrencyBeyondPartitions(t *testing.T) {
	t.Parallel()
	const topic, n = "beyond", 200
	brokers := setup(t, topic, 2, n)
	var g gauge
	var keys keySet
	e := newEngine(t, brokers, "g", topic, busyHandler(&g, &keys, 50*time.Millisecond), WithCapacity(16))
	start(t, e)
	testutil.Eventually(t, 20*time.Second, "all records handled", func() bool { return keys.len() == n })
	if peak := g.peak.Load(); peak != 16 {
		t.Errorf("peak concurrency %d, want 16 (the capacity, above the 2 partitions)", peak)
	}
	s := e.Stats()
	if s.Share != 16 || s.Limit != 16 || s.Owned != 2 || s.TotalPartitions != 2 {
		t.Errorf("stats %+v, want share = limit = 16 over 2 of 2 partitions", s)
	}
}

// TestCommitNeverPassesUnfinished blocks the handler of one offset while the
// later ones finish: the committed offset stays at it until it is released.
func TestCommitNeverPassesUnfinished(t *testing.T) {
	t.Parallel()
	const topic, n, blocked = "blocked", 30, 5
	brokers := setup(t, topic, 1, n)
	release := make(chan struct{})
	var handled atomic.Int64
	h := func(ctx context.Context, r *kgo.Record) error {
		if r.Offset == blocked {
			<-release
		}
		handled.Add(1)
		return nil
	}
	e := newEngine(t, brokers, "g", topic, h, WithCapacity(8))
	start(t, e)
	testutil.Eventually(t, 10*time.Second, "all but the blocked record handled", func() bool { return handled.Load() == n-1 })
	for range 5 { // several commit intervals
		time.Sleep(60 * time.Millisecond)
		if got := committed(t, brokers, "g", topic, 0); got > blocked {
			t.Fatalf("committed %d past the unfinished offset %d", got, blocked)
		}
	}
	if got := committed(t, brokers, "g", topic, 0); got != blocked {
		t.Errorf("committed %d, want %d (everything before the blocked record is done)", got, blocked)
	}
	close(release)
	testutil.Eventually(t, 5*time.Second, "commit at the end", func() bool { return committed(t, brokers, "g", topic, 0) == n })
}

// TestOrderByKey checks that with WithOrderByKey records of one key never
// overlap and run in offset order, while different keys overlap.
func TestOrderByKey(t *testing.T) {
	t.Parallel()
	const topic, keysN, perKey = "ordered", 4, 10
	b := setup(t, topic, 1, 0)
	produce(t, b, topic, keysN*perKey, func(i int) string { return string(rune('a' + i%keysN)) })

	var (
		mu      sync.Mutex
		running = make(map[string]bool)
		last    = make(map[string]int64)
		errs    []string
		all     gauge
		count   atomic.Int64
	)
	h := func(ctx context.Context, r *kgo.Record) error {
		k := string(r.Key)
		mu.Lock()
		if running[k] {
			errs = append(errs, "key "+k+" overlaps")
		}
		if prev, ok := last[k]; ok && prev >= r.Offset {
			errs = append(errs, "key "+k+" out of offset order")
		}
		running[k], last[k] = true, r.Offset
		mu.Unlock()
		all.inc()
		time.Sleep(10 * time.Millisecond)
		all.dec()
		mu.Lock()
		running[k] = false
		mu.Unlock()
		count.Add(1)
		return nil
	}
	e := newEngine(t, b, "g", topic, h, WithCapacity(16), WithOrderByKey())
	start(t, e)
	testutil.Eventually(t, 10*time.Second, "all records handled", func() bool { return count.Load() == keysN*perKey })
	mu.Lock()
	defer mu.Unlock()
	for _, err := range errs {
		t.Error(err)
	}
	if peak := all.peak.Load(); peak < 2 || peak > keysN {
		t.Errorf("peak concurrency %d, want between 2 and %d (one per key)", peak, keysN)
	}
}

// polledHook counts records handed out by polls, to measure the records
// fetched and not done independently of the engine's own count.
type polledHook struct{ polled atomic.Int64 }

func (h *polledHook) OnFetchRecordUnbuffered(_ *kgo.Record, polled bool) {
	if polled {
		h.polled.Add(1)
	}
}

// TestPauseAtBufferBound checks that the records polled and not finished
// never exceed WithMaxBuffered, and that fetching pauses meanwhile.
func TestPauseAtBufferBound(t *testing.T) {
	t.Parallel()
	const topic, n, maxBuffered = "bounded", 200, 6
	brokers := setup(t, topic, 4, n)
	hook := new(polledHook)
	var finished, peak atomic.Int64
	var sawPaused atomic.Bool
	var e *Engine
	h := func(ctx context.Context, r *kgo.Record) error {
		if e.Stats().Paused {
			sawPaused.Store(true)
		}
		out := hook.polled.Load() - finished.Load()
		for p := peak.Load(); out > p && !peak.CompareAndSwap(p, out); p = peak.Load() {
		}
		time.Sleep(2 * time.Millisecond)
		finished.Add(1)
		return nil
	}
	e = newEngine(t, brokers, "g", topic, h, WithCapacity(2), WithMaxBuffered(maxBuffered),
		WithClientOpts(kgo.WithHooks(hook)))
	start(t, e)
	testutil.Eventually(t, 20*time.Second, "all records handled", func() bool { return finished.Load() == n })
	if p := peak.Load(); p > maxBuffered {
		t.Errorf("peak records polled and not finished %d, want at most %d", p, maxBuffered)
	}
	if !sawPaused.Load() {
		t.Error("fetching never paused")
	}
}

// TestOverloadBackoff checks that a 429 from the downstream service halves
// the limit, and that successes bring it back to the share.
func TestOverloadBackoff(t *testing.T) {
	t.Parallel()
	const topic, n = "overload", 300
	brokers := setup(t, topic, 1, n)
	var count atomic.Int64
	h := func(ctx context.Context, r *kgo.Record) error {
		defer count.Add(1)
		time.Sleep(10 * time.Millisecond)
		if r.Offset == 0 {
			return genpipe.Errorf(genpipe.ETOOMANY, "the AI is busy")
		}
		if r.Offset == 1 {
			ReportOverload(ctx) // a handler retrying on its own reports each 429
		}
		return nil
	}
	e := newEngine(t, brokers, "g", topic, h, WithCapacity(8), WithOverloadBackoff(200*time.Millisecond, 2),
		WithOverloadTest(tooMany))
	start(t, e)
	testutil.Eventually(t, 10*time.Second, "a cut", func() bool { return e.Stats().Overloads >= 1 })
	if s := e.Stats(); s.Limit != 4 || s.Share != 8 || s.Overloads != 1 {
		t.Errorf("after a 429: limit %d share %d overloads %d, want 4, 8, 1 (two 429s within a cooldown cut once)", s.Limit, s.Share, s.Overloads)
	}
	testutil.Eventually(t, 10*time.Second, "all records handled", func() bool { return count.Load() == n })
	if s := e.Stats(); s.Limit != 8 {
		t.Errorf("after %d successes: limit %d, want the share 8", n, s.Limit)
	}
}

func tooMany(err error) bool { return genpipe.ErrorCode(err) == genpipe.ETOOMANY }

// ErrOverloaded always says overloaded; WithOverloadTest adds errors of
// other kinds.
func TestOverloadTest(t *testing.T) {
	busy := genpipe.Errorf(genpipe.ETOOMANY, "the AI is busy")
	for _, tc := range []struct {
		opts []Option
		err  error
		want bool
	}{
		{nil, errors.Join(errors.New("x"), ErrOverloaded), true},
		{nil, errors.New("x"), false},
		{nil, busy, false},
		{nil, nil, false},
		{[]Option{WithOverloadTest(tooMany)}, busy, true},
		{[]Option{WithOverloadTest(tooMany)}, ErrOverloaded, true},
		{[]Option{WithOverloadTest(tooMany)}, errors.New("x"), false},
		{[]Option{WithOverloadTest(tooMany)}, nil, false},
	} {
		cfg := defaultConfig()
		for _, o := range tc.opts {
			o(&cfg)
		}
		if got := cfg.overloaded(tc.err); got != tc.want {
			t.Errorf("with %d option(s), overloaded(%v) = %v, want %v", len(tc.opts), tc.err, got, tc.want)
		}
	}
}

// A batch that decompresses past genpipe.MaxBatchBytes (a compressed "bomb": small
// on the broker, huge inflated) is not inflated: the handler gets, in its
// place, one record without a value at the batch's last offset, marked
// with genpipe.HeaderUnread and why, and the partition goes on past it. The
// commit passes the batch once that record is done.
func TestBatchTooLargeHandedOnUnread(t *testing.T) {
	t.Parallel()
	const topic = "bomb"
	brokers := setup(t, topic, 1, 0)
	for _, v := range [][]byte{make([]byte, genpipe.MaxBatchBytes+1), []byte("after")} {
		testutil.ProduceCompressed(t, brokers, topic, "k", v)
	}
	var mu sync.Mutex
	var got []*kgo.Record
	e := newEngine(t, brokers, "bomb-group", topic, func(_ context.Context, r *kgo.Record) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, r)
		return nil
	})
	stop := start(t, e)
	testutil.Eventually(t, 30*time.Second, "two records handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) >= 2
	})
	stop()
	if off := committed(t, brokers, "bomb-group", topic, 0); off != 2 {
		t.Errorf("committed %d; want 2, past the batch and the record after it", off)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 {
		t.Fatalf("handled %d records; want 2", len(got))
	}
	unread, after := got[0], got[1]
	why := ""
	for _, h := range unread.Headers {
		if h.Key == genpipe.HeaderUnread {
			why = string(h.Value)
		}
	}
	if unread.Offset != 0 || unread.Value != nil || !strings.Contains(why, "decompresses to more than 16 MiB") {
		t.Errorf("first record: offset %d, %d bytes, why %q; want offset 0, no value, the reason", unread.Offset, len(unread.Value), why)
	}
	if after.Offset != 1 || string(after.Value) != "after" {
		t.Errorf("second record: offset %d, %q; want the record after the batch", after.Offset, after.Value)
	}
}
