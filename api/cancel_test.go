package api_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/api"
)

// newFixtureWith serves f's API again with a canceler that publishes to
// the results topic, and opts.
func newFixtureWith(t *testing.T, f *fixture, opts ...api.Option) *fixture {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := api.NewServer(f.store, genpipe.NewSubmitter(f.store, f.env.Producer, f.topics.Requests), f.env.Objects, api.NewHub(),
		append([]api.Option{api.WithLogger(quiet), api.WithCanceler(genpipe.NewCanceler(f.store, f.env.Producer, f.topics.Results))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	f.server.Close()
	f.api, f.server = srv, httptest.NewServer(srv.Handler())
	t.Cleanup(f.server.Close)
	return f
}

func (f *fixture) submitWith(t *testing.T, extra map[string]any, headers map[string]string, keys ...string) (*http.Response, map[string]any) {
	t.Helper()
	body := map[string]any{"objectId": uploaded(t, keys...), "style": "minimal", "description": "cancel me"}
	for k, v := range extra {
		body[k] = v
	}
	return f.do(t, http.MethodPost, "/v1/requests", body, headers)
}

// DELETE cancels a request that has not ended: 200 with the view, status
// canceled, once in the store and once on the results topic; again, the
// same answer; a finished request is a 409 problem with code conflict.
func TestCancelRequest(t *testing.T) {
	f := newFixture(t)
	f = newFixtureWith(t, f)
	resp, accepted := f.submitWith(t, nil, nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST: %s %v", resp.Status, accepted)
	}
	id := accepted["id"].(string)
	for i := range 2 {
		resp, view := f.do(t, http.MethodDelete, "/v1/requests/"+id, nil, nil)
		if resp.StatusCode != http.StatusOK || view["status"] != "canceled" || view["id"] != id {
			t.Fatalf("DELETE #%d: %s %v; want 200 canceled", i+1, resp.Status, view)
		}
	}
	if _, view := f.do(t, http.MethodGet, "/v1/requests/"+id, nil, nil); view["status"] != "canceled" || view["error"] != genpipe.CancelReason {
		t.Errorf("GET after DELETE: %v; want canceled", view)
	}
	n := 0
	for _, e := range f.topicEvents(t, f.topics.Results) {
		if e.RequestID == id && e.Status == genpipe.StatusCanceled {
			n++
			if e.Tenant == "" {
				t.Errorf("canceled event without the request's share: %+v", e)
			}
		}
	}
	if n != 1 {
		t.Errorf("%d canceled events on the results topic; want 1", n)
	}

	_, accepted = f.submitWith(t, nil, nil)
	done := accepted["id"].(string)
	if _, err := f.store.ApplyStatus(t.Context(), genpipe.StatusChange{RequestID: done, Status: genpipe.StatusDone, At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	resp, problem := f.do(t, http.MethodDelete, "/v1/requests/"+done, nil, nil)
	checkProblem(t, "DELETE of a done request", resp, problem, http.StatusConflict, "has ended done")
	if problem["code"] != genpipe.ECONFLICT {
		t.Errorf("problem code %v; want %q", problem["code"], genpipe.ECONFLICT)
	}
	resp, problem = f.do(t, http.MethodDelete, "/v1/requests/"+uuid.NewString(), nil, nil)
	checkProblem(t, "DELETE of an unknown request", resp, problem, http.StatusNotFound, "not found")
	resp, problem = f.do(t, http.MethodDelete, "/v1/requests/not-an-id", nil, nil)
	checkProblem(t, "DELETE of a malformed id", resp, problem, http.StatusNotFound, "not found")
}

// Another API key's request is not found for DELETE, as for GET, and
// stays as it is.
func TestCancelOtherKeysRequestIsNotFound(t *testing.T) {
	f := newFixture(t, api.WithAPIKeys(keyA, keyB))
	resp, accepted := f.submitWith(t, nil, bearer(keyA), keyA)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST: %s %v", resp.Status, accepted)
	}
	id := accepted["id"].(string)
	resp, problem := f.do(t, http.MethodDelete, "/v1/requests/"+id, nil, bearer(keyB))
	checkProblem(t, "DELETE with another key", resp, problem, http.StatusNotFound, "not found")
	if _, view := f.do(t, http.MethodGet, "/v1/requests/"+id, nil, bearer(keyA)); view["status"] != "received" {
		t.Errorf("after another key's DELETE: %v; want received", view)
	}
	if resp, view := f.do(t, http.MethodDelete, "/v1/requests/"+id, nil, bearer(keyA)); resp.StatusCode != http.StatusOK || view["status"] != "canceled" {
		t.Errorf("DELETE with its own key: %s %v; want 200 canceled", resp.Status, view)
	}
}

// startBy and maxWaitSeconds set the request's deadline, which it keeps in
// the store, the 202 and its events; bad values are 400 problems naming
// the field.
func TestDeadlineFields(t *testing.T) {
	f := newFixture(t)
	startBy := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	resp, accepted := f.submitWith(t, map[string]any{"startBy": startBy.Format(time.RFC3339)}, nil)
	if resp.StatusCode != http.StatusAccepted || accepted["startBy"] != startBy.Format(time.RFC3339) {
		t.Fatalf("POST with startBy: %s %v; want 202 with startBy %s", resp.Status, accepted, startBy.Format(time.RFC3339))
	}
	id := accepted["id"].(string)
	if r, err := f.store.Request(t.Context(), id); err != nil || !r.StartBy.Equal(startBy) {
		t.Errorf("stored StartBy %v, %v; want %v", r.StartBy, err, startBy)
	}
	found := false
	for _, e := range f.requestEvents(t) {
		if e.RequestID == id {
			found = e.StartBy.Equal(startBy)
		}
	}
	if !found {
		t.Error("the submitted event does not carry the request's startBy")
	}
	before := time.Now()
	_, accepted = f.submitWith(t, map[string]any{"maxWaitSeconds": 60}, nil)
	if got, err := time.Parse(time.RFC3339Nano, accepted["startBy"].(string)); err != nil ||
		got.Before(before.Add(59*time.Second)) || got.After(time.Now().Add(61*time.Second)) {
		t.Errorf("maxWaitSeconds 60 gave startBy %v; want a minute from now", accepted["startBy"])
	}
	if _, accepted := f.submitWith(t, nil, nil); accepted["startBy"] != nil {
		t.Errorf("no deadline asked, none set: got startBy %v", accepted["startBy"])
	}

	for _, bad := range []struct {
		name  string
		extra map[string]any
		want  string
	}{
		{"both", map[string]any{"startBy": startBy.Format(time.RFC3339), "maxWaitSeconds": 5}, "not both"},
		{"past", map[string]any{"startBy": time.Now().Add(-time.Minute).Format(time.RFC3339)}, "not in the future"},
		{"not a time", map[string]any{"startBy": "tomorrow"}, "RFC 3339"},
		{"too far", map[string]any{"startBy": time.Now().Add(genpipe.MaxWait + time.Hour).Format(time.RFC3339)}, "the most is"},
		{"zero", map[string]any{"maxWaitSeconds": 0}, "positive"},
		{"negative", map[string]any{"maxWaitSeconds": -3}, "positive"},
		{"huge", map[string]any{"maxWaitSeconds": int64(genpipe.MaxWait/time.Second) + 1}, "over the most"},
		{"fraction", map[string]any{"maxWaitSeconds": 1.5}, "maxWaitSeconds"},
	} {
		resp, problem := f.submitWith(t, bad.extra, nil)
		checkProblem(t, bad.name, resp, problem, http.StatusBadRequest, bad.want)
	}

	// An idempotent retry must ask for the same deadline.
	key := map[string]string{"Idempotency-Key": "deadline-retry"}
	body := map[string]any{"objectId": uploaded(t), "style": "minimal", "description": "retried", "startBy": startBy.Format(time.RFC3339)}
	if resp, _ := f.do(t, http.MethodPost, "/v1/requests", body, key); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("first POST: %s", resp.Status)
	}
	if resp, _ := f.do(t, http.MethodPost, "/v1/requests", body, key); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("retry: %s", resp.Status)
	}
	body["startBy"] = startBy.Add(time.Minute).Format(time.RFC3339)
	resp, problem := f.do(t, http.MethodPost, "/v1/requests", body, key)
	checkProblem(t, "retry with another startBy", resp, problem, http.StatusConflict, "startBy")
}

// -max-wait gives requests without a deadline one.
func TestMaxWaitDefault(t *testing.T) {
	f := newFixture(t, api.WithMaxWait(time.Hour))
	_, accepted := f.submitWith(t, nil, nil)
	got, err := time.Parse(time.RFC3339Nano, fmtAny(accepted["startBy"]))
	if err != nil || got.Before(time.Now().Add(59*time.Minute)) {
		t.Errorf("startBy under -max-wait 1h: %v; want an hour from now", accepted["startBy"])
	}
	if _, err := api.NewServer(f.store, nil, nil, nil, api.WithMaxWait(-time.Second)); err == nil {
		t.Error("WithMaxWait(-1s): no error")
	}
}

func fmtAny(v any) string { s, _ := v.(string); return s }
