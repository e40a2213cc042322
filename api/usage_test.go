package api_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/api"
	"github.com/genpipe/genpipe/internal/testenv"
	"github.com/genpipe/genpipe/tenants"
)

// usageTenants: acme (keyA) with a budget of 2 generate calls a day, batch
// (keyB) with none.
func usageTenants(t *testing.T) tenants.Set {
	t.Helper()
	text := `{"tenants": [
		{"name": "acme", "keySha256": ["` + sha(keyA) + `"], "budgets": [{"stage": "generate", "calls": 2}]},
		{"name": "batch", "keySha256": ["` + sha(keyB) + `"]}
	]}`
	set, err := tenants.Parse("tenants.json", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// paidCall records a finished call of tenant at stage in the ledger.
func (f *fixture) paidCall(t *testing.T, tenant string, stage genpipe.Stage, d time.Duration) {
	t.Helper()
	c, err := f.store.StartCall(t.Context(), genpipe.CallStart{Call: genpipe.Call{RequestID: uuid.NewString(), Stage: stage,
		Tenant: tenant, Attempt: 1, Owner: "w"}})
	if err == nil {
		err = f.store.FinishCall(t.Context(), c.ID, genpipe.CallSucceeded, d)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// GET /v1/usage answers the caller's tenant's calls only, by stage and
// day, with totals; bad ranges are 400 problems.
func TestUsageIsTheCallersTenants(t *testing.T) {
	f := newFixtureOn(t, func(s *testenv.StatusStore) []api.Option {
		return []api.Option{api.WithTenants(usageTenants(t)), api.WithLedger(s, nil)}
	})
	f.paidCall(t, "acme", genpipe.StageGenerate, 3*time.Second)
	f.paidCall(t, "acme", genpipe.StageCheck, 500*time.Millisecond)
	f.paidCall(t, "batch", genpipe.StageGenerate, time.Second)
	f.paidCall(t, "batch", genpipe.StageGenerate, time.Second)

	resp, u := f.do(t, http.MethodGet, "/v1/usage", nil, bearer(keyA))
	today := genpipe.Day(time.Now()).Format(time.DateOnly)
	totals, _ := u["totals"].(map[string]any)
	gen, _ := totals["generate"].(map[string]any)
	if resp.StatusCode != http.StatusOK || u["tenant"] != "acme" || u["from"] != today || u["calls"] != 2.0 || u["aiSeconds"] != 3.5 ||
		gen["calls"] != 1.0 || gen["aiSeconds"] != 3.0 {
		t.Errorf("GET /v1/usage as acme: %s %v; want acme's 2 calls today (1 generate of 3 s), 3.5 AI-seconds", resp.Status, u)
	}
	if _, u := f.do(t, http.MethodGet, "/v1/usage?from="+today+"&to="+time.Now().UTC().Format(time.RFC3339), nil, bearer(keyB)); u["tenant"] != "batch" || u["calls"] != 2.0 {
		t.Errorf("GET /v1/usage as batch, to an RFC 3339 time: %v; want batch's 2 calls", u)
	}
	yesterday := genpipe.Day(time.Now()).Add(-24 * time.Hour).Format(time.DateOnly)
	if _, u := f.do(t, http.MethodGet, "/v1/usage?from="+yesterday+"&to="+yesterday+"T12:00:00Z", nil, bearer(keyA)); u["calls"] != 0.0 {
		t.Errorf("GET /v1/usage of yesterday: %v; want no calls", u)
	}
	for _, q := range []string{"?from=tomorrow", "?to=2026-13-01", "?from=2026-02-01&to=2026-01-01", "?from=2020-01-01&to=2026-01-01",
		"?from=" + strings.Repeat("2", 200)} {
		resp, p := f.do(t, http.MethodGet, "/v1/usage"+q, nil, bearer(keyA))
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Content-Type") != "application/problem+json" || p["code"] != genpipe.EINVALID {
			t.Errorf("GET /v1/usage%s: %s %v; want a 400 problem", q, resp.Status, p)
		}
	}
	if resp, _ := f.do(t, http.MethodGet, "/v1/usage", nil, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /v1/usage without a key: %s; want 401", resp.Status)
	}
}

// A submission that would take its tenant past a budget — calls made
// today, calls its accepted requests still have to make, and its own — is
// a 429 naming the budget, with Retry-After until the next UTC midnight;
// other tenants are not held back.
func TestSubmissionOverBudget(t *testing.T) {
	var refused []string
	f := newFixtureOn(t, func(s *testenv.StatusStore) []api.Option {
		return []api.Option{api.WithTenants(usageTenants(t)), api.WithLedger(s, func(tenant string, stage genpipe.Stage) {
			refused = append(refused, tenant+"/"+string(stage))
		})}
	})
	f.paidCall(t, "acme", genpipe.StageGenerate, time.Second)
	if resp, out := f.submitAs(t, keyA, ""); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("acme's first submission (1 of 2 used): %s %v; want 202", resp.Status, out)
	}
	// 1 used + 1 reserved by the request just accepted + this one > 2.
	resp, p := f.submitAs(t, keyA, "")
	reset := genpipe.Day(time.Now()).Add(24 * time.Hour)
	if resp.StatusCode != http.StatusTooManyRequests || p["code"] != genpipe.EBUDGET ||
		!strings.Contains(p["detail"].(string), "tenant acme's budget of 2 generate calls a day") ||
		!strings.Contains(p["detail"].(string), reset.Format(time.RFC3339)) {
		t.Errorf("acme's second submission: %s %v; want 429 %s naming the budget and its reset", resp.Status, p, genpipe.EBUDGET)
	}
	if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < int(time.Until(reset).Seconds())-60 || ra > int(time.Until(reset).Seconds())+1 {
		t.Errorf("Retry-After %q; want the seconds until %s", resp.Header.Get("Retry-After"), reset)
	}
	if resp, out := f.submitAs(t, keyB, ""); resp.StatusCode != http.StatusAccepted {
		t.Errorf("batch's submission: %s %v; want 202 (no budget)", resp.Status, out)
	}
	if len(refused) != 1 || refused[0] != "acme/generate" {
		t.Errorf("refusals heard: %v; want [acme/generate]", refused)
	}
}
