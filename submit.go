package genpipe

import (
	"context"
	"fmt"
	"time"
)

// Submitter takes requests in: it stores each as received, queues its
// first event in Kafka (acks=all), and only then makes it visible. A client
// that got an answer can therefore always find its request, and no request
// is queued twice for one Idempotency-Key.
//
// The order matters. Stored first, so the notifier can record the statuses
// of a request whose first event is consumed before Submit returns; made
// visible last (MarkPublished), so a request whose event never reached
// Kafka is never shown. A retry with the same key finds the stored twin: if
// that one is published, the retry gets its answer and nothing is queued;
// if not (the earlier attempt could not reach Kafka), the retry queues it.
type Submitter struct {
	store     RequestStore
	publisher Publisher
	topic     string
	now       func() time.Time
}

// NewSubmitter returns a Submitter that stores requests in store and
// queues their submitted events on topic through publisher.
func NewSubmitter(store RequestStore, publisher Publisher, topic string) *Submitter {
	return &Submitter{store: store, publisher: publisher, topic: topic, now: time.Now}
}

// Submit stores, queues and publishes r, which must be a valid request with
// its ID, Job and Owner set. It returns the request as stored — for a retry
// with a known idempotency key, the request first submitted with it — and
// whether this call queued an event. Errors are genpipe errors: ECONFLICT
// when the idempotency key was used for a different job, EUNAVAILABLE when
// Kafka could not take the event (retry later, with the same key).
func (s *Submitter) Submit(ctx context.Context, r *Request) (stored *Request, queued bool, err error) {
	stored, created, err := s.store.CreateRequest(ctx, r)
	if err != nil {
		return nil, false, fmt.Errorf("store request: %w", err)
	}
	if !created && stored.Job != r.Job {
		return nil, false, Errorf(ECONFLICT, "Idempotency-Key %q was used for a different request", r.IdempotencyKey)
	}
	if !created {
		if _, err := s.store.Request(ctx, stored.ID); err == nil {
			return stored, false, nil // published before: the retry gets the same answer
		}
	}
	submitted := NewJobEvent(EventSubmitted, stored.ID, stored.Job, s.now())
	submitted.Share = stored.Share
	value, err := EncodeEvent(submitted)
	if err != nil {
		return nil, false, err
	}
	if err := s.publisher.Publish(ctx, s.topic, stored.ID, value); err != nil {
		unavailable := Errorf(EUNAVAILABLE, "the request queue is unavailable; retry later (with the same Idempotency-Key to be safe)")
		return nil, false, fmt.Errorf("queue request %s: %w (%w)", stored.ID, unavailable, err)
	}
	if err := s.store.MarkPublished(ctx, stored.ID); err != nil {
		return nil, false, fmt.Errorf("mark request %s published: %w", stored.ID, err)
	}
	return stored, true, nil
}
