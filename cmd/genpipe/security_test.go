package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// securedAPI is a `genpipe api` run in this process, with the given flags,
// against the system that TestMain's `up` runs (its broker, object store,
// database and workers).
type securedAPI struct {
	url  string
	logs *syncBuffer
}

func startAPI(t *testing.T, flags ...string) *securedAPI {
	t.Helper()
	secrets, _, err := loadSecrets(filepath.Dir(sys.SecretsFile))
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"-addr", "127.0.0.1:0", "-brokers", sys.Brokers[0], "-partitions", "4",
		"-s3-endpoint", sys.ObjectStore, "-s3-access-key", secrets.S3AccessKey, "-s3-secret-key", secrets.S3SecretKey,
		"-database-url", sys.Database, "-log-level", "warn"}, flags...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	stdout := &firstLine{line: make(chan string, 1)}
	logs := &syncBuffer{}
	go func() { done <- cmdAPI(ctx, args, stdout, logs) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("genpipe api %v: %v", flags, err)
		}
		if t.Failed() {
			t.Logf("genpipe api %v logs:\n%s", flags, logs.String())
		}
	})
	a := securedAPI{logs: logs}
	select {
	case line := <-stdout.line: // "genpipe api serving http://ADDR/"
		a.url = strings.TrimSuffix(line[strings.LastIndex(line, " ")+1:], "/\n")
	case err := <-done:
		done <- nil // for the cleanup, which waits for the command to end
		t.Fatalf("genpipe api %v: %v\n%s", flags, err, logs.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("genpipe api %v did not start within 30s", flags)
	}
	if err := waitReady(a.url, 30*time.Second); err != nil {
		t.Fatalf("genpipe api %v: %v", flags, err)
	}
	described.Watch(a.url) // API keys, tenants, rate limits: checked against the description too
	return &a
}

// firstLine hands on the first thing written to it.
type firstLine struct {
	once sync.Once
	line chan string
}

func (w *firstLine) Write(p []byte) (int, error) {
	w.once.Do(func() { w.line <- string(p) })
	return len(p), nil
}

// syncBuffer is a bytes.Buffer that the API's log handler and the test may
// use at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// do sends a JSON request with key (none if "") and decodes the answer into out.
func (a *securedAPI) do(t *testing.T, key, method, path string, body any, out any) *http.Response {
	t.Helper()
	var r io.Reader
	if body != nil {
		data, _ := json.Marshal(body)
		r = bytes.NewReader(data)
	}
	req, _ := http.NewRequest(method, a.url+path, r)
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %s: decode %q: %v", method, path, resp.Status, data, err)
		}
	}
	return resp
}

// TestAPIKeysEndToEnd runs `genpipe api -api-keys` and takes a request from
// upload to slide with one key, while another key cannot see it.
func TestAPIKeysEndToEnd(t *testing.T) {
	const keyA, keyB = "e2e-key-a-8c1b7f0e93d24", "e2e-key-b-1f4a9d2c60e85"
	a := startAPI(t, "-api-keys", keyA+","+keyB, "-upload-ttl", "2m", "-max-upload-bytes", "300000")

	var p problem
	if resp := a.do(t, "", "POST", "/v1/uploads", map[string]string{"contentType": "image/png"}, &p); resp.StatusCode != http.StatusUnauthorized ||
		!strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Fatalf("POST /v1/uploads without a key: %s %+v; want 401 with a Bearer challenge", resp.Status, p)
	}
	var u upload
	before := time.Now()
	img := pngImage(t, 200, 120)
	if resp := a.do(t, keyA, "POST", "/v1/uploads", map[string]any{"contentType": "image/png", "contentLength": len(img)}, &u); resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /v1/uploads with a key: %s", resp.Status)
	}
	checkUploadTTL(t, u, before, 2*time.Minute)
	if resp := a.do(t, keyA, "POST", "/v1/uploads", map[string]any{"contentType": "image/png", "contentLength": 300001}, &p); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("upload over -max-upload-bytes: %s %+v; want 413", resp.Status, p)
	}
	if status := put(t, u.UploadURL, "image/png", img); status != http.StatusOK {
		t.Fatalf("PUT upload: %d", status)
	}

	body := map[string]string{"objectId": u.ObjectID, "style": "minimal", "description": "Only my key sees this."}
	// An objectId is its key's: to another key it was never uploaded.
	if resp := a.do(t, keyB, "POST", "/v1/requests", body, &p); resp.StatusCode != http.StatusUnprocessableEntity ||
		!strings.Contains(p.Detail, "never uploaded") {
		t.Fatalf("key B submitting key A's objectId: %s %+v; want 422 never uploaded", resp.Status, p)
	}
	body["webhookUrl"] = newWebhookReceiver(t).url // on 127.0.0.1: refused by genpipe api's default
	if resp := a.do(t, keyA, "POST", "/v1/requests", body, &p); resp.StatusCode != http.StatusBadRequest ||
		!strings.Contains(p.Detail, "private networks") {
		t.Fatalf("loopback webhook on genpipe api: %s %+v; want 400 naming private networks", resp.Status, p)
	}
	delete(body, "webhookUrl")
	var acc accepted
	if resp := a.do(t, keyA, "POST", "/v1/requests", body, &acc); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /v1/requests with key A: %s", resp.Status)
	}

	for _, path := range []string{"/v1/requests/" + acc.ID, "/v1/requests/" + acc.ID + "/events"} {
		if resp := a.do(t, keyB, "GET", path, nil, &p); resp.StatusCode != http.StatusNotFound {
			t.Fatalf("GET %s with key B: %s; want 404", path, resp.Status)
		}
		if resp := a.do(t, "", "GET", path, nil, &p); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("GET %s without a key: %s; want 401", path, resp.Status)
		}
	}
	if resp := call(t, "GET", "/v1/requests/"+acc.ID, nil, nil, &p); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET through up's API, which runs without keys: %s; want 404", resp.Status)
	}
	if statuses := a.follow(t, keyA, acc.ID); strings.Join(statuses, ",") != "received,checking,generating,done" {
		t.Fatalf("SSE with key A: %v; want received to done", statuses)
	}
}

