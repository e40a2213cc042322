//go:build race

package slide

// raceEnabled: the race detector disables sync.Pool and changes what
// escapes to the heap, so allocation bounds are not measured under it.
const raceEnabled = true
