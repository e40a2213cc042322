package genpipe

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// The ledger of paid calls. Users pay for every AI call that reached the
// model, so every such call is one row: written before the call is sent
// (so a worker killed mid-call leaves a row), finished after it with its
// outcome and duration. Calls the AI did not take on — refused at capacity
// (429), answered from a stored answer to the same idempotency key, never
// sent — are not paid: their rows are forgotten (see AICallReceipt). The
// ledger then counts what the AI services count themselves (aisim's /stats
// "calls"), to the call.

// CallOutcome is how an AI call ended, as the ledger records it.
type CallOutcome string

const (
	// CallRunning: the call was started (its row written) and has not
	// ended; its worker holds the claim (request, stage) with a live lease.
	CallRunning CallOutcome = "running"
	// CallSucceeded: the AI answered with its work.
	CallSucceeded CallOutcome = "succeeded"
	// CallFailed: the AI took the call on and answered an error.
	CallFailed CallOutcome = "failed"
	// CallAborted: a cancel of the request aborted the call under way.
	CallAborted CallOutcome = "aborted"
	// CallAbandoned: the call got no answer: its worker died or gave up
	// (timeout, connection lost). A running call whose worker no longer
	// holds the claim with a live lease is abandoned.
	CallAbandoned CallOutcome = "abandoned"
)

// CallOutcomes lists the outcomes, in the order reports show them.
var CallOutcomes = []CallOutcome{CallSucceeded, CallFailed, CallAborted, CallAbandoned, CallRunning}

// Ended reports whether o is an outcome FinishCall records.
func (o CallOutcome) Ended() bool {
	return o == CallSucceeded || o == CallFailed || o == CallAborted || o == CallAbandoned
}

// Call is one paid AI call: one attempt at a request's stage.
type Call struct {
	ID        int64 // assigned by the ledger
	RequestID string
	Stage     Stage
	Tenant    string
	Replay    int // the event's replay generation
	Attempt   int // 1 for the handling's first call, 2 for its first retry, ...
	// Owner is the handling that made it: the owner of the claim
	// (request, stage) it runs under. While the call runs, the claim's
	// lease is its worker's sign of life.
	Owner     string
	StartedAt time.Time
	Duration  time.Duration // how long the AI held it; for an abandoned call, up to its worker's last renewal
	Outcome   CallOutcome
}

// Budget is a tenant's daily limit on one stage: Calls calls, or
// AISeconds seconds of AI time, per UTC day. Exactly one is set.
type Budget struct {
	Stage     Stage   `json:"stage" yaml:"stage"`
	Calls     int64   `json:"calls,omitempty" yaml:"calls,omitempty"`
	AISeconds float64 `json:"aiSeconds,omitempty" yaml:"aiSeconds,omitempty"`
}

// Validate reports a budget that cannot be configured.
func (b Budget) Validate() error {
	switch {
	case b.Stage != StageCheck && b.Stage != StageGenerate:
		return fmt.Errorf("stage %q: want %q or %q", b.Stage, StageCheck, StageGenerate)
	case b.Calls < 0 || b.AISeconds < 0:
		return fmt.Errorf("%s: a budget is not negative", b)
	case (b.Calls > 0) == (b.AISeconds > 0):
		return fmt.Errorf("stage %s: set one of calls or aiSeconds, above 0", b.Stage)
	}
	return nil
}

// String names the budget as errors and problems show it:
// "1000 generate calls a day".
func (b Budget) String() string {
	if b.AISeconds > 0 {
		return fmt.Sprintf("%g AI-seconds of %s a day", b.AISeconds, b.Stage)
	}
	return fmt.Sprintf("%d %s calls a day", b.Calls, b.Stage)
}

// Spent reports whether used, a day's use of the budget's stage, leaves
// no room for another call.
func (b Budget) Spent(used StageUse) bool {
	if b.AISeconds > 0 {
		return used.AISeconds >= b.AISeconds
	}
	return used.Calls >= b.Calls
}

// EBUDGET is the code of a call or a submission refused because a
// tenant's budget is spent: 429, like ETOOMANY, with the time it resets.
const EBUDGET = "budget_exceeded"

// BudgetError says which budget is spent and when it resets.
type BudgetError struct {
	Tenant  string
	Budget  Budget
	ResetAt time.Time // the next UTC midnight
	// Ahead, when not empty, says what would take the budget past its
	// limit (a submission: the day's use and the calls its tenant's
	// accepted requests still have to make); empty: it is spent.
	Ahead string
}

