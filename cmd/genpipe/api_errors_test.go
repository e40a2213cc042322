package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func newLoopbackServer(t *testing.T, h http.Handler) string {
	srv := httptest.NewServer(h) // binds 127.0.0.1
	t.Cleanup(srv.Close)
	return srv.URL
}

// Every bad input gets a 4xx problem+json whose detail says what is wrong.
func TestAPIBadInput(t *testing.T) {
	u := uploadImage(t, "image/png", pngImage(t, 80, 80))
	valid := func(change func(m map[string]any)) map[string]any {
		m := map[string]any{"objectId": u.ObjectID, "style": "corporate", "description": "A fine slide"}
		change(m)
		return m
	}
	cases := []struct {
		name, method, path string
		body               any
		status             int
		detail             string
	}{
		{"malformed JSON", "POST", "/v1/requests", []byte(`{"objectId": `), 400, "malformed JSON"},
		{"not an object", "POST", "/v1/requests", []byte(`[1,2]`), 400, "malformed JSON"},
		{"empty body", "POST", "/v1/requests", []byte(``), 400, "empty"},
		{"trailing data", "POST", "/v1/requests", []byte(`{"style":"x"} {}`), 400, "trailing"},
		{"unknown style", "POST", "/v1/requests", valid(func(m map[string]any) { m["style"] = "baroque" }), 400, `unknown style "baroque"`},
		{"missing style", "POST", "/v1/requests", valid(func(m map[string]any) { delete(m, "style") }), 400, "style is required"},
		{"empty description", "POST", "/v1/requests", valid(func(m map[string]any) { m["description"] = "   " }), 400, "description is required"},
		{"long description", "POST", "/v1/requests", valid(func(m map[string]any) { m["description"] = strings.Repeat("é", 2001) }), 400, "2001 characters"},
		{"missing objectId", "POST", "/v1/requests", valid(func(m map[string]any) { delete(m, "objectId") }), 400, "objectId is required"},
		{"malformed objectId", "POST", "/v1/requests", valid(func(m map[string]any) { m["objectId"] = "../etc/passwd" }), 400, "not an id"},
		{"never uploaded", "POST", "/v1/requests", valid(func(m map[string]any) { m["objectId"] = "0b7c7d5e-2f1c-4c2a-9b1e-7a4e7c1d2f3a" }), 422, "never uploaded"},
		{"bad webhook", "POST", "/v1/requests", valid(func(m map[string]any) { m["webhookUrl"] = "ftp://x" }), 400, "webhookUrl"},
		{"wrong field type", "POST", "/v1/requests", valid(func(m map[string]any) { m["description"] = 42 }), 400, "malformed JSON"},
		{"body over 1 MiB", "POST", "/v1/requests", valid(func(m map[string]any) { m["description"] = strings.Repeat("a", 1<<20+10) }), 413, "over"},
		{"long webhook URL", "POST", "/v1/requests", valid(func(m map[string]any) { m["webhookUrl"] = "https://example.com/" + strings.Repeat("p", 2048) }), 400, "over 2048"},
		{"control character", "POST", "/v1/requests", valid(func(m map[string]any) { m["title"] = "bell\a" }), 400, "control character"},
		{"upload over 10 MiB", "POST", "/v1/uploads", map[string]any{"contentType": "image/png", "contentLength": 10<<20 + 1}, 413, "the most is 10485760"},
		{"upload of a gif", "POST", "/v1/uploads", map[string]string{"contentType": "image/gif"}, 400, "contentType"},
		{"upload without type", "POST", "/v1/uploads", map[string]string{}, 400, "contentType"},
		{"upload without length", "POST", "/v1/uploads", map[string]string{"contentType": "image/png"}, 400, "contentLength is required"},
		{"format character", "POST", "/v1/requests", valid(func(m map[string]any) { m["title"] = "invoice\u202egpj.exe" }), 400, "U+202E"},
		{"invisible title", "POST", "/v1/requests", valid(func(m map[string]any) { m["title"] = "\u3164\u200b" }), 400, "title"},
		{"non-canonical path", "GET", "//v1/styles", nil, 404, "no such endpoint"},
		{"dot segments", "GET", "/v1/../v1/styles", nil, 404, "no such endpoint"},
		{"unknown request", "GET", "/v1/requests/0b7c7d5e-2f1c-4c2a-9b1e-7a4e7c1d2f3a", nil, 404, "not found"},
		{"non-uuid request", "GET", "/v1/requests/nope", nil, 404, "not found"},
		{"unknown request events", "GET", "/v1/requests/0b7c7d5e-2f1c-4c2a-9b1e-7a4e7c1d2f3a/events", nil, 404, "not found"},
		{"unknown endpoint", "GET", "/v1/nothing", nil, 404, "no such endpoint"},
		{"wrong method", "DELETE", "/v1/styles", nil, 405, "not allowed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var p problem
			resp := call(t, c.method, c.path, c.body, nil, &p)
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d (detail %q)", resp.StatusCode, c.status, p.Detail)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("Content-Type %q, want application/problem+json", ct)
			}
			if p.Status != c.status || !strings.Contains(p.Detail, c.detail) || p.Title == "" {
				t.Fatalf("problem = %+v, want status %d and detail containing %q", p, c.status, c.detail)
			}
		})
	}
}

