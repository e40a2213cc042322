package s3_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/s3"
)

// One embedded server per test binary (an embedgw limit), started in
// TestMain. Tests that restart it replace srv and srvDir, so no test runs
// in parallel.
var (
	srv     *s3.Server
	srvDir  string
	startWD string // the working directory before any server ran
)

const bucket = "genpipe-test"

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "genpipe-s3-test-")
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
	srv, err = s3.StartServer(context.Background(), srvDir)
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

// embedded is the running embedded server as a conformance target.
func embedded() target {
	access, secret := srv.Credentials()
	return target{endpoint: srv.Endpoint(), access: access, secret: secret}
}

// newStore returns a Store for bkt on the running server, its bucket ensured.
func newStore(t *testing.T, bkt string, opts ...s3.Option) *s3.Store {
	t.Helper()
	return embedded().newStore(t, bkt, opts...)
}

func do(t *testing.T, method, rawURL string, body []byte, header http.Header) (int, http.Header, []byte) {
	t.Helper()
	return embedded().do(t, method, rawURL, body, header)
}

func TestEmbeddedServerConformance(t *testing.T) {
	runConformance(t, embedded())
}

// Addressing: path style by default for custom endpoints, virtual-host
// style for AWS S3's, either when asked. Presigning needs no network, so no
// AWS endpoint is contacted.
func TestAddressingStyle(t *testing.T) {
	const aws, minio = "https://s3.eu-west-1.amazonaws.com", "https://minio.internal"
	pathStyle, virtualHost := s3.WithPathStyle(true), s3.WithPathStyle(false)
	for _, c := range []struct {
		endpoint, bucket string
		opt              s3.Option
		virtual          bool
	}{
		{"http://127.0.0.1:9000", "bkt", nil, false},
		{minio, "bkt", nil, false},
		{minio, "bkt", pathStyle, false},
		{minio, "bkt", virtualHost, true},
		{aws, "bkt", nil, true},
		{aws, "bkt.dots", nil, false}, // no wildcard certificate covers a bucket name with dots
		{aws, "bkt", pathStyle, false},
	} {
		opts := []s3.Option{s3.WithRegion("eu-west-1")}
		if c.opt != nil {
			opts = append(opts, c.opt)
		}
		st, err := s3.New(c.endpoint, c.bucket, "a", "s", opts...)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := st.PresignGet(ctxT(t), "k", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		virtual := strings.HasPrefix(u.Host, c.bucket+".") && u.Path == "/k"
		path := !strings.HasPrefix(u.Host, c.bucket+".") && u.Path == "/"+c.bucket+"/k"
		if virtual != c.virtual || path == c.virtual {
			t.Errorf("%s, bucket %s, option %v: URL %s, want virtual-host style %v", c.endpoint, c.bucket, c.opt != nil, raw, c.virtual)
		}
		if c.endpoint == aws && !strings.HasSuffix(u.Host, "eu-west-1.amazonaws.com") {
			t.Errorf("URL %s is not in the region eu-west-1", raw)
		}
	}
}

// A session token signs along: it is in every presigned URL.
func TestSessionToken(t *testing.T) {
	st, err := s3.New("https://s3.eu-west-1.amazonaws.com", "bkt", "ASIAEXAMPLE", "secret", s3.WithSessionToken("token/with+chars"))
	if err != nil {
		t.Fatal(err)
	}
	u, err := st.PresignPut(ctxT(t), "k", "image/png", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(u, "X-Amz-Security-Token=token%2Fwith%2Bchars") {
		t.Errorf("no session token in %s", u)
	}
	plain := newStore(t, bucket)
	if u, _ := plain.PresignGet(ctxT(t), "k", time.Minute); strings.Contains(u, "X-Amz-Security-Token") {
		t.Errorf("a session token without WithSessionToken: %s", u)
	}
}

func TestPresignEndpoint(t *testing.T) {
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.Endpoint(), "http://"))
	public := "http://localhost:" + port
	st := newStore(t, bucket, s3.WithPresignEndpoint(public))
	u, err := st.PresignPut(ctxT(t), "uploads/public", "image/png", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(u, public+"/") {
		t.Fatalf("URL %s does not start with %s", u, public)
	}
	if code, _, b := do(t, http.MethodPut, u, []byte("x"), ct("image/png")); code != http.StatusOK {
		t.Fatalf("PUT: %d %s", code, b)
	}
}

func TestHealth(t *testing.T) {
	if code, _, _ := do(t, http.MethodGet, srv.Endpoint()+s3.HealthPath, nil, nil); code != http.StatusOK {
		t.Fatalf("health: %d", code)
	}
}

func TestPingUnavailable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()
	st, err := s3.New(closed, bucket, "access", "secret")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	wantCode(t, st.Ping(ctxT(t)), genpipe.EUNAVAILABLE)
	t.Logf("Ping of a closed port failed after %v", time.Since(start))
	_, err = st.Stat(ctxT(t), "uploads/x")
	wantCode(t, err, genpipe.EUNAVAILABLE)
	// Presigning needs no network.
	if _, err := st.PresignGet(ctxT(t), "uploads/x", time.Minute); err != nil {
		t.Fatalf("PresignGet: %v", err)
	}
}

