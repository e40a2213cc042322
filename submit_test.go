package genpipe_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/sqlstore"
)

// publisher records what it publishes, or fails while down.
type publisher struct {
	mu      sync.Mutex
	down    bool
	records []genpipe.Event
	topics  []string
}

func (p *publisher) Publish(_ context.Context, topic, key string, value []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		return genpipe.Errorf(genpipe.EUNAVAILABLE, "broker away (test)")
	}
	e, err := genpipe.DecodeEvent(value)
	if err != nil {
		return err
	}
	if e.RequestID != key {
		return errors.New("record key is not the request id")
	}
	p.records, p.topics = append(p.records, e), append(p.topics, topic)
	return nil
}

func newSubmitter(t *testing.T) (*genpipe.Submitter, genpipe.RequestStore, *publisher) {
	t.Helper()
	store, err := sqlstore.Open(t.Context(), "sqlite:"+filepath.Join(t.TempDir(), "genpipe.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	pub := &publisher{}
	return genpipe.NewSubmitter(store, pub, "requests"), store, pub
}

func newSubmission(key string) *genpipe.Request {
	return &genpipe.Request{ID: uuid.NewString(), IdempotencyKey: key, Owner: "owner",
		Job: genpipe.Job{ObjectID: uuid.NewString(), Style: "minimal", Title: "Q3", Description: "results"}}
}

func TestSubmitQueuesThenShows(t *testing.T) {
	s, store, pub := newSubmitter(t)
	r := newSubmission("")
	stored, queued, err := s.Submit(t.Context(), r)
	if err != nil || !queued || stored.ID != r.ID || stored.Status != genpipe.StatusReceived {
		t.Fatalf("Submit = %+v, queued %v, %v; want the request stored as received and queued", stored, queued, err)
	}
	if len(pub.records) != 1 || pub.topics[0] != "requests" || pub.records[0].Type != genpipe.EventSubmitted ||
		pub.records[0].RequestID != r.ID || *pub.records[0].Job != r.Job {
		t.Fatalf("published %+v on %v; want one submitted event of %s on requests", pub.records, pub.topics, r.ID)
	}
	if got, err := store.Request(t.Context(), r.ID); err != nil || got.Job != r.Job {
		t.Fatalf("Request after Submit = %+v, %v; want it visible", got, err)
	}
}

// The submitted event carries the request's share, as stored: the stages
// schedule on it without reading the store.
func TestSubmitCarriesShare(t *testing.T) {
	s, store, pub := newSubmitter(t)
	r := newSubmission("")
	r.Share = genpipe.Share{Tenant: "acme", Priority: genpipe.PriorityHigh, Weight: 3}
	if _, _, err := s.Submit(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	if len(pub.records) != 1 || pub.records[0].Share != r.Share {
		t.Fatalf("published %+v; want one event with share %+v", pub.records, r.Share)
	}
	if got, err := store.Request(t.Context(), r.ID); err != nil || got.Share != r.Share {
		t.Fatalf("Request after Submit = %+v, %v; want share %+v", got, err, r.Share)
	}
}

func TestSubmitRetryWithKeyQueuesNothing(t *testing.T) {
	s, _, pub := newSubmitter(t)
	first, _, err := s.Submit(t.Context(), newSubmission("key-1"))
	if err != nil {
		t.Fatal(err)
	}
	retry := newSubmission("key-1")
	retry.Job = first.Job
	again, queued, err := s.Submit(t.Context(), retry)
	if err != nil || queued || again.ID != first.ID {
		t.Fatalf("retry = %s, queued %v, %v; want %s, not queued", again.ID, queued, err, first.ID)
	}
	if len(pub.records) != 1 {
		t.Fatalf("%d events published for one key; want 1", len(pub.records))
	}
}

func TestSubmitKeyReusedForAnotherJob(t *testing.T) {
	s, _, _ := newSubmitter(t)
	if _, _, err := s.Submit(t.Context(), newSubmission("key-1")); err != nil {
		t.Fatal(err)
	}
	other := newSubmission("key-1")
	other.Job.Description = "something else"
	if _, _, err := s.Submit(t.Context(), other); genpipe.ErrorCode(err) != genpipe.ECONFLICT {
		t.Fatalf("Submit with a reused key for another job = %v; want ECONFLICT", err)
	}
}

// A request Kafka did not take stays invisible, and a retry with its key
// queues it then.
func TestSubmitKafkaDownThenRetry(t *testing.T) {
	s, store, pub := newSubmitter(t)
	pub.down = true
	r := newSubmission("key-1")
	_, _, err := s.Submit(t.Context(), r)
	if genpipe.ErrorCode(err) != genpipe.EUNAVAILABLE {
		t.Fatalf("Submit with Kafka down = %v; want EUNAVAILABLE", err)
	}
	if _, err := store.Request(t.Context(), r.ID); genpipe.ErrorCode(err) != genpipe.ENOTFOUND {
		t.Fatalf("Request of an unqueued request = %v; want ENOTFOUND", err)
	}
	pub.down = false
	retry := newSubmission("key-1")
	retry.Job = r.Job
	stored, queued, err := s.Submit(t.Context(), retry)
	if err != nil || !queued || stored.ID != r.ID {
		t.Fatalf("retry = %+v, queued %v, %v; want %s queued now", stored, queued, err, r.ID)
	}
	if _, err := store.Request(t.Context(), r.ID); err != nil {
		t.Fatalf("Request after the retry: %v", err)
	}
}
