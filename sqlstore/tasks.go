package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/genpipe/genpipe"
)

var _ genpipe.TaskQueue = (*Store)(nil)

// The scheduling queue (genpipe.TaskQueue) in three tables (migration
// 0008): stage_tasks, the tasks, waiting or running; stage_clocks, per stage
// and level the virtual time, whose rows also serialize the stage's
// takers; stage_tenants, per stage, level and tenant the finish tag of the
// tenant's last task.
//
// A level is the priority a task competes at: its priority's rank (high 3,
// normal 2, low 1), raised by one by aging. Enqueue, take and aging of a
// stage run in one transaction each, under the stage's clock rows: SQLite
// writes one transaction at a time anyway (its one write connection, and
// BEGIN IMMEDIATE across processes); PostgreSQL locks the rows FOR UPDATE
// (d.forUpdate). That makes the running count a take reads exact, and the
// tags consistent. Finishing, releasing and renewing touch only the
// owner's own running rows and need no lock.

// Statements on the queue; $1 is always the stage.
const (
	insertClocks = `INSERT INTO stage_clocks (stage, level, vtime) VALUES ($1, 1, 0), ($1, 2, 0), ($1, 3, 0)
	ON CONFLICT (stage, level) DO NOTHING`
	selectTenantFinish = `SELECT finish FROM stage_tenants WHERE stage = $1 AND level = $2 AND tenant = $3`
	upsertTenantFinish = `INSERT INTO stage_tenants (stage, level, tenant, finish) VALUES ($1, $2, $3, $4)
	ON CONFLICT (stage, level, tenant) DO UPDATE SET finish = excluded.finish`
	advanceClock = `UPDATE stage_clocks SET vtime = $3 WHERE stage = $1 AND level = $2 AND vtime < $3`
	countRunning = `SELECT count(*) FROM stage_tasks WHERE stage = $1 AND state = 'running'`
	releaseTask  = `UPDATE stage_tasks SET state = 'waiting', owner = '', lease_until = NULL
	WHERE stage = $1 AND owner = $2 AND id = $3 AND state = 'running'`
	relevelTask = `UPDATE stage_tasks SET level = $3, vstart = $4, leveled_at = $5 WHERE stage = $1 AND id = $2 AND state = 'waiting'`
	countTasks  = `SELECT tenant, priority, state, count(*) FROM stage_tasks WHERE stage = $1
	GROUP BY tenant, priority, state ORDER BY tenant, priority, state`
	// taskColumns are what a take returns, in taskRow's order.
	taskColumns = `id, request_id, replay, tenant, priority, weight, value, traceparent, topic, part, record_off, enqueued_at, level, vstart, start_by`
)

// agingBatch bounds the tasks one AgeTasks moves, so that its transaction
// stays short; the caller's next round moves the rest.
const agingBatch = 1000

