package sqlstore

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

// doubler is a batcher whose batches double their items, recording each
// batch it runs; fail, unless nil, fails them.
type doubler struct {
	*batcher[int, int]
	mu      sync.Mutex
	batches [][]int
	fail    error
}

func newDoubler() *doubler {
	d := &doubler{}
	d.batcher = newBatcher(func(_ context.Context, items []int) ([]int, error) {
		d.mu.Lock()
		defer d.mu.Unlock()
		d.batches = append(d.batches, slices.Clone(items))
		if d.fail != nil {
			return nil, d.fail
		}
		out := make([]int, len(items))
		for i, v := range items {
			out[i] = 2 * v
		}
		return out, nil
	})
	return d
}

// waitQueued waits until n calls are queued in b.
func waitQueued[T, R any](b *batcher[T, R], n int) {
	for b.queued() < n {
		time.Sleep(time.Millisecond)
	}
}

// A call alone runs at once, as a batch of one.
func TestBatcherAlone(t *testing.T) {
	d := newDoubler()
	if got, err := d.do(t.Context(), 21); got != 42 || err != nil {
		t.Fatalf("do(21) = %d, %v; want 42", got, err)
	}
	if len(d.batches) != 1 || len(d.batches[0]) != 1 {
		t.Errorf("batches %v; want one of one item", d.batches)
	}
}

// Calls that queue while every slot is busy run together, at most
// maxBatch in one batch, and each gets its own result; a caller that goes
// away while queued gets its context's error, and its item is not run.
func TestBatcherCoalesces(t *testing.T) {
	d := newDoubler()
	release := d.hold()
	const n = maxBatch + 10
	gone, leave := context.WithCancel(t.Context())
	goneErr := make(chan error, 1)
	go func() {
		_, err := d.do(gone, 0)
		goneErr <- err
	}()
	got, errs := make([]int, n), make([]error, n)
	var wg sync.WaitGroup
	for i := 1; i < n; i++ {
		wg.Go(func() { got[i], errs[i] = d.do(t.Context(), i) })
	}
	waitQueued(d.batcher, n)
	leave()
	if err := <-goneErr; !errors.Is(err, context.Canceled) { // returned while queued
		t.Errorf("the call whose caller went away: %v; want context.Canceled", err)
	}
	release()
	wg.Wait()
	for i := 1; i < n; i++ {
		if got[i] != 2*i || errs[i] != nil {
			t.Fatalf("call %d = %d, %v; want %d", i, got[i], errs[i], 2*i)
		}
	}
	var sizes []int
	for _, b := range d.batches {
		sizes = append(sizes, len(b))
		if slices.Contains(b, 0) {
			t.Errorf("the gone call's item ran, in %v", b)
		}
	}
	if !slices.Equal(sizes, []int{maxBatch, n - 1 - maxBatch}) {
		t.Errorf("batch sizes %v; want %d then %d", sizes, maxBatch, n-1-maxBatch)
	}
}

// A batch's error is every one of its calls' error.
func TestBatcherFails(t *testing.T) {
	d := newDoubler()
	d.fail = errors.New("the database is gone")
	release := d.hold()
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Go(func() { _, errs[i] = d.do(t.Context(), i) })
	}
	waitQueued(d.batcher, len(errs))
	release()
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, d.fail) {
			t.Errorf("call %d: %v; want %v", i, err, d.fail)
		}
	}
}

// A call whose context has ended when its batch would start is not run:
// it gets the context's error, and the slot is free for the next call.
func TestBatcherContextEnded(t *testing.T) {
	d := newDoubler()
	ended, cancel := context.WithCancel(t.Context())
	cancel()
	if got, err := d.do(ended, 1); !errors.Is(err, context.Canceled) {
		t.Errorf("do with an ended context = %d, %v; want context.Canceled", got, err)
	}
	if len(d.batches) != 0 {
		t.Errorf("batches %v; want none", d.batches)
	}
	if got, err := d.do(t.Context(), 2); got != 4 || err != nil {
		t.Errorf("the next do(2) = %d, %v; want 4", got, err)
	}
}
