//go:build race

package aisim

// raceEnabled: the race detector disables sync.Pool and changes what
// escapes to the heap, so allocations are not measured under it.
const raceEnabled = true
