// Package heap reads what the Go heap holds and gives it back to the OS
// when a process goes idle: the garbage collector runs only as the heap
// grows, so a process that stops allocating keeps the garbage of its last
// burst, and the memory under it, until the runtime's two-minute forced
// collection and the scavenger get to it.
package heap

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// AllocatedSinceGC returns how many bytes of heap objects were allocated
// since the last collection marked the live ones: an upper bound on the
// garbage a collection now would free.
func AllocatedSinceGC() int64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64()) - int64(s[1].Value.Uint64())
}

// allocated returns the bytes allocated on the heap since the process
// started.
func allocated() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// What ReturnWhenIdle calls idle, and garbage worth returning.
const (
	// IdleAllocs is the most a process allocates in one check's period
	// and still counts as idle: its heartbeats, polls and checkpoints,
	// not a request (the slide service allocates megabytes for each).
	IdleAllocs = 4 << 20
	// MinGarbage is the least garbage worth a collection: below it, a
	// forced collection costs more than the memory it returns.
	MinGarbage = 8 << 20
)

// ReturnWhenIdle checks every period until ctx ends, and when the process
// allocated less than IdleAllocs since the last check while the heap holds
// at least MinGarbage, collects and returns the freed memory to the OS
// (debug.FreeOSMemory): what a burst left goes back once the burst is
// over. released, when not nil, is called each time.
func ReturnWhenIdle(ctx context.Context, period time.Duration, released func()) {
	t := time.NewTicker(period)
	defer t.Stop()
	c := idleCheck{last: allocated()}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !c.due(allocated(), AllocatedSinceGC()) {
			continue
		}
		debug.FreeOSMemory()
		c.last = allocated()
		if released != nil {
			released()
		}
	}
}

// idleCheck decides, check after check, when to return memory.
type idleCheck struct {
	last uint64 // bytes allocated as of the last check
}

// due reports whether to return memory now, given the bytes allocated
// since the process started and the garbage the heap holds.
func (c *idleCheck) due(allocated uint64, garbage int64) bool {
	idle := allocated-c.last < IdleAllocs
	c.last = allocated
	return idle && garbage >= MinGarbage
}
