package aisim

import (
	"context"
	"runtime"
	"sync"

	"golang.org/x/sync/semaphore"

	"github.com/genpipe/genpipe/internal/heap"
)

// MemoryStats account for a service's memory budget (WithMemoryBudget).
// GET /stats serves them as "memory".
type MemoryStats struct {
	// Budget is how many bytes the calls may hold at once for images.
	Budget int64 `json:"budget"`
	// Held is how many bytes calls hold now.
	Held int64 `json:"held"`
	// Peak is the most bytes ever held at once; never more than Budget.
	Peak int64 `json:"peak"`
	// Waits is how many calls had to wait for memory, holding their slot.
	Waits int64 `json:"waits"`
	// Waiting is how many calls wait for memory now.
	Waiting int `json:"waiting"`
	// Refused is how many images were refused from their header alone:
	// over WithMaxDecodedBytes, or needing more than the whole budget.
	Refused int64 `json:"refused"`
	// The slide renders of the generate service (WithRenders): how many
	// may run at once, run now, ran at most at once, and how many calls
	// waited for a turn.
	renderStats
}

// budget bounds the memory a service's calls hold at once for images: a
// call claims what its image will cost, worked out from the header, before
// decoding it, and gives it back as it is done with each part. A call that
// finds too little memory free waits (FIFO, so a large image is not passed
// over forever by small ones); it keeps its slot meanwhile, so callers see
// the same capacity and 429s as before.
type budget struct {
	sem  *semaphore.Weighted
	size int64

	mu sync.Mutex
	st MemoryStats
}

func newBudget(size int64) *budget {
	return &budget{sem: semaphore.NewWeighted(size), size: size, st: MemoryStats{Budget: size}}
}

// gcAfter is the smallest release that runs the garbage collector (see
// claim.shrink): an eighth of the budget, and at least 16 MiB, below which
// collecting costs more than it saves.
func (b *budget) gcAfter() int64 { return max(b.size/8, 16<<20) }

// claim is memory held by one call.
type claim struct {
	b *budget
	n int64
}

// acquire claims n bytes, waiting until they are free or ctx is done. n
// must be at most the budget.
func (b *budget) acquire(ctx context.Context, n int64) (*claim, error) {
	if b.sem.TryAcquire(n) {
		return b.took(n), nil
	}
	b.count(func(st *MemoryStats) { st.Waits++; st.Waiting++ })
	err := b.sem.Acquire(ctx, n)
	b.count(func(st *MemoryStats) { st.Waiting-- })
	if err != nil {
		return nil, err
	}
	return b.took(n), nil
}

// tryAcquire claims n bytes if they are free now.
func (b *budget) tryAcquire(n int64) (*claim, bool) {
	if !b.sem.TryAcquire(n) {
		return nil, false
	}
	return b.took(n), true
}

func (b *budget) took(n int64) *claim {
	b.count(func(st *MemoryStats) {
		st.Held += n
		st.Peak = max(st.Peak, st.Held)
	})
	return &claim{b: b, n: n}
}

func (b *budget) refused() { b.count(func(st *MemoryStats) { st.Refused++ }) }

func (b *budget) count(f func(*MemoryStats)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f(&b.st)
}

func (b *budget) stats() MemoryStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.st
}

// shrink gives back all but n bytes of the claim (nothing if it holds n or
// less). Giving back a large part runs the garbage collector first, when
// the heap holds that much garbage: what the call held is garbage by then,
// and Go would otherwise collect it only once the heap had doubled, so a
// process decoding images hundreds of MiB large would grow to twice its
// budget before reusing any of it. A call whose buffers were reused (the
// renders' canvases are) leaves little, and a collection forced for
// nothing takes milliseconds of every CPU from the rest of the process:
// genpipe up runs the pipeline beside the simulated AIs.
func (c *claim) shrink(n int64) {
	if c == nil || n >= c.n {
		return
	}
	freed := c.n - n
	if gcAfter := c.b.gcAfter(); freed >= gcAfter && heap.AllocatedSinceGC() >= gcAfter {
		runtime.GC()
	}
	c.n = n
	c.b.count(func(st *MemoryStats) { st.Held -= freed })
	c.b.sem.Release(freed)
}

// release gives back the whole claim. It may be called more than once.
func (c *claim) release() { c.shrink(0) }
