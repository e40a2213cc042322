package notifier_test

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/internal/testenv"
	"github.com/genpipe/genpipe/internal/testutil"
	"github.com/genpipe/genpipe/notifier"
	"github.com/genpipe/genpipe/s3"
)

// The object store is one per test binary (testenv.Run); each test uses
// its own objects under random keys.
func TestMain(m *testing.M) { os.Exit(testenv.Run(m)) }

// secret is the Standard Webhooks test vector's.
const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// verify checks that msg is a webhook signed with secret just now.
func verify(t *testing.T, msg delivery) {
	t.Helper()
	if err := notifier.Verify(secret, msg.header, msg.body, notifier.DefaultTolerance); err != nil {
		t.Errorf("webhook does not verify: %v (headers %v)", err, msg.header)
	}
}

// Fast webhook timings: a failing receiver is retried within milliseconds.
const (
	poll     = 10 * time.Millisecond
	maxDelay = 20 * time.Millisecond
)

// env is one notifier on a SQLite file, with its logs captured.
type env struct {
	store   *recordingStore
	outbox  *sql.DB // the file, read-only: what the outbox holds
	objects *s3.Store
	n       *notifier.Notifier
	logs    *testutil.LogBuffer
}

func newEnv(t *testing.T, opts ...notifier.Option) *env {
	t.Helper()
	log, logs := testutil.CaptureLogs(t)
	e := openEnv(t, filepath.Join(t.TempDir(), "genpipe.db"), logs)
	opts = append([]notifier.Option{
		notifier.WithLogger(log),
		notifier.WithPollInterval(poll),
		notifier.WithMaxRetryDelay(maxDelay),
		notifier.WithPrivateWebhooks(true), // the receivers are on loopback
	}, opts...)
	n, err := notifier.New(e.store, e.store, e.objects, secret, opts...)
	if err != nil {
		t.Fatal(err)
	}
	e.n = n
	return e
}

// openEnv opens the store on the SQLite file at path, for a notifier the
// caller makes, logging to logs.
func openEnv(t *testing.T, path string, logs *testutil.LogBuffer) *env {
	t.Helper()
	// The status store registers the "sqlite" driver (modernc.org/sqlite).
	store := testenv.OpenStatusStore(t, path)
	outbox, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { outbox.Close() })
	return &env{store: &recordingStore{StatusStore: store}, outbox: outbox, objects: testenv.Objects(t), logs: logs}
}

// request stores and publishes a request, as the API does before its 202.
func (e *env) request(t *testing.T, webhookURL string) *genpipe.Request {
	t.Helper()
	r := &genpipe.Request{ID: uuid.NewString(), WebhookURL: webhookURL, Job: genpipe.Job{
		ObjectID: uuid.NewString(), Style: "corporate", Title: "Q3", Description: "quarterly results"},
		Share: genpipe.Share{Tenant: "acme", Priority: genpipe.PriorityLow, Weight: 2}}
	stored, _, err := e.store.CreateRequest(t.Context(), r)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.MarkPublished(t.Context(), r.ID); err != nil {
		t.Fatal(err)
	}
	return stored
}

// handle runs Handle on a status event and fails the test on an error.
func (e *env) handle(t *testing.T, id string, status genpipe.Status, result *genpipe.Result, reason string) {
	t.Helper()
	if err := e.n.Handle(testutil.Context(t), testutil.StatusEvent(id, status, result, reason)); err != nil {
		t.Fatalf("Handle %s %s: %v", id, status, err)
	}
}

// runWebhooks runs the outbox until the test ends or the returned stop is
// called; stop waits for RunWebhooks to return (see testutil.Start).
func (e *env) runWebhooks(t *testing.T) (stop func()) {
	t.Helper()
	return testutil.Start(t, context.Background(), "RunWebhooks", e.n.RunWebhooks)
}

