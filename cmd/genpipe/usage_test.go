package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/internal/testutil"
)

// TestUsageAndBudgetsThroughUp runs `genpipe up` as its own process with
// two tenants: acme, with a budget of 3 generate calls a day, and batch,
// with none. Batch submits 2 requests and acme 3, all accepted; acme's 4th
// is refused with 429 budget_exceeded naming the budget, with Retry-After
// until the next UTC midnight. Once all are done, GET /v1/usage answers
// each tenant its own calls, and `genpipe usage -json` (reading the status
// database) agrees with the AI services' own /stats: calls and successes
// of each stage, to the call.
func TestUsageAndBudgetsThroughUp(t *testing.T) {
	const keyA, keyB = "usage-key-acme-4c1d9e7b2a35", "usage-key-batch-8f3a6c0d1e27"
	s := newStandalone(t)
	hash := func(key string) string {
		sum := sha256.Sum256([]byte(key))
		return hex.EncodeToString(sum[:])
	}
	tenantsFile := filepath.Join(s.dir, "tenants.yaml")
	text := fmt.Sprintf(`tenants:
  - name: acme
    keySha256: [%s]
    budgets:
      - {stage: generate, calls: 3}
  - name: batch
    keySha256: [%s]
`, hash(keyA), hash(keyB))
	if err := os.WriteFile(tenantsFile, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	up := s.start("up", nil, s.upArgs("--partitions", "2", "--tenants", tenantsFile,
		"--check-latency", "20ms", "--generate-latency", "200ms")...)
	s.waitReady(up)

	ids := map[string]string{} // request → key
	for i := range 2 {
		ids[s.submitAs(keyB, "", fmt.Sprintf("batch %d", i))] = keyB
	}
	for i := range 3 {
		ids[s.submitAs(keyA, "", fmt.Sprintf("acme %d", i))] = keyA
	}
	// The 4th would take acme past its budget: 3 calls reserved by its
	// accepted requests, whether or not they were made yet.
	objectID := s.uploadAs(keyA, pngImage(t, 96, 96))
	var problem struct {
		Status int    `json:"status"`
		Code   string `json:"code"`
		Detail string `json:"detail"`
	}
	resp := s.callAs(keyA, "POST", "/v1/requests", map[string]string{"objectId": objectID, "style": "minimal", "description": "one too many"}, &problem)
	untilMidnight := time.Until(genpipe.Day(time.Now()).Add(24 * time.Hour)).Seconds()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Content-Type") != "application/problem+json" ||
		problem.Code != genpipe.EBUDGET || !strings.Contains(problem.Detail, "acme's budget of 3 generate calls a day") ||
		!strings.Contains(problem.Detail, "resets at "+genpipe.Day(time.Now()).Add(24*time.Hour).Format(time.RFC3339)) {
		t.Errorf("acme's 4th submission: %s %s %+v; want 429 problem+json %s naming the budget and its reset",
			resp.Status, resp.Header.Get("Content-Type"), problem, genpipe.EBUDGET)
	}
	if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || math.Abs(float64(ra)-untilMidnight) > 60 {
		t.Errorf("Retry-After %q; want about %.0f s, until the next UTC midnight", resp.Header.Get("Retry-After"), untilMidnight)
	}
	for id, key := range ids {
		if st := s.waitTerminalAs(key, id, 2*time.Minute); st != "done" {
			t.Errorf("request %s ended %s; want done", id, st)
		}
	}

	for _, tc := range []struct {
		key, tenant string
		calls       int64
	}{{keyA, "acme", 3}, {keyB, "batch", 2}} {
		var u struct {
			Tenant string `json:"tenant"`
			From   string `json:"from"`
			To     string `json:"to"`
			Days   []struct {
				Day string `json:"day"`
			} `json:"days"`
			Totals map[string]struct {
				Calls     int64            `json:"calls"`
				AISeconds float64          `json:"aiSeconds"`
				Outcomes  map[string]int64 `json:"outcomes"`
			} `json:"totals"`
			Calls int64 `json:"calls"`
		}
		if resp := s.callAs(tc.key, "GET", "/v1/usage", nil, &u); resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /v1/usage as %s: %s", tc.tenant, resp.Status)
		}
		today := genpipe.Day(time.Now()).Format(time.DateOnly)
		gen, check := u.Totals["generate"], u.Totals["check"]
		if u.Tenant != tc.tenant || u.From != today || len(u.Days) != 1 || u.Days[0].Day != today ||
			gen.Calls != tc.calls || gen.Outcomes["succeeded"] != tc.calls || check.Calls != tc.calls || u.Calls != 2*tc.calls ||
			gen.AISeconds < 0.2*float64(tc.calls) {
			t.Errorf("GET /v1/usage as %s: %+v; want today's %d check and %d generate calls, succeeded, ≥ 0.2 AI-seconds each",
				tc.tenant, u, tc.calls, tc.calls)
		}
	}

	out, err := exec.Command(s.bin, "usage", "-json", "-database-url", "sqlite:"+filepath.Join(s.dir, "up", "genpipe.db")).CombinedOutput()
	if err != nil {
		t.Fatalf("genpipe usage: %v\n%s", err, out)
	}
	var report struct {
		Rows []struct {
			Tenant   string           `json:"tenant"`
			Stage    string           `json:"stage"`
			Calls    int64            `json:"calls"`
			Outcomes map[string]int64 `json:"outcomes"`
		} `json:"rows"`
		Totals map[string]struct {
			Calls int64 `json:"calls"`
		} `json:"totals"`
	}
	if err := json.Unmarshal(out, &report); err != nil {
		t.Fatalf("genpipe usage -json: %v\n%s", err, out)
	}
	for _, stage := range []string{"check", "generate"} {
		var ai struct{ Calls, Succeeded int64 }
		if err := getJSON("http://"+printedURL(t, up, map[string]string{"check": "Checking AI", "generate": "Generative AI"}[stage])+"/stats", &ai); err != nil {
			t.Fatal(err)
		}
		var succeeded int64
		for _, r := range report.Rows {
			if r.Stage == stage {
				succeeded += r.Outcomes["succeeded"]
			}
		}
		if got := report.Totals[stage].Calls; got != ai.Calls || got != 5 || succeeded != ai.Succeeded {
			t.Errorf("%s: genpipe usage says %d calls (%d succeeded); the AI counted %d (%d succeeded); want 5 each", stage, got, succeeded, ai.Calls, ai.Succeeded)
		}
	}
	table, err := exec.Command(s.bin, "usage", "-database-url", "sqlite:"+filepath.Join(s.dir, "up", "genpipe.db")).CombinedOutput()
	if err != nil || !strings.Contains(string(table), "acme") || !strings.Contains(string(table), "total") {
		t.Errorf("genpipe usage: %v\n%s; want a table with acme and totals", err, table)
	}
	t.Logf("genpipe usage:\n%s", table)

	m := testutil.Scrape(t, s.api+"/metrics")
	if m[`genpipe_budget_refused_total{stage="generate",tenant="acme",where="submit"}`] != 1 ||
		m[`genpipe_ai_calls_total{outcome="succeeded",stage="generate",tenant="acme"}`] != 3 ||
		m[`genpipe_ai_seconds_total{outcome="succeeded",stage="generate",tenant="acme"}`] < 0.6 {
		t.Errorf("metrics: budget refused %v, acme's generate calls %v and AI-seconds %v; want 1, 3 and ≥ 0.6",
			m[`genpipe_budget_refused_total{stage="generate",tenant="acme",where="submit"}`],
			m[`genpipe_ai_calls_total{outcome="succeeded",stage="generate",tenant="acme"}`],
			m[`genpipe_ai_seconds_total{outcome="succeeded",stage="generate",tenant="acme"}`])
	}

	for _, q := range []string{"?from=yesterday", "?from=2026-01-10&to=2026-01-01", "?from=2020-01-01&to=2026-01-01", "?to=" + strings.Repeat("9", 100)} {
		var p struct{ Code string }
		resp := s.callAs(keyA, "GET", "/v1/usage"+q, nil, &p)
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Content-Type") != "application/problem+json" || p.Code != genpipe.EINVALID {
			t.Errorf("GET /v1/usage%s: %s %s %+v; want 400 problem+json invalid", q, resp.Status, resp.Header.Get("Content-Type"), p)
		}
	}
}

// waitTerminalAs polls GET with key until the request reaches a terminal
// status, and returns it.
func (s *standalone) waitTerminalAs(key, id string, timeout time.Duration) string {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var v requestView
		if resp := s.callAs(key, "GET", "/v1/requests/"+id, nil, &v); resp.StatusCode != http.StatusOK {
			s.t.Fatalf("GET request %s: %s", id, resp.Status)
		}
		switch v.Status {
		case "done", "rejected", "failed", "canceled", "expired":
			return v.Status
		}
		s.checkAlive()
		if time.Now().After(deadline) {
			s.t.Fatalf("request %s still %s after %s", id, v.Status, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
