package span_test

import (
	"testing"
	"time"

	"github.com/genpipe/genpipe/internal/span"
)

func TestOverlap(t *testing.T) {
	at := func(s int) time.Time { return time.Unix(int64(s), 0) }
	for _, c := range []struct {
		start, end, from, to int
		want                 time.Duration
	}{
		{0, 10, 2, 5, 3 * time.Second}, // window inside
		{3, 4, 0, 10, time.Second},     // interval inside
		{0, 5, 3, 10, 2 * time.Second}, // overlapping the start
		{0, 3, 3, 10, 0},               // touching
		{5, 8, 0, 2, 0},                // apart
		{8, 5, 0, 10, 0},               // empty interval
	} {
		if got := span.Overlap(at(c.start), at(c.end), at(c.from), at(c.to)); got != c.want {
			t.Errorf("Overlap([%d,%d), [%d,%d)) = %v; want %v", c.start, c.end, c.from, c.to, got, c.want)
		}
	}
	if a, b := at(1), at(2); span.Later(a, b) != b || span.Later(b, a) != b || span.Earlier(a, b) != a || span.Earlier(b, a) != a {
		t.Error("Later/Earlier pick the wrong time")
	}
}