// pending returns every pending delivery, due or not, in due order, as
// the outbox table holds it (a claim would change what it returns).
func (e *env) pending(t *testing.T) []genpipe.WebhookDelivery {
	t.Helper()
	rows, err := e.outbox.QueryContext(t.Context(), `SELECT id, request_id, status, url, state, attempts, last_error
		FROM webhook_deliveries WHERE state = 'pending' ORDER BY next_attempt_at, id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []genpipe.WebhookDelivery
	for rows.Next() {
		var d genpipe.WebhookDelivery
		if err := rows.Scan(&d.ID, &d.RequestID, &d.Status, &d.URL, &d.State, &d.Attempts, &d.LastError); err != nil {
			t.Fatal(err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// recordingStore is the real store, recording the webhook outcomes the
// notifier writes and failing ApplyStatus on demand.
type recordingStore struct {
	*testenv.StatusStore
	mu        sync.Mutex
	updates   []genpipe.WebhookDelivery
	failApply int  // fail this many more ApplyStatus calls
	refuse    bool // refuse every ApplyStatus as invalid
}

func (s *recordingStore) ApplyStatus(ctx context.Context, c genpipe.StatusChange) (bool, error) {
	s.mu.Lock()
	fail, refuse := s.failApply > 0, s.refuse
	if fail && s.failApply < 1<<30 {
		s.failApply--
	}
	s.mu.Unlock()
	if refuse {
		return false, genpipe.Errorf(genpipe.EINVALID, "the database refuses the data (injected)")
	}
	if fail {
		return false, fmt.Errorf("database is locked (injected)")
	}
	return s.StatusStore.ApplyStatus(ctx, c)
}

func (s *recordingStore) UpdateWebhook(ctx context.Context, d genpipe.WebhookDelivery) error {
	err := s.StatusStore.UpdateWebhook(ctx, d)
	if err == nil {
		s.mu.Lock()
		s.updates = append(s.updates, d)
		s.mu.Unlock()
	}
	return err
}

// outcomes returns the recorded updates of the request's deliveries.
func (s *recordingStore) outcomes(requestID string) []genpipe.WebhookDelivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []genpipe.WebhookDelivery
	for _, d := range s.updates {
		if d.RequestID == requestID {
			out = append(out, d)
		}
	}
	return out
}

// final returns the last recorded outcome of the request's delivery, if
// it is no longer pending.
func (s *recordingStore) final(requestID string) (genpipe.WebhookDelivery, bool) {
	out := s.outcomes(requestID)
	if len(out) == 0 || out[len(out)-1].State == genpipe.WebhookPending {
		return genpipe.WebhookDelivery{}, false
	}
	return out[len(out)-1], true
}

// receiver is a webhook receiver: it records every POST and answers with
// the status answer gives for the n-th call (1-based), after delay.
type receiver struct {
	*httptest.Server
	mu          sync.Mutex
	got         []delivery
	inFlight    int
	maxInFlight int
	answer      func(n int) int
	delay       time.Duration
}

type delivery struct {
	method string
	header http.Header
	body   []byte
	at     time.Time // when the POST arrived
}

func newReceiver(t *testing.T, answer func(n int) int) *receiver {
	t.Helper()
	r := &receiver{answer: answer}
	r.Server = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.got = append(r.got, delivery{method: req.Method, header: req.Header.Clone(), body: body, at: time.Now()})
	n := len(r.got)
	r.inFlight++
	r.maxInFlight = max(r.maxInFlight, r.inFlight)
	answer, delay := r.answer, r.delay
	r.mu.Unlock()
	select { // a client that gives up ends the wait
	case <-time.After(delay):
	case <-req.Context().Done():
	}
	r.mu.Lock()
	r.inFlight--
	r.mu.Unlock()
	status := http.StatusOK
	if answer != nil {
		status = answer(n)
	}
	w.WriteHeader(status)
}

func (r *receiver) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.got...)
}

func (r *receiver) count() int { return len(r.deliveries()) }
