package api_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/genpipe/genpipe/api"
)

// get fetches path from the fixture's server and returns the answer and
// its body.
func (f *fixture) get(t *testing.T, path string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(f.server.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

// The page is served at / and, the same, at each request's address; it
// carries the server's own limits, so what the page checks before an
// upload is what the API enforces.
func TestPagePerRequestWithTheServersLimits(t *testing.T) {
	f := newFixture(t, api.WithMaxUploadSize(3<<20))
	resp, home := f.get(t, "/")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	for _, want := range []string{`data-max-upload-bytes="3145728"`, `data-min-image-side="64"`, `data-max-image-side="8000"`,
		`data-max-description="2000"`, `data-max-title="200"`, `data-content-types="image/jpeg image/png"`,
		`accept="image/jpeg,image/png"`, `rel="icon"`, `aria-live="polite"`} {
		if !strings.Contains(home, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	resp, page := f.get(t, "/requests/0a6b8c1e-2f3d-4e5a-8b7c-9d0e1f2a3b4c")
	if resp.StatusCode != http.StatusOK || page != home {
		t.Errorf("GET /requests/{id}: %s; want 200 and the page", resp.Status)
	}
	for path, contentType := range map[string]string{"/assets/page.js": "text/javascript", "/assets/page.css": "text/css",
		"/assets/favicon.svg": "image/svg+xml", "/favicon.ico": "image/svg+xml"} {
		resp, body := f.get(t, path)
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), contentType) || body == "" {
			t.Errorf("GET %s: %s %s; want 200 %s", path, resp.Status, resp.Header.Get("Content-Type"), contentType)
		}
	}
	for _, path := range []string{"/requests/", "/requests/a/b", "/assets/", "/assets/nope.js"} {
		if resp, _ := f.get(t, path); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %s; want 404", path, resp.Status)
		}
	}
}
