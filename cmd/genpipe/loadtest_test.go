//go:build unix

package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/genpipe/genpipe/loadtest"
)

// A multi-tenant scenario has streams of its own: a flag that shapes a
// single-tenant workload is refused, naming it, before anything starts.
func TestLoadtestTenantScenarioFlags(t *testing.T) {
	clearGenpipeEnv(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"loadtest", "-scenario", "weights", "-shape", "steady"}, "-shape does not apply to -scenario weights"},
		{[]string{"loadtest", "-scenario", "noisy-neighbor", "-rate", "5"}, "-rate does not apply"},
		{[]string{"loadtest", "-scenario", "priority", "-burst", "5"}, "-burst does not apply"},
		{[]string{"loadtest", "-scenario", "fairness"}, "unknown -scenario \"fairness\" (article, few-partitions, noisy-neighbor, priority, weights)"},
	} {
		err := run(t.Context(), c.args, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("genpipe %s = %v; want an error with %q", strings.Join(c.args, " "), err, c.want)
		}
	}
}

// `genpipe loadtest -scenario weights` runs the genpipe profile alone on
// the article's system, with the backlog -requests says, and reports each
// tenant with the targets' lines, in the table, the JSON and the HTML.
func TestLoadtestTenantScenario(t *testing.T) {
	clearGenpipeEnv(t)
	dir := t.TempDir()
	var out bytes.Buffer
	err := run(t.Context(), []string{"loadtest", "-scenario", "weights", "-requests", "128", "-time-scale", "0.02",
		"-json", filepath.Join(dir, "r.json"), "-out", dir}, &out, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", out.String())
	for _, want := range []string{"scenario weights on article", "per tenant (weights)", "a share while both wait", "b share while both wait"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	var rep loadtest.Report
	b, err := os.ReadFile(filepath.Join(dir, "r.json"))
	if err == nil {
		err = json.Unmarshal(b, &rep)
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 1 || rep.Results[0].Profile != loadtest.ProfileGenpipe || rep.Workload != "weights" ||
		len(rep.Results[0].Tenants) != 2 || rep.Results[0].Requests != 128 {
		t.Errorf("report %+v", rep)
	}
	for _, f := range []string{"report.html", "tenants.png", "tenants.svg"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
}

// `genpipe loadtest -scenario overhead` follows every request of a light
// load over its event stream through a genpipe up of its own, and measures
// what genpipe added to the AIs' own time, in the table and the JSON.
func TestLoadtestOverheadScenario(t *testing.T) {
	if testing.Short() {
		t.Skip("starts genpipe up")
	}
	// Its own process: the tests' up holds this one's embedded object store.
	dir := t.TempDir()
	cmd := exec.CommandContext(t.Context(), buildGenpipe(t), "loadtest", "-scenario", "overhead", "-time-scale", "0.25", "-duration", "20s",
		"-json", filepath.Join(dir, "r.json"))
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr, cmd.Dir = &out, &stderr, dir
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	t.Logf("\n%s", out.String())
	var rep loadtest.LifecycleReport
	b, err := os.ReadFile(filepath.Join(dir, "r.json"))
	if err == nil {
		err = json.Unmarshal(b, &rep)
	}
	if err != nil {
		t.Fatal(err)
	}
	o := rep.Overhead
	if o == nil || rep.Lifecycle != nil || rep.Step != nil {
		t.Fatalf("report %+v; want the overhead scenario alone", rep)
	}
	// 20 s at 0.47 × 8/3 requests a second, every one done with a call a
	// stage, none shorter than the AIs' latencies (125 ms + 750 ms scaled).
	if o.Requests != 25 || o.Measured != o.Requests || o.AIMs.P50 < 875 || o.Overhead.P50 <= 0 {
		t.Errorf("overhead %+v; want 25 requests measured, calls of at least 875 ms", o)
	}
	if !strings.Contains(out.String(), "client-seen overhead over the AIs' time") {
		t.Errorf("output lacks the target's line:\n%s", out.String())
	}
}
