package api_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/api"
)

// checkTooMany fails unless resp is a 429 problem with a Retry-After of
// 1 to maxWait seconds.
func checkTooMany(t *testing.T, what string, resp *http.Response, body map[string]any, detail string, maxWait int) {
	t.Helper()
	checkProblem(t, what, resp, body, http.StatusTooManyRequests, detail)
	if body["code"] != genpipe.ETOOMANY {
		t.Errorf("%s: code %v; want %s", what, body["code"], genpipe.ETOOMANY)
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || s < 1 || s > maxWait {
		t.Errorf("%s: Retry-After %q; want 1 to %d seconds", what, resp.Header.Get("Retry-After"), maxWait)
	}
}

// Over the backlog bound a new request is refused at once and queues
// nothing; once the pipeline starts one, there is room again.
func TestBacklogBound(t *testing.T) {
	f := newFixture(t, api.WithMaxBacklog(2))
	body := func() map[string]string {
		return map[string]string{"objectId": uploaded(t), "style": "minimal", "description": "queued"}
	}
	var ids []string
	for range 2 {
		resp, out := f.post(t, body(), "")
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST within the bound: %s %v", resp.Status, out)
		}
		ids = append(ids, out["id"].(string))
	}
	resp, out := f.post(t, body(), "")
	checkTooMany(t, "POST over the backlog bound", resp, out, "2 requests are waiting", 5)

	// A worker takes the first: the API sees it within a second.
	if _, err := f.store.ApplyStatus(t.Context(), genpipe.StatusChange{RequestID: ids[0], Status: genpipe.StatusChecking}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for resp.StatusCode == http.StatusTooManyRequests && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		resp, out = f.post(t, body(), "")
	}
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST after a request started: %s %v; want 202", resp.Status, out)
	}
	ids = append(ids, out["id"].(string))
	resp, out = f.post(t, body(), "")
	checkTooMany(t, "POST at the bound again", resp, out, "waiting", 5)

	queued := map[string]bool{}
	for _, e := range f.requestEvents(t) {
		queued[e.RequestID] = true
	}
	if len(queued) != len(ids) {
		t.Fatalf("%d requests queued in Kafka; want the %d accepted (%v)", len(queued), len(ids), ids)
	}
}

// countingStore is the real store, counting the Backlog calls.
type countingStore struct {
	genpipe.RequestStore
	backlogCalls atomic.Int32
}

func (s *countingStore) Backlog(ctx context.Context) (int, error) {
	s.backlogCalls.Add(1)
	return s.RequestStore.Backlog(ctx)
}

// The hot path does not count the backlog on every request.
func TestBacklogCountedAtMostOnceASecond(t *testing.T) {
	f := newFixture(t)
	store := &countingStore{RequestStore: f.store}
	producer := f.env.Kafka.NewProducer(t)
	srv, err := api.NewServer(store, genpipe.NewSubmitter(store, producer, f.topics.Requests), f.env.Objects, api.NewHub(), api.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	f.server = ts

	start := time.Now()
	const n = 10
	for range n {
		resp, out := f.post(t, map[string]string{"objectId": uploaded(t), "style": "minimal", "description": "hot"}, "")
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST: %s %v", resp.Status, out)
		}
	}
	seconds := int32(time.Since(start)/time.Second) + 1
	if calls := store.backlogCalls.Load(); calls < 1 || calls > seconds {
		t.Fatalf("%d requests in %s counted the backlog %d times; want 1 to %d", n, time.Since(start), calls, seconds)
	}
}

// Each client has its own token bucket: its API key when keys are on,
// else its IP address.
func TestRateLimitPerClient(t *testing.T) {
	t.Run("ByKey", func(t *testing.T) {
		f := newFixture(t, api.WithAPIKeys(keyA, keyB), api.WithRateLimit(0.5, 2))
		for range 2 {
			if resp, out := f.do(t, http.MethodGet, "/v1/styles", nil, bearer(keyA)); resp.StatusCode != http.StatusOK {
				t.Fatalf("GET within the burst: %s %v", resp.Status, out)
			}
		}
		resp, out := f.do(t, http.MethodGet, "/v1/styles", nil, bearer(keyA))
		checkTooMany(t, "GET over the burst", resp, out, "rate limit", 2)
		wait, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
		resp, out = f.post(t, map[string]string{"objectId": uploaded(t)}, "")
		checkProblem(t, "POST without a key while key A is limited", resp, out, http.StatusUnauthorized, "key")
		if resp, out := f.do(t, http.MethodGet, "/v1/styles", nil, bearer(keyB)); resp.StatusCode != http.StatusOK {
			t.Fatalf("another key while the first is limited: %s %v; want 200", resp.Status, out)
		}
		if resp, _ := f.do(t, http.MethodGet, "/healthz", nil, nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("/healthz is rate limited: %s", resp.Status)
		}
		time.Sleep(time.Duration(wait) * time.Second)
		if resp, out := f.do(t, http.MethodGet, "/v1/styles", nil, bearer(keyA)); resp.StatusCode != http.StatusOK {
			t.Fatalf("GET after Retry-After: %s %v; want 200", resp.Status, out)
		}
	})
	t.Run("ByAddress", func(t *testing.T) {
		f := newFixture(t, api.WithRateLimit(0.5, 2))
		f.do(t, http.MethodGet, "/v1/styles", nil, nil)
		f.do(t, http.MethodPost, "/v1/uploads", map[string]string{"contentType": "image/png"}, nil)
		resp, out := f.post(t, map[string]string{"objectId": uploaded(t), "style": "minimal", "description": "d"}, "")
		checkTooMany(t, "third call from one address", resp, out, "rate limit", 2)
	})
}
