package genpipe_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/sqlstore"
)

// publisher records what it publishes, or fails while down.
type publisher struct {
	mu        sync.Mutex
	down      bool
	delay     time.Duration // how long each Publish takes
	onPublish func()        // called as Publish starts; it fails if its context then ended
	records   []genpipe.Event
	topics    []string
}

func (p *publisher) Publish(ctx context.Context, topic, key string, value []byte) error {
	if p.onPublish != nil {
		p.onPublish()
	}
	time.Sleep(p.delay)
	if ctx.Err() != nil {
		return genpipe.Errorf(genpipe.EUNAVAILABLE, "publish: %v", ctx.Err())
	}
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

func (p *publisher) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.records)
}

func newSubmitter(t *testing.T) (*genpipe.Submitter, genpipe.RequestStore, *publisher) {
	t.Helper()
	store := openStore(t, "sqlite:"+filepath.Join(t.TempDir(), "genpipe.db"))
	pub := &publisher{}
	return genpipe.NewSubmitter(store, pub, "requests"), store, pub
}

func openStore(t *testing.T, url string) *sqlstore.Store {
	t.Helper()
	store, err := sqlstore.Open(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return store
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

// The webhook URL is part of what a key stands for: a retry that asks for
// another one would silently lose it.
func TestSubmitKeyReusedForAnotherWebhook(t *testing.T) {
	s, _, _ := newSubmitter(t)
	first := newSubmission("key-1")
	first.WebhookURL = "https://hooks.example.com/a"
	if _, _, err := s.Submit(t.Context(), first); err != nil {
		t.Fatal(err)
	}
	for _, url := range []string{"https://hooks.example.com/b", ""} {
		other := newSubmission("key-1")
		other.Job, other.WebhookURL = first.Job, url
		if _, _, err := s.Submit(t.Context(), other); genpipe.ErrorCode(err) != genpipe.ECONFLICT {
			t.Fatalf("Submit with a reused key and webhook %q = %v; want ECONFLICT", url, err)
		}
	}
	same := newSubmission("key-1")
	same.Job, same.WebhookURL = first.Job, first.WebhookURL
	if got, queued, err := s.Submit(t.Context(), same); err != nil || queued || got.ID != first.ID {
		t.Fatalf("retry with the same webhook = %v, queued %v, %v; want %s", got, queued, err, first.ID)
	}
}

// So is the priority: a retry that asks for another would be scheduled as
// the first asked. Another weight (the tenant's changed since) is no
// conflict: it is the tenant's, not the request's.
func TestSubmitKeyReusedForAnotherPriority(t *testing.T) {
	s, _, _ := newSubmitter(t)
	first := newSubmission("key-1")
	first.Share = genpipe.Share{Tenant: "acme", Priority: genpipe.PriorityHigh, Weight: 2}
	if _, _, err := s.Submit(t.Context(), first); err != nil {
		t.Fatal(err)
	}
	for _, p := range []genpipe.Priority{genpipe.PriorityLow, ""} {
		other := newSubmission("key-1")
		other.Job, other.Share = first.Job, genpipe.Share{Tenant: "acme", Priority: p, Weight: 2}
		if _, _, err := s.Submit(t.Context(), other); genpipe.ErrorCode(err) != genpipe.ECONFLICT {
			t.Fatalf("Submit with a reused key and priority %q = %v; want ECONFLICT", p, err)
		}
	}
	same := newSubmission("key-1")
	same.Job, same.Share = first.Job, genpipe.Share{Tenant: "acme", Priority: genpipe.PriorityHigh, Weight: 5}
	if got, queued, err := s.Submit(t.Context(), same); err != nil || queued || got.ID != first.ID || got.Weight != 2 {
		t.Fatalf("retry with the same priority = %+v, queued %v, %v; want %s as first stored", got, queued, err, first.ID)
	}

	// Without a priority, the default is what a retry must match.
	plain := newSubmission("key-2")
	if _, _, err := s.Submit(t.Context(), plain); err != nil {
		t.Fatal(err)
	}
	again := newSubmission("key-2")
	again.Job, again.Priority = plain.Job, genpipe.DefaultPriority
	if got, _, err := s.Submit(t.Context(), again); err != nil || got.ID != plain.ID {
		t.Fatalf("retry naming the default priority = %+v, %v; want %s", got, err, plain.ID)
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

// Concurrent retries with one Idempotency-Key, as a client that times out
// and retries sends them, to two API processes sharing the status database
// (two stores on one file), queue exactly one event and all get the one id.
func TestSubmitConcurrentRetriesQueueOnce(t *testing.T) {
	dir := t.TempDir()
	pub := &publisher{delay: 20 * time.Millisecond} // a broker's round trip: the retries arrive while the first publishes
	store := openStore(t, "sqlite:"+filepath.Join(dir, "genpipe.db"))
	submitters := []*genpipe.Submitter{genpipe.NewSubmitter(store, pub, "requests"),
		genpipe.NewSubmitter(openStore(t, "sqlite:"+filepath.Join(dir, "genpipe.db")), pub, "requests")}
	first := newSubmission("key-concurrent")
	const n = 24
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		ids    = map[string]int{}
		queued int
	)
	for i := range n {
		wg.Go(func() {
			r := newSubmission("key-concurrent")
			r.Job = first.Job
			stored, q, err := submitters[i%2].Submit(t.Context(), r)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Errorf("Submit: %v", err)
				return
			}
			ids[stored.ID]++
			if q {
				queued++
			}
		})
	}
	wg.Wait()
	if got := pub.count(); got != 1 || queued != 1 || len(ids) != 1 {
		t.Fatalf("%d concurrent submissions with one key: %d events published, %d said queued, ids %v; want 1, 1 and one id",
			n, got, queued, ids)
	}
	for id := range ids {
		if _, err := store.Request(t.Context(), id); err != nil {
			t.Fatalf("Request of the one id: %v", err)
		}
	}
}

// A retry that finds another submission holding the claim past the wait
// answers EUNAVAILABLE, so the client retries later with the same key,
// and publishes nothing.
func TestSubmitRetryWhileAnotherPublishesTooLong(t *testing.T) {
	s, store, pub := newSubmitter(t)
	s.SetPublishTimes(time.Minute, 20*time.Millisecond)
	first := create(t, store, newSubmission("key-1"))
	if state, err := store.ClaimPublish(t.Context(), first.ID, "slow publisher", time.Minute); err != nil || state != genpipe.PublishClaimed {
		t.Fatalf("ClaimPublish = %v, %v", state, err)
	}
	retry := newSubmission("key-1")
	retry.Job = first.Job
	if _, _, err := s.Submit(t.Context(), retry); genpipe.ErrorCode(err) != genpipe.EUNAVAILABLE {
		t.Fatalf("Submit while another holds the publish claim = %v; want EUNAVAILABLE", err)
	}
	if pub.count() != 0 {
		t.Fatalf("%d events published while another submission held the claim", pub.count())
	}
}

// A submission that died holding the claim holds up its retries only until
// its lease ends; then a retry publishes.
func TestSubmitRetryAfterPublisherDied(t *testing.T) {
	s, store, pub := newSubmitter(t)
	first := create(t, store, newSubmission("key-1"))
	if state, err := store.ClaimPublish(t.Context(), first.ID, "died", 50*time.Millisecond); err != nil || state != genpipe.PublishClaimed {
		t.Fatalf("ClaimPublish = %v, %v", state, err)
	}
	retry := newSubmission("key-1")
	retry.Job = first.Job
	stored, queued, err := s.Submit(t.Context(), retry)
	if err != nil || !queued || stored.ID != first.ID || pub.count() != 1 {
		t.Fatalf("retry = %v, queued %v, %v, %d published; want %s queued once", stored, queued, err, pub.count(), first.ID)
	}
}

// A submission whose client goes away while it publishes gives the claim
// back, so that the client's retry publishes at once.
func TestSubmitCanceledGivesClaimBack(t *testing.T) {
	s, _, pub := newSubmitter(t)
	s.SetPublishTimes(time.Hour, time.Hour) // a claim left held would hang the retry
	ctx, cancel := context.WithCancel(t.Context())
	pub.onPublish = cancel
	r := newSubmission("key-1")
	if _, _, err := s.Submit(ctx, r); err == nil {
		t.Fatal("Submit whose context ended while publishing succeeded")
	}
	pub.onPublish = nil
	retry := newSubmission("key-1")
	retry.Job = r.Job
	if stored, queued, err := s.Submit(t.Context(), retry); err != nil || !queued || stored.ID != r.ID {
		t.Fatalf("retry = %v, queued %v, %v; want %s queued", stored, queued, err, r.ID)
	}
}

func create(t *testing.T, store genpipe.RequestStore, r *genpipe.Request) *genpipe.Request {
	t.Helper()
	stored, created, err := store.CreateRequest(t.Context(), r)
	if err != nil || !created {
		t.Fatalf("CreateRequest = created %v, %v", created, err)
	}
	return stored
}
