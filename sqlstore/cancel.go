package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/genpipe/genpipe"
)

var _ genpipe.CancelStore = (*Store)(nil)

// Cancel and deadlines in the store (see genpipe.CancelStore): a cancel is
// one transaction that ends the request, writes its history, queues its
// webhook and removes its waiting tasks; the claim and the take refuse a
// canceled or expired request, and one past its start_by on the
// database's clock, in the statement that would take it.

const (
	// deleteWaitingTasks removes a request's waiting tasks, through
	// stage_tasks_request (migration 0009). A running one finishes as its
	// worker sees the cancel.
	deleteWaitingTasks = `DELETE FROM stage_tasks WHERE request_id = $1 AND state = 'waiting'`
	deleteTask         = `DELETE FROM stage_tasks WHERE id = $1`
	// endedStatuses are the statuses whose requests no AI call starts for.
	endedStatuses = `('canceled', 'expired')`
)

// lateBy is an SQL condition: column, a start_by, is within
// genpipe.StartMargin of the database's clock, or past it.
func lateBy(d *dialect, column string) string {
	return column + ` < ` + d.later(strconv.FormatFloat(genpipe.StartMargin.Seconds(), 'f', -1, 64))
}

// noRequest stands in for a request id that cannot be a stored request's
// (see validID) where a statement compares it with requests.id: on
// PostgreSQL a uuid, which any other text fails to convert to.
const noRequest = "00000000-0000-0000-0000-000000000000"

// requestKey is id as requests.id compares with it.
func requestKey(id string) string {
	if validID(id) {
		return id
	}
	return noRequest
}

// cancelSQL returns d's statements of cancel and deadlines.
//
// cancelRequest ends a published request that has not ended (rank below
// failed's) and, with d.withHistory, records the change: of concurrent
// cancels and terminal statuses, the row lock (PostgreSQL) or the one
// writer (SQLite) lets exactly one change it.
//
// queueEndWebhook queues the webhook of request $1's status, when that is
// $2 and it has a webhook URL, unless queued already: the notifier queues
// the same delivery when it sees the status event, and the unique key
// keeps one.
//
// selectHead reads the first $2 waiting tasks of a stage in schedule
// order, each with whether its request ended canceled or expired (gone)
// and whether its start_by passed (late).
//
// takeClaimLive is claimSQL's takeClaim that takes nothing for a request
// ($6, as requests.id compares) that ended canceled or expired or whose
// start_by passed; claimRefusal reads why.
func cancelSQL(d *dialect) (cancelRequest, queueEndWebhook, selectHead, takeClaimLive, claimRefusal string) {
	cancelRequest = d.withHistory(`UPDATE requests SET status = 'canceled', status_rank = 5, error = $2, updated_at = $3
	WHERE id = $1 AND published AND status_rank < 4`)
	queueEndWebhook = `INSERT INTO webhook_deliveries (request_id, status, url, state, attempts, next_attempt_at, last_error, created_at)
	SELECT id, status, webhook_url, 'pending', 0, ` + d.clock + `, '', ` + d.clock + `
	FROM requests WHERE id = $1 AND status = $2 AND webhook_url <> ''
	ON CONFLICT (request_id, status) DO NOTHING`
	selectHead = `SELECT t.id, t.request_id, t.replay, t.tenant, t.priority, t.weight, t.start_by,
		EXISTS (SELECT 1 FROM requests r WHERE r.id = ` + d.taskRequest + ` AND r.status IN ` + endedStatuses + `),
		COALESCE(` + lateBy(d, "t.start_by") + `, FALSE)
	FROM stage_tasks t
	WHERE t.stage = $1 AND t.state = 'waiting'
	ORDER BY t.level DESC, t.vstart, t.id
	LIMIT $2`
	takeClaimLive = `INSERT INTO stage_claims (request_id, stage, state, owner, lease_until, takes, replay, updated_at)
	SELECT $1, $2, 'running', $3, ` + d.later("$4") + `, 1, CAST($5 AS INTEGER), ` + d.clock + `
	WHERE NOT EXISTS (SELECT 1 FROM requests WHERE id = $6
		AND (status IN ` + endedStatuses + ` OR ` + lateBy(d, "start_by") + `))
	ON CONFLICT (request_id, stage) DO UPDATE SET
		state = 'running', owner = excluded.owner, lease_until = excluded.lease_until, output = '',
		takes = stage_claims.takes + 1, replay = excluded.replay, updated_at = excluded.updated_at
	WHERE (stage_claims.state = 'running' AND stage_claims.lease_until < excluded.updated_at)
		OR (stage_claims.state = 'failed' AND stage_claims.replay < excluded.replay)
	RETURNING takes, lease_until`
	claimRefusal = `SELECT status, error, start_by, COALESCE(` + lateBy(d, "start_by") + `, FALSE) FROM requests WHERE id = $1`
	return
}

