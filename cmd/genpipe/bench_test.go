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
func TestBenchIntake(t *testing.T) {
	out, rep := runBench(t)
	for _, want := range []string{"genpipe ", "produce-only ", "p99", "ratio genpipe / produce-only: ", "0 lost, 0 queued twice",
		"queued but never accepted: 0"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if len(rep.Runs) != 1 || rep.Runs[0].Store != "sqlite" {
		t.Fatalf("runs %+v; want one, on sqlite", rep.Runs)
	}
	checkBenchRun(t, rep, rep.Runs[0])
}

// With two stores, the API is driven on each in turn, and the report has
// both, each checked, and the second's rate over the first's.
func TestBenchIntakeTwoStores(t *testing.T) {
	pg := postgresSchema(t)
	if pg == "" {
		t.Skip("needs the test PostgreSQL")
	}
	out, rep := runBench(t, "-store", "sqlite,postgres", "-postgres-url", pg)
	for _, want := range []string{"genpipe (sqlite) ", "genpipe (postgres) ", "ratio genpipe (postgres) / produce-only: ",
		"ratio postgres / sqlite: ", "checked postgres: ", "queued but never accepted: 0"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if len(rep.Runs) != 2 || rep.Runs[0].Store != "sqlite" || rep.Runs[1].Store != "postgres" {
		t.Fatalf("runs %+v; want sqlite, then postgres", rep.Runs)
	}
	for _, run := range rep.Runs {
		checkBenchRun(t, rep, run)
	}
	if rep.StoreRatio <= 0 {
		t.Errorf("store ratio %v; want postgres's rate over sqlite's", rep.StoreRatio)
	}
}

// runBench runs `genpipe bench intake` briefly with args added, and
// returns what it printed and its JSON report. It runs the command in a
// process of its own: the embedded object store allows one per process,
// and this one has TestMain's.
func runBench(t *testing.T, args ...string) (string, benchReport) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "bench.json")
	var out, errOut bytes.Buffer
	args = append([]string{"bench", "intake", "-duration", "1s", "-conns", "4", "-images", "3", "-log-level", "warn", "-json", file}, args...)
	cmd := exec.CommandContext(t.Context(), buildGenpipe(t), args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("bench intake: %v\n%s\n%s", err, out.String(), errOut.String())
	}
	t.Logf("\n%s", out.String())
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var rep benchReport
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatal(err)
	}
	return out.String(), rep
}

// checkBenchRun fails t unless run took requests in, refused none and kept
// every one it accepted.
func checkBenchRun(t *testing.T, rep benchReport, run benchRun) {
	t.Helper()
	g, c := run.Genpipe, run.Checks
	switch {
	case g.Accepted == 0 || rep.Baseline.Accepted == 0:
		t.Errorf("%s: accepted %d by genpipe, %d by the produce-only server; want some by each", run.Store, g.Accepted, rep.Baseline.Accepted)
	case len(g.Failed) > 0:
		t.Errorf("%s: genpipe refused requests: %v", run.Store, g.Failed)
	case c.Accepted != g.Accepted || c.Stored != g.Accepted || c.Queued != g.Accepted || c.Lost+c.Duplicated+rep.Unexpected != 0:
		t.Errorf("%s: checks %+v, %d queued but never accepted; want all %d accepted stored and queued once, nothing else queued",
			run.Store, c, rep.Unexpected, g.Accepted)
	case run.Ratio <= 0 || g.Latency["p99"] <= 0 || g.Latency["p99"] > g.Latency["max"]:
		t.Errorf("%s: ratio %v, latency %v: want a ratio and ordered percentiles", run.Store, run.Ratio, g.Latency)
	}
}

func TestBenchCommandErrors(t *testing.T) {
	for _, args := range [][]string{
		{"bench"},
		{"bench", "outtake"},
		{"bench", "intake", "-store", "postgres"}, // without -postgres-url
		{"bench", "intake", "-conns", "0"},
		{"bench", "intake", "-store", "sqlite,sqlite"},
		{"bench", "intake", "-store", "sqlite,mysql"},
		{"bench", "intake", "-store", ","},
		{"bench", "intake", "-store", "sqlite,postgres", "-postgres-url", "postgres://u@127.0.0.1:1/db", "-cpu-profile", "cpu.prof"},
	} {
		var out bytes.Buffer
		if err := run(t.Context(), args, &out, &out); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}
