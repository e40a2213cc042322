package genpipe

import (
	"context"
	"time"
)

// Stage names an AI stage: the unit of work claimed per request.
type Stage string

const (
	StageCheck    Stage = "check"
	StageGenerate Stage = "generate"
)

// ClaimState is where a claim on (request, stage) stands.
type ClaimState string

const (
	// ClaimTaken: the caller holds the claim now and may call the AI.
	ClaimTaken ClaimState = "taken"
	// ClaimHeld: another worker holds a live lease; wait for it to finish
	// or for its lease to expire (its worker died), then claim again.
	ClaimHeld ClaimState = "held"
	// ClaimDone: the stage succeeded; Output holds what it produced. Skip
	// the AI call and re-emit the result downstream.
	ClaimDone ClaimState = "done"
	// ClaimFailed: the stage failed for good; Reason says why.
	ClaimFailed ClaimState = "failed"
)

// A store keeps a claim's state as text: a finished claim's ClaimState
// ("done", "failed"), and "running" for one a worker holds (ClaimTaken to
// its holder, ClaimHeld to anyone else).

// CheckOutcome returns an EINVALID error unless state is an outcome that
// FinishClaim records: ClaimDone or ClaimFailed.
func CheckOutcome(state ClaimState) error {
	if state != ClaimDone && state != ClaimFailed {
		return Errorf(EINVALID, "a claim finishes done or failed, not %q", state)
	}
	return nil
}

// SetStored sets c's State, Output and Reason from a stored state and
// outcome text, as a worker that does not hold the claim sees them.
func (c *Claim) SetStored(state, outcome string) {
	switch ClaimState(state) {
	case ClaimDone:
		c.State, c.Output = ClaimDone, outcome
	case ClaimFailed:
		c.State, c.Reason = ClaimFailed, outcome
	default: // running
		c.State = ClaimHeld
	}
}

// Claim is a worker's hold on one request's stage. Users pay for every AI
// call, so a stage's call succeeds at most once per request: a worker
// claims (request, stage) with a lease before calling the AI, renews the
// lease while the call runs, and records the outcome. A redelivered
// record (a rebalance, a crash, a duplicate publish) then finds the claim
// done and re-emits its result instead of paying again; a claim whose
// lease expired (its worker died) can be taken over.
//
// The one window left is a worker dying after the AI answered and before
// FinishClaim stored the outcome: the next worker calls again. It is as
// short as one database write.
type Claim struct {
	RequestID  string
	Stage      Stage
	State      ClaimState
	Owner      string    // who holds or last held it
	LeaseUntil time.Time // when a held claim may be taken over
	Output     string    // the stage's outcome when done (stage-specific, e.g. a JSON verdict)
	Reason     string    // why, when failed
	Takes      int       // how often it was taken: more than 1 means a lease expired and another worker took over, or a replay
	Replay     int       // the replay generation it was last taken for (see Event.Replay)
	// Ended is set on a ClaimExpired answer by the one claim that found
	// the request late and ended it expired in the store; later claims of
	// it answer without it, so the expiry is counted once.
	Ended bool
}

// ClaimRequest asks for a claim.
type ClaimRequest struct {
	RequestID string
	Stage     Stage
	Owner     string        // unique per handling: two handlings of one request never share it
	Lease     time.Duration // how long the claim holds without a renewal
	// Replay is the event's replay generation: a failed claim is taken
	// again only for a replay newer than the one it failed on, so an
	// operator's `genpipe dlq replay` retries it and a redelivery does not.
	Replay int
}

// Validate returns an EINVALID error unless r names a request, a stage
// and an owner.
func (r ClaimRequest) Validate() error {
	if r.RequestID == "" || r.Stage == "" || r.Owner == "" {
		return Errorf(EINVALID, "a claim needs a request id, a stage and an owner")
	}
	return nil
}

// ClaimStore keeps the claims. Package sqlstore implements it on SQLite and
// PostgreSQL, both passing storetest.
type ClaimStore interface {
	// ClaimStage takes the claim for r.Owner when nobody holds it, the
	// holder's lease expired, or it failed on an older replay; the
	// returned claim is then ClaimTaken. Otherwise it returns the claim as
	// it stands: held, done or failed.
	ClaimStage(ctx context.Context, r ClaimRequest) (Claim, error)
	// RenewClaim extends owner's lease by lease from now. It returns an
	// ECONFLICT error when owner no longer holds the claim.
	RenewClaim(ctx context.Context, id string, stage Stage, owner string, lease time.Duration) error
	// FinishClaim records the outcome of owner's claim: state is ClaimDone
	// with output, or ClaimFailed with output as the reason. ECONFLICT when
	// owner no longer holds it.
	FinishClaim(ctx context.Context, id string, stage Stage, owner string, state ClaimState, output string) error
	// ReleaseClaim gives owner's claim back without an outcome (the work
	// was interrupted), so another worker may take it at once. Releasing a
	// claim one does not hold is a no-op.
	ReleaseClaim(ctx context.Context, id string, stage Stage, owner string) error
}
