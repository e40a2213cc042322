package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/genpipe/genpipe"
)

const (
	// takeClaim inserts a running claim, or takes over one whose lease
	// expired or that failed on an older replay; it returns a row only
	// when the caller got the claim. $6 is now: the one clock of the
	// machine every process of an SQLite store shares.
	takeClaim = `INSERT INTO stage_claims (request_id, stage, state, owner, lease_until, takes, replay, updated_at)
	VALUES ($1, $2, 'running', $3, $4, 1, $5, $6)
	ON CONFLICT (request_id, stage) DO UPDATE SET
		state = 'running', owner = excluded.owner, lease_until = excluded.lease_until, output = '',
		takes = stage_claims.takes + 1, replay = excluded.replay, updated_at = excluded.updated_at
	WHERE (stage_claims.state = 'running' AND stage_claims.lease_until < excluded.updated_at)
		OR (stage_claims.state = 'failed' AND stage_claims.replay < excluded.replay)
	RETURNING takes`

	selectClaim = `SELECT state, owner, lease_until, output, takes, replay
	FROM stage_claims WHERE request_id = $1 AND stage = $2`

	renewClaim = `UPDATE stage_claims SET lease_until = $4, updated_at = $5
	WHERE request_id = $1 AND stage = $2 AND owner = $3 AND state = 'running'`

	finishClaim = `UPDATE stage_claims SET state = $4, output = $5, updated_at = $6
	WHERE request_id = $1 AND stage = $2 AND owner = $3 AND state = 'running'`

	// releaseClaim ends the lease now, so the next ClaimStage takes it.
	releaseClaim = `UPDATE stage_claims SET lease_until = $4, updated_at = $4
	WHERE request_id = $1 AND stage = $2 AND owner = $3 AND state = 'running'`
)

// ClaimStage takes (request, stage) for r.Owner, or reports the claim as it
// stands; see genpipe.ClaimStore.
func (s *Store) ClaimStage(ctx context.Context, r genpipe.ClaimRequest) (genpipe.Claim, error) {
	if err := validClaim(r.RequestID, r.Stage, r.Owner); err != nil {
		return genpipe.Claim{}, err
	}
	at := now()
	until := at.Add(r.Lease)
	c := genpipe.Claim{RequestID: r.RequestID, Stage: r.Stage, Owner: r.Owner, LeaseUntil: until, Replay: r.Replay}
	err := s.write.QueryRowContext(ctx, takeClaim, r.RequestID, r.Stage, r.Owner, formatTime(until), r.Replay, formatTime(at)).Scan(&c.Takes)
	switch {
	case err == nil:
		c.State = genpipe.ClaimTaken
		return c, nil
	case !errors.Is(err, sql.ErrNoRows):
		return genpipe.Claim{}, fmt.Errorf("sqlite: claim %s of %s: %w", r.Stage, r.RequestID, err)
	}
	return s.readClaim(ctx, r.RequestID, r.Stage)
}

// readClaim reads a claim someone else holds or finished.
func (s *Store) readClaim(ctx context.Context, id string, stage genpipe.Stage) (genpipe.Claim, error) {
	c := genpipe.Claim{RequestID: id, Stage: stage}
	var state string
	err := s.write.QueryRowContext(ctx, selectClaim, id, stage).Scan(&state, &c.Owner, timeColumn{&c.LeaseUntil}, &c.Output, &c.Takes, &c.Replay)
	if err != nil {
		return genpipe.Claim{}, fmt.Errorf("sqlite: read claim %s of %s: %w", stage, id, err)
	}
	c.State = claimState(state)
	if c.State == genpipe.ClaimFailed {
		c.Reason, c.Output = c.Output, ""
	}
	return c, nil
}

// RenewClaim extends owner's lease; see genpipe.ClaimStore.
func (s *Store) RenewClaim(ctx context.Context, id string, stage genpipe.Stage, owner string, lease time.Duration) error {
	at := now()
	res, err := s.write.ExecContext(ctx, renewClaim, id, stage, owner, formatTime(at.Add(lease)), formatTime(at))
	return claimUpdated("renew", id, stage, res, err)
}

// FinishClaim records the outcome of owner's claim; see genpipe.ClaimStore.
func (s *Store) FinishClaim(ctx context.Context, id string, stage genpipe.Stage, owner string, state genpipe.ClaimState, output string) error {
	stored, err := finishedState(state)
	if err != nil {
		return err
	}
	res, err := s.write.ExecContext(ctx, finishClaim, id, stage, owner, stored, output, formatTime(now()))
	return claimUpdated("finish", id, stage, res, err)
}

// ReleaseClaim gives owner's claim back; see genpipe.ClaimStore.
func (s *Store) ReleaseClaim(ctx context.Context, id string, stage genpipe.Stage, owner string) error {
	// The lease ends a microsecond ago: takeClaim compares with <.
	if _, err := s.write.ExecContext(ctx, releaseClaim, id, stage, owner, formatTime(now().Add(-time.Microsecond))); err != nil {
		return fmt.Errorf("sqlite: release claim %s of %s: %w", stage, id, err)
	}
	return nil
}

func claimUpdated(what, id string, stage genpipe.Stage, res sql.Result, err error) error {
	if err != nil {
		return fmt.Errorf("sqlite: %s claim %s of %s: %w", what, stage, id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: %s claim %s of %s: %w", what, stage, id, err)
	} else if n == 0 {
		return genpipe.Errorf(genpipe.ECONFLICT, "claim %s of %s is not held by this worker any more", stage, id)
	}
	return nil
}

// validClaim checks the arguments every claim call needs.
func validClaim(id string, stage genpipe.Stage, owner string) error {
	if id == "" || stage == "" || owner == "" {
		return genpipe.Errorf(genpipe.EINVALID, "a claim needs a request id, a stage and an owner")
	}
	return nil
}

// claimState maps a stored state to what a caller who does not hold the
// claim sees.
func claimState(stored string) genpipe.ClaimState {
	switch stored {
	case "done":
		return genpipe.ClaimDone
	case "failed":
		return genpipe.ClaimFailed
	default:
		return genpipe.ClaimHeld
	}
}

// finishedState maps an outcome to its stored state.
func finishedState(state genpipe.ClaimState) (string, error) {
	switch state {
	case genpipe.ClaimDone:
		return "done", nil
	case genpipe.ClaimFailed:
		return "failed", nil
	}
	return "", genpipe.Errorf(genpipe.EINVALID, "a claim finishes done or failed, not %q", state)
}
