package aisim_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/aiclient"
	"github.com/genpipe/genpipe/aisim"
)

// GET /calls lists each call that took a slot with when it started and
// ended and how, for all requests or one.
func TestCallsListed(t *testing.T) {
	st := newStore(t)
	svc := service(t, "check", aisim.WithLatency(20*time.Millisecond))
	url := serve(t, svc)
	checker := aiclient.NewChecker(url)
	before := time.Now()
	for _, id := range []string{"r-1", "r-2"} {
		if _, err := checker.Check(context.Background(), genpipe.CheckInput{RequestID: id, ImageURL: st.add(id, pngOf(t, picture(100, 80)))}); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.Get(url + "/calls?request=r-2")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var calls []aisim.Call
	if err := json.NewDecoder(resp.Body).Decode(&calls); err != nil {
		t.Fatal(err)
	}
	if len(calls) != 1 {
		t.Fatalf("GET /calls?request=r-2 = %+v; want its one call", calls)
	}
	c := calls[0]
	if c.RequestID != "r-2" || c.Outcome != "succeeded" || c.Stage != "check" || c.Seq != 2 || c.Start.Before(before) ||
		c.End.Sub(c.Start) < 20*time.Millisecond || c.Latency < 0.02 {
		t.Errorf("call %+v; want r-2's second call, succeeded, held at least its 20ms latency", c)
	}
	if all := svc.Calls(""); len(all) != 2 || all[0].RequestID != "r-1" {
		t.Errorf("Calls(\"\") = %+v; want both, in order", all)
	}
	if running := svc.Running(); len(running) != 0 {
		t.Errorf("Running() after the calls ended = %+v; want none", running)
	}
}
