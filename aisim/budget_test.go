package aisim

import (
	"context"
	"errors"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Many claims of random sizes at once never hold more than the budget, by
// the budget's own accounting and by a count kept apart from it.
func TestBudgetNeverExceeded(t *testing.T) {
	const size = 1000
	b := newBudget(size)
	var held, worst atomic.Int64
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(i), 1))
			for range 50 {
				n := 1 + rng.Int64N(size)
				c, err := b.acquire(context.Background(), n)
				if err != nil {
					t.Error(err)
					return
				}
				now := held.Add(n)
				for w := worst.Load(); now > w && !worst.CompareAndSwap(w, now); w = worst.Load() {
				}
				if st := b.stats(); st.Held > size {
					t.Errorf("held %d of a budget of %d", st.Held, size)
				}
				if rng.IntN(2) == 0 { // give part back first, as a generate call does
					held.Add(-n / 2)
					c.shrink(n - n/2)
				}
				held.Add(-c.n)
				c.release()
			}
		})
	}
	wg.Wait()
	st := b.stats()
	t.Logf("peak %d of %d; %d of 3200 claims waited; %d held at most by the test's own count", st.Peak, size, st.Waits, worst.Load())
	if st.Peak > size || worst.Load() > size {
		t.Errorf("peak %d (by the test's count %d); want at most the budget, %d", st.Peak, worst.Load(), size)
	}
	if st.Held != 0 || st.Waiting != 0 {
		t.Errorf("after every claim was released: %+v, want nothing held or waiting", st)
	}
}

// A claim that does not fit waits, counted, until enough is given back:
// shrinking a claim frees its difference.
func TestBudgetWaitsForShrinkOrRelease(t *testing.T) {
	b := newBudget(100)
	first, _ := b.tryAcquire(80)
	if _, ok := b.tryAcquire(30); ok {
		t.Fatal("tryAcquire(30) succeeded with 80 of 100 held")
	}
	got := make(chan *claim)
	go func() {
		c, err := b.acquire(context.Background(), 50)
		if err != nil {
			t.Error(err)
		}
		got <- c
	}()
	waitUntil(t, func() bool { return b.stats().Waiting == 1 })
	first.shrink(60) // 60 held: still no room for 50
	if st := b.stats(); st.Held != 60 || st.Waiting != 1 {
		t.Fatalf("after shrinking to 60: %+v, want 60 held and 1 waiting", st)
	}
	first.shrink(40)
	second := <-got
	if st := b.stats(); st.Held != 90 || st.Waits != 1 || st.Waiting != 0 || st.Peak != 90 {
		t.Errorf("stats %+v, want 90 held, peak 90, 1 wait, none waiting", st)
	}
	first.release()
	first.release() // a second release gives nothing back twice
	second.release()
	if st := b.stats(); st.Held != 0 {
		t.Errorf("held %d after every release, want 0", st.Held)
	}
}

// A call given up while it waits leaves the budget as it was.
func TestBudgetWaitCanceled(t *testing.T) {
	b := newBudget(100)
	c, _ := b.tryAcquire(100)
	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error)
	go func() {
		_, err := b.acquire(ctx, 1)
		errs <- err
	}()
	waitUntil(t, func() bool { return b.stats().Waiting == 1 })
	cancel()
	if err := <-errs; !errors.Is(err, context.Canceled) {
		t.Fatalf("acquire: %v, want context.Canceled", err)
	}
	c.release()
	if st := b.stats(); st.Held != 0 || st.Waiting != 0 || st.Waits != 1 {
		t.Errorf("stats %+v, want nothing held or waiting, 1 wait", st)
	}
	if _, ok := b.tryAcquire(100); !ok {
		t.Error("the whole budget is not free after the canceled wait")
	}
}

// waitUntil polls cond for up to five seconds: it waits for a state, it
// does not time one.
func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met within 5s")
}

// Giving back a large claim collects the garbage first only when there is
// that much: a call whose buffers were reused leaves little, and a
// collection forced for nothing costs the whole process. Not parallel:
// other tests' allocations would count as garbage.
func TestBudgetCollectsOnlyGarbage(t *testing.T) {
	b := newBudget(256 << 20)
	n := 2 * b.gcAfter()
	forced := func() uint64 {
		s := []metrics.Sample{{Name: "/gc/cycles/forced:gc-cycles"}}
		metrics.Read(s)
		return s[0].Value.Uint64()
	}
	release := func() uint64 {
		c, ok := b.tryAcquire(n)
		if !ok {
			t.Fatalf("claim of %d of %d refused", n, b.size)
		}
		before := forced()
		c.release()
		return forced() - before
	}
	runtime.GC() // no garbage left
	if got := release(); got != 0 {
		t.Errorf("a claim given back with no garbage in the heap forced %d collections; want none", got)
	}
	defer debug.SetGCPercent(debug.SetGCPercent(-1)) // the garbage stays until collected on purpose
	for range n >> 20 {                              // what a call that held n bytes leaves
		garbage = make([]byte, 1<<20)
	}
	if got := release(); got != 1 {
		t.Errorf("a claim given back with %d MiB of garbage in the heap forced %d collections; want 1", n>>20, got)
	}
}

// garbage keeps the compiler from dropping the test's allocations.
var garbage []byte
