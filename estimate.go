package genpipe

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// Predicted waits. While a request waits, the API tells its user when its
// next AI call should start and its last should end, and may refuse at
// admission a request whose calls could not start by its StartBy. The
// prediction follows the scheduler: the work ahead of the request in its
// stage's schedule order (priority, then the fair-share tag, see
// TaskQueue), the stage's running tasks, and the stage's service time as
// measured from the tasks it finished, never as configured.

// ESTARTTOOLATE is the error code (429) of a request refused at admission
// because its AI calls are predicted to start after its StartBy, or after
// the server's bound on waits.
const ESTARTTOOLATE = "start_too_late"

// Pipeline is the order of the AI stages every request goes through.
var Pipeline = []Stage{StageCheck, StageGenerate}

// A Place is where a request stands, or would stand, in a stage's schedule:
// its own task there when RequestID has one, else where a new task of Share
// would be placed now (its tag the larger of the level's virtual time and
// the tenant's finish tag).
type Place struct {
	RequestID string // "" for a request not submitted yet
	Share     Share
}

// StageLoad is a stage's state as seen from one Place, read in one
// snapshot of the status database.
type StageLoad struct {
	Stage Stage
	Now   time.Time // the database's clock when read: RunningSince is on it
	// Queued reports whether the place's request has a task at the stage,
	// and Running whether that task runs; Done whether its call there
	// succeeded (its claim is done): it has gone past the stage.
	Queued, Running, Done bool
	// DoneAt is when its call there succeeded, when Done: its way to the
	// next stage started then.
	DoneAt time.Time
	// Ahead is how many waiting tasks start before the place in schedule
	// order; Waiting how many wait in all.
	Ahead, Waiting int
	// RunningSince holds when each running task of the stage was taken.
	RunningSince []time.Time
	// Capacity is the stage's capacity as its takers last passed it; 0
	// before any finished.
	Capacity int
	// Service is the stage's measured time from a take to its finish, a
	// mean that favours recent tasks; 0 before any finished.
	Service time.Duration
	// StartLag is the stage's measured time from a take to its AI call
	// starting (the worker publishes the request's status and claims the
	// call first): the median over its running tasks; 0 with none.
	StartLag time.Duration
	// Transit is the stage's measured time from a request leaving the
	// stage before (its 202, for the first) to its task being queued
	// here: through Kafka and the stage's ingest. The median over the
	// stage's newest tasks; 0 when it has none.
	Transit time.Duration
}

// PreviousStage is the stage of Pipeline before s; ok is false for the
// first.
func PreviousStage(s Stage) (prev Stage, ok bool) {
	i := slices.Index(Pipeline, s)
	if i <= 0 {
		return "", false
	}
	return Pipeline[i-1], true
}

// StageLoader reads a stage's load as seen from a place in its schedule.
// Package sqlstore implements it (storetest.RunEstimate).
type StageLoader interface {
	StageLoad(ctx context.Context, stage Stage, p Place) (StageLoad, error)
}

// Estimate is when a waiting request's AI calls are predicted to run.
type Estimate struct {
	Stage   Stage     // the stage of its next call
	StartAt time.Time // when its next call starts
	// LastStartAt is when its last call starts: a StartBy bounds every
	// call's start, so it must be no later than that.
	LastStartAt time.Time
	DoneAt      time.Time // when its last call ends
}

// Estimator predicts a request's waits. Estimate returns ok=false when the
// request does not wait (it runs or ended) or nothing was measured yet to
// predict from.
type Estimator interface {
	Estimate(ctx context.Context, r *Request) (e Estimate, ok bool, err error)
}

// QueueEstimator is the Estimator on the stages' scheduling queues.
type QueueEstimator struct {
	loads StageLoader
}

// NewQueueEstimator returns the Estimator that reads the stages' loads
// from loads.
func NewQueueEstimator(loads StageLoader) *QueueEstimator { return &QueueEstimator{loads: loads} }

