package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDoctorCommand(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"doctor"}, &out, &out)
	if !errors.Is(err, errTrapsFound) || !strings.Contains(out.String(), "[poll-interval]") || !strings.Contains(out.String(), "[keyless-batching]") {
		t.Fatalf("doctor on Java defaults: err %v, output:\n%s", err, out.String())
	}

	props := filepath.Join(t.TempDir(), "client.properties")
	if err := os.WriteFile(props, []byte("max.poll.records=64\nenable.auto.commit=false\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	args := []string{"doctor", "-config", props, "-keyless=false", "-partitions", "8", "-consumers", "1", "-in-flight", "64"}
	if err := run(context.Background(), args, &out, &out); err != nil || !strings.Contains(out.String(), "no traps found") {
		t.Fatalf("doctor on genpipe's settings: err %v, output:\n%s", err, out.String())
	}

	// Against the running system: genpipe keys every event.
	out.Reset()
	args = []string{"doctor", "-brokers", strings.Join(sys.Brokers, ","), "-topic", "genpipe.requests", "-group", "genpipe-check",
		"-config", props, "-keyless=false", "-in-flight", "8", "-ai-capacity", "8"}
	err = run(context.Background(), args, &out, &out)
	if strings.Contains(out.String(), "keyless") || strings.Contains(out.String(), "partition-skew") || !strings.Contains(out.String(), "live: topic genpipe.requests") {
		t.Fatalf("doctor on the live system: err %v, output:\n%s", err, out.String())
	}
}
