package aisim_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/aiclient"
	"github.com/genpipe/genpipe/aisim"
)

// post sends body to url and returns the answer, its body decoded into a map.
func post(t *testing.T, url, body string) (*http.Response, map[string]any) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatalf("decode answer: %v", err)
	}
	return resp, m
}

// wantProblem checks an RFC 9457 answer with the given status.
func wantProblem(t *testing.T, resp *http.Response, m map[string]any, status int) {
	t.Helper()
	if resp.StatusCode != status {
		t.Errorf("status %d, want %d (%v)", resp.StatusCode, status, m)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type %q, want application/problem+json", ct)
	}
	for _, k := range []string{"type", "title", "status", "detail"} {
		if _, ok := m[k]; !ok {
			t.Errorf("problem lacks %q: %v", k, m)
		}
	}
	if got, _ := m["status"].(float64); int(got) != status {
		t.Errorf("problem status %v, want %d", m["status"], status)
	}
}

func TestBadInput(t *testing.T) {
	check := serve(t, service(t, "check")) + "/v1/check"
	generate := serve(t, service(t, "generate")) + "/v1/generate"
	style, _ := json.Marshal(genpipe.Styles[0])
	outputs := `"outputs":{"png":"http://s/a","pdf":"http://s/b","pptx":"http://s/c"}`
	for _, tc := range []struct {
		name, url, body string
		status          int
		detail          string
	}{
		{"malformed", check, `{"requestId":`, 400, "malformed JSON"},
		{"empty", check, ``, 400, "empty"},
		{"no imageUrl", check, `{"requestId":"r1"}`, 400, "imageUrl is required"},
		{"relative imageUrl", check, `{"requestId":"r1","imageUrl":"/x"}`, 400, "imageUrl is not an absolute"},
		{"no requestId", check, `{"imageUrl":"http://s/x"}`, 400, "requestId is required"},
		{"too large", check, `{"requestId":"` + strings.Repeat("x", aisim.MaxBodyBytes) + `"}`, 413, "over 1048576 bytes"},
		{"no outputs", generate, `{"requestId":"r1","imageUrl":"http://s/x","style":` + string(style) + `}`, 400, "outputs.png is required"},
		{"no style", generate, `{"requestId":"r1","imageUrl":"http://s/x",` + outputs + `}`, 400, "style.id is required"},
		{"bad color", generate, `{"requestId":"r1","imageUrl":"http://s/x",` + outputs + `,"style":{"id":"x","backgroundTop":"red"}}`, 400, `backgroundTop "red" is not a #rrggbb color`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, m := post(t, tc.url, tc.body)
			wantProblem(t, resp, m, tc.status)
			if d, _ := m["detail"].(string); !strings.Contains(d, tc.detail) {
				t.Errorf("detail %q, want it to contain %q", d, tc.detail)
			}
		})
	}
}

func TestHealthAndStats(t *testing.T) {
	base := serve(t, service(t, "check", aisim.WithCapacity(7)))
	resp, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("healthz: %s", resp.Status)
	}
	resp, err = http.Get(base + "/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"calls", "uniqueRequests", "succeeded", "uniqueSucceeded", "failed", "abandoned",
		"maxConcurrent", "overCapacity", "injectedFaults", "injectedBusy", "inFlight", "capacity"} {
		if _, ok := m[k]; !ok {
			t.Errorf("stats lack %q: %v", k, m)
		}
	}
	if m["capacity"] != 7.0 {
		t.Errorf("capacity %v, want 7", m["capacity"])
	}
}

