package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestFairSharesThroughAPI runs `genpipe up` as its own process with two
// tenants of weight 1, a Generative AI of 4 slots at 500 ms and one
// partition per topic (startTenantsUp), and goes through the real API with
// each tenant's key:
//
//   - noisy neighbor: acme submits a burst of 60; then batch submits three
//     requests, one after another;
//   - priority: then acme submits one request at high priority behind its
//     own backlog.
//
// First come, first served, every batch request would start generating
// after all of acme's burst, and the high one after its whole backlog.
// Fairly shared, each starts while most of the burst still waits. The test
// compares the order in which the requests started generating (each
// request's history, from its event stream), never how long anything
// took; the waits are logged.
func TestFairSharesThroughAPI(t *testing.T) {
	// Its own processes on ports of its own, waiting on them most of the
	// time: it runs beside the other long process tests.
	t.Parallel()
	const keyA, keyB, burst = "fair-key-acme-3b9d0c41e7a2", "fair-key-batch-5e1f7a20c6d8", 60
	s := newStandalone(t)
	s.startTenantsUp(keyA, keyB, 1, "500ms", "4")

	submitted := map[string]time.Time{}
	var mu sync.Mutex
	submit := func(key, priority, title string) string {
		id := s.submitAs(key, priority, title)
		mu.Lock()
		defer mu.Unlock()
		submitted[id] = time.Now()
		return id
	}
	acme := make([]string, burst)
	var wg sync.WaitGroup
	for i := range acme {
		wg.Go(func() { acme[i] = submit(keyA, "", fmt.Sprintf("acme %d", i)) })
	}
	wg.Wait()
	var batch []string
	for i := range 3 {
		batch = append(batch, submit(keyB, "", fmt.Sprintf("batch %d", i)))
	}
	high := submit(keyA, "high", "acme, urgent")

	started := map[string]time.Time{}
	for _, id := range slices.Concat(acme, batch, []string{high}) {
		key := keyA
		if slices.Contains(batch, id) {
			key = keyB
		}
		started[id] = s.generatingAt(key, id)
	}
	startedAfter := func(id string) int { // how many of acme's burst started after id
		n := 0
		for _, a := range acme {
			if started[a].After(started[id]) {
				n++
			}
		}
		return n
	}
	wait := func(ids ...string) []time.Duration {
		var d []time.Duration
		for _, id := range ids {
			d = append(d, started[id].Sub(submitted[id]).Round(time.Millisecond))
		}
		slices.Sort(d)
		return d
	}
	acmeWaits := wait(acme...)
	t.Logf("wait from 202 to generating: acme's burst p50 %s, max %s; batch %v; acme's high %v",
		acmeWaits[len(acmeWaits)/2], acmeWaits[len(acmeWaits)-1], wait(batch...), wait(high))
	for _, id := range batch {
		if n := startedAfter(id); n < burst/4 {
			t.Errorf("batch's request %s started generating before only %d of acme's burst of %d; want at least %d (first come, first served: 0)",
				id, n, burst, burst/4)
		}
	}
	if n := startedAfter(high); n < burst/4 {
		t.Errorf("acme's high request started generating before only %d of its normal burst of %d; want at least %d",
			n, burst, burst/4)
	}
}

