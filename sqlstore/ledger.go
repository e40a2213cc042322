package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/genpipe/genpipe"
)

var _ genpipe.Ledger = (*Store)(nil)

// msPerDay turns Unix milliseconds into the UTC day ai_calls.day holds.
const msPerDay = 24 * 60 * 60 * 1000

// liveClaim is true while the row c's owner holds its claim with a lease
// that has not run out, on the database's clock: the one every worker
// sharing the database agrees on, as the claims themselves.
func liveClaim(d *dialect) string {
	return `EXISTS (SELECT 1 FROM stage_claims k WHERE k.request_id = c.request_id AND k.stage = c.stage
		AND k.owner = c.owner AND k.state = 'running' AND k.lease_until >= ` + d.clock + `)`
}

// ledgerSQL returns d's ledger statements that read the claims' leases.
//
// usage groups the calls of [$1, $2) days, of tenant $3 or every tenant
// when $3 is ”, by tenant, stage, day and outcome, a running call whose
// owner no longer holds its claim counting as abandoned; a running call is
// charged up to its last sign of life (alive_ms).
func ledgerSQL(d *dialect) (usage, abandonCalls string) {
	usage = `SELECT c.tenant, c.stage, c.day,
		CASE WHEN c.outcome = 'running' AND NOT ` + liveClaim(d) + ` THEN 'abandoned' ELSE c.outcome END AS o,
		count(*), sum(CASE WHEN c.outcome = 'running' THEN c.alive_ms - c.started_ms ELSE c.duration_ms END)
	FROM ai_calls c
	WHERE c.day >= $1 AND c.day < $2 AND ($3 = '' OR c.tenant = $3)
	GROUP BY c.tenant, c.stage, c.day, o
	ORDER BY c.tenant, c.stage, c.day`
	abandonCalls = `UPDATE ai_calls SET outcome = 'abandoned', duration_ms = alive_ms - started_ms
	WHERE outcome = 'running' AND id IN (SELECT c.id FROM ai_calls c WHERE c.outcome = 'running' AND NOT ` + liveClaim(d) + `)`
	return
}

const (
	// insertCall writes a call once: a retry after a lost answer finds the
	// row its first try wrote (the no-op update only lets RETURNING see it).
	insertCall = `INSERT INTO ai_calls (request_id, stage, tenant, replay, attempt, owner, day, started_ms, alive_ms, outcome)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, 'running')
	ON CONFLICT (request_id, stage, replay, owner, attempt) DO UPDATE SET attempt = excluded.attempt RETURNING id`
	// startedCall finds a call a first try already wrote, which passed the
	// budgets then and counts in them now.
	startedCall = `SELECT id FROM ai_calls WHERE request_id = $1 AND stage = $2 AND replay = $3 AND owner = $4 AND attempt = $5`
	// dayUse is a tenant's use of a stage on a day: every call counted, an
	// ended one by its duration, a running one up to its last sign of life,
	// as usage charges them. The day's counters (ai_call_days, kept by
	// triggers) make it two index lookups however many calls the day had.
	dayUse = `SELECT coalesce(sum(calls), 0), coalesce(sum(duration_ms), 0) + coalesce((SELECT sum(alive_ms - started_ms) FROM ai_calls
		WHERE tenant = $2 AND stage = $3 AND day = $1 AND outcome = 'running'), 0)
	FROM ai_call_days WHERE day = $1 AND tenant = $2 AND stage = $3`
	finishCall = `UPDATE ai_calls SET outcome = $2, duration_ms = $3 WHERE id = $1 AND outcome = 'running'`
	forgetCall = `DELETE FROM ai_calls WHERE id = $1 AND outcome = 'running'`
	renewCalls = `UPDATE ai_calls SET alive_ms = $2 WHERE owner = $1 AND outcome = 'running'`
	// reserved counts the tenant's requests that have not finished and
	// have no call of the stage yet.
	reserved = `SELECT count(*) FROM requests r WHERE r.tenant = $1 AND r.status_rank < 4
	AND NOT EXISTS (SELECT 1 FROM ai_calls c WHERE c.request_id = CAST(r.id AS TEXT) AND c.stage = $2)`
)

// StartCall records a call about to be sent; see genpipe.Ledger.
func (s *Store) StartCall(ctx context.Context, start genpipe.CallStart) (genpipe.Call, error) {
	if err := start.Validate(); err != nil {
		return genpipe.Call{}, err
	}
	c := start.Call
	c.StartedAt, c.Outcome, c.Duration = time.Now().UTC().Truncate(time.Millisecond), genpipe.CallRunning, 0
	ms := c.StartedAt.UnixMilli()
	day := ms / msPerDay
	if len(start.Budgets) == 0 { // nothing to check: one statement
		err := s.write.QueryRowContext(ctx, insertCall, c.RequestID, c.Stage, c.Tenant, c.Replay, c.Attempt, c.Owner, day, ms).Scan(&c.ID)
		if err != nil {
			return genpipe.Call{}, s.fail("start call "+string(c.Stage)+" of "+c.RequestID, err)
		}
		return c, nil
	}
	err := s.inTx(ctx, func(tx *txn) error {
		if s.d.lockBudget != "" {
			if _, err := tx.exec(s.d.lockBudget, c.Tenant+"/"+string(c.Stage)); err != nil {
				return err
			}
		}
		err := tx.queryRow(startedCall, c.RequestID, c.Stage, c.Replay, c.Owner, c.Attempt).Scan(&c.ID)
		if err == nil || !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		var use genpipe.StageUse
		var usedMS int64
		if err := tx.queryRow(dayUse, day, c.Tenant, c.Stage).Scan(&use.Calls, &usedMS); err != nil {
			return err
		}
		use.AISeconds = float64(usedMS) / 1000
		for _, b := range start.Budgets {
			if b.Stage == c.Stage && b.Spent(use) {
				return &genpipe.BudgetError{Tenant: c.Tenant, Budget: b, ResetAt: genpipe.Day(c.StartedAt).Add(24 * time.Hour)}
			}
		}
		return tx.queryRow(insertCall, c.RequestID, c.Stage, c.Tenant, c.Replay, c.Attempt, c.Owner, day, ms).Scan(&c.ID)
	})
	if _, ok := genpipe.IsBudget(err); ok {
		return genpipe.Call{}, err
	}
	if err != nil {
		return genpipe.Call{}, s.fail("start call "+string(c.Stage)+" of "+c.RequestID, err)
	}
	return c, nil
}

