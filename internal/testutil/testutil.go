// Package testutil holds the helpers several packages' tests share.
package testutil

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Logger logs warnings and errors to the test log, everything when the
// environment variable env is "debug". Writes after the test ended, from
// goroutines a client or a straggling handler leaves behind, are dropped
// rather than panicking the test binary.
func Logger(t testing.TB, env string) *slog.Logger {
	t.Helper()
	w := &testWriter{t: t}
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	level := slog.LevelWarn
	if os.Getenv(env) == "debug" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

type testWriter struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

// Must returns a function that gives v, or fails the test with err: for a
// constructor the test calls with valid inputs, as in
//
//	check := testutil.Must(worker.NewCheck(ai, objects, producer, claims, topics))(t)
//
// The test comes in a second call because Go passes a call's results on
// to another function only when they are all of its arguments.
func Must[T any](v T, err error) func(testing.TB) T {
	return func(t testing.TB) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// Eventually polls cond until it holds, and fails the test if it does not
// within limit.
func Eventually(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Start runs run in a goroutine, on a context derived from ctx, until the
// test ends or the returned stop is called. stop, which may be called more
// than once, cancels that context and waits up to 15 seconds for run to
// return; it fails the test if run returned an error, or did not return.
// name names run in those failures.
func Start(t testing.TB, ctx context.Context, name string, run func(context.Context) error) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("%s: %v", name, err)
				}
			case <-time.After(15 * time.Second):
				t.Errorf("%s did not return 15s after cancel", name)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// FreeAddr returns an address of 127.0.0.1 whose port was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return FreeAddrs(t, 1)[0]
}

// FreeAddrs returns n distinct addresses of 127.0.0.1 that were free a
// moment ago: each is held until all are picked, since the OS may hand a
// port just closed out again.
func FreeAddrs(t testing.TB, n int) []string {
	t.Helper()
	addrs := make([]string, n)
	for i := range addrs {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		addrs[i] = ln.Addr().String()
	}
	return addrs
}

// FreePort returns a port of 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	_, port, _ := net.SplitHostPort(FreeAddr(t))
	n, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Do sends a request with body (none if nil) and header, unsigned, through
// client (http.DefaultClient if nil), and returns the answer's status,
// header and body.
func Do(t testing.TB, ctx context.Context, client *http.Client, method, url string, body []byte, header http.Header) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body == nil {
		req.Body, req.ContentLength = nil, 0
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// Scrape GETs url, a Prometheus /metrics, and returns every sample by its
// series as the text format prints it: name{label="value",...}.
func Scrape(t testing.TB, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s %s\n%s", url, resp.Status, resp.Header.Get("Content-Type"), body)
	}
	samples := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("sample %q: %v", line, err)
		}
		samples[line[:i]] = v
	}
	return samples
}

// LogBuffer keeps what a logger writes, for a test to search, and copies
// each line to the test log until the test ends.
type LogBuffer struct {
	t    testing.TB
	mu   sync.Mutex
	buf  strings.Builder
	done bool
}

// CaptureLogs returns a logger of every level writing to a new LogBuffer.
func CaptureLogs(t testing.TB) (*slog.Logger, *LogBuffer) {
	b := &LogBuffer{t: t}
	t.Cleanup(func() { b.mu.Lock(); b.done = true; b.mu.Unlock() })
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if !b.done {
		b.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

// Contains reports whether the logs so far hold s.
func (b *LogBuffer) Contains(s string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Contains(b.buf.String(), s)
}

// startDir is the working directory the test binary started in (the tested
// package's directory), taken before TestMain can start an object store,
// which changes it.
var startDir, _ = os.Getwd()

// ForbidDeps fails the test if the package at importPath depends, directly
// or not, on a package whose import path starts with one of forbidden. It
// asks `go list -deps`, and skips the test where the go command is not on
// PATH (a test binary copied elsewhere).
func ForbidDeps(t testing.TB, importPath string, forbidden ...string) {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not on PATH")
	}
	cmd := exec.Command(goTool, "list", "-deps", importPath)
	cmd.Dir = startDir
	out, err := cmd.Output()
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			t.Fatalf("go list -deps %s: %v\n%s", importPath, err, exit.Stderr)
		}
		t.Fatalf("go list -deps %s: %v", importPath, err)
	}
	deps := strings.Fields(string(out))
	for _, dep := range deps {
		for _, f := range forbidden {
			if dep == f || strings.HasPrefix(dep, f+"/") {
				t.Errorf("%s depends on %s", importPath, dep)
			}
		}
	}
	t.Logf("%s depends on %d packages", importPath, len(deps))
}
