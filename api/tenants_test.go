package api_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/api"
	"github.com/genpipe/genpipe/tenants"
)

const keyC = "test-key-c-5a0e2d7c1b9f4e8d6c3a"

func sha(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// tenantsFile returns a tenants file's set: acme (keyA, weight 3, up to
// high) and batch (keyB, weight 1, up to low).
func tenantsFile(t *testing.T, acmeWeight int, acmeCeiling string) tenants.Set {
	t.Helper()
	text := `{"tenants": [
		{"name": "acme", "weight": ` + strconv.Itoa(acmeWeight) + `, "maxPriority": "` + acmeCeiling + `", "keySha256": ["` + sha(keyA) + `"]},
		{"name": "batch", "maxPriority": "low", "keySha256": ["` + sha(keyB) + `"]}
	]}`
	set, err := tenants.Parse("tenants.json", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// submitAs posts a request with priority (none if empty) as key.
func (f *fixture) submitAs(t *testing.T, key, priority string) (*http.Response, map[string]any) {
	t.Helper()
	body := map[string]string{"objectId": uploaded(t, key), "style": "minimal", "description": "whose is it?"}
	if priority != "" {
		body["priority"] = priority
	}
	return f.do(t, http.MethodPost, "/v1/requests", body, bearer(key))
}

// A request is its key's tenant's, at the priority it asks for up to the
// tenant's ceiling: the answer, GET, the stored request and the submitted
// event all say so, and the event carries the tenant's weight.
func TestTenantsAndPriorities(t *testing.T) {
	f := newFixture(t, api.WithTenants(tenantsFile(t, 3, "high")), api.WithAPIKeys(keyC))
	plain := tenants.KeyTenant(sha256.Sum256([]byte(keyC)))
	for _, c := range []struct {
		key, priority        string
		status               int
		tenant, wantPriority string
		weight               int
		detail               string
	}{
		{keyA, "high", http.StatusAccepted, "acme", "high", 3, ""},
		{keyA, "", http.StatusAccepted, "acme", "normal", 3, ""},
		{keyA, "low", http.StatusAccepted, "acme", "low", 3, ""},
		{keyB, "low", http.StatusAccepted, "batch", "low", 1, ""},
		{keyB, "", 403, "", "", 0, `priority "normal" is above what tenant batch may ask for: its maxPriority is "low"`},
		{keyB, "high", 403, "", "", 0, `tenant batch`},
		{keyC, "", http.StatusAccepted, plain, "normal", 1, ""},
		{keyC, "high", 403, "", "", 0, `tenant ` + plain + ` may ask for: its maxPriority is "normal"`},
		{keyA, "urgent", 400, "", "", 0, `priority must be "high", "normal" or "low", not "urgent"`},
		{keyA, "HIGH", 400, "", "", 0, `priority must be`},
	} {
		resp, out := f.submitAs(t, c.key, c.priority)
		what := "POST as " + c.key[:10] + " with priority " + c.priority
		if c.status != http.StatusAccepted {
			checkProblem(t, what, resp, out, c.status, c.detail)
			continue
		}
		if resp.StatusCode != http.StatusAccepted || out["tenant"] != c.tenant || out["priority"] != c.wantPriority {
			t.Fatalf("%s: %s %v; want 202 of tenant %s at %s", what, resp.Status, out, c.tenant, c.wantPriority)
		}
		id := out["id"].(string)
		if resp, view := f.do(t, http.MethodGet, "/v1/requests/"+id, nil, bearer(c.key)); resp.StatusCode != http.StatusOK ||
			view["tenant"] != c.tenant || view["priority"] != c.wantPriority {
			t.Errorf("%s: GET %s %v; want tenant %s, priority %s", what, resp.Status, view, c.tenant, c.wantPriority)
		}
		want := genpipe.Share{Tenant: c.tenant, Priority: genpipe.Priority(c.wantPriority), Weight: c.weight}
		if stored, err := f.store.Request(t.Context(), id); err != nil || stored.Share != want || stored.Owner != sha(c.key) {
			t.Errorf("%s: stored %+v, %v; want share %+v, owner the key's hash", what, stored, err, want)
		}
		found := false
		for _, e := range f.requestEvents(t) {
			if e.RequestID == id {
				found = true
				if e.Share != want {
					t.Errorf("%s: submitted event carries %+v; want %+v", what, e.Share, want)
				}
			}
		}
		if !found {
			t.Errorf("%s: no submitted event of %s", what, id)
		}
	}
}

// Without keys every request is the default tenant's, which may ask for
// any priority: an open API has nobody to tell apart.
func TestOpenAPIIsTheDefaultTenant(t *testing.T) {
	f := newFixture(t)
	body := map[string]string{"objectId": uploaded(t), "style": "minimal", "description": "open", "priority": "high"}
	resp, out := f.do(t, http.MethodPost, "/v1/requests", body, nil)
	if resp.StatusCode != http.StatusAccepted || out["tenant"] != genpipe.DefaultTenant || out["priority"] != "high" {
		t.Fatalf("POST without keys at high: %s %v; want 202 of the default tenant", resp.Status, out)
	}
	stored, err := f.store.Request(t.Context(), out["id"].(string))
	if want := (genpipe.Share{Tenant: genpipe.DefaultTenant, Priority: genpipe.PriorityHigh, Weight: 1}); err != nil || stored.Share != want {
		t.Errorf("stored %+v, %v; want share %+v", stored, err, want)
	}
}

// Every SSE event names the request's tenant and priority.
func TestStreamShowsShare(t *testing.T) {
	f := newFixture(t, api.WithTenants(tenantsFile(t, 3, "high")))
	resp, out := f.submitAs(t, keyA, "high")
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST: %s %v", resp.Status, out)
	}
	stream := f.openStream(t, out["id"].(string), keyA)
	defer stream.Body.Close()
	lines := bufio.NewScanner(stream.Body)
	for lines.Scan() {
		if data, ok := strings.CutPrefix(lines.Text(), "data: "); ok {
			if !strings.Contains(data, `"tenant":"acme","priority":"high"`) {
				t.Errorf("SSE event %s; want tenant acme, priority high", data)
			}
			return
		}
	}
	t.Fatalf("no SSE event: %v", lines.Err())
}

// SetTenants swaps tenants, weights, ceilings and keys at once; a set that
// clashes with -api-keys or has no key changes nothing.
func TestSetTenants(t *testing.T) {
	f := newFixture(t, api.WithTenants(tenantsFile(t, 3, "high")), api.WithAPIKeys(keyC))
	srv := f.api
	if resp, out := f.submitAs(t, keyA, "high"); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("acme at high: %s %v", resp.Status, out)
	}

	// acme now weighs 5 and may ask for normal at most; batch is gone.
	set, err := tenants.Parse("tenants.json", []byte(`{"tenants": [{"name": "acme", "weight": 5, "keySha256": ["`+sha(keyA)+`"]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.SetTenants(set); err != nil {
		t.Fatalf("SetTenants: %v", err)
	}
	resp, out := f.submitAs(t, keyA, "high")
	checkProblem(t, "acme at high after the reload", resp, out, http.StatusForbidden, `its maxPriority is "normal"`)
	resp, out = f.submitAs(t, keyA, "")
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("acme at normal after the reload: %s %v", resp.Status, out)
	}
	if stored, err := f.store.Request(t.Context(), out["id"].(string)); err != nil || stored.Weight != 5 {
		t.Errorf("stored after the reload %+v, %v; want weight 5", stored, err)
	}
	resp, out = f.do(t, http.MethodGet, "/v1/styles", nil, bearer(keyB))
	checkProblem(t, "batch's key after the reload", resp, out, http.StatusUnauthorized, "not valid")
	if resp, _ := f.do(t, http.MethodGet, "/v1/styles", nil, bearer(keyC)); resp.StatusCode != http.StatusOK {
		t.Errorf("the -api-keys key after the reload: %s; want it kept", resp.Status)
	}

	// Refused: keyC is -api-keys'; no key at all would open the API.
	clash, err := tenants.Parse("tenants.json", []byte(`{"tenants": [{"name": "c", "keySha256": ["`+sha(keyC)+`"]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.SetTenants(clash); err == nil || !strings.Contains(err.Error(), "-api-keys") {
		t.Errorf("SetTenants with a key of -api-keys: %v; want an error naming it", err)
	}
	if err := srv.SetTenants(tenants.Set{}); err != nil {
		t.Errorf("SetTenants of none, with -api-keys on: %v", err)
	}
	open := newFixture(t, api.WithTenants(tenantsFile(t, 1, "normal")))
	if err := open.api.SetTenants(tenants.Set{}); err == nil || !strings.Contains(err.Error(), "open") {
		t.Errorf("SetTenants without any key: %v; want an error saying the API would be open", err)
	}
	if resp, _ := f.do(t, http.MethodGet, "/v1/styles", nil, bearer(keyA)); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("acme's key after dropping the file's tenants: %s; want 401", resp.Status)
	}
}

// A key given both as -api-keys and in the tenants file is refused at start.
func TestTenantsClashWithAPIKeys(t *testing.T) {
	_, err := api.NewServer(nil, nil, nil, api.NewHub(), api.WithTenants(tenantsFile(t, 1, "normal")), api.WithAPIKeys(keyB))
	if err == nil || !strings.Contains(err.Error(), `tenant "batch"`) || !strings.Contains(err.Error(), "-api-keys") {
		t.Fatalf("NewServer with a key in both: %v; want an error naming the tenant and -api-keys", err)
	}
}

// A retry with the same Idempotency-Key and another priority is a 409, as
// for another job or webhook URL; with the same, it gets the first answer.
func TestIdempotencyKeyWithAnotherPriority(t *testing.T) {
	f := newFixture(t)
	body := map[string]string{"objectId": uploaded(t), "style": "minimal", "description": "once", "priority": "high"}
	headers := map[string]string{"Idempotency-Key": "prio-key"}
	resp, first := f.do(t, http.MethodPost, "/v1/requests", body, headers)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST: %s %v", resp.Status, first)
	}
	body["priority"] = "low"
	resp, out := f.do(t, http.MethodPost, "/v1/requests", body, headers)
	checkProblem(t, "retry at another priority", resp, out, http.StatusConflict, "Idempotency-Key")
	body["priority"] = "high"
	if resp, again := f.do(t, http.MethodPost, "/v1/requests", body, headers); resp.StatusCode != http.StatusAccepted ||
		again["id"] != first["id"] || again["priority"] != "high" {
		t.Fatalf("retry at the same priority: %s %v; want 202 with %v", resp.Status, again, first["id"])
	}
}
