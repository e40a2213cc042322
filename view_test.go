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

// The view names the request's tenant and priority, the defaults for a
// request stored before tenants.
func TestRequestViewShare(t *testing.T) {
	for _, c := range []struct {
		share genpipe.Share
		want  string
	}{
		{genpipe.Share{Tenant: "acme", Priority: genpipe.PriorityHigh, Weight: 3}, `"tenant":"acme","priority":"high"`},
		{genpipe.Share{}, `"tenant":"default","priority":"normal"`},
	} {
		r := &genpipe.Request{ID: "r1", Status: genpipe.StatusReceived, Share: c.share}
		v, err := genpipe.NewRequestView(t.Context(), r, nil, genpipe.DefaultResultTTL)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := json.Marshal(v)
		if !strings.Contains(string(body), c.want) || strings.Contains(string(body), "weight") {
			t.Errorf("view of a request with share %+v: %s; want %s and no weight", c.share, body, c.want)
		}
	}
}
