package sqlstore

import (
	"testing"
	"time"
)

func TestCheckpointDue(t *testing.T) {
	for _, c := range []struct {
		pages  int
		waited time.Duration
		due    bool
	}{
		{0, 0, false},
		{0, time.Hour, false}, // nothing written: nothing to copy
		{1, time.Second, false},
		{checkpointPages - 1, checkpointMaxWait - time.Second, false},
		{checkpointPages, 0, true},
		{1, checkpointMaxWait, true},
	} {
		if got := checkpointDue(c.pages, c.waited); got != c.due {
			t.Errorf("checkpointDue(%d pages, waited %v) = %v; want %v", c.pages, c.waited, got, c.due)
		}
	}
}
