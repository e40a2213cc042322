package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestSSEDelayThroughUp measures, through the whole system of the tests'
// `up`, how late each live status reaches an SSE client: from the time the
// event carries (stamped when its worker published it) to the client
// reading it, for requests whose stream opens right after the submission,
// several at once. Run:
//
//	GENPIPE_LOAD_TARGETS=1 go test -run TestSSEDelayThroughUp -count=1 -v ./cmd/genpipe/
//
// It only reports figures, so the suite leaves it out unless asked.
func TestSSEDelayThroughUp(t *testing.T) {
	if testing.Short() || os.Getenv("GENPIPE_LOAD_TARGETS") == "" {
		t.Skip("a measurement; set GENPIPE_LOAD_TARGETS=1 to run it")
	}
	const requests, parallel = 120, 6
	u := uploadImage(t, "image/png", pngImage(t, 64, 64))
	var (
		mu     sync.Mutex
		delays = map[string][]time.Duration{}
		wg     sync.WaitGroup
		sem    = make(chan struct{}, parallel)
	)
	for range requests {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			var a accepted
			call(t, "POST", "/v1/requests", map[string]string{"objectId": u.ObjectID, "style": "minimal", "description": "timed"}, nil, &a)
			resp, err := http.Get(sys.API + "/v1/requests/" + a.ID + "/events")
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				data, ok := strings.CutPrefix(sc.Text(), "data: ")
				if !ok {
					continue
				}
				late := time.Now()
				var ev struct {
					Status string    `json:"status"`
					At     time.Time `json:"at"`
				}
				if err := json.Unmarshal([]byte(data), &ev); err != nil {
					t.Error(err)
					return
				}
				if ev.Status != "received" { // stored before the stream opened
					mu.Lock()
					delays[ev.Status] = append(delays[ev.Status], late.Sub(ev.At))
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	var all []time.Duration
	for _, status := range []string{"checking", "generating", "done"} {
		d := delays[status]
		all = append(all, d...)
		t.Logf("%-10s %s", status, percentiles(d))
	}
	t.Logf("%-10s %s", "all", percentiles(all))
}

// percentiles sums up d: its count, p50, p99, max and how many took over
// 100 ms.
func percentiles(d []time.Duration) string {
	if len(d) == 0 {
		return "none"
	}
	slices.Sort(d)
	over := 0
	for _, x := range d {
		if x > 100*time.Millisecond {
			over++
		}
	}
	r := func(x time.Duration) time.Duration { return x.Round(100 * time.Microsecond) }
	return fmt.Sprintf("n=%d p50=%v p99=%v max=%v over-100ms=%d", len(d), r(d[len(d)/2]), r(d[len(d)*99/100]), r(d[len(d)-1]), over)
}