// taskSQL returns d's queue statements that need its fragments.
//
// lockClocks reads the stage's virtual times and, on PostgreSQL, locks
// them until the transaction ends: the stage's takers, enqueuers and aging
// run one at a time. takeNext picks the first $2 waiting tasks in schedule
// order and leases them to $3 for $4 seconds; MATERIALIZED makes the pick
// run once, whatever plan the UPDATE gets (see claimDueWebhooksSQL).
//
// stageWork tells whether a take could do anything: a task waits, or a
// lease ran out.
func taskSQL(d *dialect) (insertTask, lockClocks, expireTasks, takeNext, renewTasks, selectAging, stageWork string) {
	insertTask = `INSERT INTO stage_tasks (stage, request_id, replay, tenant, priority, weight, value, traceparent,
		topic, part, record_off, enqueued_at, level, vstart, leveled_at, state, start_by)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, ` + d.clock + `, $12, $13, ` + d.clock + `, 'waiting', $14)
	ON CONFLICT (stage, request_id, replay) DO NOTHING`
	lockClocks = `SELECT level, vtime FROM stage_clocks WHERE stage = $1 ORDER BY level ` + d.forUpdate
	expireTasks = `UPDATE stage_tasks SET state = 'waiting', owner = '', lease_until = NULL
	WHERE stage = $1 AND state = 'running' AND lease_until < ` + d.clock
	takeNext = `WITH next AS MATERIALIZED (
		SELECT id AS next_id FROM stage_tasks
		WHERE stage = $1 AND state = 'waiting'
		ORDER BY level DESC, vstart, id
		LIMIT $2)
	UPDATE stage_tasks SET state = 'running', owner = $3, lease_until = ` + d.later("$4") + `, taken_at = ` + d.clock + `
	FROM next WHERE id = next_id
	RETURNING ` + taskColumns
	renewTasks = `UPDATE stage_tasks SET lease_until = ` + d.later("$3") + `
	WHERE stage = $1 AND owner = $2 AND state = 'running'`
	selectAging = `SELECT id, tenant, weight, level, ` + d.clock + ` FROM stage_tasks AS t
	WHERE stage = $1 AND state = 'waiting' AND level < 3 AND leveled_at < ` + d.later("$2") + `
		AND EXISTS (SELECT 1 FROM stage_tasks AS h WHERE h.stage = $1 AND h.state = 'waiting' AND h.level > t.level)
	ORDER BY level DESC, vstart, id
	LIMIT $3`
	stageWork = `SELECT EXISTS (SELECT 1 FROM stage_tasks WHERE stage = $1 AND state = 'waiting')
		OR EXISTS (SELECT 1 FROM stage_tasks WHERE stage = $1 AND state = 'running' AND lease_until < ` + d.clock + `)`
	return
}

// EnqueueTasks adds tasks to their stages' queues; see genpipe.TaskQueue.
func (s *Store) EnqueueTasks(ctx context.Context, tasks []genpipe.Task) error {
	byStage := map[genpipe.Stage][]genpipe.Task{}
	for _, t := range tasks {
		byStage[t.Stage] = append(byStage[t.Stage], t)
	}
	for _, ts := range byStage {
		if err := validTasks(ts); err != nil {
			return err
		}
	}
	// Stages in name order, so that two enqueuers lock them in one order.
	for _, stage := range slices.Sorted(maps.Keys(byStage)) {
		err := s.inTx(ctx, func(tx *txn) error {
			_, err := s.enqueue(tx, stage, byStage[stage])
			return err
		})
		if err != nil {
			return s.fail(fmt.Sprintf("enqueue %d %s task(s)", len(byStage[stage]), stage), err)
		}
	}
	return nil
}

// enqueue adds the stage's tasks, valid (validTasks), in tx, and returns
// the stage's virtual times as it locked them (see readClocks). The
// stage's first task makes its clocks; every later one finds them, in one
// statement (a round trip on PostgreSQL) fewer.
func (s *Store) enqueue(tx *txn, stage genpipe.Stage, tasks []genpipe.Task) (map[int]float64, error) {
	tg, err := newTagger(tx, stage)
	if err == nil && len(tg.vtime) == 0 {
		if _, err = tx.exec(insertClocks, stage); err == nil {
			tg, err = newTagger(tx, stage)
		}
	}
	if err != nil {
		return nil, err
	}
	for _, t := range tasks {
		if err := s.insertTask(tx, tg, t); err != nil {
			return nil, err
		}
	}
	return tg.vtime, tg.flush()
}

// insertTask inserts t, tagged by tg, unless it is queued already.
func (s *Store) insertTask(tx *txn, tg *tagger, t genpipe.Task) error {
	level := t.Share.Priority.Rank()
	tag, commit := tg.tag(level, t.Share.Tenant, t.Share.Weight)
	value := t.Value
	if value == nil {
		value = []byte{}
	}
	res, err := tx.exec(s.d.insertTask, t.Stage, t.RequestID, t.Replay, t.Share.Tenant, t.Share.Priority,
		t.Share.Weight, value, t.TraceParent, t.Topic, t.Partition, t.Offset, level, tag, s.nullTime(t.StartBy))
	n, err := rowsAffected(res, err)
	if err != nil {
		return err
	}
	if n == 1 { // a duplicate takes no turn
		commit()
	}
	return nil
}