// CancelRequest cancels a published request that has not ended; see
// genpipe.CancelStore.
func (s *Store) CancelRequest(ctx context.Context, id string) (*genpipe.Request, bool, error) {
	if !validID(id) {
		return nil, false, genpipe.Errorf(genpipe.ENOTFOUND, "request %s not found", id)
	}
	changed := false
	err := s.inTx(ctx, func(tx *txn) error {
		n, err := rowsAffected(tx.exec(s.d.cancelRequest, id, genpipe.CancelReason, s.d.time(now())))
		if changed = n > 0; err != nil || !changed {
			return err
		}
		if _, err := tx.exec(s.d.queueEndWebhook, id, genpipe.StatusCanceled); err != nil {
			return err
		}
		_, err = tx.exec(deleteWaitingTasks, id)
		return err
	})
	if err != nil {
		return nil, false, s.fail("cancel request "+id, err)
	}
	r, err := s.readRequest(ctx, s.write, id) // the write pool has seen the cancel
	switch {
	case err != nil:
		return nil, false, err
	case changed || r.Status == genpipe.StatusCanceled:
		return r, changed, nil
	}
	return r, false, genpipe.Errorf(genpipe.ECONFLICT, "request %s has ended %s: only a request that has not ended can be canceled", id, r.Status)
}

// canceledBatch bounds the ids of one CanceledRequests statement.
const canceledBatch = 500

// CanceledRequests returns which of ids are canceled; see
// genpipe.CancelStore. It reads through the primary key, in statements of
// up to canceledBatch ids.
func (s *Store) CanceledRequests(ctx context.Context, ids []string) ([]string, error) {
	var valid []any
	for _, id := range ids {
		if validID(id) {
			valid = append(valid, id)
		}
	}
	if s.d.canceledAny != "" && len(valid) > 0 {
		strs := make([]string, len(valid))
		for i, v := range valid {
			strs[i] = v.(string)
		}
		return s.canceledAmong(ctx, s.d.canceledAny, s.byIDs(strs)...)
	}
	var canceled []string
	for len(valid) > 0 {
		batch := valid[:min(len(valid), canceledBatch)]
		valid = valid[len(batch):]
		marks := make([]string, len(batch))
		for i := range batch {
			marks[i] = fmt.Sprintf("$%d", i+1)
		}
		found, err := s.canceledAmong(ctx, `SELECT id FROM requests WHERE status = 'canceled' AND id IN (`+
			strings.Join(marks, ", ")+`)`, batch...)
		if err != nil {
			return nil, err
		}
		canceled = append(canceled, found...)
	}
	return canceled, nil
}

// canceledAmong runs query, which selects canceled requests' ids.
func (s *Store) canceledAmong(ctx context.Context, query string, args ...any) ([]string, error) {
	rows, err := s.read.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, s.fail("read canceled requests", err)
	}
	defer rows.Close()
	var canceled []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, s.fail("read canceled requests", err)
		}
		canceled = append(canceled, id)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("read canceled requests", err)
	}
	return canceled, nil
}

// refusal is why a claim was not taken, when the request refuses it.
type refusal struct {
	state   genpipe.ClaimState // ClaimCanceled, ClaimExpired, or "" for none
	reason  string
	late    bool      // ClaimExpired because start_by passed, the request not ended yet
	startBy time.Time // then, its start_by
}

// claimRefused reads whether request id refuses stage's claim: canceled,
// expired, or past its start_by on the database's clock.
func (s *Store) claimRefused(ctx context.Context, id string, stage genpipe.Stage) (refusal, error) {
	if !validID(id) {
		return refusal{}, nil
	}
	var st genpipe.Status
	var reason string
	var late bool
	var start time.Time
	err := s.write.QueryRowContext(ctx, s.d.claimRefusal, id).Scan(&st, &reason, nullTimeColumn{&start}, &late)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return refusal{}, nil
	case err != nil:
		return refusal{}, s.fail("claim "+string(stage)+" of "+id+": read its request", err)
	case st == genpipe.StatusCanceled:
		return refusal{state: genpipe.ClaimCanceled, reason: reason}, nil
	case st == genpipe.StatusExpired:
		return refusal{state: genpipe.ClaimExpired, reason: reason}, nil
	case late:
		return refusal{state: genpipe.ClaimExpired, reason: genpipe.ExpiredReason(stage, start), late: true, startBy: start}, nil
	}
	return refusal{}, nil
}

