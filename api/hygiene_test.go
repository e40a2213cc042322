package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/genpipe/genpipe/api"
)

// POST bodies are JSON, said so by Content-Type: a cross-site form or
// text/plain POST (a "simple" request, sent without a CORS preflight) is
// refused with 415 before anything else is read.
func TestPostBodiesMustBeJSON(t *testing.T) {
	f := newFixture(t)
	upload := `{"contentType":"image/png","contentLength":100}`
	for _, c := range []struct {
		contentType string
		status      int
	}{
		{"text/plain", http.StatusUnsupportedMediaType},
		{"text/plain;charset=UTF-8", http.StatusUnsupportedMediaType},
		{"application/x-www-form-urlencoded", http.StatusUnsupportedMediaType},
		{"multipart/form-data; boundary=x", http.StatusUnsupportedMediaType},
		{"", http.StatusUnsupportedMediaType},
		{"application/json; charset=latin1", http.StatusUnsupportedMediaType},
		{"application/json-patch+json", http.StatusUnsupportedMediaType},
		{"application/json;;", http.StatusUnsupportedMediaType},
		{"application/json", http.StatusCreated},
		{"application/json; charset=utf-8", http.StatusCreated},
		{"Application/JSON; Charset=\"UTF-8\"", http.StatusCreated},
	} {
		for _, path := range []string{"/v1/uploads", "/v1/requests"} {
			req, _ := http.NewRequest(http.MethodPost, f.server.URL+path, strings.NewReader(upload))
			if c.contentType != "" {
				req.Header.Set("Content-Type", c.contentType)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var out map[string]any
			_ = json.NewDecoder(resp.Body).Decode(&out)
			resp.Body.Close()
			switch {
			case c.status == http.StatusUnsupportedMediaType:
				checkProblem(t, fmt.Sprintf("POST %s as %q", path, c.contentType), resp, out, c.status, "application/json")
			case path == "/v1/uploads" && resp.StatusCode != c.status:
				t.Errorf("POST %s as %q: %s %v; want %d", path, c.contentType, resp.Status, out, c.status)
			case path == "/v1/requests" && resp.StatusCode == http.StatusUnsupportedMediaType:
				t.Errorf("POST %s as %q: %s %v; want it read (and refused for what it says)", path, c.contentType, resp.Status, out)
			}
		}
	}
}

// Unicode format characters (category Cf: bidirectional overrides,
// zero-width spaces, byte order marks, ...) are refused in the title and
// the description, each named; a text of invisible characters only is as
// empty as an empty one. The joiners that scripts and emoji need pass.
func TestFormatCharactersRefused(t *testing.T) {
	f := newFixture(t)
	objectID := uploaded(t)
	post := func(title, description string) (*http.Response, map[string]any) {
		return f.post(t, map[string]string{"objectId": objectID, "style": "minimal", "title": title, "description": description}, "")
	}
	for _, c := range []struct {
		name, title, description, detail string
	}{
		{"right-to-left override in the title", "invoice\u202Egpj.exe", "d", "title contains the invisible format character U+202E"},
		{"zero-width space in the description", "t", "pay\u200Bpal", "description contains the invisible format character U+200B"},
		{"byte order mark", "\uFEFFtitle", "d", "U+FEFF"},
		{"soft hyphen", "t", "in\u00ADvisible", "U+00AD"},
		{"tag character", "t", "flag\U000E0067", "U+E0067"},
		{"invisible title", "\u3164\u2800 \u115F", "d", "title has no visible character"},
		{"invisible description", "t", "\u3000\u00A0\u3164\uFE0F", "description is required"},
	} {
		resp, out := post(c.title, c.description)
		checkProblem(t, c.name, resp, out, http.StatusBadRequest, c.detail)
	}
	for _, text := range []string{
		"می\u200Cخواهم",                                     // Persian: the zero-width non-joiner is part of the spelling
		"family \U0001F468\u200D\U0001F469\u200D\U0001F467", // an emoji sequence joined by ZWJ
		"क्\u200Dष",                                         // Devanagari with a joiner
		"Grüße, 你好, مرحبا",
	} {
		if resp, out := post(text, text); resp.StatusCode != http.StatusAccepted {
			t.Errorf("text %q: %s %v; want 202", text, resp.Status, out)
		}
	}
}

// A path that is not in canonical form answers problem+json 404, like any
// path without a route, and never a redirect to follow.
func TestNonCanonicalPaths(t *testing.T) {
	f := newFixture(t, api.WithAPIKeys(keyA))
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, c := range []struct{ method, path string }{
		{"GET", "//v1/styles"},
		{"GET", "/v1/../v1/styles"},
		{"GET", "/v1/./styles"},
		{"GET", "/v1//styles"},
		{"GET", "/v1/styles/."},
		{"GET", "/v1/%2e%2e/v1/styles"},
		{"GET", "//"},
		{"GET", "/./"},
		{"GET", "//evil.example/"},
		{"POST", "//v1/requests"},
		{"POST", "/v1/uploads/../requests"},
		{"GET", "/v1/requests/x/../y"},
	} {
		req, err := http.NewRequest(c.method, f.server.URL+c.path, bytes.NewReader([]byte(`{}`)))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var out map[string]any
		_ = json.Unmarshal(body, &out)
		if resp.Header.Get("Location") != "" {
			t.Errorf("%s %s: redirects to %q", c.method, c.path, resp.Header.Get("Location"))
		}
		checkProblem(t, c.method+" "+c.path, resp, out, http.StatusNotFound, "no such endpoint")
	}
}
