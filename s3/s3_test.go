package s3_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
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

// newStore returns a Store for bkt on the running server, its bucket ensured.
func newStore(t *testing.T, bkt string, opts ...s3.Option) *s3.Store {
	t.Helper()
	access, secret := srv.Credentials()
	st, err := s3.New(srv.Endpoint(), bkt, access, secret, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.EnsureBucket(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	return st
}

// do sends a request without any S3 signing and returns status and body.
func do(t *testing.T, method, rawURL string, body []byte, header http.Header) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctxT(t), method, rawURL, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body == nil {
		req.Body, req.ContentLength = nil, 0
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
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

func ct(contentType string) http.Header { return http.Header{"Content-Type": {contentType}} }

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := genpipe.ErrorCode(err); got != code {
		t.Fatalf("error code %q, want %q (err: %v)", got, code, err)
	}
}

func TestEnsureBucketTwice(t *testing.T) {
	st := newStore(t, "ensure-twice")
	if err := st.EnsureBucket(ctxT(t)); err != nil {
		t.Fatalf("second EnsureBucket: %v", err)
	}
	if err := st.Ping(ctxT(t)); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func TestPutGetStat(t *testing.T) {
	st := newStore(t, bucket)
	ctx := ctxT(t)
	for _, key := range []string{"uploads/plain", "slides/ä b+c/slide.png"} {
		body := []byte("hello " + key)
		if err := st.Put(ctx, key, "image/png", body); err != nil {
			t.Fatalf("Put %s: %v", key, err)
		}
		got, err := st.Get(ctx, key)
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("Get %s = %q, %v; want %q", key, got, err, body)
		}
		info, err := st.Stat(ctx, key)
		if err != nil {
			t.Fatalf("Stat %s: %v", key, err)
		}
		want := genpipe.ObjectInfo{Key: key, Size: int64(len(body)), ContentType: "image/png"}
		if info != want {
			t.Fatalf("Stat %s = %+v, want %+v", key, info, want)
		}
	}
}

func TestMissingObject(t *testing.T) {
	st := newStore(t, bucket)
	_, err := st.Stat(ctxT(t), "uploads/never")
	wantCode(t, err, genpipe.ENOTFOUND)
	_, err = st.Get(ctxT(t), "uploads/never")
	wantCode(t, err, genpipe.ENOTFOUND)
}

func TestPresignPut(t *testing.T) {
	st := newStore(t, bucket)
	ctx := ctxT(t)
	key := fmt.Sprintf("uploads/presigned put %d.png", time.Now().UnixNano()) // new on each -count
	u, err := st.PresignPut(ctx, key, "image/png", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(u, "X-Amz-SignedHeaders=content-type%3Bhost") {
		t.Errorf("content-type is not a signed header: %s", u)
	}
	body := []byte("\x89PNG not really")

	for _, h := range []http.Header{ct("image/jpeg"), ct("image/png; charset=x"), nil} {
		if code, _, b := do(t, http.MethodPut, u, body, h); code != http.StatusForbidden {
			t.Errorf("PUT with header %v: %d %s, want 403", h, code, b)
		}
	}
	if _, err := st.Stat(ctx, key); genpipe.ErrorCode(err) != genpipe.ENOTFOUND {
		t.Fatalf("refused PUTs stored something: %v", err)
	}

	if code, _, b := do(t, http.MethodPut, u, body, ct("image/png")); code != http.StatusOK {
		t.Fatalf("PUT: %d %s, want 200", code, b)
	}
	got, err := st.Get(ctx, key)
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("Get = %q, %v; want %q", got, err, body)
	}
	info, err := st.Stat(ctx, key)
	if err != nil || info.ContentType != "image/png" || info.Size != int64(len(body)) {
		t.Fatalf("Stat = %+v, %v", info, err)
	}

	_, err = st.PresignPut(ctx, key, "", time.Minute)
	wantCode(t, err, genpipe.EINVALID)
}

// tamper returns variants of a presigned URL that must all be refused, with
// the status of the refusal: 403, or 400 (like AWS) when the signature is
// missing altogether.
func tamper(t *testing.T, rawURL string) map[string]tampered {
	t.Helper()
	out := map[string]tampered{}
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	sig := []byte(q.Get("X-Amz-Signature"))
	if sig[0] == 'a' {
		sig[0] = 'b'
	} else {
		sig[0] = 'a'
	}
	q.Set("X-Amz-Signature", string(sig))
	v := *u
	v.RawQuery = q.Encode()
	out["signature"] = tampered{v.String(), http.StatusForbidden}

	v = *u
	v.Path += "x"
	v.RawPath = ""
	out["key"] = tampered{v.String(), http.StatusForbidden}

	q = u.Query()
	q.Set("X-Amz-Expires", "604800")
	v = *u
	v.RawQuery = q.Encode()
	out["expires"] = tampered{v.String(), http.StatusForbidden}

	q = u.Query()
	q.Del("X-Amz-Signature")
	v = *u
	v.RawQuery = q.Encode()
	out["no signature"] = tampered{v.String(), http.StatusBadRequest}
	return out
}

type tampered struct {
	url  string
	want int
}

func TestPresignPutTampered(t *testing.T) {
	st := newStore(t, bucket)
	ctx := ctxT(t)
	u, err := st.PresignPut(ctx, "uploads/tampered", "image/png", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for name, bad := range tamper(t, u) {
		if code, _, b := do(t, http.MethodPut, bad.url, []byte("x"), ct("image/png")); code != bad.want {
			t.Errorf("tampered %s: %d %s, want %d", name, code, b, bad.want)
		}
	}
	for _, key := range []string{"uploads/tampered", "uploads/tamperedx"} {
		if _, err := st.Stat(ctx, key); genpipe.ErrorCode(err) != genpipe.ENOTFOUND {
			t.Errorf("a tampered PUT stored %s: %v", key, err)
		}
	}
	// A PUT URL does not read.
	if code, _, _ := do(t, http.MethodGet, u, nil, nil); code != http.StatusForbidden {
		t.Errorf("GET with a PUT URL: %d, want 403", code)
	}
}

func TestPresignExpired(t *testing.T) {
	st := newStore(t, bucket)
	ctx := ctxT(t)
	if err := st.Put(ctx, "uploads/expiring", "text/plain", []byte("x")); err != nil {
		t.Fatal(err)
	}
	put, err := st.PresignPut(ctx, "uploads/expired", "image/png", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	get, err := st.PresignGet(ctx, "uploads/expiring", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2100 * time.Millisecond)
	if code, _, b := do(t, http.MethodPut, put, []byte("x"), ct("image/png")); code != http.StatusForbidden {
		t.Errorf("expired PUT: %d %s, want 403", code, b)
	}
	if code, _, b := do(t, http.MethodGet, get, nil, nil); code != http.StatusForbidden {
		t.Errorf("expired GET: %d %s, want 403", code, b)
	}
}

func TestPresignGet(t *testing.T) {
	st := newStore(t, bucket)
	ctx := ctxT(t)
	key := "slides/req-1/slide.pdf"
	body := []byte("%PDF-1.4 not really")
	if err := st.Put(ctx, key, "application/pdf", body); err != nil {
		t.Fatal(err)
	}
	u, err := st.PresignGet(ctx, key, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	code, h, got := do(t, http.MethodGet, u, nil, nil)
	if code != http.StatusOK || !bytes.Equal(got, body) {
		t.Fatalf("GET: %d %q, want 200 %q", code, got, body)
	}
	if h.Get("Content-Type") != "application/pdf" {
		t.Errorf("Content-Type %q", h.Get("Content-Type"))
	}
	for name, bad := range tamper(t, u) {
		if code, _, b := do(t, http.MethodGet, bad.url, nil, nil); code != bad.want {
			t.Errorf("tampered %s: %d %s, want %d", name, code, b, bad.want)
		}
	}
	// A GET URL does not write.
	if code, _, _ := do(t, http.MethodPut, u, []byte("overwritten"), nil); code != http.StatusForbidden {
		t.Errorf("PUT with a GET URL: %d, want 403", code)
	}
	// The store checks signatures: plain requests are refused.
	plain := srv.Endpoint() + "/" + bucket + "/" + key
	if code, _, _ := do(t, http.MethodGet, plain, nil, nil); code != http.StatusForbidden {
		t.Errorf("unsigned GET: %d, want 403", code)
	}
	if code, _, _ := do(t, http.MethodPut, plain, []byte("overwritten"), ct("application/pdf")); code != http.StatusForbidden {
		t.Errorf("unsigned PUT: %d, want 403", code)
	}
	if code, _, _ := do(t, http.MethodGet, srv.Endpoint()+"/"+bucket, nil, nil); code != http.StatusForbidden {
		t.Errorf("unsigned list: %d, want 403", code)
	}
	if got, err := st.Get(ctx, key); err != nil || !bytes.Equal(got, body) {
		t.Fatalf("object changed: %q, %v", got, err)
	}
}

func preflight(t *testing.T, rawURL, origin, method string) (int, http.Header) {
	t.Helper()
	code, h, _ := do(t, http.MethodOptions, rawURL, nil, http.Header{
		"Origin":                         {origin},
		"Access-Control-Request-Method":  {method},
		"Access-Control-Request-Headers": {"content-type"},
	})
	return code, h
}

func TestCORS(t *testing.T) {
	st := newStore(t, bucket)
	ctx := ctxT(t)
	const origin = "http://app.example.test:8080"
	u, err := st.PresignPut(ctx, "uploads/cors", "image/png", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	code, h := preflight(t, u, origin, http.MethodPut)
	if code != http.StatusOK {
		t.Fatalf("preflight: %d", code)
	}
	if got := h.Get("Access-Control-Allow-Origin"); got != "*" && got != origin {
		t.Errorf("Access-Control-Allow-Origin %q", got)
	}
	if got := h.Get("Access-Control-Allow-Methods"); !strings.Contains(got, "PUT") {
		t.Errorf("Access-Control-Allow-Methods %q", got)
	}
	if got := strings.ToLower(h.Get("Access-Control-Allow-Headers")); !strings.Contains(got, "content-type") && got != "*" {
		t.Errorf("Access-Control-Allow-Headers %q", got)
	}
	t.Logf("preflight answer: %v", h)

	// The actual request gets CORS headers too, or the browser hides the answer.
	put := ct("image/png")
	put.Set("Origin", origin)
	code, h, b := do(t, http.MethodPut, u, []byte("x"), put)
	if code != http.StatusOK {
		t.Fatalf("cross-origin PUT: %d %s", code, b)
	}
	if got := h.Get("Access-Control-Allow-Origin"); got != "*" && got != origin {
		t.Errorf("PUT Access-Control-Allow-Origin %q", got)
	}
	if !strings.Contains(strings.ToLower(h.Get("Access-Control-Expose-Headers")), "etag") {
		t.Errorf("PUT Access-Control-Expose-Headers %q", h.Get("Access-Control-Expose-Headers"))
	}

	if err := st.Put(ctx, "slides/cors.png", "image/png", []byte("x")); err != nil {
		t.Fatal(err)
	}
	get, err := st.PresignGet(ctx, "slides/cors.png", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	code, h, b = do(t, http.MethodGet, get, nil, http.Header{"Origin": {origin}})
	if code != http.StatusOK {
		t.Fatalf("cross-origin GET: %d %s", code, b)
	}
	if got := h.Get("Access-Control-Allow-Origin"); got != "*" && got != origin {
		t.Errorf("GET Access-Control-Allow-Origin %q", got)
	}

	// Restricted origins.
	restricted := newStore(t, "cors-restricted", s3.WithCORSOrigins(origin))
	u, err = restricted.PresignPut(ctx, "uploads/cors", "image/png", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if code, h := preflight(t, u, origin, http.MethodPut); code != http.StatusOK || h.Get("Access-Control-Allow-Origin") != origin {
		t.Errorf("allowed origin: %d %q", code, h.Get("Access-Control-Allow-Origin"))
	}
	if code, h := preflight(t, u, "http://evil.example.test", http.MethodPut); code != http.StatusForbidden || h.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("other origin: %d %q, want 403 without Access-Control-Allow-Origin", code, h.Get("Access-Control-Allow-Origin"))
	}
	if code, _ := preflight(t, u, origin, http.MethodDelete); code != http.StatusForbidden {
		t.Errorf("DELETE preflight: %d, want 403", code)
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

func TestPingMissingBucket(t *testing.T) {
	access, secret := srv.Credentials()
	st, err := s3.New(srv.Endpoint(), "never-created", access, secret)
	if err != nil {
		t.Fatal(err)
	}
	wantCode(t, st.Ping(ctxT(t)), genpipe.EUNAVAILABLE)
}

func TestWrongCredentials(t *testing.T) {
	access, _ := srv.Credentials()
	st, err := s3.New(srv.Endpoint(), bucket, access, "not-the-secret")
	if err != nil {
		t.Fatal(err)
	}
	err = st.Ping(ctxT(t))
	if err == nil {
		t.Fatal("Ping with a wrong secret succeeded")
	}
	wantCode(t, err, genpipe.EINTERNAL)
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
