package worker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/backoff"
)

// outcome is how a stage ended for one request.
type outcome struct {
	state    genpipe.ClaimState // ClaimDone or ClaimFailed
	output   string             // done: the stage's output; failed: the reason
	attempts int                // AI calls made by this handling; 0 when another worker did the work
	ended    bool               // expired: this handling's claim ended the request (Claim.Ended)
}

// work is a stage's AI call with its retries: the output to record, the
// attempts made, and the error that ended them. c is the claim it runs
// under: c.Takes > 1 means a worker died holding it, maybe after the AI had
// already answered, so work may first look for that answer's traces.
type work func(ctx context.Context, c genpipe.Claim) (output string, attempts int, err error)

// owners names the handlings of one process: host, pid and a random part,
// then a sequence number, so that two handlings of one request (a
// duplicate record, or a record handled again after a rebalance) never
// share a claim.
type owners struct {
	prefix string
	seq    atomic.Uint64
}

func newOwners() *owners {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	rand.Read(b)
	return &owners{prefix: fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b))}
}

func (o *owners) next() string { return fmt.Sprintf("%s-%d", o.prefix, o.seq.Add(1)) }

// once runs do for the request's stage at most once successfully across
// every worker: it claims (request, stage) first, and when the claim is
// already done or failed it returns that outcome without calling the AI,
// so the caller re-emits the result downstream. While another live worker
// holds the claim, it waits for that one to finish or for its lease to
// expire. It returns an error only when ctx ends; the AI call then under
// way still finishes and is recorded (see run).
func (s *stage) once(ctx context.Context, id string, replay int, do work) (outcome, error) {
	req := genpipe.ClaimRequest{RequestID: id, Stage: s.name, Owner: s.owners.next(), Lease: s.lease, Replay: replay}
	for {
		var c genpipe.Claim
		err := s.retryStore(ctx, "claim", id, func() (err error) {
			c, err = s.claims.ClaimStage(ctx, req)
			return err
		})
		if err != nil {
			return outcome{}, err
		}
		switch c.State {
		case genpipe.ClaimTaken:
			if c.Takes > 1 {
				s.logger.Info("taking over a claim", "stage", s.name, "request", id, "takes", c.Takes, "replay", replay)
				s.abandonCalls(ctx)
			}
			return s.run(ctx, req, c, do)
		case genpipe.ClaimDone:
			s.logger.Info("already done: re-emitting its result, no AI call", "stage", s.name, "request", id)
			return outcome{state: genpipe.ClaimDone, output: c.Output}, nil
		case genpipe.ClaimFailed:
			return outcome{state: genpipe.ClaimFailed, output: c.Reason}, nil
		case genpipe.ClaimCanceled:
			s.logger.Info("request canceled: no AI call", "stage", s.name, "request", id)
			return outcome{state: genpipe.ClaimCanceled}, nil
		case genpipe.ClaimExpired:
			s.logger.Info("request past its start-by: no AI call", "stage", s.name, "request", id, "reason", c.Reason)
			return outcome{state: genpipe.ClaimExpired, output: c.Reason, ended: c.Ended}, nil
		}
		// Held by another worker: poll until it finishes or its lease
		// runs out (then the next ClaimStage takes over).
		wait := min(max(time.Until(c.LeaseUntil), 0)+10*time.Millisecond, s.heldPoll)
		if err := backoff.Sleep(ctx, wait); err != nil {
			return outcome{}, err
		}
	}
}

// run does the work under a claim this handling holds, renewing its lease
// meanwhile, and records the outcome.
//
// When ctx ends while the work runs (the engine gave the record up), the AI
// call under way still runs to its end (see callAI). If it answered, its
// outcome is recorded all the same, and run returns ctx's error: this
// handling emits nothing and its record is not committed, and the record's
// next owner finds the claim done and re-emits the result without a second
// call. If there is no answer to keep, the claim is handed back at once.
func (s *stage) run(ctx context.Context, req genpipe.ClaimRequest, c genpipe.Claim, do work) (outcome, error) {
	// The lease is renewed as long as the work runs, which may outlast ctx.
	renewCtx, stopRenew := context.WithCancel(context.WithoutCancel(ctx))
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		s.renew(renewCtx, req)
	}()
	ctx, sig, stopWatch := s.watchRequest(ctx, req.RequestID)
	output, attempts, err := do(ctx, c)
	canceled := wasCanceled(sig)
	stopWatch()
	stopRenew()
	<-renewed
	if canceled {
		return s.canceledWhileRunning(ctx, req, output, attempts, err)
	}
	interrupted := ctx.Err() != nil
	if interrupted && err != nil {
		// No answer to keep: hand the claim back so that the
		// partition's next owner need not wait for the lease.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if rerr := s.claims.ReleaseClaim(rctx, req.RequestID, req.Stage, req.Owner); rerr != nil {
			s.logger.Warn("releasing an interrupted claim; it frees when its lease ends", "stage", s.name, "request", req.RequestID, "err", rerr)
		}
		return outcome{}, ctx.Err()
	}
	o := outcome{state: genpipe.ClaimDone, output: output, attempts: attempts}
	if err != nil {
		o.state, o.output = genpipe.ClaimFailed, failure(s.what, attempts, err)
	}
	fctx := ctx
	if interrupted {
		// The record was given up on while the AI answered: record the
		// answer for its next owner, within the lease that keeps the
		// claim ours.
		var cancel context.CancelFunc
		fctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), s.lease)
		defer cancel()
	}
	ferr := s.retryStore(fctx, "finish claim", req.RequestID, func() error {
		err := s.claims.FinishClaim(fctx, req.RequestID, req.Stage, req.Owner, o.state, o.output)
		if genpipe.ErrorCode(err) == genpipe.ECONFLICT {
			// Our lease lapsed (renewals failed) and another worker took
			// over: it records its own outcome; ours still goes downstream.
			s.logger.Warn("claim taken over while the AI call ran", "stage", s.name, "request", req.RequestID)
			return nil
		}
		return err
	})
	if interrupted {
		s.logger.Info("record given up while its AI call ran: the call finished and its outcome is recorded for the record's next owner",
			"stage", s.name, "request", req.RequestID, "recorded", ferr == nil)
		return outcome{}, ctx.Err()
	}
	return o, ferr
}

