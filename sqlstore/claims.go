package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/genpipe/genpipe"
)

const selectClaim = `SELECT state, owner, lease_until, output, takes, replay
	FROM stage_claims WHERE request_id = $1 AND stage = $2`

// claimSQL returns d's claim statements. Leases are measured on the
// database's clock (d.clock), the one clock every worker sharing the
// database agrees on, whatever their own clocks say; $4 is a lease in
// seconds.
//
// takeClaim inserts a running claim, or takes over one whose lease expired
// or that failed on an older replay; it returns a row only when the caller
// got the claim. Concurrent callers serialize on the row: the losers
// re-check the WHERE against the winner's row.
//
// releaseClaim ends the lease a millisecond ago (SQLite's clock ticks in
// milliseconds), so that the next ClaimStage, which takes a lease that
// ended before its own now, takes it at once.
func claimSQL(d *dialect) (takeClaim, renewClaim, finishClaim, releaseClaim string) {
	const held = `WHERE request_id = $1 AND stage = $2 AND owner = $3 AND state = 'running'`
	takeClaim = `INSERT INTO stage_claims (request_id, stage, state, owner, lease_until, takes, replay, updated_at)
	VALUES ($1, $2, 'running', $3, ` + d.later("$4") + `, 1, $5, ` + d.clock + `)
	ON CONFLICT (request_id, stage) DO UPDATE SET
		state = 'running', owner = excluded.owner, lease_until = excluded.lease_until, output = '',
		takes = stage_claims.takes + 1, replay = excluded.replay, updated_at = excluded.updated_at
	WHERE (stage_claims.state = 'running' AND stage_claims.lease_until < excluded.updated_at)
		OR (stage_claims.state = 'failed' AND stage_claims.replay < excluded.replay)
	RETURNING takes, lease_until`
	renewClaim = `UPDATE stage_claims SET lease_until = ` + d.later("$4") + `, updated_at = ` + d.clock + `
	` + held
	finishClaim = `UPDATE stage_claims SET state = $4, output = $5, updated_at = ` + d.clock + `
	` + held
	releaseClaim = `UPDATE stage_claims SET lease_until = ` + d.later("-0.001") + `, updated_at = ` + d.clock + `
	` + held
	return
}

// ClaimStage takes (request, stage) for r.Owner, or reports the claim as it
// stands; see genpipe.ClaimStore.
func (s *Store) ClaimStage(ctx context.Context, r genpipe.ClaimRequest) (genpipe.Claim, error) {
	if err := r.Validate(); err != nil {
		return genpipe.Claim{}, err
	}
	c := genpipe.Claim{RequestID: r.RequestID, Stage: r.Stage, Owner: r.Owner, Replay: r.Replay}
	err := s.write.QueryRowContext(ctx, s.d.takeClaimLive, r.RequestID, r.Stage, r.Owner, r.Lease.Seconds(), r.Replay,
		requestKey(r.RequestID)).Scan(&c.Takes, timeColumn{&c.LeaseUntil})
	switch {
	case err == nil:
		c.State = genpipe.ClaimTaken
		return c, nil
	case !errors.Is(err, sql.ErrNoRows):
		return genpipe.Claim{}, s.fail("claim "+string(r.Stage)+" of "+r.RequestID, err)
	}
	// Not taken: someone holds or finished it, or the request refuses it.
	ref, err := s.claimRefused(ctx, r.RequestID, r.Stage)
	switch {
	case err != nil:
		return genpipe.Claim{}, err
	case ref.state == genpipe.ClaimCanceled:
		c.State, c.Reason = ref.state, ref.reason
		return c, nil
	case ref.state == genpipe.ClaimExpired:
		// A stage that finished before the deadline keeps its outcome (a
		// redelivery re-emits it; the next stage refuses the request).
		stored, err := s.readClaim(ctx, r.RequestID, r.Stage)
		if err == nil && (stored.State == genpipe.ClaimDone || stored.State == genpipe.ClaimFailed && stored.Replay >= r.Replay) {
			return stored, nil
		}
		c.State, c.Reason = ref.state, ref.reason
		if !ref.late {
			return c, nil
		}
		c.Ended, err = s.expireLateRequest(ctx, r.RequestID, r.Stage, ref.startBy)
		return c, err
	}
	return s.readClaim(ctx, r.RequestID, r.Stage)
}

// readClaim reads a claim someone else holds or finished. It reads on the
// write pool, which has just seen the claim's row.
func (s *Store) readClaim(ctx context.Context, id string, stage genpipe.Stage) (genpipe.Claim, error) {
	c := genpipe.Claim{RequestID: id, Stage: stage}
	var state, outcome string
	err := s.write.QueryRowContext(ctx, selectClaim, id, stage).
		Scan(&state, &c.Owner, timeColumn{&c.LeaseUntil}, &outcome, &c.Takes, &c.Replay)
	if err != nil {
		return genpipe.Claim{}, s.fail("read claim "+string(stage)+" of "+id, err)
	}
	c.SetStored(state, outcome)
	return c, nil
}

// RenewClaim extends owner's lease; see genpipe.ClaimStore.
func (s *Store) RenewClaim(ctx context.Context, id string, stage genpipe.Stage, owner string, lease time.Duration) error {
	res, err := s.write.ExecContext(ctx, s.d.renewClaim, id, stage, owner, lease.Seconds())
	return s.claimUpdated("renew", id, stage, res, err)
}

// FinishClaim records the outcome of owner's claim; see genpipe.ClaimStore.
func (s *Store) FinishClaim(ctx context.Context, id string, stage genpipe.Stage, owner string, state genpipe.ClaimState, output string) error {
	if err := genpipe.CheckOutcome(state); err != nil {
		return err
	}
	res, err := s.write.ExecContext(ctx, s.d.finishClaim, id, stage, owner, state, output)
	return s.claimUpdated("finish", id, stage, res, err)
}

// ReleaseClaim gives owner's claim back; see genpipe.ClaimStore.
func (s *Store) ReleaseClaim(ctx context.Context, id string, stage genpipe.Stage, owner string) error {
	if _, err := s.write.ExecContext(ctx, s.d.releaseClaim, id, stage, owner); err != nil {
		return s.fail("release claim "+string(stage)+" of "+id, err)
	}
	return nil
}

// claimUpdated turns the result of a statement on owner's claim into
// ECONFLICT when it changed nothing: owner no longer holds the claim.
func (s *Store) claimUpdated(what, id string, stage genpipe.Stage, res sql.Result, err error) error {
	n, err := rowsAffected(res, err)
	if err != nil {
		return s.fail(what+" claim "+string(stage)+" of "+id, err)
	}
	if n == 0 {
		return genpipe.Errorf(genpipe.ECONFLICT, "claim %s of %s is not held by this worker any more", stage, id)
	}
	return nil
}
