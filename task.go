package genpipe

import (
	"context"
	"time"
)

// A Task is one request's turn at an AI stage, waiting in the stage's
// scheduling queue or running. A stage's Kafka consumer only ingests: it
// stores each record as a task and commits the record's offset; each worker
// process then takes tasks in the order of the stage's fair schedule (see
// TaskQueue) and runs the stage's handler on them.
type Task struct {
	ID        int64 // assigned by the queue
	Stage     Stage
	RequestID string
	Replay    int   // the event's replay generation: a replay is a task of its own
	Share     Share // whose task it is and how urgent (normalized by the queue)
	// StartBy is the request's deadline (Event.StartBy): a task still
	// waiting then is not started; zero for none.
	StartBy time.Time
	// Expired is set by TakeTasks on a task it removed instead of taking,
	// because its StartBy passed while it waited: the store ended its
	// request expired, and the taker reports it (see TaskQueue.TakeTasks).
	Expired bool

	// The record the task was ingested from, so that the stage's handler
	// sees what it would have seen from Kafka: its value (the event), the
	// trace context it was produced in, and where it came from, for its
	// dead letter.
	Value       []byte
	TraceParent string // the record's W3C traceparent header; "" when it had none
	Topic       string
	Partition   int32
	Offset      int64

	EnqueuedAt time.Time // set by the queue
}

// TakeRequest asks for the next tasks of a stage.
type TakeRequest struct {
	Stage Stage
	Owner string // unique per process: leases are renewed and released by owner
	// Max is how many tasks the caller has room for.
	Max int
	// Capacity bounds the tasks of the stage running at once, over every
	// owner: a take returns no more than Capacity minus those running.
	Capacity int
	Lease    time.Duration // how long a taken task holds without a renewal
	// Finish lists tasks of Owner to finish first (see FinishTasks), in the
	// same transaction: slots that freed take their next tasks in one
	// commit.
	Finish []int64
	// Enqueue lists tasks of Stage to add (see EnqueueTasks) after
	// finishing and before taking, in the same transaction: work a process
	// just received reaches its free slots in one commit.
	Enqueue []Task
}

// TaskCount is how many tasks of a stage are in one state for one tenant
// and priority: for metrics.
type TaskCount struct {
	Tenant   string
	Priority Priority // the priority the request asked for (aging does not change it)
	Running  bool     // running (taken, leased) or waiting
	N        int
}

// TaskQueue is the scheduling queue of the AI stages: one per stage, held
// in the status database, shared by every worker process of the stage.
// Package sqlstore implements it on SQLite and PostgreSQL, both passing
// storetest.
//
// # Order
//
// A take returns the waiting tasks of the highest priority first, and
// within a priority those with the smallest virtual start tag (start-time
// fair queueing): a task's tag is the larger of the stage's virtual time at
// its priority (the tag of the last task taken there) and its tenant's last
// finish tag, and the tenant's finish tag becomes tag + 1/weight. Tenants
// with work waiting at one priority thus share the takes in proportion to
// their weights, whatever the order and number of their submissions; a
// tenant alone gets every take; a tenant that was idle starts at the
// virtual time, so it banks no credit, and a tenant arriving behind a burst
// is served next.
//
// A task that waited at its level longer than an aging bound while work
// of a higher level waits (AgeTasks) competes one level up, tagged anew
// there as if its tenant had just submitted it, so low and normal tasks
// never starve behind a steady stream of higher ones. Without higher work
// waiting nothing moves: one tenant's old backlog never jumps ahead of
// other tenants' fresh work at its own priority.
//
// # Capacity and leases
//
// Takes of one stage are serialized, so a stage's running tasks never
// exceed the Capacity its takers pass, however many processes take. A taken
// task is leased to its owner; the owner renews its leases while it runs
// them (RenewTasks). A task whose lease ran out (its process died) goes back
// to waiting, in its old place, at the next take; the stage's claims keep
// its AI call from being paid twice.
type TaskQueue interface {
	// EnqueueTasks adds tasks to their stages' queues, in order. A task
	// already queued (same stage, request and replay) is left as it is.
	EnqueueTasks(ctx context.Context, tasks []Task) error
	// TakeTasks first finishes r.Finish, adds r.Enqueue and returns the
	// stage's tasks whose lease ran out to waiting, then takes up to min(r.Max, r.Capacity − running) waiting
	// tasks in schedule order for r.Owner, leased for r.Lease. It never takes
	// a task of a canceled or expired request (it removes it), nor one whose
	// StartBy passed on the store's clock: it removes that one, ends its
	// request expired (history row, webhook queued) in the same
	// transaction, and returns it with Expired set, after the tasks taken,
	// for the caller to report; it takes no slot.
	TakeTasks(ctx context.Context, r TakeRequest) ([]Task, error)
	// FinishTasks removes owner's tasks ids: their work is done. Ids owner
	// no longer holds are skipped.
	FinishTasks(ctx context.Context, stage Stage, owner string, ids []int64) error
	// ReleaseTasks hands owner's tasks ids back to waiting, in their old
	// place in the schedule (the AI was overloaded, or the process stops).
	ReleaseTasks(ctx context.Context, stage Stage, owner string, ids []int64) error
	// RenewTasks extends the lease of every task of stage owner holds by
	// lease from now, and returns how many it holds.
	RenewTasks(ctx context.Context, stage Stage, owner string, lease time.Duration) (int, error)
	// AgeTasks moves the stage's tasks that waited at their level longer
	// than after, while tasks of a higher level wait, one level up, and
	// returns how many it moved.
	AgeTasks(ctx context.Context, stage Stage, after time.Duration) (int, error)
	// CountTasks counts the stage's tasks by tenant, priority and state.
	CountTasks(ctx context.Context, stage Stage) ([]TaskCount, error)
}