// checkUploadTTL checks that the upload URL expires ttl after it was made,
// in the answer and in the signature.
func checkUploadTTL(t *testing.T, u upload, before time.Time, ttl time.Duration) {
	t.Helper()
	if u.ExpiresAt.Before(before.Add(ttl-time.Second)) || u.ExpiresAt.After(time.Now().Add(ttl+time.Second)) {
		t.Errorf("upload expiresAt %s; want %s from now", u.ExpiresAt, ttl)
	}
	signed, err := url.Parse(u.UploadURL)
	if err != nil {
		t.Fatal(err)
	}
	if got := signed.Query().Get("X-Amz-Expires"); got != strconv.Itoa(int(ttl.Seconds())) {
		t.Errorf("upload URL X-Amz-Expires=%s; want %d", got, int(ttl.Seconds()))
	}
}

// follow reads the request's SSE stream to its end and returns the statuses.
func (a *securedAPI) follow(t *testing.T, key, id string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", a.url+"/v1/requests/"+id+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("SSE: %s", resp.Status)
	}
	var statuses []string
	scanner := bufio.NewScanner(resp.Body)
	for scanner.Scan() {
		if data, ok := strings.CutPrefix(scanner.Text(), "data: "); ok {
			var ev struct{ Status string }
			if err := json.Unmarshal([]byte(data), &ev); err != nil {
				t.Fatalf("event %q: %v", data, err)
			}
			statuses = append(statuses, ev.Status)
		}
	}
	return statuses
}

// TestAPIRateLimitFromEnvironment configures the rate limit by environment
// variables, as a deployment would.
func TestAPIRateLimitFromEnvironment(t *testing.T) {
	t.Setenv("GENPIPE_RATE_LIMIT", "0.2")
	t.Setenv("GENPIPE_RATE_BURST", "2")
	a := startAPI(t)
	for i := range 2 {
		if resp := a.do(t, "", "GET", "/v1/styles", nil, nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %d within the burst: %s", i+1, resp.Status)
		}
	}
	var p problem
	resp := a.do(t, "", "GET", "/v1/styles", nil, &p)
	if wait, err := strconv.Atoi(resp.Header.Get("Retry-After")); resp.StatusCode != http.StatusTooManyRequests ||
		p.Code != "too_many_requests" || err != nil || wait < 1 || wait > 5 {
		t.Fatalf("GET over the burst: %s %+v, Retry-After %q; want 429 too_many_requests within 5 s",
			resp.Status, p, resp.Header.Get("Retry-After"))
	}
}

