package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/internal/testutil"
	"github.com/genpipe/genpipe/sqlstore"
)

// writeTenants writes a tenants file: acme (keyA) of weight acmeWeight, up
// to high, and batch (keyB), up to batchCeiling.
func writeTenants(t *testing.T, path string, keyA, keyB string, acmeWeight int, batchCeiling string) {
	t.Helper()
	hash := func(key string) string {
		sum := sha256.Sum256([]byte(key))
		return hex.EncodeToString(sum[:])
	}
	text := fmt.Sprintf(`# genpipe tenants
tenants:
  - name: acme
    weight: %d
    maxPriority: high
    keySha256: [%s]
  - name: batch
    maxPriority: %s
    keySha256:
      - %s
`, acmeWeight, hash(keyA), batchCeiling, hash(keyB))
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// submitAs uploads an image as key and submits a request from it at
// priority ("" for none).
func (a *securedAPI) submitAs(t *testing.T, key, priority string, out any) *http.Response {
	t.Helper()
	img := pngImage(t, 120, 90)
	var u upload
	if resp := a.do(t, key, "POST", "/v1/uploads", map[string]any{"contentType": "image/png", "contentLength": len(img)}, &u); resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /v1/uploads: %s", resp.Status)
	}
	if status := put(t, u.UploadURL, "image/png", img); status != http.StatusOK {
		t.Fatalf("PUT upload: %d", status)
	}
	body := map[string]string{"objectId": u.ObjectID, "style": "minimal", "description": "whose slide is it?"}
	if priority != "" {
		body["priority"] = priority
	}
	return a.do(t, key, "POST", "/v1/requests", body, out)
}

// TestTenantsFileAndReload runs `genpipe api -tenants FILE` with two
// tenants' keys: a request is its key's tenant's at the priority it asks
// for, up to the tenant's ceiling (403 above); SIGHUP puts a changed file
// in force (a new weight, a higher ceiling) and keeps the tenants in force
// when the file turns bad.
func TestTenantsFileAndReload(t *testing.T) {
	const keyA, keyB = "tenants-key-a-4f0c2b7e19d3", "tenants-key-b-8a1d6e3f20c7"
	path := filepath.Join(t.TempDir(), "tenants.yaml")
	writeTenants(t, path, keyA, keyB, 3, "low")
	a := startAPI(t, "-tenants", path, "-log-level", "info")

	var acc struct {
		accepted
		Tenant   string `json:"tenant"`
		Priority string `json:"priority"`
	}
	if resp := a.submitAs(t, keyA, "high", &acc); resp.StatusCode != http.StatusAccepted || acc.Tenant != "acme" || acc.Priority != "high" {
		t.Fatalf("acme at high: %s %+v; want 202 of acme at high", resp.Status, acc)
	}
	var view struct {
		Tenant   string `json:"tenant"`
		Priority string `json:"priority"`
	}
	if resp := a.do(t, keyA, "GET", "/v1/requests/"+acc.ID, nil, &view); resp.StatusCode != http.StatusOK || view.Tenant != "acme" || view.Priority != "high" {
		t.Fatalf("GET acme's request: %s %+v; want tenant acme, priority high", resp.Status, view)
	}
	store, err := sqlstore.Open(t.Context(), sys.Database)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	wantShare := func(id string, want genpipe.Share) {
		t.Helper()
		stored, err := store.Request(t.Context(), id)
		if err != nil || stored.Share != want {
			t.Fatalf("stored request %s: %+v, %v; want share %+v", id, stored, err, want)
		}
	}
	wantShare(acc.ID, genpipe.Share{Tenant: "acme", Priority: genpipe.PriorityHigh, Weight: 3})

	var p problem
	if resp := a.submitAs(t, keyB, "", &p); resp.StatusCode != http.StatusForbidden || p.Code != genpipe.EFORBIDDEN ||
		!strings.Contains(p.Detail, `tenant batch`) || !strings.Contains(p.Detail, `maxPriority is "low"`) {
		t.Fatalf("batch at normal: %s %+v; want 403 naming batch's ceiling, low", resp.Status, p)
	}

	// batch may now ask for normal, acme weighs 5.
	writeTenants(t, path, keyA, keyB, 5, "normal")
	hangup(t)
	testutil.Eventually(t, 10*time.Second, "the reload's log", func() bool {
		return strings.Contains(a.logs.String(), "tenant acme: weight 3 → 5; tenant batch: maxPriority low → normal")
	})
	if resp := a.submitAs(t, keyB, "", &acc); resp.StatusCode != http.StatusAccepted || acc.Tenant != "batch" || acc.Priority != "normal" {
		t.Fatalf("batch at normal after the reload: %s %+v; want 202", resp.Status, acc)
	}
	if resp := a.submitAs(t, keyA, "low", &acc); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("acme after the reload: %s", resp.Status)
	}
	wantShare(acc.ID, genpipe.Share{Tenant: "acme", Priority: genpipe.PriorityLow, Weight: 5})

	// A bad file changes nothing.
	if err := os.WriteFile(path, []byte("tenants:\n  - name: acme\n    weight: 0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hangup(t)
	testutil.Eventually(t, 10*time.Second, "the failed reload's log", func() bool {
		return strings.Contains(a.logs.String(), "tenants file not reloaded: the tenants in force stay")
	})
	if !strings.Contains(a.logs.String(), "weight 0: want 1 to 1000") {
		t.Errorf("the failed reload's log does not say why:\n%s", a.logs.String())
	}
	if resp := a.submitAs(t, keyB, "normal", &acc); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("batch at normal after a bad reload: %s; want the tenants in force kept", resp.Status)
	}
}

// hangup sends this process SIGHUP, as an operator would to genpipe.
func hangup(t *testing.T) {
	t.Helper()
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
}

// A tenants file that is not valid, or that shares a key with -api-keys,
// stops the command before it starts, naming the file and the tenant.
func TestTenantsFileRefusedAtStart(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tenants.yaml")
	writeTenants(t, path, "start-key-a-0123456789", "start-key-b-0123456789", 1, "urgent")
	_, err := parse(&apiConfig{}, "api", []string{"-tenants", path}, &syncBuffer{})
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), `tenant "batch" (tenants[1]): maxPriority "urgent"`) {
		t.Errorf("api -tenants with a bad ceiling: %v; want an error naming the file, the tenant and the field", err)
	}
	writeTenants(t, path, "start-key-a-0123456789", "start-key-b-0123456789", 1, "low")
	_, err = parse(&apiConfig{}, "api", []string{"-tenants", path, "-api-keys", "other-key,start-key-b-0123456789"}, &syncBuffer{})
	if err == nil || !strings.Contains(err.Error(), "-api-keys") || !strings.Contains(err.Error(), `"batch"`) {
		t.Errorf("api -tenants with a key of -api-keys: %v; want an error naming both", err)
	}
	if _, err := parse(&upConfig{}, "up", []string{"-tenants", path}, &syncBuffer{}); err != nil {
		t.Errorf("up -tenants: %v; want up to take the API's flags", err)
	}
}