// With 2 slots and 5 calls at once, 2 are served and 3 refused at once.
func TestCapacityRefusesWithoutQueueing(t *testing.T) {
	st := newStore(t)
	svc := service(t, "check", aisim.WithCapacity(2), aisim.WithLatency(200*time.Millisecond))
	base := serve(t, svc)
	checker := aiclient.NewChecker(base)
	url := st.add("img", pngOf(t, picture(64, 64)))

	errs := make([]error, 5)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = checker.Check(context.Background(), genpipe.CheckInput{RequestID: strconv.Itoa(i), ImageURL: url})
		})
	}
	wg.Wait()

	var ok, busy int
	for _, err := range errs {
		switch genpipe.ErrorCode(err) {
		case "":
			ok++
		case genpipe.ETOOMANY:
			busy++
			if d, has := aiclient.RetryAfter(err); !has || d < time.Second {
				t.Errorf("RetryAfter = %v, %v; want ≥ 1s", d, has)
			}
		default:
			t.Errorf("unexpected error: %v", err)
		}
	}
	if ok != 2 || busy != 3 {
		t.Errorf("%d served, %d refused; want 2 and 3", ok, busy)
	}
	want := aisim.Stats{Calls: 2, UniqueRequests: 2, Succeeded: 2, UniqueSucceeded: 2, MaxConcurrent: 2, OverCapacity: 3, Capacity: 2}
	if got := svc.Stats(); got != want {
		t.Errorf("stats %+v, want %+v", got, want)
	}
}

// A call whose client gives up frees its slot at once; meanwhile a call
// over capacity gets a 429 problem with Retry-After.
func TestCancelFreesSlot(t *testing.T) {
	st := newStore(t)
	svc := service(t, "check", aisim.WithCapacity(1), aisim.WithLatency(time.Minute))
	base := serve(t, svc)
	url := st.add("img", pngOf(t, picture(64, 64)))
	checker := aiclient.NewChecker(base)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := checker.Check(ctx, genpipe.CheckInput{RequestID: "slow", ImageURL: url})
		done <- err
	}()
	waitFor(t, func() bool { return svc.Stats().InFlight == 1 })

	body := `{"requestId":"r2","imageUrl":"` + url + `"}`
	resp, m := post(t, base+"/v1/check", body)
	wantProblem(t, resp, m, http.StatusTooManyRequests)
	if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 {
		t.Errorf("Retry-After %q, want whole seconds ≥ 1", resp.Header.Get("Retry-After"))
	}

	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("canceled call: %v, want context.Canceled in the chain", err)
	}
	waitFor(t, func() bool { return svc.Stats().InFlight == 0 })
	if s := svc.Stats(); s.Calls != 1 || s.OverCapacity != 1 || s.Abandoned != 1 || s.Succeeded != 0 {
		t.Errorf("stats %+v, want 1 call (abandoned) and 1 refused", s)
	}
}

// waitFor polls cond for up to two seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met within 2s")
}

// The latency is spent holding the slot: a call takes at least the latency.
func TestLatency(t *testing.T) {
	st := newStore(t)
	checker, _ := newChecker(t, aisim.WithLatency(150*time.Millisecond))
	start := time.Now()
	_, err := checker.Check(context.Background(), genpipe.CheckInput{RequestID: "r", ImageURL: st.add("img", pngOf(t, picture(64, 64)))})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 150*time.Millisecond {
		t.Errorf("call took %v, want ≥ 150ms", took)
	}
}

// Exactly capacity calls at once are all served.
func TestFullCapacity(t *testing.T) {
	const capacity = 64
	st := newStore(t)
	svc := service(t, "check", aisim.WithCapacity(capacity), aisim.WithLatency(500*time.Millisecond))
	checker := aiclient.NewChecker(serve(t, svc))
	url := st.add("img", pngOf(t, picture(64, 64)))
	var wg sync.WaitGroup
	for i := range capacity {
		wg.Go(func() {
			if _, err := checker.Check(context.Background(), genpipe.CheckInput{RequestID: strconv.Itoa(i), ImageURL: url}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if s := svc.Stats(); s.Calls != capacity || s.OverCapacity != 0 || s.MaxConcurrent != capacity {
		t.Errorf("stats %+v, want %d calls at once and none refused", s, capacity)
	}
}