// canceledWhileRunning ends a claim whose request was canceled while its
// work ran: an answer that came all the same (the AI did not abort) is
// recorded, paid for, and discarded; without one the claim is handed
// back. Either way nothing goes downstream: the request stays canceled.
func (s *stage) canceledWhileRunning(ctx context.Context, req genpipe.ClaimRequest, output string, attempts int, err error) (outcome, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err != nil {
		s.logger.Info("AI call aborted: its request was canceled", "stage", s.name, "request", req.RequestID, "attempts", attempts)
		if rerr := s.claims.ReleaseClaim(ctx, req.RequestID, req.Stage, req.Owner); rerr != nil {
			s.logger.Warn("releasing a canceled request's claim", "stage", s.name, "request", req.RequestID, "err", rerr)
		}
		return outcome{state: genpipe.ClaimCanceled, attempts: attempts}, nil
	}
	s.logger.Info("request canceled while its AI call ran; the AI answered all the same: answer discarded", "stage", s.name, "request", req.RequestID)
	if ferr := s.claims.FinishClaim(ctx, req.RequestID, req.Stage, req.Owner, genpipe.ClaimDone, output); ferr != nil {
		s.logger.Warn("recording a canceled request's answer", "stage", s.name, "request", req.RequestID, "err", ferr)
	}
	return outcome{state: genpipe.ClaimCanceled, attempts: attempts}, nil
}

// abandonCalls records as abandoned the calls of workers that died holding
// a claim, as a take-over finds them; the ledger's usage counts them so
// already, so a failure is only logged.
func (s *stage) abandonCalls(ctx context.Context) {
	if s.ledger == nil {
		return
	}
	if n, err := s.ledger.AbandonCalls(ctx); err != nil {
		s.logger.Warn("marking abandoned calls failed", "stage", s.name, "err", err)
	} else if n > 0 {
		s.logger.Info("calls of a worker that died marked abandoned", "stage", s.name, "calls", n)
	}
}

// renew extends the lease every third of it until ctx ends.
func (s *stage) renew(ctx context.Context, req genpipe.ClaimRequest) {
	backoff.Every(ctx, s.lease/3, func() {
		err := s.claims.RenewClaim(ctx, req.RequestID, req.Stage, req.Owner, s.lease)
		if err != nil && ctx.Err() == nil {
			s.logger.Warn("renewing a claim failed", "stage", s.name, "request", req.RequestID, "err", err)
		}
		if s.ledger == nil {
			return
		}
		// The call's last sign of life: what it is charged up to if
		// its worker dies.
		if err := s.ledger.RenewCalls(ctx, req.Owner); err != nil && ctx.Err() == nil {
			s.logger.Warn("renewing calls failed", "stage", s.name, "request", req.RequestID, "err", err)
		}
	})
}

// retryStore runs op until it succeeds, fails with a user error (a bug:
// returned at once), or ctx ends: the status database being away is not
// a reason to drop a request or to pay for its call twice.
func (s *stage) retryStore(ctx context.Context, what, id string, op func() error) error {
	err := backoff.Retry(ctx, s.publishRetry, op, backoff.RetryIf(func(err error) bool {
		return genpipe.ErrorCode(err) == genpipe.EINTERNAL
	}), backoff.OnRetry(func(attempt int, err error) {
		s.logger.Warn("status database failed, retrying", "stage", s.name, "op", what, "request", id, "attempt", attempt, "err", err)
	}))
	if err != nil {
		return fmt.Errorf("%s: %s %s: %w", s.name, what, id, err)
	}
	return nil
}