// validTasks checks tasks and normalizes their shares in place.
func validTasks(tasks []genpipe.Task) error {
	for i := range tasks {
		tasks[i].Share = tasks[i].Share.Normalized()
		if err := validTask(tasks[i]); err != nil {
			return err
		}
	}
	return nil
}

func validTask(t genpipe.Task) error {
	switch {
	case t.Stage == "" || t.RequestID == "":
		return genpipe.Errorf(genpipe.EINVALID, "a task needs a stage and a request id")
	case t.Replay < 0:
		return genpipe.Errorf(genpipe.EINVALID, "task of %s: negative replay %d", t.RequestID, t.Replay)
	case !t.Share.Priority.Valid():
		return genpipe.Errorf(genpipe.EINVALID, "task of %s: unknown priority %q", t.RequestID, t.Share.Priority)
	case t.Share.Weight < 1 || t.Share.Weight > genpipe.MaxWeight || len(t.Share.Tenant) > genpipe.MaxTenantLen:
		return genpipe.Errorf(genpipe.EINVALID, "task of %s: weight %d out of 1..%d or tenant name too long",
			t.RequestID, t.Share.Weight, genpipe.MaxWeight)
	}
	return nil
}

// TakeTasks takes the stage's next tasks for r.Owner; see genpipe.TaskQueue.
func (s *Store) TakeTasks(ctx context.Context, r genpipe.TakeRequest) ([]genpipe.Task, error) {
	if r.Stage == "" || r.Owner == "" || r.Max < 0 || r.Capacity < 1 || r.Lease <= 0 {
		return nil, genpipe.Errorf(genpipe.EINVALID, "a take needs a stage, an owner, a max ≥ 0, a capacity ≥ 1 and a lease > 0")
	}
	enqueue := slices.Clone(r.Enqueue)
	for i := range enqueue {
		if enqueue[i].Stage != r.Stage {
			return nil, genpipe.Errorf(genpipe.EINVALID, "a take of %s enqueues a task of %q", r.Stage, enqueue[i].Stage)
		}
	}
	if err := validTasks(enqueue); err != nil {
		return nil, err
	}
	if len(r.Finish) == 0 && len(enqueue) == 0 {
		// A poll that would find nothing takes no write lock.
		var work bool
		if err := s.read.QueryRowContext(ctx, s.d.stageWork, r.Stage).Scan(&work); err != nil {
			return nil, s.fail("look for "+string(r.Stage)+" tasks", err)
		}
		if !work {
			return nil, nil
		}
	}
	var taken []takenTask
	var expired []genpipe.Task
	err := s.inTx(ctx, func(tx *txn) error {
		taken, expired = nil, nil // a retried transaction starts over
		if err := s.finishTasks(tx, r.Stage, r.Owner, r.Finish, r.Capacity); err != nil {
			return err
		}
		// The clocks, locked: as the enqueue read them, or read now.
		var clocks map[int]float64
		var err error
		if len(enqueue) > 0 {
			clocks, err = s.enqueue(tx, r.Stage, enqueue)
		} else {
			clocks, err = readClocks(tx, r.Stage)
		}
		if err != nil || len(clocks) == 0 { // no clocks: nothing was ever enqueued
			return err
		}
		if _, err := tx.exec(s.d.expireTasks, r.Stage); err != nil {
			return err
		}
		if expired, err = s.expireLate(tx, r.Stage); err != nil {
			return err
		}
		var running int
		if err := tx.queryRow(countRunning, r.Stage).Scan(&running); err != nil {
			return err
		}
		n := min(r.Max, r.Capacity-running)
		if n <= 0 {
			return nil
		}
		swept, err := s.sweepHead(tx, r.Stage, n)
		if err != nil {
			return err
		}
		expired = append(expired, swept...)
		if taken, err = s.takeNext(tx, r, n); err != nil {
			return err
		}
		// Each level's virtual time moves to the largest tag taken there.
		top := map[int]float64{}
		for _, t := range taken {
			top[t.level] = max(top[t.level], t.vstart)
		}
		for level, vtime := range top {
			if vtime > clocks[level] {
				if _, err := tx.exec(advanceClock, r.Stage, level, vtime); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, s.fail("take "+string(r.Stage)+" tasks", err)
	}
	out := make([]genpipe.Task, len(taken), len(taken)+len(expired))
	for i, t := range taken {
		out[i] = t.Task
	}
	return append(out, expired...), nil
}

// takenTask is a task as a take returns it, with where it stood.
type takenTask struct {
	genpipe.Task
	level  int
	vstart float64
}

// takeNext takes n tasks for r.Owner and returns them in schedule order.
func (s *Store) takeNext(tx *txn, r genpipe.TakeRequest, n int) ([]takenTask, error) {
	rows, err := tx.query(s.d.takeNext, r.Stage, n, r.Owner, r.Lease.Seconds())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var taken []takenTask
	for rows.Next() {
		t := takenTask{Task: genpipe.Task{Stage: r.Stage}}
		if err := rows.Scan(&t.ID, &t.RequestID, &t.Replay, &t.Share.Tenant, &t.Share.Priority, &t.Share.Weight,
			&t.Value, &t.TraceParent, &t.Topic, &t.Partition, &t.Offset, timeColumn{&t.EnqueuedAt}, &t.level, &t.vstart,
			nullTimeColumn{&t.StartBy}); err != nil {
			return nil, err
		}
		taken = append(taken, t)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	slices.SortFunc(taken, func(a, b takenTask) int {
		return cmp.Or(cmp.Compare(b.level, a.level), cmp.Compare(a.vstart, b.vstart), cmp.Compare(a.ID, b.ID))
	})
	return taken, nil
}

// FinishTasks removes owner's done tasks; see genpipe.TaskQueue.
func (s *Store) FinishTasks(ctx context.Context, stage genpipe.Stage, owner string, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	err := s.inTx(ctx, func(tx *txn) error { return s.finishTasks(tx, stage, owner, ids, 0) })
	if err != nil {
		return s.fail(fmt.Sprintf("finish %d %s task(s)", len(ids), stage), err)
	}
	return nil
}

// ReleaseTasks hands owner's tasks back to waiting; see genpipe.TaskQueue.
func (s *Store) ReleaseTasks(ctx context.Context, stage genpipe.Stage, owner string, ids []int64) error {
	return s.eachTask(ctx, "release", releaseTask, stage, owner, ids)
}

// eachTask runs stmt on each of owner's tasks ids in one transaction: one
// commit for the batch.
func (s *Store) eachTask(ctx context.Context, what, stmt string, stage genpipe.Stage, owner string, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	err := s.inTx(ctx, func(tx *txn) error {
		for _, id := range ids {
			if _, err := tx.exec(stmt, stage, owner, id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return s.fail(fmt.Sprintf("%s %d %s task(s)", what, len(ids), stage), err)
	}
	return nil
}

// RenewTasks extends owner's leases; see genpipe.TaskQueue.
func (s *Store) RenewTasks(ctx context.Context, stage genpipe.Stage, owner string, lease time.Duration) (int, error) {
	n, err := rowsAffected(s.write.ExecContext(ctx, s.d.renewTasks, stage, owner, lease.Seconds()))
	if err != nil {
		return 0, s.fail("renew "+string(stage)+" tasks", err)
	}
	return int(n), nil
}

// AgeTasks moves tasks that waited too long one level up; see
// genpipe.TaskQueue. Only tasks with work waiting above them move: aging is
// there to keep higher priorities from starving lower ones, and moving a
// tenant's old backlog above other tenants' fresh work at the same
// priority would undo the fair shares. Each is tagged at its new level as
// if its tenant had just enqueued it there, and waits there for after
// again before it moves on. It moves at most agingBatch tasks per call.
func (s *Store) AgeTasks(ctx context.Context, stage genpipe.Stage, after time.Duration) (int, error) {
	if after <= 0 {
		return 0, genpipe.Errorf(genpipe.EINVALID, "aging bound %v: want more than 0", after)
	}
	moved := 0
	err := s.inTx(ctx, func(tx *txn) error {
		moved = 0
		tg, err := newTagger(tx, stage)
		if err != nil || len(tg.vtime) == 0 {
			return err
		}
		type aged struct {
			id            int64
			tenant        string
			weight, level int
			now           time.Time
		}
		var due []aged
		rows, err := tx.query(s.d.selectAging, stage, -after.Seconds(), agingBatch)
		if err != nil {
			return err
		}
		for rows.Next() {
			var a aged
			if err := rows.Scan(&a.id, &a.tenant, &a.weight, &a.level, timeColumn{&a.now}); err != nil {
				rows.Close()
				return err
			}
			due = append(due, a)
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return err
		}
		for _, a := range due {
			tag, commit := tg.tag(a.level+1, a.tenant, a.weight)
			if _, err := tx.exec(relevelTask, stage, a.id, a.level+1, tag, s.d.time(a.now)); err != nil {
				return err
			}
			commit()
		}
		moved = len(due)
		return tg.flush()
	})
	if err != nil {
		return 0, s.fail("age "+string(stage)+" tasks", err)
	}
	return moved, nil
}

// CountTasks counts the stage's tasks; see genpipe.TaskQueue.
func (s *Store) CountTasks(ctx context.Context, stage genpipe.Stage) ([]genpipe.TaskCount, error) {
	rows, err := s.read.QueryContext(ctx, countTasks, stage)
	if err != nil {
		return nil, s.fail("count "+string(stage)+" tasks", err)
	}
	defer rows.Close()
	var counts []genpipe.TaskCount
	for rows.Next() {
		var c genpipe.TaskCount
		var state string
		if err := rows.Scan(&c.Tenant, &c.Priority, &state, &c.N); err != nil {
			return nil, s.fail("count "+string(stage)+" tasks", err)
		}
		c.Running = state == "running"
		counts = append(counts, c)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("count "+string(stage)+" tasks", err)
	}
	return counts, nil
}

// readClocks locks the stage's clock rows (see lockClocks) and returns its
// virtual time by level; empty when the stage never had a task.
func readClocks(tx *txn, stage genpipe.Stage) (map[int]float64, error) {
	rows, err := tx.query(tx.s.d.lockClocks, stage)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	clocks := map[int]float64{}
	for rows.Next() {
		var level int
		var vtime float64
		if err := rows.Scan(&level, &vtime); err != nil {
			return nil, err
		}
		clocks[level] = vtime
	}
	return clocks, rows.Err()
}

// A tagger hands out virtual start tags within one transaction that holds
// the stage's clock rows: a task's tag at a level is the larger of the
// level's virtual time and its tenant's last finish tag there, and the
// tenant's finish tag moves to tag + 1/weight. An idle tenant's finish tag
// falls behind the virtual time, so it starts at the virtual time: it
// banks no credit.
type tagger struct {
	tx     *txn
	stage  genpipe.Stage
	vtime  map[int]float64
	finish map[tenantLevel]float64 // read or changed in this transaction
	dirty  map[tenantLevel]bool
}

type tenantLevel struct {
	level  int
	tenant string
}

func newTagger(tx *txn, stage genpipe.Stage) (*tagger, error) {
	vtime, err := readClocks(tx, stage)
	return &tagger{tx: tx, stage: stage, vtime: vtime, finish: map[tenantLevel]float64{}, dirty: map[tenantLevel]bool{}}, err
}

// tag returns the tag of a task of tenant at level, and a func that counts
// the task in the tenant's finish tag once it is stored. A failed read
// shows in flush, which the transaction cannot skip.
func (g *tagger) tag(level int, tenant string, weight int) (float64, func()) {
	k := tenantLevel{level, tenant}
	finish, ok := g.finish[k]
	if !ok {
		err := g.tx.queryRow(selectTenantFinish, g.stage, level, tenant).Scan(&finish)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			g.tx.err = errors.Join(g.tx.err, err)
		}
		g.finish[k] = finish
	}
	tag := max(g.vtime[level], finish)
	return tag, func() {
		g.finish[k] = tag + 1/float64(weight)
		g.dirty[k] = true
	}
}

// flush stores the finish tags that changed.
func (g *tagger) flush() error {
	if g.tx.err != nil {
		return g.tx.err
	}
	for k := range g.dirty {
		if _, err := g.tx.exec(upsertTenantFinish, g.stage, k.level, k.tenant, g.finish[k]); err != nil {
			return err
		}
	}
	return nil
}

// A txn is a transaction on the write pool, whose statements are prepared
// where the pool prepares them (SQLite; see pool).
type txn struct {
	ctx context.Context
	s   *Store
	tx  *sql.Tx
	err error // a failure that must fail the transaction (see tagger.tag)
}

// inTx runs fn in a transaction on the write pool and commits it unless fn
// fails. On SQLite BEGIN takes the write lock (see sqliteDSN).
func (s *Store) inTx(ctx context.Context, fn func(tx *txn) error) error {
	if err := s.prepareTxStmts(ctx); err != nil {
		return err
	}
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() // after Commit, a no-op
	if err := fn(&txn{ctx: ctx, s: s, tx: tx}); err != nil {
		return err
	}
	return tx.Commit()
}

// prepareTxStmts prepares the statements the queue's transactions run,
// where the write pool prepares (SQLite), before the first transaction:
// inside one it could not, since the transaction holds the pool's one
// connection.
func (s *Store) prepareTxStmts(ctx context.Context) error {
	if !s.write.prepare || s.txPrepared.Load() {
		return nil
	}
	for _, q := range []string{insertClocks, selectTenantFinish, upsertTenantFinish, advanceClock, countRunning,
		s.d.finishTask, addServiceSamples, releaseTask, relevelTask, s.d.insertTask, s.d.lockClocks, s.d.expireTasks, s.d.takeNext, s.d.selectAging,
		s.d.selectHead, s.d.selectLate, deleteTask, s.d.advanceRequest, s.d.queueEndWebhook} {
		if _, err := s.write.stmt(ctx, q); err != nil {
			return err
		}
	}
	s.txPrepared.Store(true)
	return nil
}

// stmt returns query prepared for the transaction, or nil where the pool
// does not prepare (see prepareTxStmts).
func (t *txn) stmt(query string) (*sql.Stmt, error) {
	st, ok := t.s.write.stmts.Load(query)
	if !ok {
		return nil, nil
	}
	return t.tx.StmtContext(t.ctx, st.(*sql.Stmt)), nil
}

func (t *txn) exec(query string, args ...any) (sql.Result, error) {
	st, err := t.stmt(query)
	switch {
	case err != nil:
		return nil, err
	case st != nil:
		return st.ExecContext(t.ctx, args...)
	}
	return t.tx.ExecContext(t.ctx, query, args...)
}

func (t *txn) query(query string, args ...any) (*sql.Rows, error) {
	st, err := t.stmt(query)
	switch {
	case err != nil:
		return nil, err
	case st != nil:
		return st.QueryContext(t.ctx, args...)
	}
	return t.tx.QueryContext(t.ctx, query, args...)
}

func (t *txn) queryRow(query string, args ...any) row {
	st, err := t.stmt(query)
	switch {
	case err != nil:
		return errRow{err}
	case st != nil:
		return st.QueryRowContext(t.ctx, args...)
	}
	return t.tx.QueryRowContext(t.ctx, query, args...)
}
