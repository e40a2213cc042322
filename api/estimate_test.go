package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/api"
)

// fakeEstimator predicts what its func says.
type fakeEstimator struct {
	estimate func(r *genpipe.Request) (genpipe.Estimate, bool)
}

func (f fakeEstimator) Estimate(_ context.Context, r *genpipe.Request) (genpipe.Estimate, bool, error) {
	e, ok := f.estimate(r)
	return e, ok, nil
}

// waitFor predicts that every request's calls start after wait, the last
// after lastWait, and end a second later.
func waitFor(wait, lastWait time.Duration) fakeEstimator {
	return fakeEstimator{func(*genpipe.Request) (genpipe.Estimate, bool) {
		now := time.Now()
		return genpipe.Estimate{Stage: genpipe.StageCheck, StartAt: now.Add(wait), LastStartAt: now.Add(lastWait),
			DoneAt: now.Add(lastWait + time.Second)}, true
	}}
}

// A request whose last call is predicted to start past the server's bound
// is refused with 429 start_too_late, Retry-After the excess, and queues
// nothing; within the bound it is accepted with its estimates, which GET
// shows while it waits.
func TestMaxStartWait(t *testing.T) {
	wait := 90 * time.Second
	var mu sync.Mutex
	est := fakeEstimator{func(r *genpipe.Request) (genpipe.Estimate, bool) {
		mu.Lock()
		defer mu.Unlock()
		return waitFor(time.Second, wait).estimate(r)
	}}
	f := newFixture(t, api.WithEstimator(est), api.WithMaxStartWait(30*time.Second))
	body := map[string]string{"objectId": uploaded(t), "style": "minimal", "description": "late"}
	resp, out := f.post(t, body, "")
	checkProblem(t, "POST predicted past the bound", resp, out, http.StatusTooManyRequests, "predicted to start")
	if out["code"] != genpipe.ESTARTTOOLATE {
		t.Errorf("code %v; want %s", out["code"], genpipe.ESTARTTOOLATE)
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || s < 55 || s > 61 {
		t.Errorf("Retry-After %q; want the 60 s the start is late by", resp.Header.Get("Retry-After"))
	}
	if events := f.requestEvents(t); len(events) != 0 {
		t.Fatalf("a refused request queued %d events", len(events))
	}

	mu.Lock()
	wait = 20 * time.Second
	mu.Unlock()
	before := time.Now()
	resp, out = f.post(t, body, "")
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST within the bound: %s %v", resp.Status, out)
	}
	start, err1 := time.Parse(time.RFC3339Nano, out["estimatedStartAt"].(string))
	done, err2 := time.Parse(time.RFC3339Nano, out["estimatedDoneAt"].(string))
	if err1 != nil || err2 != nil || start.Before(before.Add(time.Second)) || done.Before(before.Add(21*time.Second)) {
		t.Errorf("202 estimates %v, %v; want a start a second and an end 21 s from now", out["estimatedStartAt"], out["estimatedDoneAt"])
	}
	resp, view := f.do(t, http.MethodGet, "/v1/requests/"+out["id"].(string), nil, nil)
	if resp.StatusCode != http.StatusOK || view["estimatedStartAt"] == nil || view["estimatedDoneAt"] == nil {
		t.Errorf("GET of a waiting request: %s %v; want its estimates", resp.Status, view)
	}
}

// Without an estimate (nothing measured, or the request runs) answers
// leave the fields out and admission lets the request in.
func TestNoEstimate(t *testing.T) {
	f := newFixture(t, api.WithEstimator(fakeEstimator{func(*genpipe.Request) (genpipe.Estimate, bool) { return genpipe.Estimate{}, false }}),
		api.WithMaxStartWait(time.Second))
	resp, out := f.post(t, map[string]string{"objectId": uploaded(t), "style": "minimal", "description": "x"}, "")
	if resp.StatusCode != http.StatusAccepted || out["estimatedStartAt"] != nil {
		t.Fatalf("POST without an estimate: %s %v; want 202 without estimatedStartAt", resp.Status, out)
	}
	resp, view := f.do(t, http.MethodGet, "/v1/requests/"+out["id"].(string), nil, nil)
	if _, has := view["estimatedStartAt"]; resp.StatusCode != http.StatusOK || has {
		t.Errorf("GET without an estimate: %s %v; want no estimatedStartAt", resp.Status, view)
	}
}

