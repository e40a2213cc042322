package heap

import (
	"context"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

// Memory goes back only in a period with next to no allocation, and only
// when the heap keeps enough that could go back.
func TestIdleCheckDue(t *testing.T) {
	c := idleCheck{last: 100 << 20}
	for i, step := range []struct {
		allocated uint64
		kept      int64 // garbage and free pages
		want      bool
	}{
		{200 << 20, 64 << 20, false},                 // a burst
		{300 << 20, 128 << 20, false},                // still busy
		{300<<20 + IdleAllocs - 1, 128 << 20, true},  // over: what it keeps goes back
		{300<<20 + IdleAllocs, MinReturn - 1, false}, // idle, little kept
		{300<<20 + IdleAllocs + 1<<20, MinReturn, true},
		{400 << 20, 90 << 20, false}, // busy again
	} {
		if got := c.due(step.allocated, step.kept); got != step.want {
			t.Errorf("check %d (allocated %d, kept %d): due %v, want %v", i, step.allocated, step.kept, got, step.want)
		}
	}
}

// garbage keeps the compiler from dropping the test's allocations.
var garbage []byte

// A process that stops allocating gets its heap's garbage collected and
// its free pages returned: garbage left by a burst, and free pages left by
// a collection that ran by itself just before the process went idle (the
// scavenger keeps those). Not parallel: other tests' allocations would
// count.
func TestReturnWhenIdle(t *testing.T) {
	for _, c := range []struct {
		name      string
		collected bool // Go collected after the burst, before the check
	}{{"garbage", false}, {"collected, not returned", true}} {
		t.Run(c.name, func(t *testing.T) {
			// No collection but the test's, and so no scavenging either
			// (its goal follows the collection's).
			defer debug.SetGCPercent(debug.SetGCPercent(-1))
			runtime.GC()
			debug.FreeOSMemory()
			for range 2 * MinReturn >> 20 {
				garbage = make([]byte, 1<<20)
			}
			garbage = nil
			if c.collected {
				runtime.GC()
				if n := free(); n < MinReturn {
					t.Fatalf("%d bytes free after the collection, want at least %d", n, MinReturn)
				}
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
			if got := kept(); got >= MinReturn {
				t.Errorf("%d bytes of garbage and free pages left after memory was returned; want under %d", got, MinReturn)
			}
		})
	}
}
