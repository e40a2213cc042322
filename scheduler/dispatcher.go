// Package scheduler runs an AI stage's tasks from its scheduling queue
// (genpipe.TaskQueue): a Dispatcher per stage per worker process takes the
// next tasks in the stage's fair schedule, as many as it has free slots and
// the stage's capacity allows over every process, and runs the stage's
// handler on each.
package scheduler

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/genpipe/genpipe"
)

// Handler runs one task. It returns nil when the task's work is done
// (dead letters included), and an error when it could not do it: an
// overload (see WithOverloadTest) sends the task back to waiting; any other
// error is logged and the task counts as done, as a Kafka record would, so
// one bad task never blocks a slot. A handler whose context was canceled
// (shutdown) may return when it likes; its task goes back to waiting.
type Handler func(ctx context.Context, t genpipe.Task) error

// Dispatcher runs one stage's tasks in one process.
//
// One loop does all of the dispatcher's database work, in rounds: in one
// transaction it finishes the tasks its handlers finished, stores the
// tasks to enqueue (Enqueue waits for that) and takes as many tasks as it
// has free slots (at most the capacity less what every process runs), and
// starts a handler on each; tasks released by handlers, and every third of
// the lease a renewal of all its leases, take a transaction each. A poll
// that finds nothing to do writes nothing. A round starts when a handler
// returns or a task is enqueued, and otherwise every poll interval, so
// that a slot that frees takes the next task at once, and the work of a
// burst is written in a few transactions, not one per task.
//
// # Backing off
//
// The dispatcher's own limit starts at the capacity. A handler that reports
// an overload (ReportOverload, or an error that WithOverloadTest
// recognizes) halves it, at least 1, once per cooldown; after the cooldown
// it grows by one every few successes, back to the capacity (additive
// increase, multiplicative decrease).
//
// # Shutting down
//
// When Run's context ends, the dispatcher takes nothing new, waits up to
// the shutdown timeout for running handlers, cancels the rest, waits up to
// the abandon wait for them, and hands every task not done back to waiting
// in its place.
type Dispatcher struct {
	q      genpipe.TaskQueue
	stage  genpipe.Stage
	handle Handler
	cfg    config
	owner  string
	log    *slog.Logger
	wake   chan struct{} // a round is due; capacity 1
	active atomic.Bool

	mu sync.Mutex
	st state // below mu
}

// state is what the loop and the handlers share, under Dispatcher.mu.
type state struct {
	enqueues []enqueue
	finished []int64
	released []int64
	running  map[int64]*running
	freedAt  []time.Time // when slots freed since the last take, oldest first
	stopped  bool        // Run returned: Enqueue fails
	limit    int
	lim      aimd
	stats    counters
}

type enqueue struct {
	task genpipe.Task
	done chan error
}

type running struct {
	task   genpipe.Task
	start  time.Time
	cancel context.CancelFunc
}

// New returns the dispatcher of stage on q, which runs handle on each task
// it takes, or an error naming an option out of range.
func New(q genpipe.TaskQueue, stage genpipe.Stage, handle Handler, opts ...Option) (*Dispatcher, error) {
	cfg, err := newConfig(opts)
	if q == nil || stage == "" || handle == nil {
		err = errors.Join(err, errors.New("scheduler: a queue, a stage and a handler are needed"))
	}
	if err != nil {
		return nil, err
	}
	owner := cfg.owner
	if owner == "" {
		owner = newOwner(stage)
	}
	d := &Dispatcher{q: q, stage: stage, handle: handle, cfg: cfg, owner: owner,
		log: cfg.log.With("stage", stage), wake: make(chan struct{}, 1)}
	d.st.running = map[int64]*running{}
	d.st.limit = cfg.capacity
	d.st.stats = newCounters(cfg.capacity)
	return d, nil
}

// newOwner names a dispatcher: stage, host, pid and a random part.
func newOwner(stage genpipe.Stage) string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	rand.Read(b)
	return fmt.Sprintf("%s-%s-%d-%s", stage, host, os.Getpid(), hex.EncodeToString(b))
}

// Owner is the name the dispatcher's leases are held under.
func (d *Dispatcher) Owner() string { return d.owner }

// Enqueue adds t to the stage's queue in the dispatcher's next round and
// returns once it is stored (a task queued already counts as stored). The
// database being away is retried until ctx ends. It fails when Run is not
// running.
func (d *Dispatcher) Enqueue(ctx context.Context, t genpipe.Task) error {
	t.Stage = d.stage
	done := make(chan error, 1)
	d.mu.Lock()
	if d.st.stopped || !d.active.Load() {
		d.mu.Unlock()
		return fmt.Errorf("scheduler: %s: enqueue %s: the dispatcher is not running", d.stage, t.RequestID)
	}
	d.st.enqueues = append(d.st.enqueues, enqueue{task: t, done: done})
	d.mu.Unlock()
	d.poke()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err() // the round may still store it: enqueuing is idempotent
	}
}

