// Package span holds the arithmetic of time intervals that the scheduler's
// statistics and the load test's measurements share.
package span

import "time"

// Later returns the later of a and b.
func Later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// Earlier returns the earlier of a and b.
func Earlier(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// Overlap returns how much of [start, end) lies within [from, to); 0 when
// they do not meet.
func Overlap(start, end, from, to time.Time) time.Duration {
	s, e := Later(start, from), Earlier(end, to)
	if !e.After(s) {
		return 0
	}
	return e.Sub(s)
}
