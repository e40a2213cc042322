// Package heap reads what the Go heap holds and gives it back to the OS
// when a process goes idle: the garbage collector runs only as the heap
// grows, so a process that stops allocating keeps the garbage of its last
// burst until the runtime's two-minute forced collection; and what a
// collection frees, the scavenger returns only above the next
// collection's goal, so a process whose last collection ran just before it
// went idle keeps tens of MiB of free pages.
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

// kept returns the bytes a collection and a return to the OS now would
// give back: the garbage (see AllocatedSinceGC) and the free pages the
// heap still holds. A collection that ran by itself at the end of a burst
// leaves little garbage but tens of MiB of free pages, which Go's
// background scavenger keeps as long as they are under the next
// collection's goal.
func kept() int64 { return AllocatedSinceGC() + free() }

// free returns the bytes of the heap's free pages not returned to the OS.
func free() int64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/free:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64())
}

// allocated returns the bytes allocated on the heap since the process
// started.
func allocated() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// What ReturnWhenIdle calls idle, and memory worth returning.
const (
	// IdleAllocs is the most a process allocates in one check's period
	// and still counts as idle: its heartbeats, polls and checkpoints,
	// not a request (the slide service allocates megabytes for each).
	IdleAllocs = 4 << 20
	// MinReturn is the least memory worth returning (garbage and free
	// pages, see kept): below it, a forced collection costs more than the
	// memory it returns.
	MinReturn = 8 << 20
)

// ReturnWhenIdle checks every period until ctx ends, and when the process
// allocated less than IdleAllocs since the last check while the heap holds
// at least MinReturn of garbage and free pages, collects and returns the
// freed memory to the OS (debug.FreeOSMemory): what a burst left goes back
// once the burst is over. released, when not nil, is called each time.
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
		if !c.due(allocated(), kept()) {
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
// since the process started and what the heap keeps that could go back.
func (c *idleCheck) due(allocated uint64, kept int64) bool {
	idle := allocated-c.last < IdleAllocs
	c.last = allocated
	return idle && kept >= MinReturn
}
