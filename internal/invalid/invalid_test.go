package invalid

import (
	"strings"
	"testing"
)

func TestList(t *testing.T) {
	l := New("part")
	if l.Err() != nil {
		t.Fatal("an empty list has an error")
	}
	l.If(false, "fine %d", 1)
	l.If(true, "capacity %d: want at least 1", 0)
	l.If(true, "lease %v: want more than 0", "0s")
	err := l.Err()
	if err == nil || err.Error() != "part: capacity 0: want at least 1\npart: lease 0s: want more than 0" {
		t.Fatalf("Err = %q", err)
	}
	if strings.Contains(err.Error(), "fine") {
		t.Fatal("a good option is reported")
	}
}