func (e *BudgetError) Error() string {
	state := "is spent"
	if e.Ahead != "" {
		state = "would be exceeded (" + e.Ahead + ")"
	}
	return fmt.Sprintf("tenant %s's budget of %s %s; it resets at %s", e.Tenant, e.Budget, state, e.ResetAt.Format(time.RFC3339))
}

// Unwrap makes a BudgetError an *Error with code EBUDGET, for ErrorCode
// and the API's problem answers.
func (e *BudgetError) Unwrap() error { return &Error{Code: EBUDGET, Message: e.Error()} }

// RetryAfter is how long from now until the budget resets.
func (e *BudgetError) RetryAfter() time.Duration { return time.Until(e.ResetAt) }

// Day is the UTC day t falls in, as its midnight.
func Day(t time.Time) time.Time {
	return t.UTC().Truncate(24 * time.Hour)
}

// StageUse is a tenant's use of one stage on one day.
type StageUse struct {
	Calls     int64   // every paid call, whatever its outcome, running ones included
	AISeconds float64 // their durations; a running call counts up to its start or last renewal
}

// CallStart asks the ledger to record a call about to be sent.
type CallStart struct {
	Call // Outcome, ID, StartedAt and Duration are set by the ledger
	// Budgets are the tenant's budgets on the call's stage: the call is
	// refused (a *BudgetError, nothing written) when one is spent by the
	// day's calls, running ones included. Checking and writing are atomic
	// against other StartCalls of the tenant and stage.
	Budgets []Budget
}

// Validate returns an EINVALID error unless s names a request, a stage, a
// tenant and an owner.
func (s CallStart) Validate() error {
	if s.RequestID == "" || s.Stage == "" || s.Tenant == "" || s.Owner == "" {
		return Errorf(EINVALID, "a call needs a request id, a stage, a tenant and an owner")
	}
	for _, b := range s.Budgets {
		if err := b.Validate(); err != nil {
			return Errorf(EINVALID, "budget: %v", err)
		}
	}
	return nil
}

// UsageQuery asks for usage over the days [From, To) (UTC midnights).
type UsageQuery struct {
	Tenant   string // "" for every tenant
	From, To time.Time
}

// MaxUsageDays bounds a usage query's range.
const MaxUsageDays = 366

// Validate returns an EINVALID error unless q is a range of whole UTC days,
// From before To, at most MaxUsageDays long.
func (q UsageQuery) Validate() error {
	switch {
	case !Day(q.From).Equal(q.From) || !Day(q.To).Equal(q.To):
		return Errorf(EINVALID, "a usage range is whole UTC days")
	case !q.From.Before(q.To):
		return Errorf(EINVALID, "from (%s) must be before to (%s)", q.From.Format(time.DateOnly), q.To.Format(time.DateOnly))
	case q.To.Sub(q.From) > MaxUsageDays*24*time.Hour:
		return Errorf(EINVALID, "a usage range is at most %d days", MaxUsageDays)
	}
	return nil
}

// ParseUsageRange reads a usage range as clients give it: from and to are
// dates (YYYY-MM-DD) or RFC 3339 times, which stand for their UTC day (a
// to that is not a midnight takes its whole day in). An empty from is
// today (UTC, by now), an empty to the day after from. The range is then
// checked (see UsageQuery.Validate); every error is EINVALID naming the
// parameter.
func ParseUsageRange(from, to string, now time.Time) (UsageQuery, error) {
	q := UsageQuery{From: Day(now)}
	var err error
	if from != "" {
		if q.From, err = parseDay("from", from, false); err != nil {
			return q, err
		}
	}
	q.To = q.From.Add(24 * time.Hour)
	if to != "" {
		if q.To, err = parseDay("to", to, true); err != nil {
			return q, err
		}
	}
	return q, q.Validate()
}

// parseDay reads a date or an RFC 3339 time as its UTC day's midnight, or
// the next one when up and t is not a midnight.
func parseDay(name, v string, up bool) (time.Time, error) {
	const want = "want a date (YYYY-MM-DD) or an RFC 3339 time"
	if len(v) > 64 {
		return time.Time{}, Errorf(EINVALID, "%s is too long: %s", name, want)
	}
	t, err := time.Parse(time.DateOnly, v)
	if err != nil {
		if t, err = time.Parse(time.RFC3339, v); err != nil {
			return time.Time{}, Errorf(EINVALID, "%s %q: %s", name, strings.ToValidUTF8(v, "?"), want)
		}
	}
	day := Day(t)
	if up && !day.Equal(t.UTC()) {
		day = day.Add(24 * time.Hour)
	}
	return day, nil
}

