package objectstore_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/internal/testutil"
	"github.com/genpipe/genpipe/objectstore"
	"github.com/genpipe/genpipe/s3"
)

// One server per test binary (an embedgw limit), started in TestMain. Tests
// that restart it replace srv, so no test runs in parallel. The S3 client
// checks that it serves what genpipe needs: package s3's conformance checks
// run against it too.
var (
	srv     *objectstore.Server
	srvDir  string
	startWD string // the working directory before any server ran
)

const bucket = "genpipe-test"

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "genpipe-objectstore-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if startWD, err = os.Getwd(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	srvDir = dir
	srv, err = objectstore.Start(context.Background(), srvDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() {
		if srv != nil {
			srv.Close()
		}
	}()
	return m.Run()
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// newStore returns a client of the running server for bkt, signing with the
// server's credentials, its bucket ensured.
func newStore(t *testing.T, bkt string) *s3.Store {
	t.Helper()
	access, secret := srv.Credentials()
	st, err := s3.New(srv.Endpoint(), bkt, access, secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.EnsureBucket(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	return st
}

// do sends a request without any S3 signing and returns status, headers
// and body.
func do(t *testing.T, method, rawURL string, body []byte, header http.Header) (int, http.Header, []byte) {
	t.Helper()
	return testutil.Do(t, ctxT(t), nil, method, rawURL, body, header)
}

// preflight sends a browser's CORS preflight for a PUT or GET of rawURL.
func preflight(t *testing.T, rawURL, origin, method string) (int, http.Header) {
	t.Helper()
	code, h, _ := do(t, http.MethodOptions, rawURL, nil, http.Header{
		"Origin":                         {origin},
		"Access-Control-Request-Method":  {method},
		"Access-Control-Request-Headers": {"content-type"},
	})
	return code, h
}

func ct(contentType string) http.Header { return http.Header{"Content-Type": {contentType}} }

func TestHealth(t *testing.T) {
	if code, _, _ := do(t, http.MethodGet, srv.Endpoint()+objectstore.HealthPath, nil, nil); code != http.StatusOK {
		t.Fatalf("health: %d", code)
	}
}

// restart closes the shared server and starts another in its place.
func restart(t *testing.T, dir string, opts ...objectstore.Option) {
	t.Helper()
	if err := srv.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	var err error
	if srv, err = objectstore.Start(ctxT(t), dir, opts...); err != nil {
		// Leave a server for the tests that follow.
		srv, _ = objectstore.Start(context.Background(), srvDir)
		t.Fatalf("Start %s: %v", dir, err)
	}
}

func TestRestart(t *testing.T) {
	st := newStore(t, bucket)
	ctx := ctxT(t)
	if err := st.Put(ctx, "uploads/durable", "image/webp", []byte("still here")); err != nil {
		t.Fatal(err)
	}
	access, secret := srv.Credentials()
	if _, err := objectstore.Start(ctx, t.TempDir()); err == nil {
		t.Fatal("a second server started in the same process")
	}

	if err := srv.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := srv.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	var err error
	if srv, err = objectstore.Start(ctx, srvDir); err != nil {
		t.Fatal(err)
	}
	if a, s := srv.Credentials(); a != access || s != secret {
		t.Fatalf("credentials changed across restart")
	}
	st = newStore(t, bucket)
	got, err := st.Get(ctx, "uploads/durable")
	if err != nil || string(got) != "still here" {
		t.Fatalf("after restart Get = %q, %v", got, err)
	}
	if info, err := st.Stat(ctx, "uploads/durable"); err != nil || info.ContentType != "image/webp" {
		t.Fatalf("after restart Stat = %+v, %v", info, err)
	}
}

// The posix backend resolves paths against the working directory, so a
// running server changes it; Close restores it.
func TestWorkingDirectory(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(srvDir, "buckets"); wd != want {
		t.Errorf("working directory of a running server %s, want %s", wd, want)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.Getwd(); after != startWD {
		t.Errorf("working directory after Close %s, want %s", after, startWD)
	}
	if srv, err = objectstore.Start(ctxT(t), srvDir); err != nil {
		t.Fatal(err)
	}
}

func TestExplicitAddrAndCredentials(t *testing.T) {
	addr := testutil.FreeAddr(t)
	dir := t.TempDir()
	restart(t, dir, objectstore.WithAddr(addr), objectstore.WithCredentials("genpipe-access", "genpipe-secret-0123456789"))
	defer restart(t, srvDir)
	if srv.Endpoint() != "http://"+addr {
		t.Errorf("Endpoint %s, want http://%s", srv.Endpoint(), addr)
	}
	if a, s := srv.Credentials(); a != "genpipe-access" || s != "genpipe-secret-0123456789" {
		t.Errorf("Credentials %s %s", a, s)
	}
	if _, err := os.Stat(filepath.Join(dir, "credentials.json")); !os.IsNotExist(err) {
		t.Errorf("given credentials were written to disk: %v", err)
	}
	newStore(t, bucket) // signs with the given credentials
}

func TestSidecarMetadata(t *testing.T) {
	dir := t.TempDir()
	restart(t, dir, objectstore.WithSidecarForTest())
	defer restart(t, srvDir)
	if got := srv.MetadataStore(); got != "sidecar" {
		t.Fatalf("metadata store %q", got)
	}
	st := newStore(t, bucket)
	ctx := ctxT(t)
	u, err := st.PresignPut(ctx, "uploads/side", genpipe.PutHeaders{ContentType: "image/png"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if code, _, b := do(t, http.MethodPut, u, []byte("side"), ct("image/png")); code != http.StatusOK {
		t.Fatalf("PUT: %d %s", code, b)
	}
	if info, err := st.Stat(ctx, "uploads/side"); err != nil || info.ContentType != "image/png" {
		t.Fatalf("Stat = %+v, %v", info, err)
	}
	if code, h := preflight(t, u, "http://app.example.test", http.MethodPut); code != http.StatusOK || h.Get("Access-Control-Allow-Origin") == "" {
		t.Errorf("preflight with sidecar metadata: %d %v", code, h)
	}
	// Metadata stays out of the bucket, and a restart keeps using the sidecar.
	entries, err := os.ReadDir(filepath.Join(dir, "buckets", bucket))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != "uploads" && e.Name() != ".sgwtmp" { // versitygw's own temporary files
			t.Errorf("unexpected entry %s in the bucket directory", e.Name())
		}
	}
	restart(t, dir)
	if got := srv.MetadataStore(); got != "sidecar" {
		t.Fatalf("after restart metadata store %q", got)
	}
	st = newStore(t, bucket)
	if info, err := st.Stat(ctx, "uploads/side"); err != nil || info.ContentType != "image/png" {
		t.Fatalf("after restart Stat = %+v, %v", info, err)
	}
}

// Start on a busy address fails, even when what holds the address answers
// every path, the health path among them, with 200 (an object store of an
// earlier run still stopping).
func TestStartAddrInUse(t *testing.T) {
	t.Run("silent", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		startOnBusyAddr(t, ln.Addr().String())
	})
	t.Run("answering", func(t *testing.T) {
		other := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		defer other.Close()
		startOnBusyAddr(t, other.Listener.Addr().String())
	})
}

func startOnBusyAddr(t *testing.T, addr string) {
	t.Helper()
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		var err error
		if srv, err = objectstore.Start(context.Background(), srvDir); err != nil {
			t.Fatalf("start after a failed start: %v", err)
		}
	}()
	start := time.Now()
	_, err := objectstore.Start(ctxT(t), t.TempDir(), objectstore.WithAddr(addr))
	if err == nil {
		t.Fatal("Start on a busy address succeeded")
	}
	t.Logf("failed after %v: %v", time.Since(start), err)
	if wd, _ := os.Getwd(); wd != startWD {
		t.Errorf("working directory after a failed start %s, want %s", wd, startWD)
	}
}
