package loadtest

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// A request's overhead is its client-seen time less its calls' own time,
// and its parts add up to it; requests that did not end done with one call
// a stage are left out and counted by why.
func TestJudgeOverhead(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	all := []*followed{
		// sent 0, 202 at 5, check 10–510, generate 520–3520, done read 3530
		{id: "a", sent: at(0), accepted: at(5), doneAt: at(3530), final: "done"},
		{id: "b", sent: at(0), accepted: at(5), doneAt: at(600), final: "rejected"},
		{id: "c", err: errors.New("stream cut")},
		{id: "d", sent: at(0), accepted: at(5), doneAt: at(9000), final: "done"}, // a retried call
	}
	calls := map[string][]Call{
		"a": {{RequestID: "a", Stage: "check", Start: at(10), End: at(510)}, {RequestID: "a", Stage: "generate", Start: at(520), End: at(3520)}},
		"d": {{Stage: "check", Start: at(10), End: at(510)}, {Stage: "generate", Start: at(520), End: at(900)}, {Stage: "generate", Start: at(1000), End: at(4000)}},
	}
	// The first request, sent before the others, is measured on its own.
	first := &followed{id: "first", sent: at(0), accepted: at(20), doneAt: at(3600), final: "done"}
	calls["first"] = []Call{{Stage: "check", Start: at(30), End: at(530)}, {Stage: "generate", Start: at(570), End: at(3570)}}
	r := judgeOverhead(0.47, first, all, calls)
	if r.Requests != 4 || r.Measured != 1 || r.Others["rejected"] != 1 || r.Others["error"] != 1 || r.Others["more than one call a stage"] != 1 {
		t.Fatalf("counted %d of %d, others %v; want 1 of 4 and one of each reason", r.Measured, r.Requests, r.Others)
	}
	for name, got := range map[string]Spread{"overhead": r.Overhead, "intake": r.Intake, "to check": r.ToCheck, "between": r.Between, "to client": r.ToClient, "AI": r.AIMs} {
		want := map[string]float64{"overhead": 30, "intake": 5, "to check": 5, "between": 10, "to client": 10, "AI": 3500}[name]
		if got.P50 != want || got.P99 != want || got.Max != want {
			t.Errorf("%s %+v; want %v ms throughout", name, got, want)
		}
	}
	if r.First != 100 {
		t.Errorf("first request's overhead %v ms; want 100", r.First)
	}
	if len(r.Targets) != 1 || r.Targets[0].Pass != false {
		t.Errorf("targets %+v; want one, failed by 30 ms", r.Targets)
	}
	var b strings.Builder
	writeOverhead(&b, r)
	for _, want := range []string{"1 measured", "overhead (client-seen − AI)", "generative call → done read", "rejected 1",
		"the first request, sent before these and not in them: overhead 100.0 ms"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}
