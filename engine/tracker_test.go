package engine

import (
	"math/rand/v2"
	"testing"
)

// TestOffsetTrackerRandomOrders starts a run of offsets with random gaps,
// finishes them in random orders interleaved with more starts, and checks
// after every step that the committable offset never passes an unfinished
// record and is the end once all are done.
func TestOffsetTrackerRandomOrders(t *testing.T) {
	for seed := range uint64(3000) {
		rng := rand.New(rand.NewPCG(seed, 42))
		checkRandomOrder(t, rng, seed)
		if t.Failed() {
			return
		}
	}
}

func checkRandomOrder(t *testing.T, rng *rand.Rand, seed uint64) {
	t.Helper()
	var tr OffsetTracker
	n := 1 + rng.IntN(200)
	next := int64(rng.IntN(1000))
	var started, unfinished []int64
	done := make(map[int64]bool)
	for len(started) < n || len(unfinished) > 0 {
		// Start the next offset or finish a random unfinished one.
		if len(started) < n && (len(unfinished) == 0 || rng.IntN(3) == 0) {
			if err := tr.Start(next); err != nil {
				t.Fatalf("seed %d: start %d: %v", seed, next, err)
			}
			started = append(started, next)
			unfinished = append(unfinished, next)
			next += 1 + int64(rng.IntN(3)/2*rng.IntN(5)) // a gap now and then
		} else {
			i := rng.IntN(len(unfinished))
			off := unfinished[i]
			unfinished[i] = unfinished[len(unfinished)-1]
			unfinished = unfinished[:len(unfinished)-1]
			if err := tr.Done(off); err != nil {
				t.Fatalf("seed %d: done %d: %v", seed, off, err)
			}
			done[off] = true
		}
		got, ok := tr.Committable()
		if !ok {
			t.Fatalf("seed %d: nothing committable after starting %v", seed, started)
		}
		for _, off := range started {
			if off < got && !done[off] {
				t.Fatalf("seed %d: committable %d passes unfinished %d", seed, got, off)
			}
		}
		if want := firstUnfinished(started, done); got != want {
			t.Fatalf("seed %d: committable %d, want %d", seed, got, want)
		}
		if tr.Pending() != len(unfinished) {
			t.Fatalf("seed %d: pending %d, want %d", seed, tr.Pending(), len(unfinished))
		}
	}
	if got, _ := tr.Committable(); got != started[len(started)-1]+1 {
		t.Fatalf("seed %d: all done, committable %d, want end %d", seed, got, started[len(started)-1]+1)
	}
}

// firstUnfinished is the reference model: the oldest started offset not
// done, or the end.
func firstUnfinished(started []int64, done map[int64]bool) int64 {
	for _, off := range started {
		if !done[off] {
			return off
		}
	}
	return started[len(started)-1] + 1
}

func TestOffsetTrackerRejectsMisuse(t *testing.T) {
	var tr OffsetTracker
	if _, ok := tr.Committable(); ok {
		t.Error("committable before any start")
	}
	if err := tr.Done(5); err == nil {
		t.Error("done of an offset never started: no error")
	}
	if err := tr.Start(5); err != nil {
		t.Fatal(err)
	}
	for _, off := range []int64{5, 4, -1} {
		if err := tr.Start(off); err == nil {
			t.Errorf("start %d after 5: no error", off)
		}
	}
	if err := tr.Done(5); err != nil {
		t.Fatal(err)
	}
	if err := tr.Done(5); err == nil {
		t.Error("done twice: no error")
	}
	if got, _ := tr.Committable(); got != 6 {
		t.Errorf("committable %d, want 6", got)
	}
}

// TestOffsetTrackerLongRunBoundedMemory keeps a window of 100 unfinished
// records over a million offsets and checks that the tracker's memory
// follows the window, not the history.
func TestOffsetTrackerLongRunBoundedMemory(t *testing.T) {
	var tr OffsetTracker
	const window = 100
	for off := range int64(1_000_000) {
		if err := tr.Start(off); err != nil {
			t.Fatal(err)
		}
		if off >= window {
			if err := tr.Done(off - window); err != nil {
				t.Fatal(err)
			}
		}
	}
	if c := cap(tr.offs); c > 8*window {
		t.Errorf("capacity %d after a million offsets with a window of %d", c, window)
	}
	if got, _ := tr.Committable(); got != 1_000_000-window {
		t.Errorf("committable %d, want %d", got, 1_000_000-window)
	}
}

// BenchmarkOffsetTracker measures one Start and one Done, with 64 records
// in flight finishing in a shuffled order.
func BenchmarkOffsetTracker(b *testing.B) {
	const window = 64
	rng := rand.New(rand.NewPCG(1, 2))
	perm := rng.Perm(window)
	var tr OffsetTracker
	for i := range int64(window) {
		_ = tr.Start(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range int64(b.N) {
		// Finish one of the window's records, chosen in a shuffled
		// order per block, then start the next.
		block := i / window * window
		if err := tr.Done(block + int64(perm[i%window])); err != nil {
			b.Fatal(err)
		}
		if i%window == window-1 {
			for j := range int64(window) {
				_ = tr.Start(block + window + j)
			}
		}
		_, _ = tr.Committable()
	}
}
