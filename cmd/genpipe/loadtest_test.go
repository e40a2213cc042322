//go:build unix

package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
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
