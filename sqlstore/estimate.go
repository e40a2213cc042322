package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"math"
	"slices"
	"time"

	"github.com/genpipe/genpipe"
)

var _ genpipe.StageLoader = (*Store)(nil)

// What the predicted waits read (migration 0011): a running task's
// taken_at, and per stage in stage_rates the service time measured by the
// finishes and the capacity the takers pass. A finish measures its tasks
// on the database's clock (taken_at to the finish), in the transaction
// that deletes them, and folds them into the stage's mean with one upsert:
// concurrent finishers of one stage each add theirs, whatever the order.

// serviceSmoothing is the weight of one finished task in the stage's mean
// service time (an exponentially weighted mean, over about the last 50
// tasks): it follows a lasting change of the AI's speed within a hundred
// tasks or so, and is not thrown by a few slow calls, which would move
// every prediction deep in a queue with them (the lab's step scenario
// measured 0.05 swinging with the machine's load).
const serviceSmoothing = 0.02

// Statements of the estimates; $1 is always the stage.
const (
	selectPlace = `SELECT state, level, vstart, id FROM stage_tasks WHERE stage = $1 AND request_id = $2
	ORDER BY replay DESC LIMIT 1`
	selectClaimState = `SELECT state, updated_at FROM stage_claims WHERE request_id = $1 AND stage = $2`
	// transitFirst and transitNext read when the stage's newest tasks
	// were queued and when their requests set out: their 202 (created),
	// or their call at the stage $2 before succeeding.
	transitNext = `SELECT t.enqueued_at, c.updated_at FROM stage_tasks AS t
	JOIN stage_claims AS c ON c.request_id = t.request_id AND c.stage = $2 AND c.state = 'done'
	WHERE t.stage = $1 ORDER BY t.id DESC LIMIT ` + transitTasks
	selectClockAt = `SELECT vtime FROM stage_clocks WHERE stage = $1 AND level = $2`
	// countAhead counts the waiting tasks before (level $2, tag $3, id $4)
	// in schedule order; a new task's id is larger than any.
	countAhead = `SELECT count(*) FROM stage_tasks WHERE stage = $1 AND state = 'waiting'
	AND (level > $2 OR (level = $2 AND (vstart < $3 OR (vstart = $3 AND id < $4))))`
	countWaiting = `SELECT count(*) FROM stage_tasks WHERE stage = $1 AND state = 'waiting'`
	// selectRunning reads when the running tasks were taken and, once
	// their worker claimed the AI call, when it did (the claim's last
	// write: renewals come a third of a lease later, which the median of
	// StartLag leaves out).
	selectRunning = `SELECT t.taken_at, c.updated_at FROM stage_tasks AS t
	LEFT JOIN stage_claims AS c ON c.request_id = t.request_id AND c.stage = t.stage AND c.state = 'running'
	WHERE t.stage = $1 AND t.state = 'running' AND t.taken_at IS NOT NULL`
	selectRate = `SELECT capacity, service FROM stage_rates WHERE stage = $1`
	// addServiceSamples folds $4 tasks of mean service $3 seconds into the
	// stage's mean with weight $5, and records the capacity $2 when known.
	addServiceSamples = `INSERT INTO stage_rates AS r (stage, capacity, service, samples, updated_at)
	VALUES ($1, $2, $3, $4, $6)
	ON CONFLICT (stage) DO UPDATE SET
		capacity = CASE WHEN excluded.capacity > 0 THEN excluded.capacity ELSE r.capacity END,
		service = CASE WHEN r.samples = 0 THEN excluded.service ELSE r.service + $5 * (excluded.service - r.service) END,
		samples = r.samples + excluded.samples,
		updated_at = excluded.updated_at`
)

// estimateSQL returns d's statements of the estimates that need its
// fragments: the finish that returns when its task was taken and the time
// now, on the database's clock, and the clock alone.
func estimateSQL(d *dialect) (finishTask, selectClock, transitFirst string) {
	transitFirst = `SELECT t.enqueued_at, r.created_at FROM stage_tasks AS t JOIN requests AS r ON r.id = ` + d.taskRequest + `
	WHERE t.stage = $1 ORDER BY t.id DESC LIMIT ` + transitTasks
	finishTask = `DELETE FROM stage_tasks WHERE stage = $1 AND owner = $2 AND id = $3 AND state = 'running'
	RETURNING taken_at, ` + d.clock
	selectClock = `SELECT ` + d.clock
	return
}

// finishTasks deletes owner's finished tasks ids and measures them into
// the stage's service time; capacity is the takers' (0: unknown here).
func (s *Store) finishTasks(tx *txn, stage genpipe.Stage, owner string, ids []int64, capacity int) error {
	var sum float64
	n := 0
	for _, id := range ids {
		var takenAt, at time.Time
		err := tx.queryRow(s.d.finishTask, stage, owner, id).Scan(nullTime{&takenAt}, timeColumn{&at})
		switch {
		case errors.Is(err, sql.ErrNoRows): // no longer owner's
			continue
		case err != nil:
			return err
		case takenAt.IsZero(): // taken before taken_at was kept
			continue
		}
		sum += max(at.Sub(takenAt).Seconds(), 0)
		n++
	}
	if n == 0 && capacity <= 0 {
		return nil
	}
	mean := 0.0
	if n > 0 {
		mean = sum / float64(n)
	}
	weight := 1 - math.Pow(1-serviceSmoothing, float64(n))
	_, err := tx.exec(addServiceSamples, stage, capacity, mean, n, weight, s.d.time(now()))
	return err
}

