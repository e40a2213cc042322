package contract_test

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/genpipe/genpipe/internal/contract"
)

// The description loads as OpenAPI 3.1 and validates, schemas and examples
// included.
func TestDescriptionLoadsAndValidates(t *testing.T) {
	doc, err := contract.Load()
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/v1/uploads", "/v1/requests", "/v1/requests/{id}", "/v1/requests/{id}/events",
		"/v1/styles", "/v1/usage", "/healthz", "/readyz", "/metrics", "/openapi.json"} {
		if doc.Paths.Value(path) == nil {
			t.Errorf("the description lacks %s", path)
		}
	}
	if doc.Webhooks["requestEnded"] == nil {
		t.Error("the description lacks the webhook")
	}
}

// fake serves canned answers, as a server that drifted from the
// description would.
func fake(t *testing.T, status int, contentType, body string) (*http.Client, *contract.Validator, string) {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", contentType)
		w.Header().Set("Cache-Control", "no-cache")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	v, err := contract.New()
	if err != nil {
		t.Fatal(err)
	}
	v.Watch(srv.URL)
	return &http.Client{Transport: v.Transport(nil)}, v, srv.URL
}

func post(c *http.Client, url, body string) (*http.Response, error) {
	return c.Post(url, "application/json", strings.NewReader(body))
}

const validRequest = `{"objectId":"0b5d7a52-7d1c-4a8b-9a43-1f1e6c0e5d2a","style":"minimal","description":"x"}`

// Each kind of drift fails the round trip, naming the operation, and is
// kept for the run's report; an exchange the description has passes with
// its body intact.
func TestTransportCatchesDrift(t *testing.T) {
	accepted := `{"id":"0b5d7a52-7d1c-4a8b-9a43-1f1e6c0e5d2a","status":"received","tenant":"default","priority":"normal","message":"ok"}`
	for _, c := range []struct {
		name, ctype, body, request string
		status                     int
		want                       string // "" for no breach
	}{
		{"as described", "application/json", accepted, validRequest, 202, ""},
		{"a field missing", "application/json", `{"status":"received","tenant":"default","priority":"normal","message":"ok"}`, validRequest, 202, "createRequest"},
		{"a field not described", "application/json", strings.Replace(accepted, `"ok"`, `"ok","extra":1`, 1), validRequest, 202, "extra"},
		{"a status not described", "application/json", accepted, validRequest, 201, "status is not supported"},
		{"an error that is not a problem", "application/json", `{"error":"no"}`, validRequest, 400, "Content-Type"},
		{"an unknown problem code", "application/problem+json", `{"type":"urn:genpipe:problem:x","title":"Bad Request","status":400,"detail":"d","code":"nope"}`, validRequest, 400, "code"},
		{"a refused request accepted", "application/json", accepted, `{"style":"minimal"}`, 202, "refuses"},
		{"a refused request refused", "application/problem+json", `{"type":"urn:genpipe:problem:invalid","title":"Bad Request","status":400,"detail":"objectId is required","code":"invalid"}`, `{"style":"minimal"}`, 400, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			client, v, url := fake(t, c.status, c.ctype, c.body)
			resp, err := post(client, url+"/v1/requests", c.request)
			if c.want == "" {
				if err != nil {
					t.Fatalf("an exchange as described: %v", err)
				}
				defer resp.Body.Close()
				if got, _ := io.ReadAll(resp.Body); string(got) != c.body {
					t.Fatalf("body after the check = %q, want %q", got, c.body)
				}
				if v.Report() != nil {
					t.Fatalf("report: %v", v.Report())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "POST /v1/requests") {
				t.Fatalf("round trip error = %v; want one naming the operation and %q", err, c.want)
			}
			if v.Report() == nil {
				t.Fatal("the breach is not in the report")
			}
		})
	}
}

// An event stream passes through; its headers are checked at once and each
// event's data as it is read.
func TestTransportChecksEventStreams(t *testing.T) {
	good := `{"id":"0b5d7a52-7d1c-4a8b-9a43-1f1e6c0e5d2a","status":"checking","tenant":"default","priority":"normal","at":"2026-01-02T15:04:05Z"}`
	bad := `{"id":"0b5d7a52-7d1c-4a8b-9a43-1f1e6c0e5d2a","status":"done","tenant":"default","priority":"normal","at":"2026-01-02T15:04:05Z"}`
	stream := "id: 2\nevent: status\ndata: " + good + "\n\n: keep-alive\n\nid: 4\nevent: status\ndata: " + bad + "\n\n"
	client, v, url := fake(t, 200, "text/event-stream", stream)
	resp, err := client.Get(url + "/v1/requests/0b5d7a52-7d1c-4a8b-9a43-1f1e6c0e5d2a/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) < 3 || lines[2] != "data: "+good {
		t.Fatalf("the stream read %q", lines)
	}
	if err := sc.Err(); err == nil || !strings.Contains(err.Error(), "streamRequestEvents") || !strings.Contains(err.Error(), "result") {
		t.Fatalf("a done event without its result read with error %v; want one naming the operation and result", err)
	}
	if v.Report() == nil {
		t.Fatal("the breach is not in the report")
	}

	// A stream cut in the middle of a line is no breach.
	client, v, url = fake(t, 200, "text/event-stream", "id: 2\nevent: status\ndata: {\"id\":\"0b5d")
	resp, err = client.Get(url + "/v1/requests/0b5d7a52-7d1c-4a8b-9a43-1f1e6c0e5d2a/events")
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	resp.Body.Close()
	if err := v.Report(); err != nil {
		t.Fatalf("a stream cut short: %v", err)
	}

	client, _, url = fake(t, 200, "text/plain", "data: x\n\n")
	if _, err := client.Get(url + "/v1/requests/x/events"); err == nil || !strings.Contains(err.Error(), "text/plain") {
		t.Fatalf("an event stream of the wrong type: %v", err)
	}
}

// A webhook delivery is held to the description's webhook.
func TestCheckWebhook(t *testing.T) {
	v, err := contract.New()
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{"Webhook-Id": {"msg_1"}, "Webhook-Timestamp": {"1767366245"}, "Webhook-Signature": {"v1,x"}}
	good := `{"id":"0b5d7a52-7d1c-4a8b-9a43-1f1e6c0e5d2a","status":"rejected","tenant":"default","priority":"normal","style":"minimal",
		"title":"t","description":"d","error":"too small","createdAt":"2026-01-02T15:04:05Z","updatedAt":"2026-01-02T15:04:06Z"}`
	if err := v.CheckWebhook(h, []byte(good)); err != nil {
		t.Fatalf("a delivery as described: %v", err)
	}
	if err := v.CheckWebhook(http.Header{}, []byte(strings.Replace(good, `"rejected"`, `"lost"`, 1))); err == nil ||
		!strings.Contains(err.Error(), "webhook-signature") || !strings.Contains(err.Error(), "status") {
		t.Fatalf("a delivery without signature and with an unknown status: %v", err)
	}
	if v.Report() == nil {
		t.Fatal("the breach is not in the report")
	}
}
