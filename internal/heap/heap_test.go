package heap

import (
	"context"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

// Memory goes back only in a period with next to no allocation, and only
// when there is garbage worth collecting.
func TestIdleCheckDue(t *testing.T) {
	c := idleCheck{last: 100 << 20}
	for i, step := range []struct {
		allocated uint64
		garbage   int64
		want      bool
	}{
		{200 << 20, 64 << 20, false},                  // a burst
		{300 << 20, 128 << 20, false},                 // still busy
		{300<<20 + IdleAllocs - 1, 128 << 20, true},   // over: the garbage goes back
		{300<<20 + IdleAllocs, MinGarbage - 1, false}, // idle, little garbage
		{300<<20 + IdleAllocs + 1<<20, MinGarbage, true},
		{400 << 20, 90 << 20, false}, // busy again
	} {
		if got := c.due(step.allocated, step.garbage); got != step.want {
			t.Errorf("check %d (allocated %d, garbage %d): due %v, want %v", i, step.allocated, step.garbage, got, step.want)
		}
	}
}

// garbage keeps the compiler from dropping the test's allocations.
var garbage []byte

// A process that stops allocating with garbage in its heap gets it
// collected. Not parallel: other tests' allocations would count.
func TestReturnWhenIdle(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1)) // garbage stays until collected on purpose
	runtime.GC()
	for range 2 * MinGarbage >> 20 {
		garbage = make([]byte, 1<<20)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	released := make(chan struct{})
	go ReturnWhenIdle(ctx, 20*time.Millisecond, func() { close(released); cancel() })
	select {
	case <-released:
	case <-time.After(10 * time.Second):
		t.Fatal("memory not returned 10s after the allocations ended")
	}
	if got := AllocatedSinceGC(); got >= MinGarbage {
		t.Errorf("%d bytes of garbage left after memory was returned; want under %d", got, MinGarbage)
	}
}