// Estimate predicts r's calls; r.ID may name a request not submitted yet,
// which is placed as a new request of r.Share. See Estimator.
//
// The request's next call is at the first stage of Pipeline where it has a
// waiting task, or, with none, at the first stage whose call it has not
// made (its claim there is not done): it is on its way there through
// Kafka. Claims, not the request's status, say so: the status is
// recorded by the notifier, later. Each later stage is entered as a new task of its share
// behind what waits there now and behind everything ahead of it or running
// in the stages before, which reaches that stage first; its call starts no
// sooner than the previous one ends.
func (q *QueueEstimator) Estimate(ctx context.Context, r *Request) (Estimate, bool, error) {
	place := Place{RequestID: r.ID, Share: r.Share.Normalized()}
	loads := make([]StageLoad, len(Pipeline))
	first := -1
	for i, stage := range Pipeline {
		l, err := q.loads.StageLoad(ctx, stage, place)
		if err != nil {
			return Estimate{}, false, fmt.Errorf("estimate request %s: %w", r.ID, err)
		}
		if l.Running {
			return Estimate{}, false, nil
		}
		if l.Queued && first < 0 {
			first = i
		}
		loads[i] = l // where it is not queued, Ahead counts from a new task's tag
	}
	if first < 0 {
		first = slices.IndexFunc(loads, func(l StageLoad) bool { return !l.Done })
	}
	if first < 0 {
		return Estimate{}, false, nil // every call made
	}
	// On its way to its next stage since its 202, or since its call at
	// the stage before succeeded.
	left := r.CreatedAt
	if first > 0 {
		left = loads[first-1].DoneAt
	}
	return Predict(loads[first:], left)
}

// Predict chains the loads of the stages a request still goes through,
// its next stage first, into an Estimate; ok is false when a stage has no
// measured service time yet. When the request is not queued at its next
// stage, left is when it set out for it (zero: now): it starts no sooner
// than a transit after that, and at every later stage no sooner than a
// transit after its call at the stage before ends.
func Predict(loads []StageLoad, left time.Time) (Estimate, bool, error) {
	if len(loads) == 0 {
		return Estimate{}, false, nil
	}
	var e Estimate
	carried := 0 // tasks ahead in or running at earlier stages: they arrive first
	var arrive time.Time
	if first := loads[0]; !first.Queued {
		if left.IsZero() || left.After(first.Now) {
			left = first.Now
		}
		arrive = left.Add(first.Transit)
	}
	for i, l := range loads {
		if l.Service <= 0 {
			return Estimate{}, false, nil
		}
		take := l.slotStart(l.Ahead + carried)
		if take.Before(arrive) {
			take = arrive
		}
		start := take.Add(l.StartLag)
		if i == 0 {
			e.Stage, e.StartAt = l.Stage, start
		}
		e.LastStartAt = start
		e.DoneAt = take.Add(l.Service) // the service counts from the take
		if i+1 < len(loads) {
			arrive = e.DoneAt.Add(loads[i+1].Transit)
		}
		carried += l.Ahead + len(l.RunningSince)
	}
	return e, true, nil
}

// slotStart is when the task with k tasks ahead of it starts: the stage's
// slots each run one task at a time for the measured service time, a
// running one until its expected end (now, when overdue), a free one from
// now. Tasks ahead take the slots in the order they free, so the k-th
// (from 0) takes slot k mod P after k div P rounds of service.
//
// P, the slots, is the stage's capacity as its takers pass it; before
// they passed one, the tasks running. Not the tasks running when work
// waits, though the takers fill every slot they may: that count is a
// snapshot, and one taken between a finish and the next take would move
// every prediction deep in the queue by a factor (the lab's step scenario
// measured predictions up to three times too long with it).
func (l StageLoad) slotStart(k int) time.Time {
	running := len(l.RunningSince)
	slots := max(running, 1)
	if l.Capacity > 0 {
		slots = l.Capacity
	}
	free := make([]time.Time, 0, slots)
	for _, since := range l.RunningSince {
		end := since.Add(l.Service)
		if end.Before(l.Now) {
			end = l.Now
		}
		free = append(free, end)
	}
	for len(free) < slots {
		free = append(free, l.Now)
	}
	slices.SortFunc(free, func(a, b time.Time) int { return a.Compare(b) })
	free = free[:slots] // more running than slots: the first to free count
	return free[k%slots].Add(time.Duration(k/slots) * l.Service)
}
