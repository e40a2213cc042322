package genpipe_test

import (
	"testing"
	"time"

	"github.com/genpipe/genpipe"
)

// Predict's arithmetic on loads the test sets: tasks ahead take the slots
// in the order they free, a running task frees a service after it was
// taken (now when overdue), later stages add what is ahead there and what
// flows in from before, each after a transit.
func TestPredict(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	sec := func(s float64) time.Time { return now.Add(time.Duration(s * float64(time.Second))) }
	gen := genpipe.StageLoad{Stage: genpipe.StageGenerate, Now: now, Queued: true, Waiting: 10, Capacity: 4, Service: 2 * time.Second,
		// Taken 1.5, 0.5, 1 and 3 s ago: free in 0.5, 1.5, 1 s and now.
		RunningSince: []time.Time{sec(-1.5), sec(-0.5), sec(-1), sec(-3)}}
	for k, want := range map[int]float64{0: 0, 1: 0.5, 2: 1, 3: 1.5, 4: 2, 5: 2.5, 9: 4.5} {
		gen.Ahead = k
		e, ok, err := genpipe.Predict([]genpipe.StageLoad{gen}, time.Time{})
		if err != nil || !ok || !e.StartAt.Equal(sec(want)) || !e.LastStartAt.Equal(e.StartAt) || !e.DoneAt.Equal(sec(want+2)) {
			t.Errorf("%d ahead: %+v, %v, %v; want a start in %gs, done 2 s later", k, e, ok, err, want)
		}
	}
	// Nothing waits and slots are free: a new task starts at once, after
	// its transit.
	idle := genpipe.StageLoad{Stage: genpipe.StageCheck, Now: now, Capacity: 4, Service: 500 * time.Millisecond, Transit: 100 * time.Millisecond}
	e, _, _ := genpipe.Predict([]genpipe.StageLoad{idle}, time.Time{})
	if !e.StartAt.Equal(sec(0.1)) {
		t.Errorf("idle stage: start %v; want after the transit, in 0.1 s", e.StartAt)
	}
	// A new request: its check at once, then behind the 6 waiting
	// generate tasks and the 2 ahead of it or running at the check.
	check := idle
	check.Ahead, check.RunningSince = 1, []time.Time{sec(-0.2)}
	gen.Queued, gen.Ahead, gen.Transit = false, 6, 300*time.Millisecond
	e, ok, _ := genpipe.Predict([]genpipe.StageLoad{check, gen}, time.Time{})
	if !ok || e.Stage != genpipe.StageCheck || !e.StartAt.Equal(sec(0.1)) || !e.LastStartAt.Equal(sec(4)) || !e.DoneAt.Equal(sec(6)) {
		t.Errorf("new request: %+v; want its check in 0.1 s and its generation behind 8 tasks on 4 slots, in 4 s", e)
	}
	// The call starts a start lag after its take; it ends a service after
	// the take.
	gen.Queued, gen.Ahead, gen.Transit, gen.StartLag = true, 4, 0, 250*time.Millisecond
	e, _, _ = genpipe.Predict([]genpipe.StageLoad{gen}, time.Time{})
	if !e.StartAt.Equal(sec(2.25)) || !e.DoneAt.Equal(sec(4)) {
		t.Errorf("with a start lag: %+v; want the call in 2.25 s, done in 4 s", e)
	}
	// Nothing measured yet: no estimate.
	if _, ok, _ := genpipe.Predict([]genpipe.StageLoad{{Stage: genpipe.StageCheck, Now: now}}, time.Time{}); ok {
		t.Errorf("a stage with no measured service time gave an estimate")
	}
}