// FinishCall records how a call ended; see genpipe.Ledger.
func (s *Store) FinishCall(ctx context.Context, id int64, outcome genpipe.CallOutcome, d time.Duration) error {
	if !outcome.Ended() {
		return genpipe.Errorf(genpipe.EINVALID, "a call ends succeeded, failed, aborted or abandoned, not %q", outcome)
	}
	n, err := rowsAffected(s.write.ExecContext(ctx, finishCall, id, outcome, max(d, 0).Milliseconds()))
	if err != nil {
		return s.fail("finish call", err)
	}
	if n == 0 {
		return genpipe.Errorf(genpipe.ECONFLICT, "call %d is not running", id)
	}
	return nil
}

// ForgetCall deletes a running call the AI did not take on; see
// genpipe.Ledger.
func (s *Store) ForgetCall(ctx context.Context, id int64) error {
	if _, err := s.write.ExecContext(ctx, forgetCall, id); err != nil {
		return s.fail("forget call", err)
	}
	return nil
}

// RenewCalls notes that owner is alive at its running calls; see
// genpipe.Ledger.
func (s *Store) RenewCalls(ctx context.Context, owner string) error {
	if _, err := s.write.ExecContext(ctx, renewCalls, owner, time.Now().UnixMilli()); err != nil {
		return s.fail("renew calls", err)
	}
	return nil
}

// AbandonCalls marks abandoned the running calls whose owner is gone; see
// genpipe.Ledger.
func (s *Store) AbandonCalls(ctx context.Context) (int, error) {
	n, err := rowsAffected(s.write.ExecContext(ctx, s.d.abandonCalls))
	if err != nil {
		return 0, s.fail("abandon calls", err)
	}
	return int(n), nil
}

// Usage sums the calls by tenant, stage and day; see genpipe.Ledger.
func (s *Store) Usage(ctx context.Context, q genpipe.UsageQuery) ([]genpipe.Usage, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	from, to := q.From.UnixMilli()/msPerDay, q.To.UnixMilli()/msPerDay
	rows, err := s.read.QueryContext(ctx, s.d.usage, from, to, q.Tenant)
	if err != nil {
		return nil, s.fail("usage", err)
	}
	defer rows.Close()
	var out []genpipe.Usage
	for rows.Next() {
		var (
			tenant, outcome string
			stage           genpipe.Stage
			day, n, ms      int64
		)
		if err := rows.Scan(&tenant, &stage, &day, &outcome, &n, &ms); err != nil {
			return nil, s.fail("usage", err)
		}
		at := time.UnixMilli(day * msPerDay).UTC()
		k := len(out) - 1
		if k < 0 || out[k].Tenant != tenant || out[k].Stage != stage || !out[k].Day.Equal(at) {
			out = append(out, genpipe.Usage{Tenant: tenant, Stage: stage, Day: at, Outcomes: map[genpipe.CallOutcome]int64{}})
			k++
		}
		out[k].Calls += n
		out[k].AISeconds += float64(ms) / 1000
		out[k].Outcomes[genpipe.CallOutcome(outcome)] += n
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("usage", err)
	}
	return out, nil
}

// DayUse returns a tenant's use of each stage on a day; see
// genpipe.Ledger.
func (s *Store) DayUse(ctx context.Context, tenant string, day time.Time) (map[genpipe.Stage]genpipe.StageUse, error) {
	out := map[genpipe.Stage]genpipe.StageUse{}
	d := genpipe.Day(day).UnixMilli() / msPerDay
	for _, stage := range []genpipe.Stage{genpipe.StageCheck, genpipe.StageGenerate} {
		var use genpipe.StageUse
		var ms int64
		if err := s.read.QueryRowContext(ctx, dayUse, d, tenant, stage).Scan(&use.Calls, &ms); err != nil {
			return nil, s.fail("day use of "+tenant, err)
		}
		use.AISeconds = float64(ms) / 1000
		out[stage] = use
	}
	return out, nil
}

// Reserved counts the calls a tenant's unfinished requests have yet to
// make, per stage; see genpipe.Ledger.
func (s *Store) Reserved(ctx context.Context, tenant string) (map[genpipe.Stage]int64, error) {
	out := map[genpipe.Stage]int64{}
	for _, stage := range []genpipe.Stage{genpipe.StageCheck, genpipe.StageGenerate} {
		var n int64
		err := s.read.QueryRowContext(ctx, reserved, tenant, stage).Scan(&n)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return nil, s.fail("reserved calls of "+tenant, err)
		}
		out[stage] = n
	}
	return out, nil
}