// The estimate given at submission is measured against the status events
// that say its calls started.
func TestEstimateErrorObserved(t *testing.T) {
	type observed struct {
		stage genpipe.Stage
		err   time.Duration
	}
	got := make(chan observed, 4)
	hub := api.NewHub()
	var predicted genpipe.Estimate
	est := fakeEstimator{func(*genpipe.Request) (genpipe.Estimate, bool) {
		now := time.Now()
		predicted = genpipe.Estimate{Stage: genpipe.StageCheck, StartAt: now.Add(time.Second), LastStartAt: now.Add(10 * time.Second),
			DoneAt: now.Add(13 * time.Second)}
		return predicted, true
	}}
	f := newFixtureHub(t, hub, api.WithEstimator(est),
		api.WithEstimateObserver(func(stage genpipe.Stage, err time.Duration) { got <- observed{stage, err} }))
	_, out := f.post(t, map[string]string{"objectId": uploaded(t), "style": "minimal", "description": "x"}, "")
	id := out["id"].(string)
	hub.Publish(genpipe.StatusChange{RequestID: id, Status: genpipe.StatusChecking, At: predicted.StartAt.Add(2 * time.Second)})
	hub.Publish(genpipe.StatusChange{RequestID: id, Status: genpipe.StatusGenerating, At: predicted.LastStartAt.Add(-3 * time.Second)})
	hub.Publish(genpipe.StatusChange{RequestID: id, Status: genpipe.StatusGenerating, At: predicted.LastStartAt}) // a redelivery: once only
	want := []observed{{genpipe.StageCheck, 2 * time.Second}, {genpipe.StageGenerate, -3 * time.Second}}
	// Publish calls the observer before it returns.
	for _, w := range want {
		select {
		case o := <-got:
			if o != w {
				t.Errorf("observed %+v; want %+v", o, w)
			}
		default:
			t.Fatalf("nothing observed; want %+v", w)
		}
	}
	if len(got) != 0 {
		t.Errorf("observed %+v more; want the two calls once each", <-got)
	}
}

// gatedEstimator's estimates wait for release; called says one began.
type gatedEstimator struct {
	called, release chan struct{}
}

func (g gatedEstimator) Estimate(ctx context.Context, r *genpipe.Request) (genpipe.Estimate, bool, error) {
	g.called <- struct{}{}
	<-g.release
	now := time.Now()
	return genpipe.Estimate{Stage: genpipe.StageCheck, StartAt: now, LastStartAt: now, DoneAt: now.Add(time.Second)}, true, nil
}

// Without a deadline to start by, a request's estimate only informs its
// 202: the request is stored and queued while its queues are read, not
// after. With one, the estimate comes first: a refusal stores nothing
// (TestMaxStartWait).
func TestEstimateReadWhileQueuing(t *testing.T) {
	est := gatedEstimator{called: make(chan struct{}, 1), release: make(chan struct{})}
	f := newFixture(t, api.WithEstimator(est))
	body := map[string]string{"objectId": uploaded(t), "style": "minimal", "description": "queued while estimated"}
	answered := make(chan map[string]any, 1)
	go func() { // not f.post: it may FailNow, which only the test's goroutine may
		data, _ := json.Marshal(body)
		resp, err := http.Post(f.server.URL+"/v1/requests", "application/json", bytes.NewReader(data))
		if err != nil {
			t.Errorf("POST: %v", err)
			answered <- nil
			return
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		if resp.StatusCode != http.StatusAccepted {
			t.Errorf("POST: %s %v", resp.Status, out)
		}
		answered <- out
	}()
	<-est.called
	deadline := time.Now().Add(30 * time.Second)
	for len(f.requestEvents(t)) == 0 {
		if time.Now().After(deadline) {
			close(est.release)
			t.Fatal("the request was not queued while its estimate was being read")
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case out := <-answered:
		t.Fatalf("answered before its estimate was read: %v", out)
	default:
	}
	close(est.release)
	if out := <-answered; out["estimatedStartAt"] == nil {
		t.Errorf("202 %v; want the estimate read meanwhile", out)
	}
}
