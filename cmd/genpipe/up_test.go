package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"log/slog"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/genpipe/genpipe/internal/contract"
)

// The tests of this package run against one `up` in this process (the
// embedded object store allows one per process), with short AI latencies.
var sys upURLs

func TestMain(m *testing.M) {
	code := runWithUp(m)
	if err := described.Report(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = max(code, 1)
	}
	os.Exit(code)
}

// described checks every exchange of http.DefaultClient (call, http.Get,
// the client package's default) with sys.API against the OpenAPI
// description.
var described = contract.Install()

func runWithUp(m *testing.M) int {
	dir, err := os.MkdirTemp("", "genpipe-up-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	// Configured as a person would, with flags.
	var cfg upConfig
	f := newFlags("up", os.Stderr)
	cfg.register(f)
	if err := f.Parse([]string{"-addr", "127.0.0.1:0", "-data-dir", dir, "-partitions", "4", "-s3-addr", "127.0.0.1:0",
		"-check-latency", "50ms", "-generate-latency", "200ms", "-check-capacity", "8", "-generate-capacity", "8"}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	level := slog.LevelWarn
	if os.Getenv("GENPIPE_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan upURLs, 1)
	done := make(chan error, 1)
	go func() { done <- up(ctx, cfg, log, func(u upURLs) { started <- u }) }()
	select {
	case sys = <-started:
	case err := <-done:
		fmt.Fprintln(os.Stderr, "up failed:", err)
		cancel()
		return 1
	case <-time.After(60 * time.Second):
		fmt.Fprintln(os.Stderr, "up did not start within 60s")
		cancel()
		return 1
	}
	described.Watch(sys.API)
	if err := waitReady(sys.API, 30*time.Second); err != nil {
		fmt.Fprintln(os.Stderr, err)
		cancel()
		return 1
	}
	code := m.Run()
	if genpipeBinary.dir != "" {
		os.RemoveAll(genpipeBinary.dir)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			fmt.Fprintln(os.Stderr, "up stopped with:", err)
			code = max(code, 1)
		}
	case <-time.After(30 * time.Second):
		fmt.Fprintln(os.Stderr, "up did not stop within 30s of cancel")
		code = max(code, 1)
	}
	return code
}

func waitReady(api string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		resp, err := http.Get(api + "/readyz")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("readyz %d: %s", resp.StatusCode, body)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %s: %w", timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pngImage encodes a w×h PNG with a diagonal gradient.
func pngImage(t testing.TB, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x * 255 / w), uint8(y * 255 / h), 160, 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// call sends a JSON request to the API and decodes a JSON answer into out.
func call(t testing.TB, method, path string, body any, headers map[string]string, out any) *http.Response {
	t.Helper()
	var r io.Reader
	if body != nil {
		if raw, ok := body.([]byte); ok {
			r = bytes.NewReader(raw)
		} else {
			data, err := json.Marshal(body)
			if err != nil {
				t.Fatal(err)
			}
			r = bytes.NewReader(data)
		}
	}
	req, err := http.NewRequest(method, sys.API+path, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: decode %q: %v", method, path, data, err)
		}
	}
	return resp
}

type upload struct {
	ObjectID  string            `json:"objectId"`
	UploadURL string            `json:"uploadUrl"`
	Headers   map[string]string `json:"headers"`
	ExpiresAt time.Time         `json:"expiresAt"`
}

// uploadImage asks for an upload URL and PUTs body to it.
func uploadImage(t testing.TB, contentType string, body []byte) upload {
	t.Helper()
	var u upload
	if resp := call(t, "POST", "/v1/uploads", map[string]any{"contentType": contentType, "contentLength": len(body)}, nil, &u); resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /v1/uploads: %s", resp.Status)
	}
	if status := put(t, u.UploadURL, contentType, body); status != http.StatusOK {
		t.Fatalf("PUT upload: %d", status)
	}
	return u
}

func put(t testing.TB, url, contentType string, body []byte) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("If-None-Match", "*") // upload URLs write once
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

type accepted struct {
	ID      string `json:"id"`
	Status  string `json:"status"`
	Message string `json:"message"`
}

type requestView struct {
	ID          string `json:"id"`
	Status      string `json:"status"`
	Style       string `json:"style"`
	Description string `json:"description"`
	Error       string `json:"error"`
	Result      *struct {
		PNGURL  string `json:"pngUrl"`
		PDFURL  string `json:"pdfUrl"`
		PPTXURL string `json:"pptxUrl"`
	} `json:"result"`
	Webhook *struct {
		State     string `json:"state"`
		Attempts  int    `json:"attempts"`
		LastError string `json:"lastError"`
	} `json:"webhook"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// waitTerminal polls GET until the request reaches a terminal status.
func waitTerminal(t testing.TB, id string, timeout time.Duration) requestView {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var v requestView
		if resp := call(t, "GET", "/v1/requests/"+id, nil, nil, &v); resp.StatusCode != http.StatusOK {
			t.Fatalf("GET request %s: %s", id, resp.Status)
		}
		switch v.Status {
		case "done", "rejected", "failed":
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("request %s still %s after %s", id, v.Status, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func download(t testing.TB, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", url, resp.Status, data)
	}
	return data
}
