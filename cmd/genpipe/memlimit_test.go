package main

import (
	"io"
	"log/slog"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/genpipe/genpipe/broker"
)

// up sets a soft memory limit by default, -memory-limit 0 leaves Go's, and
// GOMEMLIMIT wins over both.
func TestUpMemoryLimit(t *testing.T) {
	old := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })
	discard := slog.New(slog.DiscardHandler)
	for _, tc := range []struct {
		args     []string
		gomemlim string
		want     int64
	}{
		{nil, "", defaultMemoryLimit},
		{[]string{"--memory-limit", "100000000"}, "", 100000000},
		{[]string{"--memory-limit", "0"}, "", old},
		{nil, "1GiB", old}, // the runtime applied GOMEMLIMIT at start
	} {
		debug.SetMemoryLimit(old)
		t.Setenv("GOMEMLIMIT", tc.gomemlim)
		var cfg upConfig
		if _, err := parse(&cfg, "up", tc.args, io.Discard); err != nil {
			t.Fatal(err)
		}
		applyMemoryLimit(cfg.MemoryLimit, discard)
		if got := debug.SetMemoryLimit(-1); got != tc.want {
			t.Errorf("up %v with GOMEMLIMIT=%q: memory limit %d, want %d", tc.args, tc.gomemlim, got, tc.want)
		}
	}
}

// broker and up bound the embedded broker's retention by default; a zero
// bound is refused, naming the flag.
func TestRetentionFlags(t *testing.T) {
	var b brokerConfig
	if _, err := parse(&b, "broker", nil, io.Discard); err != nil {
		t.Fatal(err)
	}
	if b.Retention != (retentionSettings{Age: broker.DefaultRetention, Bytes: broker.DefaultRetentionBytes}) {
		t.Errorf("broker's retention %+v; want the broker package's defaults, read records dropped", b.Retention)
	}
	for _, args := range [][]string{{"--retention", "0s"}, {"--retention-bytes", "0"}} {
		var u upConfig
		_, err := parse(&u, "up", args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), strings.TrimPrefix(args[0], "--")) {
			t.Errorf("up %v: %v; want an error naming the flag", args, err)
		}
	}
}
