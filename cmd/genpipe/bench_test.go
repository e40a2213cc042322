package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// `genpipe bench intake` drives the API and the produce-only server, prints
// both and their ratio, and every request the API accepted is stored,
// visible and queued exactly once. The figures themselves are not judged
// here (a shared machine); the run only has to take requests in.
//
// It runs the command in a process of its own: the embedded object store
// allows one per process, and this one has TestMain's.
func TestBenchIntake(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "bench.json")
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(t.Context(), buildGenpipe(t), "bench", "intake", "-duration", "1s", "-conns", "4", "-images", "3",
		"-log-level", "warn", "-json", file)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("bench intake: %v\n%s\n%s", err, out.String(), errOut.String())
	}
	t.Logf("\n%s", out.String())
	for _, want := range []string{"genpipe ", "produce-only ", "p99", "ratio genpipe / produce-only: ", "0 lost, 0 queued twice"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var rep benchReport
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatal(err)
	}
	g, c := rep.Genpipe, rep.Checks
	switch {
	case g.Accepted == 0 || rep.Baseline.Accepted == 0:
		t.Errorf("accepted %d by genpipe, %d by the produce-only server; want some by each", g.Accepted, rep.Baseline.Accepted)
	case len(g.Failed) > 0:
		t.Errorf("genpipe refused requests: %v", g.Failed)
	case c.Accepted != g.Accepted || c.Stored != g.Accepted || c.Queued != g.Accepted || c.Lost+c.Duplicated+c.Unexpected != 0:
		t.Errorf("checks %+v; want all %d accepted stored and queued once, nothing else queued", c, g.Accepted)
	case rep.Ratio <= 0 || g.Latency["p99"] <= 0 || g.Latency["p99"] > g.Latency["max"]:
		t.Errorf("ratio %v, latency %v: want a ratio and ordered percentiles", rep.Ratio, g.Latency)
	}
}

func TestBenchCommandErrors(t *testing.T) {
	for _, args := range [][]string{
		{"bench"},
		{"bench", "outtake"},
		{"bench", "intake", "-store", "postgres"}, // without -postgres-url
		{"bench", "intake", "-conns", "0"},
	} {
		var out bytes.Buffer
		if err := run(t.Context(), args, &out, &out); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}
