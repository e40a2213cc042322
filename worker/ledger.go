package worker

import (
	"context"
	"errors"
	"time"

	"github.com/genpipe/genpipe"
)

// paid makes one AI call, call, and records it in the ledger: a row written
// before the call is sent, so a worker killed mid-call leaves one, and
// finished after it with its outcome and duration; a call the AI did not
// take on (a 429, a stored answer replayed, a call never sent) is
// forgotten, as the AI does not count it either (see
// genpipe.AICallReceipt). Before the row is written, the tenant's budgets
// on the stage are checked in the same transaction: a spent one is a
// *genpipe.BudgetError and the AI is not called.
//
// The ledger's writes are retried while the status database is away: a
// call not recorded would make the ledger disagree with the AI's counts.
// They run detached from ctx, so a call aborted by a cancel is still
// recorded.
func (s *stage) paid(ctx context.Context, e genpipe.Event, c genpipe.Claim, attempt int, call func(context.Context) error) error {
	if s.ledger == nil {
		return call(ctx)
	}
	start := genpipe.CallStart{Call: genpipe.Call{RequestID: e.RequestID, Stage: s.name, Tenant: e.Share.Normalized().Tenant,
		Replay: e.Replay, Attempt: attempt, Owner: c.Owner}}
	if s.budgets != nil {
		start.Budgets = genpipe.Tenant{Budgets: s.budgets(start.Tenant)}.StageBudgets(s.name)
	}
	var row genpipe.Call
	wctx := context.WithoutCancel(ctx)
	err := s.retryStore(ctx, "start call", e.RequestID, func() (err error) {
		row, err = s.ledger.StartCall(wctx, start)
		return err
	})
	if err != nil {
		if be, ok := genpipe.IsBudget(err); ok {
			s.logger.Info("budget spent: AI call not made", "stage", s.name, "request", e.RequestID, "tenant", be.Tenant, "budget", be.Budget.String())
			s.onBudget(ctx, s.name, be)
		}
		return err
	}
	receipt := &genpipe.AICallReceipt{}
	began := time.Now()
	err = call(genpipe.WithAICallReceipt(ctx, receipt))
	took := time.Since(began)
	if !receipt.Paid() {
		return s.recordCall(wctx, e.RequestID, func() error { return s.ledger.ForgetCall(wctx, row.ID) }, err)
	}
	outcome := callOutcome(ctx, receipt, err)
	s.onCall(ctx, s.name, start.Tenant, outcome, took)
	return s.recordCall(wctx, e.RequestID, func() error {
		ferr := s.ledger.FinishCall(wctx, row.ID, outcome, took)
		if genpipe.ErrorCode(ferr) == genpipe.ECONFLICT {
			// Marked abandoned meanwhile: our claim's lease lapsed (the
			// status database was away) and another worker took over.
			s.logger.Warn("call marked abandoned while it ran", "stage", s.name, "request", e.RequestID, "call", row.ID)
			return nil
		}
		return ferr
	}, err)
}

// recordCall runs a ledger write until it succeeds (see retryStore) and
// returns the call's own error, callErr, unless the write failed for good.
func (s *stage) recordCall(ctx context.Context, id string, write func() error, callErr error) error {
	if err := s.retryStore(ctx, "record call", id, write); err != nil {
		return errors.Join(callErr, err)
	}
	return callErr
}

// callOutcome is how a paid call ended: succeeded with an answer of its
// work; aborted when its context was canceled (a cancel of the request
// ends the call's context, whatever the cause it gives) and it got no
// answer of its work; failed with an error answer; else abandoned (a
// timeout or a connection lost after the request was sent: the AI may
// have worked on it until it noticed).
func callOutcome(ctx context.Context, r *genpipe.AICallReceipt, err error) genpipe.CallOutcome {
	switch {
	case err == nil:
		return genpipe.CallSucceeded
	case errors.Is(ctx.Err(), context.Canceled):
		return genpipe.CallAborted
	case r.Status != 0:
		return genpipe.CallFailed
	}
	return genpipe.CallAbandoned
}
