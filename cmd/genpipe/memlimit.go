package main

import (
	"context"
	"log/slog"
	"os"
	"runtime/debug"
	"time"

	"github.com/genpipe/genpipe/internal/heap"
)

// defaultMemoryLimit is the default of up's -memory-limit: a soft limit on
// the Go heap and runtime that keeps a laptop's `genpipe up` near 300 MB
// through bursts: Go collects sooner as the heap nears it, and its
// scavenger returns freed memory to the OS to stay under it. Below the
// limit it returns little; what a burst leaves is given back once up is
// idle (see idleCheckEvery).
const defaultMemoryLimit = 256 << 20

// idleCheckEvery is how often up looks whether it went idle, to give back
// what the last burst left (see heap.ReturnWhenIdle): the soft limit
// returns memory only near it, and Go collects only as the heap grows, so
// without it an idle up keeps whatever garbage its last burst left, tens
// of MiB more or less from one burst to the next.
const idleCheckEvery = 5 * time.Second

func registerMemoryLimit(f *flags, p *int64) {
	f.Int64(p, "memory-limit", "GENPIPE_MEMORY_LIMIT", defaultMemoryLimit,
		"soft limit in bytes on the process's Go memory (debug.SetMemoryLimit): the garbage collector works harder near it and "+
			"freed memory goes back to the OS; it is not a cap (larger images may go over, collected more often). "+
			"0 leaves Go's default; the GOMEMLIMIT environment variable, when set, wins", atLeast(int64(0)))
}

// applyMemoryLimit sets the soft memory limit to n bytes, unless n is 0 or
// GOMEMLIMIT is set (the runtime has applied that already).
func applyMemoryLimit(n int64, log *slog.Logger) {
	if n == 0 || os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	debug.SetMemoryLimit(n)
	log.Debug("soft memory limit set", "bytes", n)
}

// returnMemoryWhenIdle gives the heap's garbage back to the OS whenever up
// goes idle, until ctx ends.
func returnMemoryWhenIdle(ctx context.Context, log *slog.Logger) {
	go heap.ReturnWhenIdle(ctx, idleCheckEvery, func() { log.Debug("idle: memory returned to the OS") })
}