// TestWeightedSharesThroughAPI runs `genpipe up` as its own process with
// tenants of weights 3 (acme) and 1 (batch) and a Generative AI of 2 slots
// at 300 ms, and has both submit 40 requests at once through the real API:
// of the requests that started generating while both tenants still had
// work waiting, about three in four are acme's (first come, first served:
// about one in two, in the order the submissions arrived).
func TestWeightedSharesThroughAPI(t *testing.T) {
	// Its own processes on ports of its own, waiting on them most of the
	// time: it runs beside the other long process tests.
	t.Parallel()
	const keyA, keyB, each = "weights-key-acme-1c7e9a3d5b20", "weights-key-batch-7d2f0b8e4a61", 40
	s := newStandalone(t)
	s.startTenantsUp(keyA, keyB, 3, "300ms", "2")

	ids := map[string]string{} // request id → its tenant's key
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 2 * each {
		key := []string{keyA, keyB}[i%2]
		wg.Go(func() {
			id := s.submitAs(key, "", fmt.Sprintf("request %d", i))
			mu.Lock()
			defer mu.Unlock()
			ids[id] = key
		})
	}
	wg.Wait()
	allSubmitted := time.Now()

	type start struct {
		at  time.Time
		key string
	}
	var starts []start
	for id, key := range ids {
		starts = append(starts, start{s.generatingAt(key, id), key})
	}
	slices.SortFunc(starts, func(a, b start) int { return a.at.Compare(b.at) })
	// The starts after every request was queued, while both still waited:
	// up to the first start of the tenant whose last request started
	// first.
	left := map[string]int{keyA: each, keyB: each}
	counted := map[string]int{}
	for _, st := range starts {
		left[st.key]--
		if st.at.Before(allSubmitted) {
			continue
		}
		counted[st.key]++
		if left[keyA] == 0 || left[keyB] == 0 {
			break
		}
	}
	total := counted[keyA] + counted[keyB]
	share := float64(counted[keyA]) / float64(total)
	t.Logf("while both waited: acme (weight 3) %d, batch (weight 1) %d of %d starts: acme's share %.2f",
		counted[keyA], counted[keyB], total, share)
	if total < 20 {
		t.Fatalf("only %d starts while both tenants waited; the test needs more (the AI too fast for the submissions?)", total)
	}
	if share < 0.65 || share > 0.85 {
		t.Errorf("acme's share of the starts while both waited is %.2f; want about 0.75 (weights 3:1)", share)
	}
}

// startTenantsUp starts `genpipe up` with the tenants acme (keyA, of
// acmeWeight, up to high) and batch (keyB, weight 1, up to normal), one
// partition per topic (so that first come, first served is one order, not
// one per partition), a fast Checking AI and a Generative AI of
// generateCapacity slots at generateLatency.
func (s *standalone) startTenantsUp(keyA, keyB string, acmeWeight int, generateLatency, generateCapacity string) {
	s.t.Helper()
	tenants := filepath.Join(s.dir, "tenants.yaml")
	writeTenants(s.t, tenants, keyA, keyB, acmeWeight, "normal")
	up := s.start("up", nil, s.upArgs("--partitions", "1", "--tenants", tenants, "--check-latency", "20ms", "--check-capacity", "16",
		"--generate-latency", generateLatency, "--generate-capacity", generateCapacity)...)
	s.waitReady(up)
}

// submitAs uploads a small image with key and asks for a slide of it at
// priority ("" for the default).
func (s *standalone) submitAs(key, priority, title string) string {
	s.t.Helper()
	objectID := s.uploadAs(key, pngImage(s.t, 96, 96))
	if objectID == "" {
		return ""
	}
	body := map[string]string{"objectId": objectID, "style": "minimal", "title": title, "description": "Whose turn is it?"}
	if priority != "" {
		body["priority"] = priority
	}
	var a accepted
	if resp := s.callAs(key, "POST", "/v1/requests", body, &a); resp.StatusCode != http.StatusAccepted {
		s.t.Errorf("POST /v1/requests: %s", resp.Status)
	}
	return a.ID
}

// generatingAt follows the request's event stream to its end and returns
// when it started generating. A request that never generated fails the
// test.
func (s *standalone) generatingAt(key, id string) time.Time {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.t.Context(), 2*time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.api+"/v1/requests/"+id+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("events of %s: %v", id, err)
	}
	defer resp.Body.Close()
	var at time.Time
	var statuses []string
	scanner := bufio.NewScanner(resp.Body)
	for scanner.Scan() {
		data, ok := strings.CutPrefix(scanner.Text(), "data: ")
		if !ok {
			continue
		}
		var ev struct {
			Status string    `json:"status"`
			At     time.Time `json:"at"`
		}
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			s.t.Fatalf("event %q: %v", data, err)
		}
		statuses = append(statuses, ev.Status)
		if ev.Status == "generating" {
			at = ev.At
		}
	}
	if at.IsZero() || statuses[len(statuses)-1] != "done" {
		s.t.Fatalf("request %s went %v; want it generating, then done", id, statuses)
	}
	return at
}
