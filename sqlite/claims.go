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
	if err := r.Validate(); err != nil {
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
	var state, outcome string
	err := s.write.QueryRowContext(ctx, selectClaim, id, stage).Scan(&state, &c.Owner, timeColumn{&c.LeaseUntil}, &outcome, &c.Takes, &c.Replay)
	if err != nil {
		return genpipe.Claim{}, fmt.Errorf("sqlite: read claim %s of %s: %w", stage, id, err)
	}
	c.SetStored(state, outcome)
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
	if err := genpipe.CheckOutcome(state); err != nil {
		return err
	}
	res, err := s.write.ExecContext(ctx, finishClaim, id, stage, owner, state, output, formatTime(now()))
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