// poke asks for a round.
func (d *Dispatcher) poke() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

type dispatcherKey struct{}

// ReportOverload tells the dispatcher running the handler that got ctx
// that the AI refused a call because it is at capacity, so the dispatcher
// backs off (see Dispatcher) while the handler retries. It does nothing
// with a context that does not come from a dispatcher.
func ReportOverload(ctx context.Context) {
	if d, ok := ctx.Value(dispatcherKey{}).(*Dispatcher); ok {
		d.mu.Lock()
		d.overloadLocked()
		d.mu.Unlock()
	}
}

// Run runs rounds until ctx ends, then shuts down (see Dispatcher) and
// returns nil. Database errors are logged and retried in the next round.
func (d *Dispatcher) Run(ctx context.Context) error {
	if !d.active.CompareAndSwap(false, true) {
		return fmt.Errorf("scheduler: %s: already running", d.stage)
	}
	d.mu.Lock()
	d.st.stopped = false
	d.mu.Unlock()
	// Handlers and the last rounds outlive ctx: their contexts derive from
	// one of their own.
	base := context.WithValue(context.WithoutCancel(ctx), dispatcherKey{}, d)
	r := &rounds{d: d, base: base}
	// The poll slows down, up to maxPollBackoff times, while it finds
	// nothing to take: then every process's slots are busy, or there is no
	// work, and a process whose slot frees takes the next task itself.
	wait := d.cfg.poll
	poll := time.NewTimer(wait)
	defer poll.Stop()
	for ctx.Err() == nil {
		took := r.round(base, true)
		select {
		case <-d.wake:
			wait = d.cfg.poll
		case <-poll.C:
			if took == 0 {
				wait = min(2*wait, maxPollBackoff*d.cfg.poll)
			} else {
				wait = d.cfg.poll
			}
			poll.Reset(wait)
		case <-ctx.Done():
		}
	}
	poll.Reset(d.cfg.poll)
	d.shutdown(r, time.Tick(d.cfg.poll))
	return nil
}

// expireEvery is how often a dispatcher whose slots are all busy still
// takes (nothing), so that the queue expires the tasks whose start-by
// passed while they waited (genpipe.TaskQueue.TakeTasks): their requests
// end expired within about this of their deadline, not when a slot frees.
const expireEvery = time.Second

// maxPollBackoff bounds how far the poll slows down, as a multiple of the
// poll interval.
const maxPollBackoff = 10

// shutdown takes nothing more, lets running handlers finish within the
// shutdown timeout, cancels the rest and waits for them within the abandon
// wait, then releases every task not done and stores the last changes.
func (d *Dispatcher) shutdown(r *rounds, poll <-chan time.Time) {
	ctx := r.base
	drain := func(wait time.Duration) {
		deadline := time.After(wait)
		for d.runningCount() > 0 {
			r.round(ctx, false)
			select {
			case <-d.wake:
			case <-poll:
			case <-deadline:
				return
			}
		}
	}
	drain(d.cfg.shutdownTimeout)
	d.mu.Lock()
	for _, run := range d.st.running {
		run.cancel()
	}
	d.mu.Unlock()
	drain(d.cfg.abandonWait)

	d.mu.Lock()
	d.st.stopped = true
	left := len(d.st.running)
	for id := range d.st.running {
		d.st.released = append(d.st.released, id)
	}
	d.st.running = map[int64]*running{}
	d.mu.Unlock()
	if left > 0 {
		d.log.Warn("scheduler: handlers still running at exit; their tasks go back to waiting", "tasks", left)
	}
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	r.round(fctx, false)
	d.failEnqueues(errors.New("scheduler: the dispatcher stopped"))
	d.active.Store(false)
}

func (d *Dispatcher) runningCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.st.running)
}

// failEnqueues answers the enqueues still pending with err.
func (d *Dispatcher) failEnqueues(err error) {
	d.mu.Lock()
	pending := d.st.enqueues
	d.st.enqueues = nil
	d.mu.Unlock()
	for _, e := range pending {
		e.done <- err
	}
}

// rounds is the loop's own state.
type rounds struct {
	d         *Dispatcher
	base      context.Context
	renewedAt time.Time
	agedAt    time.Time
	failing   bool      // the last round failed: log recovery
	took      int       // tasks taken in the round under way
	sweptAt   time.Time // the last take, see expireEvery
}