// Headers have limits too.
func TestAPIBadHeaders(t *testing.T) {
	u := uploadImage(t, "image/png", pngImage(t, 80, 80))
	body := map[string]string{"objectId": u.ObjectID, "style": "corporate", "description": "A fine slide"}
	for _, key := range []string{strings.Repeat("k", 201), "naïve"} {
		var p problem
		resp := call(t, "POST", "/v1/requests", body, map[string]string{"Idempotency-Key": key}, &p)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(p.Detail, "Idempotency-Key") {
			t.Errorf("Idempotency-Key %.20q…: %s %+v; want 400 naming Idempotency-Key", key, resp.Status, p)
		}
	}
}

func TestUploadURLIsEnforced(t *testing.T) {
	var u upload
	body := pngImage(t, 64, 64)
	call(t, "POST", "/v1/uploads", map[string]any{"contentType": "image/png", "contentLength": len(body)}, nil, &u)
	if u.ExpiresAt.IsZero() || u.Headers["Content-Type"] != "image/png" {
		t.Fatalf("upload answer = %+v", u)
	}
	if status := put(t, u.UploadURL, "image/jpeg", body); status != http.StatusForbidden {
		t.Fatalf("PUT with another content type: %d, want 403", status)
	}
	tampered, _ := url.Parse(u.UploadURL)
	q := tampered.Query()
	sig := []byte(q.Get("X-Amz-Signature"))
	sig[0] ^= 1 // flip one hex digit
	q.Set("X-Amz-Signature", string(sig))
	tampered.RawQuery = q.Encode()
	if status := put(t, tampered.String(), "image/png", body); status != http.StatusForbidden {
		t.Fatalf("PUT with a tampered signature: %d, want 403", status)
	}
	other := strings.Replace(u.UploadURL, u.ObjectID, "0b7c7d5e-2f1c-4c2a-9b1e-7a4e7c1d2f3a", 1)
	if status := put(t, other, "image/png", body); status != http.StatusForbidden {
		t.Fatalf("PUT to another key with the same signature: %d, want 403", status)
	}
	if status := put(t, u.UploadURL, "image/png", body); status != http.StatusOK {
		t.Fatalf("PUT as signed: %d, want 200", status)
	}
}

func TestStylesAndHealth(t *testing.T) {
	var styles []map[string]any
	if resp := call(t, "GET", "/v1/styles", nil, nil, &styles); resp.StatusCode != 200 {
		t.Fatalf("GET /v1/styles: %s", resp.Status)
	}
	backgrounds := map[any]bool{}
	for _, s := range styles {
		if s["id"] == "" || s["name"] == "" {
			t.Fatalf("style without id or name: %v", s)
		}
		backgrounds[s["backgroundTop"]] = true
	}
	if len(styles) < 4 || len(backgrounds) < 4 {
		t.Fatalf("%d styles with %d distinct backgrounds, want at least 4 of each", len(styles), len(backgrounds))
	}
	var ready struct {
		Ready  bool              `json:"ready"`
		Checks map[string]string `json:"checks"`
	}
	call(t, "GET", "/readyz", nil, nil, &ready)
	for _, dep := range []string{"kafka", "objectstore", "database"} {
		if ready.Checks[dep] != "ok" {
			t.Fatalf("readyz checks = %v, want %s ok", ready.Checks, dep)
		}
	}
	resp := call(t, "GET", "/healthz", nil, nil, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("healthz: %s", resp.Status)
	}
	page := call(t, "GET", "/", nil, nil, nil)
	if page.StatusCode != 200 || !strings.HasPrefix(page.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %s %s", page.Status, page.Header.Get("Content-Type"))
	}
}

var _ = json.Marshal
var _ = bytes.NewReader
