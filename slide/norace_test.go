//go:build !race

package slide

const raceEnabled = false