// round stores what is pending and, when take is set, takes tasks for the
// free slots and starts them; it returns how many it took.
func (r *rounds) round(ctx context.Context, take bool) (took int) {
	d := r.d
	d.mu.Lock()
	enqueues, finished, released := d.st.enqueues, d.st.finished, d.st.released
	d.st.enqueues, d.st.finished, d.st.released = nil, nil, nil
	d.mu.Unlock()

	// Slots that freed and what this process enqueued take their next
	// tasks in the transaction that finishes and stores them: one commit
	// between one task's end or arrival and the next task's start.
	var errs []error
	if take {
		errs = append(errs, r.take(ctx, finished, enqueues))
	} else {
		if err := d.q.FinishTasks(ctx, d.stage, d.owner, finished); err != nil {
			errs = append(errs, err)
			d.requeue(&d.st.finished, finished)
		}
		if len(enqueues) > 0 {
			errs = append(errs, r.storeEnqueues(ctx, enqueues))
		}
	}
	if err := d.q.ReleaseTasks(ctx, d.stage, d.owner, released); err != nil {
		errs = append(errs, err)
		d.requeue(&d.st.released, released)
	}
	now := time.Now()
	if now.Sub(r.renewedAt) >= d.cfg.lease/3 {
		if _, err := d.q.RenewTasks(ctx, d.stage, d.owner, d.cfg.lease); err != nil {
			errs = append(errs, err)
		} else {
			r.renewedAt = now
		}
	}
	if take && now.Sub(r.agedAt) >= agingEvery(d.cfg.aging) {
		if n, err := d.q.AgeTasks(ctx, d.stage, d.cfg.aging); err != nil {
			errs = append(errs, err)
		} else {
			r.agedAt = now
			if n > 0 {
				d.log.Info("scheduler: tasks waited past the aging bound; they compete one level up", "tasks", n)
			}
		}
	}
	r.report(errors.Join(errs...))
	took, r.took = r.took, 0
	return took
}

// agingEvery is how often a dispatcher ages its stage's tasks: often
// enough that a task waits at most a tenth past the bound, at most every
// second.
func agingEvery(aging time.Duration) time.Duration { return max(aging/10, time.Second) }

// enqueued returns the tasks of enqueues.
func enqueued(enqueues []enqueue) []genpipe.Task {
	tasks := make([]genpipe.Task, len(enqueues))
	for i, e := range enqueues {
		tasks[i] = e.task
	}
	return tasks
}

// storeEnqueues stores a round's enqueues in one transaction and answers
// their callers. When the database fails they wait for the next round.
func (r *rounds) storeEnqueues(ctx context.Context, enqueues []enqueue) error {
	d := r.d
	err := d.q.EnqueueTasks(ctx, enqueued(enqueues))
	switch {
	case err == nil || len(enqueues) == 1 && genpipe.ErrorCode(err) == genpipe.EINVALID:
		for _, e := range enqueues {
			e.done <- err
		}
	case genpipe.ErrorCode(err) == genpipe.EINVALID:
		// One bad task must not fail the others: each gets its own answer.
		for _, e := range enqueues {
			e.done <- d.q.EnqueueTasks(ctx, []genpipe.Task{e.task})
		}
	default:
		d.requeueEnqueues(enqueues)
		return err
	}
	return nil
}

// requeue puts ids back in front of *pending for the next round.
func (d *Dispatcher) requeue(pending *[]int64, ids []int64) {
	d.mu.Lock()
	*pending = append(ids, *pending...)
	d.mu.Unlock()
}

// requeueEnqueues puts enqueues back in front of the pending ones: their
// callers wait for the next round.
func (d *Dispatcher) requeueEnqueues(enqueues []enqueue) {
	d.mu.Lock()
	d.st.enqueues = append(enqueues, d.st.enqueues...)
	d.mu.Unlock()
}

// report logs a round's failure once, and the recovery.
func (r *rounds) report(err error) {
	switch {
	case err != nil && !r.failing:
		r.d.log.Warn("scheduler: the queue failed; retrying every round", "err", err)
		r.failing = true
	case err == nil && r.failing:
		r.d.log.Info("scheduler: the queue answers again")
		r.failing = false
	}
}

