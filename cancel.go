package genpipe

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Cancel and deadlines.
//
// A user cancels a request that has not ended (RequestStore.CancelRequest,
// through Canceler): the status database, the authority, moves it to
// canceled at once, with its history row and, when it has a webhook URL,
// its webhook queued in the same transaction, so that a lost status event
// never loses the webhook. Then the canceled status event goes to the
// results topic (SSE in every API process, the notifier).
//
// No AI call starts for a canceled request afterwards, in any stage: the
// store refuses the claim (ClaimStage answers ClaimCanceled) and the take
// (TakeTasks drops its tasks). A call already under way is aborted: each
// worker process watches the requests of its running calls
// (CancelWatcher), cancels a canceled one's call context with the cause
// ErrCanceled, and the AI client tells the AI service to stop the work.
//
// A request's StartBy is the latest time an AI call of it may start. The
// store refuses a claim after it (ClaimExpired), and a take removes the
// stage's tasks whose StartBy passed while they waited, ending their
// requests expired (Task.Expired); both judge on the store's clock, and
// both count a request late from StartMargin before its StartBy.

// ErrCanceled is the cause (context.Cause) of the context of an AI call
// whose request was canceled while the call ran, and the error the call's
// work returns then: the call ended aborted by a cancel, not failed. The
// worker records nothing else for it and publishes no done or failed.
var ErrCanceled = errors.New("the request was canceled")

// Claim states that refuse the AI call (see ClaimStore.ClaimStage).
const (
	// ClaimCanceled: the request was canceled: no AI call, and nothing to
	// publish (the canceled status is published by whoever canceled it).
	ClaimCanceled ClaimState = "canceled"
	// ClaimExpired: the request's StartBy passed (on the store's clock)
	// before its call could start, or it ended expired already: no AI
	// call; the caller reports the request expired. Reason says why.
	ClaimExpired ClaimState = "expired"
)

// CancelReason is the Error of a request its user canceled.
const CancelReason = "canceled by its user"

// ExpiredReason is the Error of a request that expired before stage's AI
// call could start.
func ExpiredReason(stage Stage, startBy time.Time) string {
	return fmt.Sprintf("expired: the %s call could not start by %s", stage, startBy.UTC().Format(time.RFC3339))
}

// CancelStore is what canceling needs of the status store, besides a
// RequestStore: the workers' watch of their running calls.
type CancelStore interface {
	// CancelRequest moves published request id to canceled, when it has
	// not ended, with its history row, its webhook queued (when it has a
	// webhook URL) and its waiting tasks removed, atomically: of
	// concurrent cancels and a racing terminal status exactly one wins.
	// It returns the request as it stands and whether this call canceled
	// it. A request canceled already comes back unchanged (changed=false);
	// one that ended otherwise (done, rejected, failed, expired) is an
	// ECONFLICT error; an unknown or unpublished one ENOTFOUND.
	CancelRequest(ctx context.Context, id string) (r *Request, changed bool, err error)
	// CanceledRequests returns which of ids are canceled: one indexed read
	// however many ids (a worker asks it every poll about its running
	// calls). Ids that are unknown or not requests are left out.
	CanceledRequests(ctx context.Context, ids []string) ([]string, error)
}

// Canceler cancels requests for the API: in the status store first, then
// the canceled status event on the results topic, retried in the
// background until it is published or the retry window ends (the store
// queued the webhook already; the event is for SSE streams).
type Canceler struct {
	store         CancelStore
	publisher     Publisher // nil: no event (tests, a store-only API)
	topic         string
	retry         time.Duration
	now           func() time.Time
	onPublishFail func(id string, err error)
}

// DefaultCancelPublishRetry is how long a Canceler retries publishing a
// canceled event that failed.
const DefaultCancelPublishRetry = 2 * time.Minute

// NewCanceler returns a Canceler on store that publishes canceled events
// to topic through publisher (nil: publishes none).
func NewCanceler(store CancelStore, publisher Publisher, topic string) *Canceler {
	return &Canceler{store: store, publisher: publisher, topic: topic, retry: DefaultCancelPublishRetry,
		now: time.Now, onPublishFail: func(string, error) {}}
}

// OnPublishFailure sets a func called when a canceled event could not be
// published within the retry window (for a log line).
func (c *Canceler) OnPublishFailure(f func(id string, err error)) { c.onPublishFail = f }

// Cancel cancels request id (see CancelStore.CancelRequest) and, when this
// call canceled it, publishes its canceled status event with the
// request's share and deadline. It returns once the store has the cancel;
// the publish goes on in the background when the first attempt fails.
func (c *Canceler) Cancel(ctx context.Context, id string) (*Request, bool, error) {
	r, changed, err := c.store.CancelRequest(ctx, id)
	if err != nil || !changed || c.publisher == nil {
		return r, changed, err
	}
	e := NewStatusEvent(StatusChange{RequestID: r.ID, Status: StatusCanceled, Error: r.Error, At: r.UpdatedAt})
	e.Share, e.StartBy = r.Share, r.StartBy
	value, err := EncodeEvent(e)
	if err != nil {
		return r, changed, nil // cannot happen: the event is well-formed
	}
	if err := c.publisher.Publish(ctx, c.topic, r.ID, value); err != nil {
		go c.republish(context.WithoutCancel(ctx), r.ID, value)
	}
	return r, changed, nil
}

// republish retries a canceled event until it is published or the retry
// window ends.
func (c *Canceler) republish(ctx context.Context, id string, value []byte) {
	ctx, cancel := context.WithTimeout(ctx, c.retry)
	defer cancel()
	var err error
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			c.onPublishFail(id, err)
			return
		case <-t.C:
		}
		if err = c.publisher.Publish(ctx, c.topic, id, value); err == nil {
			return
		}
	}
}

// StartMargin is how long before its StartBy a request counts as late. A
// call claimed just in time reaches the AI a few milliseconds after the
// claim (its answer, the ledger's row, the HTTP request): past the
// deadline. Expiring the request that much early keeps every call before
// it.
const StartMargin = 100 * time.Millisecond

// MaxWait bounds a request's deadline: a StartBy at most this far after
// its submission (and -max-wait at most this).
const MaxWait = 7 * 24 * time.Hour
