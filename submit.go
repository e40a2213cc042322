package genpipe

import (
	"context"
	"fmt"
	"time"
)

// Defaults of the Submitter.
const (
	// DefaultPublishLease is how long a submission holds the claim on
	// publishing a request's event (RequestStore.ClaimPublish). Only a
	// submission that dies holding it makes the next retry wait this long;
	// one that fails gives it back at once. Publish gets three quarters of
	// it (20 s, twice the Kafka producer's delivery timeout), so that a
	// slow publish gives up before another submission may take over.
	DefaultPublishLease = 30 * time.Second
	// DefaultPublishWait is how long a retry waits for a concurrent
	// submission with the same key to publish before answering
	// EUNAVAILABLE (503 with Retry-After: retry with the same key). A
	// publish normally takes milliseconds; ten seconds covers the
	// producer's delivery timeout.
	DefaultPublishWait = 10 * time.Second
)

// Submitter takes requests in: it stores each as received, queues its
// first event in Kafka (acks=all), and only then makes it visible. A client
// that got an answer can therefore always find its request, and one
// Idempotency-Key queues one event, however many retries arrive at once
// and at however many API processes sharing the status store.
//
// The order matters. Stored first, so the notifier can record the statuses
// of a request whose first event is consumed before Submit returns; made
// visible last (MarkPublished), so a request whose event never reached
// Kafka is never shown. Between the two, a submission publishes only while
// it holds the request's publish claim (RequestStore.ClaimPublish): a retry
// with the same key finds the stored twin and, if another submission holds
// the claim, waits for it to publish and answers the same id. If the
// earlier attempt could not reach Kafka (it gave the claim back) or died
// (its lease ended), the retry publishes.
type Submitter struct {
	store     RequestStore
	publisher Publisher
	topic     string
	lease     time.Duration // see DefaultPublishLease
	wait      time.Duration // see DefaultPublishWait
	now       func() time.Time
}

// NewSubmitter returns a Submitter that stores requests in store and
// queues their submitted events on topic through publisher.
func NewSubmitter(store RequestStore, publisher Publisher, topic string) *Submitter {
	return &Submitter{store: store, publisher: publisher, topic: topic,
		lease: DefaultPublishLease, wait: DefaultPublishWait, now: time.Now}
}

// Submit stores, queues and publishes r, which must be a valid request with
// its ID, Job and Owner set; r.ID is new for each call and also names its
// publish claim. It returns the request as stored — for a retry with a
// known idempotency key, the request first submitted with it — and whether
// this call queued an event. Errors are genpipe errors: ECONFLICT when the
// idempotency key was used for a different job, webhook URL or priority,
// EUNAVAILABLE when Kafka could not take the event or a concurrent
// submission with the same key did not publish it within the wait (retry
// later, with the same key).
func (s *Submitter) Submit(ctx context.Context, r *Request) (stored *Request, queued bool, err error) {
	// A new request is stored with its publish claim held by r.ID: one
	// write before the publish, not two.
	stored, created, err := s.store.CreateClaimed(ctx, r, s.lease)
	if err != nil {
		return nil, false, fmt.Errorf("store request: %w", err)
	}
	if !created {
		if stored.Job != r.Job || stored.WebhookURL != r.WebhookURL ||
			stored.Share.Normalized().Priority != r.Share.Normalized().Priority {
			return nil, false, Errorf(ECONFLICT, "Idempotency-Key %q was used for a different request", r.IdempotencyKey)
		}
		claimed, err := s.claim(ctx, stored.ID, r.ID)
		if err != nil {
			return nil, false, err
		}
		if !claimed {
			return stored, false, nil // published by another: the retry gets the same answer
		}
	}
	if err := s.publish(ctx, stored, r.ID); err != nil {
		return nil, false, err
	}
	return stored, true, nil
}

// claim takes the publish claim of request id for owner, waiting up to
// s.wait while another submission holds it. It reports false when the
// request is published already.
func (s *Submitter) claim(ctx context.Context, id, owner string) (claimed bool, err error) {
	const firstPoll, maxPoll = 5 * time.Millisecond, 200 * time.Millisecond
	deadline := s.now().Add(s.wait)
	for poll := firstPoll; ; poll = min(2*poll, maxPoll) {
		state, err := s.store.ClaimPublish(ctx, id, owner, s.lease)
		switch {
		case err != nil:
			return false, fmt.Errorf("claim publishing request %s: %w", id, err)
		case state == PublishClaimed:
			return true, nil
		case state == Published:
			return false, nil
		case !s.now().Add(poll).Before(deadline):
			return false, Errorf(EUNAVAILABLE, "a request with this Idempotency-Key is still being queued; retry shortly with the same key")
		}
		t := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return false, fmt.Errorf("wait for request %s to be published: %w", id, ctx.Err())
		case <-t.C:
		}
	}
}

// publish queues stored's submitted event while holding its publish claim
// as owner, then makes it visible. On failure it gives the claim back, so
// that a retry publishes at once.
func (s *Submitter) publish(ctx context.Context, stored *Request, owner string) error {
	submitted := NewJobEvent(EventSubmitted, stored.ID, stored.Job, s.now())
	submitted.Share, submitted.StartBy = stored.Share, stored.StartBy
	value, err := EncodeEvent(submitted)
	if err != nil {
		return s.release(ctx, stored.ID, owner, err)
	}
	pctx, cancel := context.WithTimeout(ctx, s.lease*3/4)
	defer cancel()
	if err := s.publisher.Publish(pctx, s.topic, stored.ID, value); err != nil {
		unavailable := Errorf(EUNAVAILABLE, "the request queue is unavailable; retry later (with the same Idempotency-Key to be safe)")
		return s.release(ctx, stored.ID, owner, fmt.Errorf("queue request %s: %w (%w)", stored.ID, unavailable, err))
	}
	if err := s.store.MarkPublished(ctx, stored.ID); err != nil {
		// The event is queued and the claim stays held: a retry waits for
		// the lease to end, then queues a second event, which the stages'
		// claims make harmless.
		return fmt.Errorf("mark request %s published: %w", stored.ID, err)
	}
	return nil
}

// release gives owner's publish claim of id back and returns cause. It
// runs even when ctx ended (the client went away): that is when a retry
// most needs the claim free.
func (s *Submitter) release(ctx context.Context, id, owner string, cause error) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := s.store.ReleasePublish(ctx, id, owner); err != nil {
		return fmt.Errorf("%w (and giving back its publish claim: %v)", cause, err)
	}
	return cause
}