// take finishes the tasks finished, stores the enqueues, takes tasks for
// the free slots and starts a handler on each. When a task to enqueue is
// invalid, the enqueues are stored on their own (each caller gets its
// answer) and the take runs without them.
func (r *rounds) take(ctx context.Context, finished []int64, enqueues []enqueue) error {
	d := r.d
	d.mu.Lock()
	free := max(d.st.limit-len(d.st.running), 0)
	d.mu.Unlock()
	if free == 0 && len(finished) == 0 && len(enqueues) == 0 && time.Since(r.sweptAt) < expireEvery {
		return nil
	}
	r.sweptAt = time.Now()
	tasks, err := d.q.TakeTasks(ctx, genpipe.TakeRequest{Stage: d.stage, Owner: d.owner, Max: free,
		Capacity: d.cfg.capacity, Lease: d.cfg.lease, Finish: finished, Enqueue: enqueued(enqueues)})
	switch {
	case err != nil && len(enqueues) > 0 && genpipe.ErrorCode(err) == genpipe.EINVALID:
		return errors.Join(r.storeEnqueues(ctx, enqueues), r.take(ctx, finished, nil))
	case err != nil:
		d.requeueEnqueues(enqueues)
		d.requeue(&d.st.finished, finished)
		return err
	}
	for _, e := range enqueues {
		e.done <- nil
	}
	tasks = r.expired(tasks)
	now := time.Now()
	r.took += len(tasks)
	d.mu.Lock()
	defer d.mu.Unlock()
	// Each task taken fills the slot that freed longest ago: the time in
	// between is the scheduling overhead. Slots that freed and got no task
	// had no work waiting for them, which is no overhead.
	for i, t := range tasks {
		if i < len(d.st.freedAt) {
			d.cfg.onOverhead(now.Sub(d.st.freedAt[i]))
		}
		d.startLocked(r.base, t, now)
	}
	if len(tasks) < free {
		d.st.freedAt = nil
	} else {
		d.st.freedAt = d.st.freedAt[min(len(tasks), len(d.st.freedAt)):]
	}
	return nil
}

// expired hands the tasks the queue expired (they come last) to the
// expired hook and returns the tasks taken.
func (r *rounds) expired(tasks []genpipe.Task) []genpipe.Task {
	n := len(tasks)
	for n > 0 && tasks[n-1].Expired {
		n--
	}
	for _, t := range tasks[n:] {
		r.d.log.Info("scheduler: task past its start-by: its request expired", "request", t.RequestID, "startBy", t.StartBy)
		go r.d.cfg.onExpired(r.base, t)
	}
	return tasks[:n]
}

// startLocked runs the handler on t. The caller holds d.mu.
func (d *Dispatcher) startLocked(base context.Context, t genpipe.Task, now time.Time) {
	ctx, cancel := context.WithCancel(base)
	d.st.running[t.ID] = &running{task: t, start: now, cancel: cancel}
	d.st.stats.taken++
	go func() {
		defer cancel()
		err := d.handle(ctx, t)
		d.done(t, err, ctx.Err() != nil)
	}()
}

// done records a handler's return: its task is finished, or released when
// its context was canceled or the AI was overloaded.
func (d *Dispatcher) done(t genpipe.Task, err error, canceled bool) {
	now := time.Now()
	d.mu.Lock()
	run, ok := d.st.running[t.ID]
	if !ok { // released at exit already
		d.mu.Unlock()
		return
	}
	delete(d.st.running, t.ID)
	d.st.freedAt = append(d.st.freedAt, now)
	d.st.stats.busy(t.Share.Tenant, run.start, now)
	overloaded := err != nil && d.cfg.overloaded(err)
	switch {
	case canceled || overloaded:
		d.st.released = append(d.st.released, t.ID)
		d.st.stats.released++
		if overloaded {
			d.overloadLocked()
		}
	default:
		d.st.finished = append(d.st.finished, t.ID)
		d.st.stats.completed[keyOf(t)]++
		if err == nil {
			d.successLocked()
		}
	}
	d.mu.Unlock()
	if err != nil && !canceled && !overloaded {
		d.log.Error("scheduler: task failed; it counts as done", "request", t.RequestID, "err", err)
	}
	d.poke()
}

// aimd is the state of the adaptive limit between its cuts.
type aimd struct {
	coolUntil time.Time // no cut and no increase before it
	successes int       // since the last increase
}

// overloadLocked halves the limit, at most once per cooldown: the handlers
// running when the AI filled up all see 429s at about the same time, and
// one cut answers all of them. The caller holds d.mu.
func (d *Dispatcher) overloadLocked() {
	now := time.Now()
	if now.Before(d.st.lim.coolUntil) {
		return
	}
	d.st.limit = max(d.st.limit/2, 1)
	d.st.lim = aimd{coolUntil: now.Add(d.cfg.cooldown)}
	d.st.stats.overloads++
	d.log.Info("scheduler: AI overloaded; limit cut", "limit", d.st.limit, "cooldown", d.cfg.cooldown)
}

// successLocked raises a cut limit by one every increaseAfter successes
// after the cooldown. The caller holds d.mu.
func (d *Dispatcher) successLocked() {
	if d.st.limit >= d.cfg.capacity || time.Now().Before(d.st.lim.coolUntil) {
		return
	}
	if d.st.lim.successes++; d.st.lim.successes >= d.cfg.increaseAfter {
		d.st.limit++
		d.st.lim.successes = 0
	}
}
