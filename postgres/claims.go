package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/genpipe/genpipe"
)

// Leases are measured on the database's clock (clock_timestamp()), the one
// clock every worker of a cluster shares, whatever their own clocks say.
const (
	// takeClaim inserts a running claim, or takes over one whose lease
	// expired or that failed on an older replay; it returns a row only
	// when the caller got the claim. Concurrent callers serialize on the
	// row: the losers re-check the WHERE against the winner's row.
	takeClaim = `INSERT INTO stage_claims AS c (request_id, stage, state, owner, lease_until, takes, replay, updated_at)
	VALUES ($1, $2, 'running', $3, clock_timestamp() + make_interval(secs => $4), 1, $5, clock_timestamp())
	ON CONFLICT (request_id, stage) DO UPDATE SET
		state = 'running', owner = excluded.owner, lease_until = excluded.lease_until, output = '',
		takes = c.takes + 1, replay = excluded.replay, updated_at = excluded.updated_at
	WHERE (c.state = 'running' AND c.lease_until < excluded.updated_at)
		OR (c.state = 'failed' AND c.replay < excluded.replay)
	RETURNING takes, lease_until`

	selectClaim = `SELECT state, owner, lease_until, output, takes, replay
	FROM stage_claims WHERE request_id = $1 AND stage = $2`

	renewClaim = `UPDATE stage_claims
	SET lease_until = clock_timestamp() + make_interval(secs => $4), updated_at = clock_timestamp()
	WHERE request_id = $1 AND stage = $2 AND owner = $3 AND state = 'running'`

	finishClaim = `UPDATE stage_claims SET state = $4, output = $5, updated_at = clock_timestamp()
	WHERE request_id = $1 AND stage = $2 AND owner = $3 AND state = 'running'`

	// releaseClaim ends the lease now, so the next ClaimStage takes it.
	releaseClaim = `UPDATE stage_claims
	SET lease_until = clock_timestamp() - interval '1 microsecond', updated_at = clock_timestamp()
	WHERE request_id = $1 AND stage = $2 AND owner = $3 AND state = 'running'`
)

// ClaimStage takes (request, stage) for r.Owner, or reports the claim as it
// stands; see genpipe.ClaimStore.
func (s *Store) ClaimStage(ctx context.Context, r genpipe.ClaimRequest) (genpipe.Claim, error) {
	if err := r.Validate(); err != nil {
		return genpipe.Claim{}, err
	}
	c := genpipe.Claim{RequestID: r.RequestID, Stage: r.Stage, Owner: r.Owner, Replay: r.Replay}
	err := s.pool.QueryRow(ctx, takeClaim, r.RequestID, r.Stage, r.Owner, r.Lease.Seconds(), r.Replay).Scan(&c.Takes, &c.LeaseUntil)
	switch {
	case err == nil:
		c.State, c.LeaseUntil = genpipe.ClaimTaken, c.LeaseUntil.UTC()
		return c, nil
	case !errors.Is(err, pgx.ErrNoRows):
		return genpipe.Claim{}, fmt.Errorf("postgres: claim %s of %s: %w", r.Stage, r.RequestID, err)
	}
	return s.readClaim(ctx, r.RequestID, r.Stage)
}

// readClaim reads a claim someone else holds or finished.
func (s *Store) readClaim(ctx context.Context, id string, stage genpipe.Stage) (genpipe.Claim, error) {
	c := genpipe.Claim{RequestID: id, Stage: stage}
	var state, outcome string
	err := s.pool.QueryRow(ctx, selectClaim, id, stage).Scan(&state, &c.Owner, &c.LeaseUntil, &outcome, &c.Takes, &c.Replay)
	if err != nil {
		return genpipe.Claim{}, fmt.Errorf("postgres: read claim %s of %s: %w", stage, id, err)
	}
	c.LeaseUntil = c.LeaseUntil.UTC()
	c.SetStored(state, outcome)
	return c, nil
}

// RenewClaim extends owner's lease; see genpipe.ClaimStore.
func (s *Store) RenewClaim(ctx context.Context, id string, stage genpipe.Stage, owner string, lease time.Duration) error {
	tag, err := s.pool.Exec(ctx, renewClaim, id, stage, owner, lease.Seconds())
	return claimUpdated("renew", id, stage, tag, err)
}

// FinishClaim records the outcome of owner's claim; see genpipe.ClaimStore.
func (s *Store) FinishClaim(ctx context.Context, id string, stage genpipe.Stage, owner string, state genpipe.ClaimState, output string) error {
	if err := genpipe.CheckOutcome(state); err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, finishClaim, id, stage, owner, string(state), output)
	return claimUpdated("finish", id, stage, tag, err)
}

// ReleaseClaim gives owner's claim back; see genpipe.ClaimStore.
func (s *Store) ReleaseClaim(ctx context.Context, id string, stage genpipe.Stage, owner string) error {
	if _, err := s.pool.Exec(ctx, releaseClaim, id, stage, owner); err != nil {
		return fmt.Errorf("postgres: release claim %s of %s: %w", stage, id, err)
	}
	return nil
}

func claimUpdated(what, id string, stage genpipe.Stage, tag pgconn.CommandTag, err error) error {
	if err != nil {
		return fmt.Errorf("postgres: %s claim %s of %s: %w", what, stage, id, err)
	}
	if tag.RowsAffected() == 0 {
		return genpipe.Errorf(genpipe.ECONFLICT, "claim %s of %s is not held by this worker any more", stage, id)
	}
	return nil
}