// The API's flags and their environment variables, and the one default
// that differs between api and up.
func TestAPIFlags(t *testing.T) {
	for _, c := range []struct {
		command      string
		env          map[string]string
		args         []string
		allowPrivate bool
		keys         []string
		check        func(s apiSettings) error
	}{
		{command: "api", allowPrivate: false, check: func(s apiSettings) error {
			if s.MaxBacklog != 10000 || s.RateLimit != 0 || s.UploadTTL != 15*time.Minute || s.ResultTTL != time.Hour {
				return fmt.Errorf("defaults: %+v", s)
			}
			return nil
		}},
		{command: "up", allowPrivate: true},
		{command: "up", args: []string{"-allow-private-webhooks=false"}, allowPrivate: false},
		{command: "api", env: map[string]string{"GENPIPE_API_KEYS": " k1, ,k2 ", "GENPIPE_ALLOW_PRIVATE_WEBHOOKS": "true",
			"GENPIPE_MAX_BACKLOG": "0", "GENPIPE_UPLOAD_TTL": "90s", "GENPIPE_RESULT_TTL": "5m"},
			allowPrivate: true, keys: []string{"k1", "k2"}, check: func(s apiSettings) error {
				if s.MaxBacklog != 0 || s.UploadTTL != 90*time.Second || s.ResultTTL != 5*time.Minute {
					return fmt.Errorf("from the environment: %+v", s)
				}
				return nil
			}},
	} {
		t.Run(c.command+strings.Join(c.args, " "), func(t *testing.T) {
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			var help bytes.Buffer
			f := newFlags(c.command, &help)
			var settings *apiSettings
			switch c.command {
			case "api":
				var cfg apiConfig
				cfg.register(f)
				settings = &cfg.API
				c.args = append(c.args, s3Required...)
			case "up":
				var cfg upConfig
				cfg.register(f)
				settings = &cfg.API
			}
			if err := f.Parse(c.args); err != nil {
				t.Fatal(err)
			}
			if settings.AllowPrivateWebhooks != c.allowPrivate || strings.Join(splitList(settings.APIKeys), ",") != strings.Join(c.keys, ",") {
				t.Errorf("allow private webhooks %v, keys %q; want %v, %q", settings.AllowPrivateWebhooks, settings.APIKeys, c.allowPrivate, c.keys)
			}
			if c.check != nil {
				if err := c.check(*settings); err != nil {
					t.Error(err)
				}
			}
			f.PrintDefaults()
			for _, want := range []string{"-api-keys", "$GENPIPE_API_KEYS", "-allow-private-webhooks", "-max-backlog",
				"-rate-limit", "-rate-burst", "-upload-ttl", "-result-ttl", "-max-upload-bytes"} {
				if !strings.Contains(help.String(), want) {
					t.Errorf("genpipe %s -h does not mention %s", c.command, want)
				}
			}
			if c.command == "up" && !strings.Contains(help.String(), "up allows them") {
				t.Errorf("genpipe up -h does not say that up allows private webhooks:\n%s", help.String())
			}
		})
	}
}

// TestBrowserWithAPIKey drives the web page against `genpipe api
// -api-keys`: it asks for the key, keeps it for the tab, and makes a slide
// with it, the live status included (read with fetch: EventSource cannot
// send the key).
func TestBrowserWithAPIKey(t *testing.T) {
	ctx := browser(t)
	const key = "browser-key-5b0e2c7d91f3"
	a := startAPI(t, "-api-keys", key)
	imagePath := filepath.Join(t.TempDir(), "photo.png")
	if err := os.WriteFile(imagePath, pngImage(t, 300, 200), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(a.url+"/")); err != nil {
		t.Fatal(err)
	}
	// Without the key the styles do not load, and the page asks for it.
	asked, err := chromedp.Run(ctx, chromedp.Poll[bool](`!document.getElementById("key-form").hidden`,
		chromedp.WithPollingTimeout(10*time.Second)))
	if err != nil || !asked {
		t.Fatalf("the page did not ask for the key: %v", err)
	}
	err = chromedp.Do(ctx,
		chromedp.SendKeys(`#api-key`, key),
		chromedp.Click(`#key-form button`),
		chromedp.WaitReady(`#style option[value="neon"]`),
		chromedp.SetUploadFiles(`#image`, []string{imagePath}),
		chromedp.SetValue(`#style`, "neon"),
		chromedp.SendKeys(`#description`, "Made with an API key."),
		chromedp.Click(`#submit`),
	)
	if err != nil {
		t.Fatalf("give the key, fill in and submit the form: %v", err)
	}
	status, err := chromedp.Run(ctx, chromedp.Poll[string](
		`["done","rejected","failed"].includes(document.body.dataset.status) && document.body.dataset.status`,
		chromedp.WithPollingTimeout(60*time.Second), chromedp.WithPollingInterval(100*time.Millisecond)))
	if err != nil || status != "done" {
		message, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("message").textContent`))
		t.Fatalf("page status %q (%v), message %q; want done", status, err, message)
	}
	steps, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#steps li.done").length`))
	if err != nil || steps != 4 {
		t.Fatalf("%d status steps marked done (%v), want 4", steps, err)
	}
	stored, err := chromedp.Run(ctx, chromedp.Evaluate[string](`sessionStorage.getItem("genpipe-api-key")`))
	if err != nil || stored != key {
		t.Fatalf("sessionStorage holds %q (%v); want the key", stored, err)
	}
}