// StageLoad reads stage's load as seen from p; see genpipe.StageLoader.
// Its reads are not one transaction: a task that moves between them moves
// the estimate by one task at most.
func (s *Store) StageLoad(ctx context.Context, stage genpipe.Stage, p genpipe.Place) (genpipe.StageLoad, error) {
	l := genpipe.StageLoad{Stage: stage}
	fail := func(err error) (genpipe.StageLoad, error) {
		return genpipe.StageLoad{}, s.fail("load of "+string(stage), err)
	}
	if err := s.read.QueryRowContext(ctx, s.d.selectClock).Scan(timeColumn{&l.Now}); err != nil {
		return fail(err)
	}
	// Where the place stands: its task, or a new one of its share.
	level, tag, id := p.Share.Normalized().Priority.Rank(), 0.0, int64(math.MaxInt64)
	if p.RequestID != "" {
		var state string
		err := s.read.QueryRowContext(ctx, selectPlace, stage, p.RequestID).Scan(&state, &level, &tag, &id)
		switch {
		case err == nil:
			l.Queued, l.Running = true, state == "running"
			if l.Running {
				return l, nil
			}
		case !errors.Is(err, sql.ErrNoRows):
			return fail(err)
		}
	}
	if !l.Queued && p.RequestID != "" {
		var state string
		var at time.Time
		err := s.read.QueryRowContext(ctx, selectClaimState, p.RequestID, stage).Scan(&state, timeColumn{&at})
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fail(err)
		}
		if l.Done = state == string(genpipe.ClaimDone); l.Done {
			l.DoneAt = at
		}
	}
	if !l.Queued {
		var vtime, finish float64
		share := p.Share.Normalized()
		for q, v := range map[string]*float64{selectClockAt: &vtime, selectTenantFinish: &finish} {
			args := []any{stage, level}
			if q == selectTenantFinish {
				args = append(args, share.Tenant)
			}
			if err := s.read.QueryRowContext(ctx, q, args...).Scan(v); err != nil && !errors.Is(err, sql.ErrNoRows) {
				return fail(err)
			}
		}
		tag = max(vtime, finish)
	}
	if err := s.read.QueryRowContext(ctx, countAhead, stage, level, tag, id).Scan(&l.Ahead); err != nil {
		return fail(err)
	}
	if err := s.read.QueryRowContext(ctx, countWaiting, stage).Scan(&l.Waiting); err != nil {
		return fail(err)
	}
	rows, err := s.read.QueryContext(ctx, selectRunning, stage)
	if err != nil {
		return fail(err)
	}
	var lags []time.Duration
	for rows.Next() {
		var taken, claimed time.Time
		if err := rows.Scan(timeColumn{&taken}, nullTime{&claimed}); err != nil {
			rows.Close()
			return fail(err)
		}
		l.RunningSince = append(l.RunningSince, taken)
		if !claimed.Before(taken) { // not a claim of an earlier take
			lags = append(lags, claimed.Sub(taken))
		}
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return fail(err)
	}
	if len(lags) > 0 {
		slices.Sort(lags)
		l.StartLag = lags[len(lags)/2]
	}
	var service float64
	err = s.read.QueryRowContext(ctx, selectRate, stage).Scan(&l.Capacity, &service)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fail(err)
	}
	l.Service = time.Duration(service * float64(time.Second))
	if l.Transit, err = s.transit(ctx, stage); err != nil {
		return fail(err)
	}
	return l, nil
}

// transitTasks is how many of a stage's newest tasks its transit is
// measured on.
const transitTasks = "16"

// transit measures stage's transit (see genpipe.StageLoad): the median,
// over its newest tasks, of the time from their request setting out to
// their task being queued. Tasks of a replay, which set out long after,
// fall outside the median.
func (s *Store) transit(ctx context.Context, stage genpipe.Stage) (time.Duration, error) {
	q, args := s.d.transitFirst, []any{stage}
	if prev, ok := genpipe.PreviousStage(stage); ok {
		q, args = transitNext, append(args, prev)
	}
	rows, err := s.read.QueryContext(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	var spans []time.Duration
	for rows.Next() {
		var queued, left time.Time
		if err := rows.Scan(timeColumn{&queued}, timeColumn{&left}); err != nil {
			rows.Close()
			return 0, err
		}
		spans = append(spans, max(queued.Sub(left), 0))
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil || len(spans) == 0 {
		return 0, err
	}
	slices.Sort(spans)
	return spans[len(spans)/2], nil
}

// nullTime scans a time column that may be NULL into *t, zero for NULL.
type nullTime struct{ t *time.Time }

func (c nullTime) Scan(src any) error {
	if src == nil {
		*c.t = time.Time{}
		return nil
	}
	return timeColumn(c).Scan(src)
}
