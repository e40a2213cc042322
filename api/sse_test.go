package api_test

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/genpipe/genpipe"
)

// sseEvent is one event of a stream: its id and status.
type sseEvent struct{ id, status string }

// readEvents reads a stream's events until it ends, sending each on the
// returned channel, which is closed at the end.
func readEvents(resp *http.Response) <-chan sseEvent {
	events := make(chan sseEvent, 16)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(resp.Body)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "id: "):
				ev.id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "data: "):
				_, rest, _ := strings.Cut(line, `"status":"`)
				ev.status, _, _ = strings.Cut(rest, `"`)
			case line == "" && ev.id != "":
				events <- ev
				ev = sseEvent{}
			}
		}
	}()
	return events
}

func openEvents(t *testing.T, url, id, lastEventID string) *http.Response {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/v1/requests/"+id+"/events", nil)
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET events: %s", resp.Status)
	}
	return resp
}

func nextEvent(t *testing.T, events <-chan sseEvent) sseEvent {
	t.Helper()
	select {
	case ev, ok := <-events:
		if !ok {
			t.Fatal("the stream ended")
		}
		return ev
	case <-time.After(30 * time.Second):
		t.Fatal("no event within 30 s")
	}
	return sseEvent{}
}

func (f *fixture) submit(t *testing.T) string {
	t.Helper()
	resp, body := f.post(t, map[string]string{"objectId": uploaded(t), "style": "minimal", "description": "streamed"}, "")
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /v1/requests: %s", resp.Status)
	}
	return body["id"].(string)
}

func (f *fixture) apply(t *testing.T, id string, status genpipe.Status) {
	t.Helper()
	if _, err := f.store.ApplyStatus(t.Context(), genpipe.StatusChange{RequestID: id, Status: status, Error: "test"}); err != nil {
		t.Fatal(err)
	}
}

// A stream outlives its server's write timeout: each write sets its own
// deadline, so a server that cuts slow answers still streams.
func TestSSEOutlivesWriteTimeout(t *testing.T) {
	f := newFixture(t)
	srv := httptest.NewUnstartedServer(f.server.Config.Handler)
	srv.Config.WriteTimeout = 50 * time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)
	id := f.submit(t)
	events := readEvents(openEvents(t, srv.URL, id, ""))
	if ev := nextEvent(t, events); ev.status != "received" {
		t.Fatalf("first event %+v; want received", ev)
	}
	time.Sleep(200 * time.Millisecond) // past the server's write deadline
	f.apply(t, id, genpipe.StatusChecking)
	if ev := nextEvent(t, events); ev.status != "checking" {
		t.Fatalf("event after the write timeout %+v; want checking", ev)
	}
}

// HEAD on a stream answers its headers and ends: net/http drops a HEAD's
// body, so a stream would never notice its client, and would hold the
// connection, and the client's next request on it, until the request ended.
func TestSSEHeadEndsAtOnce(t *testing.T) {
	f := newFixture(t)
	id := f.submit(t)
	client := &http.Client{Transport: &http.Transport{}, Timeout: 5 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodHead, f.server.URL+"/v1/requests/"+id+"/events", nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Errorf("HEAD events: %s, %q; want 200 with the stream's type", resp.Status, resp.Header.Get("Content-Type"))
	}
	// The same connection serves the next request.
	req, _ = http.NewRequestWithContext(t.Context(), http.MethodGet, f.server.URL+"/healthz", nil)
	if resp, err := client.Do(req); err != nil {
		t.Errorf("a request after HEAD on the same connection: %v", err)
	} else {
		resp.Body.Close()
	}
}

// A client that reconnects with Last-Event-ID gets only what followed it,
// and a stream whose client has the final status already ends at once.
func TestSSEResumesAfterLastEventID(t *testing.T) {
	f := newFixture(t)
	id := f.submit(t)
	f.apply(t, id, genpipe.StatusChecking)
	events := readEvents(openEvents(t, f.server.URL, id, "1"))
	if ev := nextEvent(t, events); ev.id != "2" || ev.status != "checking" {
		t.Fatalf("first event after Last-Event-ID 1: %+v; want 2 checking", ev)
	}
	f.apply(t, id, genpipe.StatusRejected)
	if ev := nextEvent(t, events); ev.status != "rejected" {
		t.Fatalf("next event %+v; want rejected", ev)
	}
	for _, last := range []string{"5", "99"} {
		events := readEvents(openEvents(t, f.server.URL, id, last))
		if ev, ok := <-events; ok {
			t.Fatalf("stream resumed after the final status (Last-Event-ID %s) sent %+v; want it to end", last, ev)
		}
	}
	for _, bad := range []string{"x", "-1"} { // not an id of ours: the whole history
		events := readEvents(openEvents(t, f.server.URL, id, bad))
		if ev := nextEvent(t, events); ev.status != "received" {
			t.Fatalf("first event after Last-Event-ID %q: %+v; want received", bad, ev)
		}
	}
}

// A client whose connection drops misses nothing: it reconnects with the
// id of the last event it got, and the new stream sends every change made
// meanwhile, each once, in order, the final one with its result, and ends.
func TestSSEResumeLosesNothing(t *testing.T) {
	f := newFixture(t)
	id := f.submit(t)
	ctx, drop := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.server.URL+"/v1/requests/"+id+"/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	first := nextEvent(t, readEvents(resp))
	if first.id != "1" || first.status != "received" {
		t.Fatalf("first event %+v; want 1 received", first)
	}
	drop() // the connection is lost; the request goes on without the client
	resp.Body.Close()
	f.apply(t, id, genpipe.StatusChecking)
	f.apply(t, id, genpipe.StatusGenerating)
	result := &genpipe.Result{PNGKey: "results/" + id + "/slide.png", PDFKey: "results/" + id + "/slide.pdf", PPTXKey: "results/" + id + "/slide.pptx"}
	if _, err := f.store.ApplyStatus(t.Context(), genpipe.StatusChange{RequestID: id, Status: genpipe.StatusDone, Result: result}); err != nil {
		t.Fatal(err)
	}
	var got []sseEvent
	for ev := range readEvents(openEvents(t, f.server.URL, id, first.id)) {
		got = append(got, ev)
	}
	want := []sseEvent{{"2", "checking"}, {"3", "generating"}, {"5", "done"}}
	if !slices.Equal(got, want) {
		t.Fatalf("events after Last-Event-ID %s: %v; want %v", first.id, got, want)
	}
}
