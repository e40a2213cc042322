package genpipe_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/genpipe/genpipe"
)

// The view shows where a request's webhook stands once it is queued, and
// says nothing of a webhook before.
func TestRequestViewWebhook(t *testing.T) {
	r := &genpipe.Request{ID: "r1", Status: genpipe.StatusRejected, WebhookURL: "https://hooks.example/x"}
	v, err := genpipe.NewRequestView(t.Context(), r, nil, genpipe.DefaultResultTTL)
	if err != nil {
		t.Fatal(err)
	}
	if body, _ := json.Marshal(v); v.Webhook != nil || strings.Contains(string(body), "webhook") {
		t.Errorf("view of a request whose webhook is not queued: %s; want no webhook", body)
	}

	r.Webhook = &genpipe.WebhookDelivery{ID: 7, RequestID: "r1", URL: r.WebhookURL, State: genpipe.WebhookFailed,
		Attempts: 1, LastError: "the receiver answered 404 Not Found"}
	v, err = genpipe.NewRequestView(t.Context(), r, nil, genpipe.DefaultResultTTL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(v)
	const want = `"webhook":{"state":"failed","attempts":1,"lastError":"the receiver answered 404 Not Found"}`
	if !strings.Contains(string(body), want) {
		t.Errorf("view %s; want it to hold %s", body, want)
	}
}