func TestNewInvalid(t *testing.T) {
	for _, endpoint := range []string{"127.0.0.1:9000", "ftp://host", "http://", "http://host/path"} {
		if _, err := s3.New(endpoint, bucket, "a", "b"); err == nil {
			t.Errorf("New(%q) succeeded", endpoint)
		}
	}
	if _, err := s3.New("http://127.0.0.1:9000", "", "a", "b"); err == nil {
		t.Error("New with an empty bucket succeeded")
	}
}

// restart closes the shared server and starts another in its place.
func restart(t *testing.T, dir string, opts ...s3.ServerOption) {
	t.Helper()
	if err := srv.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	var err error
	if srv, err = s3.StartServer(ctxT(t), dir, opts...); err != nil {
		// Leave a server for the tests that follow.
		srv, _ = s3.StartServer(context.Background(), srvDir)
		t.Fatalf("StartServer %s: %v", dir, err)
	}
}

func TestRestart(t *testing.T) {
	st := newStore(t, bucket)
	ctx := ctxT(t)
	if err := st.Put(ctx, "uploads/durable", "image/webp", []byte("still here")); err != nil {
		t.Fatal(err)
	}
	access, secret := srv.Credentials()
	if _, err := s3.StartServer(ctx, t.TempDir()); err == nil {
		t.Fatal("a second server started in the same process")
	}

	if err := srv.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := srv.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	var err error
	if srv, err = s3.StartServer(ctx, srvDir); err != nil {
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
	if srv, err = s3.StartServer(ctxT(t), srvDir); err != nil {
		t.Fatal(err)
	}
}

func TestExplicitAddrAndCredentials(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	restart(t, dir, s3.WithAddr(addr), s3.WithCredentials("genpipe-access", "genpipe-secret-0123456789"))
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
	restart(t, dir, s3.WithSidecarForTest())
	defer restart(t, srvDir)
	if got := srv.MetadataStore(); got != "sidecar" {
		t.Fatalf("metadata store %q", got)
	}
	st := newStore(t, bucket)
	ctx := ctxT(t)
	u, err := st.PresignPut(ctx, "uploads/side", "image/png", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if code, _, b := do(t, http.MethodPut, u, []byte("side"), ct("image/png")); code != http.StatusOK {
		t.Fatalf("PUT: %d %s", code, b)
	}
	if info, err := st.Stat(ctx, "uploads/side"); err != nil || info.ContentType != "image/png" {
		t.Fatalf("Stat = %+v, %v", info, err)
	}
	if code, h := embedded().preflight(t, u, "http://app.example.test", http.MethodPut); code != http.StatusOK || h.Get("Access-Control-Allow-Origin") == "" {
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

func TestStartServerAddrInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if srv, err = s3.StartServer(context.Background(), srvDir); err != nil {
			t.Fatalf("start after a failed start: %v", err)
		}
	}()
	start := time.Now()
	_, err = s3.StartServer(ctxT(t), t.TempDir(), s3.WithAddr(ln.Addr().String()))
	if err == nil {
		t.Fatal("StartServer on a busy address succeeded")
	}
	t.Logf("failed after %v: %v", time.Since(start), err)
	if wd, _ := os.Getwd(); wd != startWD {
		t.Errorf("working directory after a failed start %s, want %s", wd, startWD)
	}
}