// sweepHead removes, from the first n waiting tasks of stage, those of
// requests that ended canceled or expired, and those whose start_by passed:
// it ends each of the latter's requests expired (history, webhook) and
// returns them with Expired set. It looks again while it removed any, a
// bounded number of times, so that the n tasks a take picks next are live.
func (s *Store) sweepHead(tx *txn, stage genpipe.Stage, n int) ([]genpipe.Task, error) {
	var expired []genpipe.Task
	for range 8 {
		dead, late, err := s.readHead(tx, stage, n)
		if err != nil || len(dead) == 0 {
			return expired, err
		}
		for _, id := range dead {
			if _, err := tx.exec(deleteTask, id); err != nil {
				return nil, err
			}
		}
		for _, t := range late {
			ok, err := s.expireRequest(tx, t)
			if err != nil {
				return nil, err
			}
			if ok {
				expired = append(expired, t)
			}
		}
	}
	return expired, nil
}

// lateBatch bounds the late tasks one take expires (expireLate): the next
// take expires the rest.
const lateBatch = 100

// expireLate removes the stage's waiting tasks whose start_by passed,
// through stage_tasks_deadline, ends their requests expired (history,
// webhook) unless they ended already, and returns those it expired, with
// Expired set.
func (s *Store) expireLate(tx *txn, stage genpipe.Stage) ([]genpipe.Task, error) {
	rows, err := tx.query(s.d.selectLate, stage)
	if err != nil {
		return nil, err
	}
	var late []genpipe.Task
	for rows.Next() {
		t := genpipe.Task{Stage: stage, Expired: true}
		if err := rows.Scan(&t.ID, &t.RequestID, &t.Replay, &t.Share.Tenant, &t.Share.Priority, &t.Share.Weight,
			nullTimeColumn{&t.StartBy}); err != nil {
			rows.Close()
			return nil, err
		}
		late = append(late, t)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, err
	}
	var expired []genpipe.Task
	for _, t := range late {
		if _, err := tx.exec(deleteTask, t.ID); err != nil {
			return nil, err
		}
		ok, err := s.expireRequest(tx, t)
		if err != nil {
			return nil, err
		}
		if ok {
			expired = append(expired, t)
		}
	}
	return expired, nil
}

// readHead reads the first n waiting tasks of stage and returns the ids of
// those to remove, and of them the late ones of live requests.
func (s *Store) readHead(tx *txn, stage genpipe.Stage, n int) (dead []int64, late []genpipe.Task, err error) {
	rows, err := tx.query(s.d.selectHead, stage, n)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	for rows.Next() {
		t := genpipe.Task{Stage: stage, Expired: true}
		var gone, past bool
		if err := rows.Scan(&t.ID, &t.RequestID, &t.Replay, &t.Share.Tenant, &t.Share.Priority, &t.Share.Weight,
			nullTimeColumn{&t.StartBy}, &gone, &past); err != nil {
			return nil, nil, err
		}
		if gone || past {
			dead = append(dead, t.ID)
		}
		if past && !gone {
			late = append(late, t)
		}
	}
	return dead, late, rows.Err()
}

// expireLateRequest ends request id expired for stage's claim, unless
// it ended already, and reports whether it did.
func (s *Store) expireLateRequest(ctx context.Context, id string, stage genpipe.Stage, startBy time.Time) (bool, error) {
	var ended bool
	err := s.inTx(ctx, func(tx *txn) (err error) {
		ended, err = s.expireRequest(tx, genpipe.Task{RequestID: id, Stage: stage, StartBy: startBy})
		return err
	})
	if err != nil {
		return false, s.fail("claim "+string(stage)+" of "+id+": expire it", err)
	}
	return ended, nil
}

// expireRequest ends t's request expired, with its history and webhook,
// unless it ended already; it reports whether it did.
func (s *Store) expireRequest(tx *txn, t genpipe.Task) (bool, error) {
	if !validID(t.RequestID) {
		return false, nil
	}
	n, err := rowsAffected(tx.exec(s.d.advanceRequest, t.RequestID, genpipe.StatusExpired, genpipe.StatusExpired.Rank(),
		"", "", "", genpipe.ExpiredReason(t.Stage, t.StartBy), s.d.time(now()), 0))
	if err != nil || n == 0 {
		return false, err
	}
	_, err = tx.exec(s.d.queueEndWebhook, t.RequestID, genpipe.StatusExpired)
	return err == nil, err
}
