package aisim_test

import (
	"context"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/aiclient"
	"github.com/genpipe/genpipe/aisim"
)

// checkWithImage runs a check service with opts and no latency, and a
// store holding a 64×64 PNG; it returns the service, its URL and the
// image's.
func checkWithImage(t *testing.T, opts ...aisim.Option) (svc *aisim.Service, base, imageURL string) {
	t.Helper()
	st := newStore(t)
	svc = service(t, "check", opts...)
	return svc, serve(t, svc), st.add("img", pngOf(t, picture(64, 64)))
}

// An injected 500 is a problem+json answered before any slot is taken, and
// a worker's client sees it as worth retrying.
func TestFaultRateAnswers500(t *testing.T) {
	svc, base, url := checkWithImage(t, aisim.WithFaultRate(1))

	resp, m := post(t, base+"/v1/check", `{"requestId":"r1","imageUrl":"`+url+`"}`)
	wantProblem(t, resp, m, http.StatusInternalServerError)
	_, err := aiclient.NewChecker(base).Check(context.Background(), genpipe.CheckInput{RequestID: "r2", ImageURL: url})
	if code := genpipe.ErrorCode(err); code != genpipe.EUNAVAILABLE {
		t.Errorf("client error %v (code %q), want %q", err, code, genpipe.EUNAVAILABLE)
	}
	want := aisim.Stats{InjectedFaults: 2, Capacity: aisim.DefaultCapacity}
	if got := svc.Stats(); got != want {
		t.Errorf("stats %+v, want %+v", got, want)
	}
}

// An injected 429 carries Retry-After like a real one, but is counted
// apart from the refusals at capacity.
func TestBusyRateAnswers429(t *testing.T) {
	svc, base, url := checkWithImage(t, aisim.WithBusyRate(1))

	resp, m := post(t, base+"/v1/check", `{"requestId":"r1","imageUrl":"`+url+`"}`)
	wantProblem(t, resp, m, http.StatusTooManyRequests)
	if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 {
		t.Errorf("Retry-After %q, want whole seconds ≥ 1", resp.Header.Get("Retry-After"))
	}
	_, err := aiclient.NewChecker(base).Check(context.Background(), genpipe.CheckInput{RequestID: "r2", ImageURL: url})
	if d, ok := aiclient.RetryAfter(err); genpipe.ErrorCode(err) != genpipe.ETOOMANY || !ok || d < time.Second {
		t.Errorf("client error %v, RetryAfter %v %v; want %q with ≥ 1s", err, d, ok, genpipe.ETOOMANY)
	}
	want := aisim.Stats{InjectedBusy: 2, Capacity: aisim.DefaultCapacity}
	if got := svc.Stats(); got != want {
		t.Errorf("stats %+v, want %+v", got, want)
	}
}

// Input is validated before the draw: a bad request is a 400 whatever the
// fault rate, so a test's injected failures are all retryable.
func TestFaultsAfterValidation(t *testing.T) {
	svc := service(t, "check", aisim.WithFaultRate(1))
	resp, m := post(t, serve(t, svc)+"/v1/check", `{"requestId":"r1"}`)
	wantProblem(t, resp, m, http.StatusBadRequest)
	if s := svc.Stats(); s.InjectedFaults != 0 {
		t.Errorf("stats %+v, want no injected fault for bad input", s)
	}
}

// With both rates, each arriving call is either injected or reaches the
// model, and a seeded service injects the same number for the same calls.
func TestSeededRates(t *testing.T) {
	st := newStore(t)
	url := st.add("img", pngOf(t, picture(64, 64)))
	run := func() aisim.Stats {
		svc := service(t, "check", aisim.WithFaultRate(0.2), aisim.WithBusyRate(0.2), aisim.WithFaultSeed(7))
		checker := aiclient.NewChecker(serve(t, svc))
		for i := range 100 {
			_, _ = checker.Check(context.Background(), genpipe.CheckInput{RequestID: strconv.Itoa(i), ImageURL: url})
		}
		return svc.Stats()
	}
	a, b := run(), run()
	if a.InjectedFaults+a.InjectedBusy+a.Calls != 100 || a.Calls != a.Succeeded {
		t.Errorf("stats %+v: want injected + calls = 100, every call succeeded", a)
	}
	if a.InjectedFaults == 0 || a.InjectedBusy == 0 || a.Calls == 0 {
		t.Errorf("stats %+v: want some of each outcome at 20%%/20%%", a)
	}
	if a != b {
		t.Errorf("same seed, same calls: %+v then %+v", a, b)
	}
}

// A call that takes a slot and fails (the object store answers 500) is
// Failed, not Succeeded; a second success of one request id is a paid
// duplicate (Succeeded - UniqueSucceeded).
func TestStatsOutcomes(t *testing.T) {
	st := newStore(t)
	checker, svc := newChecker(t)
	good := st.add("img", pngOf(t, picture(64, 64)))
	for _, c := range []struct{ id, url string }{
		{"a", st.URL + "/obj/broken"}, // 502
		{"a", good},                   // the retry succeeds
		{"b", good},
		{"b", good}, // paid twice
	} {
		_, _ = checker.Check(context.Background(), genpipe.CheckInput{RequestID: c.id, ImageURL: c.url})
	}
	s := svc.Stats()
	if s.Calls != 4 || s.UniqueRequests != 2 || s.Failed != 1 || s.Succeeded != 3 || s.UniqueSucceeded != 2 || s.Abandoned != 0 {
		t.Errorf("stats %+v, want 4 calls of 2 requests: 1 failed, 3 succeeded of which 1 paid twice", s)
	}
	want := []aisim.Duplicate{{RequestID: "b", Succeeded: 2}}
	if got := svc.Duplicates(); !slices.Equal(got, want) {
		t.Errorf("duplicates %+v, want %+v", got, want)
	}
}

// GET /duplicates is [] until a request is paid twice, then names it.
func TestDuplicatesRoute(t *testing.T) {
	_, base, url := checkWithImage(t)
	checker := aiclient.NewChecker(base)
	get := func() string {
		resp, err := http.Get(base + "/duplicates")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.TrimSpace(string(b))
	}
	if got := get(); got != "[]" {
		t.Errorf("GET /duplicates before any call: %s, want []", got)
	}
	for range 2 {
		if _, err := checker.Check(context.Background(), genpipe.CheckInput{RequestID: "twice", ImageURL: url}); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := get(), `[{"requestId":"twice","succeeded":2}]`; got != want {
		t.Errorf("GET /duplicates: %s, want %s", got, want)
	}
}