// Usage is one tenant's use of one stage on one UTC day.
type Usage struct {
	Tenant string
	Stage  Stage
	Day    time.Time // UTC midnight
	StageUse
	Outcomes map[CallOutcome]int64 // calls by outcome; absent outcomes are 0
}

// Ledger is the ledger of paid AI calls. Package sqlstore implements it on
// SQLite and PostgreSQL, both passing storetest.
type Ledger interface {
	// StartCall records a call about to be sent, before it is sent, as
	// running, and returns it with its ID. A *BudgetError when one of
	// s.Budgets is spent: nothing is written, and no call may be made.
	// A call is its request, stage, replay, owner and attempt: StartCall
	// again for the same (a retry after a lost answer) returns the row the
	// first wrote, unrefused, and counts it once.
	StartCall(ctx context.Context, s CallStart) (Call, error)
	// FinishCall records how call id ended and how long it took. A call
	// already ended is left as it is (ECONFLICT).
	FinishCall(ctx context.Context, id int64, outcome CallOutcome, d time.Duration) error
	// ForgetCall deletes call id, running: the AI did not take it on
	// (429, a stored answer replayed, never sent), so it was not paid.
	ForgetCall(ctx context.Context, id int64) error
	// RenewCalls notes that owner is alive at its running calls: an
	// abandoned call is charged up to its last renewal.
	RenewCalls(ctx context.Context, owner string) error
	// AbandonCalls marks abandoned every running call whose owner no
	// longer holds its claim with a live lease (its worker died, or gave
	// the claim up), and returns how many. Usage already reports them so;
	// this records it.
	AbandonCalls(ctx context.Context) (int, error)
	// Usage returns the use of every (tenant, stage, day) with calls in
	// q's range, by tenant, stage and day; running calls whose owner is
	// gone count as abandoned.
	Usage(ctx context.Context, q UsageQuery) ([]Usage, error)
	// DayUse returns tenant's use of each stage on the UTC day of day, as
	// budgets count it: every call, running ones included. It reads
	// counters, not the day's calls: a budget check costs the same however
	// many calls the day had.
	DayUse(ctx context.Context, tenant string, day time.Time) (map[Stage]StageUse, error)
	// Reserved returns, per stage, how many of tenant's accepted requests
	// have not finished and have no call of that stage yet: the calls its
	// budgets must still make room for.
	Reserved(ctx context.Context, tenant string) (map[Stage]int64, error)
}

// AICallReceipt is what an AI client learned about one call that decides
// whether it was paid. A worker puts one in the call's context
// (WithAICallReceipt); the client fills it in (package aiclient does).
//
// The rule (the AI contract, see package aiclient): a call the request of
// which was never fully written was not sent; an answer with status 429,
// or with the header ChargedHeader: false, was not paid (the service
// refused it before the model, or replayed a stored answer); every other
// answer was paid, and so was a call sent that got no answer (the model
// may have worked on it).
type AICallReceipt struct {
	Sent     bool // the request was written to the service
	Status   int  // the answer's HTTP status; 0 when none came
	NotPaid  bool // the answer said the call was not paid (429, or ChargedHeader false)
	Replayed bool // the answer is a stored answer to the same idempotency key
}

// Paid reports whether the call the receipt describes was paid.
func (r *AICallReceipt) Paid() bool { return r.Sent && !r.NotPaid }

// ChargedHeader is the answer header by which an AI service says a call
// was not paid: "false" on answers that took no model capacity (refused
// input, over capacity, a stored answer replayed).
const ChargedHeader = "Genpipe-Charged"

type receiptKey struct{}

// WithAICallReceipt returns ctx carrying r, for the AI client to fill in.
func WithAICallReceipt(ctx context.Context, r *AICallReceipt) context.Context {
	return context.WithValue(ctx, receiptKey{}, r)
}

// AICallReceiptFrom returns the receipt ctx carries, or nil.
func AICallReceiptFrom(ctx context.Context) *AICallReceipt {
	r, _ := ctx.Value(receiptKey{}).(*AICallReceipt)
	return r
}

// IsBudget reports whether err says a budget is spent, and returns it.
func IsBudget(err error) (*BudgetError, bool) {
	var be *BudgetError
	ok := errors.As(err, &be)
	return be, ok
}
