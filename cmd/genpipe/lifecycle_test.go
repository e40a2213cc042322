//go:build unix

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/genpipe/genpipe/aisim"
)

// TestLifecycleThroughUp runs `genpipe up` as a process with slow, narrow
// AIs (the Checking AI takes 2 s and one call at once, the Generative AI
// 30 s and one call at once) and takes requests through cancel and
// deadlines:
//
//   - a request whose maxWaitSeconds passes while it waits for the
//     Checking AI ends expired (GET, webhook) without any AI call;
//   - a request canceled while it waits for the Generative AI, and one
//     canceled while its generate call runs, end canceled (GET, SSE,
//     webhook); the running call is aborted (the AI counts it aborted and
//     frees its slot) and no call starts for either after the cancel;
//   - the web page's Cancel button cancels a request (with Chromium).
func TestLifecycleThroughUp(t *testing.T) {
	s := newStandalone(t)
	up := s.start("up", nil, s.upArgs("--partitions", "4", "--check-latency", "2s", "--check-capacity", "1",
		"--generate-latency", "30s", "--generate-capacity", "1", "--cancel-poll", "20ms")...)
	s.waitReady(up)
	checkAI, generateAI := printedURL(t, up, "Checking AI"), printedURL(t, up, "Generative AI")

	running, runningHooks := s.submit("canceled while generating")
	s.waitAIStats(checkAI, "the first request at the Checking AI", func(c aisim.Stats) bool { return c.InFlight == 1 })

	// Behind it, a request that may wait a second: it expires in the queue.
	late, lateHooks := s.submitWith("expires waiting", map[string]any{"maxWaitSeconds": 1})
	if v := s.waitStatus(late, 15*time.Second, "expired"); v.Error == "" {
		t.Errorf("expired request has no reason: %+v", v)
	}
	s.checkEndWebhook(lateHooks, late, "expired")

	s.waitAIStats(generateAI, "the first request at the Generative AI", func(c aisim.Stats) bool { return c.InFlight == 1 })
	waiting, waitingHooks := s.submit("canceled while waiting")
	events := s.streamStatuses(waiting)
	s.waitAIStats(checkAI, "the second request checked", func(c aisim.Stats) bool { return c.Calls == 2 && c.InFlight == 0 })
	if c := s.aiNow(checkAI); c.Calls != 2 {
		t.Errorf("the Checking AI got %d calls; want 2 (none for the expired request)", c.Calls)
	}

	var v requestView
	if resp := s.call("DELETE", "/v1/requests/"+waiting, nil, &v); resp.StatusCode != http.StatusOK || v.Status != "canceled" {
		t.Fatalf("DELETE the waiting request: %s %+v; want 200 canceled", resp.Status, v)
	}
	if resp := s.call("DELETE", "/v1/requests/"+running, nil, &v); resp.StatusCode != http.StatusOK || v.Status != "canceled" {
		t.Fatalf("DELETE the running request: %s %+v; want 200 canceled", resp.Status, v)
	}
	deleted := time.Now()
	for s.aiNow(generateAI).InFlight != 0 {
		if time.Since(deleted) > 10*time.Second {
			t.Fatalf("the generate call still runs 10s after its request was canceled: %+v", s.aiNow(generateAI))
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Logf("abort latency through up: DELETE answered → generate slot freed in %v (cancel poll 20ms)", time.Since(deleted).Round(time.Millisecond))

	// A slot is free now: give the dispatcher time to take the canceled
	// request's task, which it must drop.
	time.Sleep(1500 * time.Millisecond)
	if c := s.aiNow(generateAI); c.Calls != 1 || c.Aborted != 1 || c.Succeeded != 0 {
		t.Errorf("Generative AI after the cancels: %+v; want 1 call, aborted, none started after the cancel", c)
	}
	if c := s.aiNow(checkAI); c.Calls != 2 {
		t.Errorf("Checking AI after the cancels: %+v; want 2 calls", c)
	}
	for _, id := range []string{running, waiting} {
		s.waitStatus(id, 5*time.Second, "canceled")
	}
	s.checkEndWebhook(runningHooks, running, "canceled")
	s.checkEndWebhook(waitingHooks, waiting, "canceled")
	if got := <-events; len(got) == 0 || got[len(got)-1] != "canceled" {
		t.Errorf("SSE of the waiting request: %v; want it to end canceled", got)
	}

	// Canceling again answers the same; a finished request is a conflict.
	if resp := s.call("DELETE", "/v1/requests/"+running, nil, &v); resp.StatusCode != http.StatusOK || v.Status != "canceled" {
		t.Errorf("DELETE again: %s %+v; want 200 canceled", resp.Status, v)
	}
	var problem struct {
		Code string `json:"code"`
	}
	if resp := s.call("DELETE", "/v1/requests/"+late, nil, &problem); resp.StatusCode != http.StatusConflict || problem.Code != "conflict" {
		t.Errorf("DELETE of the expired request: %s %+v; want 409 conflict", resp.Status, problem)
	}

	t.Run("WebPageCancelButton", func(t *testing.T) { browserCancels(t, s.api) })
}

// aiNow returns the counters of the simulated AI at addr.
func (s *standalone) aiNow(addr string) aisim.Stats {
	s.t.Helper()
	c, err := aiStats("http://" + addr)
	if err != nil {
		s.t.Fatal(err)
	}
	return c
}

// waitAIStats waits up to 30 s until the AI's counters satisfy cond.
func (s *standalone) waitAIStats(addr, what string, cond func(aisim.Stats) bool) {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for c := s.aiNow(addr); !cond(c); c = s.aiNow(addr) {
		s.checkAlive()
		if time.Now().After(deadline) {
			s.t.Fatalf("not %s after 30s: %+v", what, c)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// submitWith is submit with more fields in the request's body.
func (s *standalone) submitWith(title string, extra map[string]any) (string, *webhookReceiver) {
	s.t.Helper()
	hooks := newWebhookReceiver(s.t)
	body := map[string]any{"objectId": s.uploadAs("", pngImage(s.t, 320, 200)), "style": "forest", "title": title,
		"description": "Cancel and deadlines.", "webhookUrl": hooks.url}
	for k, v := range extra {
		body[k] = v
	}
	var a accepted
	if resp := s.call("POST", "/v1/requests", body, &a); resp.StatusCode != http.StatusAccepted {
		s.t.Fatalf("POST /v1/requests: %s %+v", resp.Status, a)
	}
	return a.ID, hooks
}

// waitStatus polls GET until the request has status want.
func (s *standalone) waitStatus(id string, timeout time.Duration, want string) requestView {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var v requestView
		if resp := s.call("GET", "/v1/requests/"+id, nil, &v); resp.StatusCode != http.StatusOK {
			s.t.Fatalf("GET request %s: %s", id, resp.Status)
		}
		if v.Status == want {
			return v
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("request %s is %s after %s; want %s", id, v.Status, timeout, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkEndWebhook waits for the webhook of request id and checks that it
// reports status.
func (s *standalone) checkEndWebhook(hooks *webhookReceiver, id, status string) {
	s.t.Helper()
	d := hooks.wait(s.t, 15*time.Second)
	var v requestView
	if err := json.Unmarshal(d.body, &v); err != nil || v.ID != id || v.Status != status {
		s.t.Errorf("webhook of %s = %s (%v); want status %s", id, d.body, err, status)
	}
}

// streamStatuses reads the SSE stream of request id in the background and
// sends the statuses it carried once the stream ends (after the request's
// final status), or after a minute.
func (s *standalone) streamStatuses(id string) <-chan []string {
	out := make(chan []string, 1)
	ctx, cancel := context.WithTimeout(s.t.Context(), time.Minute)
	req, _ := http.NewRequestWithContext(ctx, "GET", s.api+"/v1/requests/"+id+"/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		s.t.Fatalf("events of %s: %v", id, err)
	}
	go func() {
		defer cancel()
		defer resp.Body.Close()
		var statuses []string
		scanner := bufio.NewScanner(resp.Body)
		for scanner.Scan() {
			if data, ok := strings.CutPrefix(scanner.Text(), "data: "); ok {
				var ev struct {
					Status string `json:"status"`
				}
				if json.Unmarshal([]byte(data), &ev) == nil {
					statuses = append(statuses, ev.Status)
				}
			}
		}
		out <- statuses
	}()
	return out
}
