package s3_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/internal/testutil"
	"github.com/genpipe/genpipe/s3"
)

// The conformance checks: what genpipe needs from an S3 store, run against
// every server the Store is tested with (the embedded one, and versitygw as
// its own process in both addressing styles). A store passes if presigned
// URLs work for exactly what they were signed for, signatures are checked,
// metadata comes back, buckets are created idempotently and browsers may
// use the URLs (CORS).

// target is an S3 server to run the checks against.
type target struct {
	endpoint       string
	access, secret string
	opts           []s3.Option  // given to every Store
	client         *http.Client // fetches presigned URLs as a browser would
}

// newStore returns a Store for bkt on tg, its bucket ensured.
func (tg target) newStore(t *testing.T, bkt string, opts ...s3.Option) *s3.Store {
	t.Helper()
	st, err := s3.New(tg.endpoint, bkt, tg.access, tg.secret, append(append([]s3.Option(nil), tg.opts...), opts...)...)
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
func (tg target) do(t *testing.T, method, rawURL string, body []byte, header http.Header) (int, http.Header, []byte) {
	t.Helper()
	return testutil.Do(t, ctxT(t), tg.client, method, rawURL, body, header)
}

// runConformance runs every check against tg, in parallel.
func runConformance(t *testing.T, tg target) {
	for name, check := range map[string]func(*testing.T, target){
		"EnsureBucketTwice":    checkEnsureBucketTwice,
		"PutGetStat":           checkPutGetStat,
		"MissingObject":        checkMissingObject,
		"PresignPut":           checkPresignPut,
		"PresignPutTampered":   checkPresignPutTampered,
		"PresignPutSize":       checkPresignPutSize,
		"PresignPutWriteOnce":  checkPresignPutWriteOnce,
		"Copy":                 checkCopy,
		"Delete":               checkDelete,
		"PresignGet":           checkPresignGet,
		"PresignExpired":       checkPresignExpired,
		"CORS":                 checkCORS,
		"PingMissingBucket":    checkPingMissingBucket,
		"WrongCredentials":     checkWrongCredentials,
		"SignatureOfElsewhere": checkSignatureOfElsewhere,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			check(t, tg)
		})
	}
}

func ct(contentType string) http.Header { return http.Header{"Content-Type": {contentType}} }

// png is a PUT of a PNG of any size.
var png = genpipe.PutHeaders{ContentType: "image/png"}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := genpipe.ErrorCode(err); got != code {
		t.Fatalf("error code %q, want %q (err: %v)", got, code, err)
	}
}

// unique returns a key no earlier run used, for servers that keep data.
func unique(prefix string) string { return fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano()) }

func checkEnsureBucketTwice(t *testing.T, tg target) {
	st := tg.newStore(t, "ensure-twice")
	if err := st.EnsureBucket(ctxT(t)); err != nil {
		t.Fatalf("second EnsureBucket: %v", err)
	}
	if err := st.Ping(ctxT(t)); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func checkPutGetStat(t *testing.T, tg target) {
	st := tg.newStore(t, bucket)
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

func checkMissingObject(t *testing.T, tg target) {
	st := tg.newStore(t, bucket)
	_, err := st.Stat(ctxT(t), "uploads/never")
	wantCode(t, err, genpipe.ENOTFOUND)
	_, err = st.Get(ctxT(t), "uploads/never")
	wantCode(t, err, genpipe.ENOTFOUND)
}

func checkPresignPut(t *testing.T, tg target) {
	st := tg.newStore(t, bucket)
	ctx := ctxT(t)
	key := unique("uploads/presigned put") + ".png"
	u, err := st.PresignPut(ctx, key, png, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(u, "X-Amz-SignedHeaders=content-type%3Bhost") {
		t.Errorf("content-type is not a signed header: %s", u)
	}
	body := []byte("\x89PNG not really")

	for _, h := range []http.Header{ct("image/jpeg"), ct("image/png; charset=x"), nil} {
		if code, _, b := tg.do(t, http.MethodPut, u, body, h); code != http.StatusForbidden {
			t.Errorf("PUT with header %v: %d %s, want 403", h, code, b)
		}
	}
	if _, err := st.Stat(ctx, key); genpipe.ErrorCode(err) != genpipe.ENOTFOUND {
		t.Fatalf("refused PUTs stored something: %v", err)
	}

	if code, _, b := tg.do(t, http.MethodPut, u, body, ct("image/png")); code != http.StatusOK {
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

	_, err = st.PresignPut(ctx, key, genpipe.PutHeaders{}, time.Minute)
	wantCode(t, err, genpipe.EINVALID)
	_, err = st.PresignPut(ctx, key, genpipe.PutHeaders{ContentType: "image/png", ContentLength: -1}, time.Minute)
	wantCode(t, err, genpipe.EINVALID)
}

// A write-once URL stores its first PUT and refuses every later one, to
// it or to another write-once URL of the key, with 412, keeping the first
// bytes; a PUT that leaves out If-None-Match fails the signature. genpipe
// relies on it: an upload is the request's input, read by both stages.
func checkPresignPutWriteOnce(t *testing.T, tg target) {
	st := tg.newStore(t, bucket)
	ctx := ctxT(t)
	key := unique("images/write once") + ".png"
	first, second := []byte("\x89PNG first"), []byte("\x89PNG other")
	h := genpipe.PutHeaders{ContentType: "image/png", ContentLength: int64(len(first)), WriteOnce: true}
	issue := func() string {
		u, err := st.PresignPut(ctx, key, h, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(u, "X-Amz-SignedHeaders=content-length%3Bcontent-type%3Bhost%3Bif-none-match") {
			t.Fatalf("if-none-match is not a signed header: %s", u)
		}
		return u
	}
	headers := func() http.Header {
		header := http.Header{}
		for k, v := range h.Header() {
			header.Set(k, v)
		}
		return header
	}
	u := issue()
	if code, _, b := tg.do(t, http.MethodPut, u, first, ct("image/png")); code != http.StatusForbidden {
		t.Errorf("PUT without If-None-Match: %d %s, want 403", code, b)
	}
	if code, _, b := tg.do(t, http.MethodPut, u, first, headers()); code != http.StatusOK {
		t.Fatalf("first PUT: %d %s, want 200", code, b)
	}
	for what, url := range map[string]string{"the same URL": u, "a new URL": issue()} {
		if code, _, b := tg.do(t, http.MethodPut, url, second, headers()); code != http.StatusPreconditionFailed {
			t.Errorf("second PUT through %s: %d %s, want 412", what, code, b)
		}
	}
	if got, err := st.Get(ctx, key); err != nil || !bytes.Equal(got, first) {
		t.Errorf("after a refused second PUT the object is %q, %v; want the first %q", got, err, first)
	}
}

// A URL issued for a size takes that size only: a longer or shorter body,
// a Content-Length header that lies in either direction, or no length at
// all (chunked) is refused, and nothing is stored. A body longer than its
// Content-Length header stores the header's bytes at most.
func checkPresignPutSize(t *testing.T, tg target) {
	st := tg.newStore(t, bucket)
	ctx := ctxT(t)
	const size = 100
	body := bytes.Repeat([]byte("p"), size)
	issue := func(key string) string {
		u, err := st.PresignPut(ctx, key, genpipe.PutHeaders{ContentType: "image/png", ContentLength: size}, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(u, "X-Amz-SignedHeaders=content-length%3Bcontent-type%3Bhost") {
			t.Fatalf("content-length is not a signed header: %s", u)
		}
		return u
	}
	nothingAt := func(what, key string) {
		t.Helper()
		if info, err := st.Stat(ctx, key); genpipe.ErrorCode(err) != genpipe.ENOTFOUND {
			t.Errorf("%s stored %+v (%v)", what, info, err)
		}
	}

	key := unique("uploads/sized")
	u := issue(key)
	client := tg.client
	if client == nil {
		client = http.DefaultClient
	}
	// put PUTs b as an honest client would (Content-Length: len(b)). The
	// store may refuse before reading the body and close the connection,
	// which the client may see as an error instead of the 403.
	put := func(b io.Reader, length int64) (int, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, u, b)
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = length
		req.Header.Set("Content-Type", "image/png")
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		return resp.StatusCode, nil
	}
	for name, b := range map[string][]byte{"longer": append(bytes.Clone(body), make([]byte, 11<<20)...), "shorter": body[:size-1], "empty": {}} {
		if code, err := put(bytes.NewReader(b), int64(len(b))); code != http.StatusForbidden && err == nil {
			t.Errorf("PUT of a %s body (%d bytes) to a URL for %d: %d, want 403", name, len(b), size, code)
		}
	}
	nothingAt("refused PUTs", key)
	for _, length := range []int{size + 1, size - 1, 60 << 20} {
		if code := rawPut(t, u, length, bytes.Repeat([]byte("p"), length)); code != http.StatusForbidden {
			t.Errorf("PUT with a tampered Content-Length %d: %d, want 403", length, code)
		}
	}
	nothingAt("PUTs with a tampered Content-Length", key)
	if code, err := put(io.MultiReader(bytes.NewReader(body)), -1); code == http.StatusOK {
		t.Errorf("chunked PUT without a Content-Length: %d %v, want a refusal", code, err)
	}
	nothingAt("a PUT without a length", key)

	long := append(bytes.Clone(body), bytes.Repeat([]byte("x"), 64<<10)...)
	if code := rawPut(t, u, size, long); code != http.StatusOK {
		t.Fatalf("PUT with the signed Content-Length and a longer body: %d, want 200 for the declared bytes", code)
	}
	if got, err := st.Get(ctx, key); err != nil || !bytes.Equal(got, body) {
		t.Fatalf("stored %d bytes (%v); want the %d declared", len(got), err, size)
	}
	if code, _, msg := tg.do(t, http.MethodPut, u, body, ct("image/png")); code != http.StatusOK {
		t.Fatalf("PUT as signed: %d %s", code, msg)
	}
}

// rawPut sends a PUT whose Content-Length header says length, whatever the
// body's length, as no well-behaved client would, and returns the status.
func rawPut(t *testing.T, rawURL string, length int, body []byte) int {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	// Every target runs on this machine, whatever the URL's host name.
	conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", u.Port()), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	head := fmt.Sprintf("PUT %s HTTP/1.1\r\nHost: %s\r\nContent-Type: image/png\r\nContent-Length: %d\r\n\r\n",
		u.RequestURI(), u.Host, length)
	go func() { _, _ = conn.Write(append([]byte(head), body...)) }() // the server may answer before reading it all
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("raw PUT with Content-Length %d and %d bytes: %v", length, len(body), err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// Copy makes a copy inside the store, whatever becomes of the original.
func checkCopy(t *testing.T, tg target) {
	st := tg.newStore(t, bucket)
	ctx := ctxT(t)
	src, dst := unique("uploads/original"), unique("inputs/copy")
	if err := st.Put(ctx, src, "image/png", []byte("first")); err != nil {
		t.Fatal(err)
	}
	if err := st.Copy(ctx, src, dst); err != nil {
		t.Fatalf("Copy: %v", err)
	}
	info, err := st.Stat(ctx, dst)
	if want := (genpipe.ObjectInfo{Key: dst, Size: 5, ContentType: "image/png"}); err != nil || info != want {
		t.Fatalf("Stat of the copy = %+v, %v; want %+v", info, err, want)
	}
	if err := st.Put(ctx, src, "image/png", []byte("second, longer")); err != nil {
		t.Fatal(err)
	}
	if got, err := st.Get(ctx, dst); err != nil || string(got) != "first" {
		t.Fatalf("the copy after the original changed: %q, %v; want %q", got, err, "first")
	}
	err = st.Copy(ctx, unique("uploads/never"), unique("inputs/never"))
	wantCode(t, err, genpipe.ENOTFOUND)
}

func checkDelete(t *testing.T, tg target) {
	st := tg.newStore(t, bucket)
	ctx := ctxT(t)
	key := unique("inputs/deleted")
	if err := st.Put(ctx, key, "image/png", []byte("x")); err != nil {
		t.Fatal(err)
	}
	for range 2 { // deleting what is gone is no error
		if err := st.Delete(ctx, key); err != nil {
			t.Fatalf("Delete: %v", err)
		}
	}
	_, err := st.Stat(ctx, key)
	wantCode(t, err, genpipe.ENOTFOUND)
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

// unsigned is rawURL without its query: the object's plain address.
func unsigned(t *testing.T, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	u.RawQuery = ""
	return u.String()
}

func checkPresignPutTampered(t *testing.T, tg target) {
	st := tg.newStore(t, bucket)
	ctx := ctxT(t)
	key := unique("uploads/tampered")
	u, err := st.PresignPut(ctx, key, png, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for name, bad := range tamper(t, u) {
		if code, _, b := tg.do(t, http.MethodPut, bad.url, []byte("x"), ct("image/png")); code != bad.want {
			t.Errorf("tampered %s: %d %s, want %d", name, code, b, bad.want)
		}
	}
	for _, k := range []string{key, key + "x"} {
		if _, err := st.Stat(ctx, k); genpipe.ErrorCode(err) != genpipe.ENOTFOUND {
			t.Errorf("a tampered PUT stored %s: %v", k, err)
		}
	}
	// A PUT URL does not read.
	if code, _, _ := tg.do(t, http.MethodGet, u, nil, nil); code != http.StatusForbidden {
		t.Errorf("GET with a PUT URL: %d, want 403", code)
	}
}

func checkPresignExpired(t *testing.T, tg target) {
	st := tg.newStore(t, bucket)
	ctx := ctxT(t)
	if err := st.Put(ctx, "uploads/expiring", "text/plain", []byte("x")); err != nil {
		t.Fatal(err)
	}
	put, err := st.PresignPut(ctx, "uploads/expired", png, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	get, err := st.PresignGet(ctx, "uploads/expiring", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2100 * time.Millisecond)
	if code, _, b := tg.do(t, http.MethodPut, put, []byte("x"), ct("image/png")); code != http.StatusForbidden {
		t.Errorf("expired PUT: %d %s, want 403", code, b)
	}
	if code, _, b := tg.do(t, http.MethodGet, get, nil, nil); code != http.StatusForbidden {
		t.Errorf("expired GET: %d %s, want 403", code, b)
	}
}

func checkPresignGet(t *testing.T, tg target) {
	st := tg.newStore(t, bucket)
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
	code, h, got := tg.do(t, http.MethodGet, u, nil, nil)
	if code != http.StatusOK || !bytes.Equal(got, body) {
		t.Fatalf("GET: %d %q, want 200 %q", code, got, body)
	}
	if h.Get("Content-Type") != "application/pdf" {
		t.Errorf("Content-Type %q", h.Get("Content-Type"))
	}
	for name, bad := range tamper(t, u) {
		if code, _, b := tg.do(t, http.MethodGet, bad.url, nil, nil); code != bad.want {
			t.Errorf("tampered %s: %d %s, want %d", name, code, b, bad.want)
		}
	}
	// A GET URL does not write.
	if code, _, _ := tg.do(t, http.MethodPut, u, []byte("overwritten"), nil); code != http.StatusForbidden {
		t.Errorf("PUT with a GET URL: %d, want 403", code)
	}
	// The store checks signatures: plain requests are refused.
	plain := unsigned(t, u)
	if code, _, _ := tg.do(t, http.MethodGet, plain, nil, nil); code != http.StatusForbidden {
		t.Errorf("unsigned GET: %d, want 403", code)
	}
	if code, _, _ := tg.do(t, http.MethodPut, plain, []byte("overwritten"), ct("application/pdf")); code != http.StatusForbidden {
		t.Errorf("unsigned PUT: %d, want 403", code)
	}
	bucketURL := strings.TrimSuffix(plain, key)
	if code, _, _ := tg.do(t, http.MethodGet, bucketURL, nil, nil); code != http.StatusForbidden {
		t.Errorf("unsigned list %s: %d, want 403", bucketURL, code)
	}
	if got, err := st.Get(ctx, key); err != nil || !bytes.Equal(got, body) {
		t.Fatalf("object changed: %q, %v", got, err)
	}
}

func (tg target) preflight(t *testing.T, rawURL, origin, method string) (int, http.Header) {
	t.Helper()
	code, h, _ := tg.do(t, http.MethodOptions, rawURL, nil, http.Header{
		"Origin":                         {origin},
		"Access-Control-Request-Method":  {method},
		"Access-Control-Request-Headers": {"content-type"},
	})
	return code, h
}

func checkCORS(t *testing.T, tg target) {
	st := tg.newStore(t, bucket)
	ctx := ctxT(t)
	const origin = "http://app.example.test:8080"
	u, err := st.PresignPut(ctx, "uploads/cors", png, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	code, h := tg.preflight(t, u, origin, http.MethodPut)
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

	// The actual request gets CORS headers too, or the browser hides the answer.
	put := ct("image/png")
	put.Set("Origin", origin)
	code, h, b := tg.do(t, http.MethodPut, u, []byte("x"), put)
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
	code, h, b = tg.do(t, http.MethodGet, get, nil, http.Header{"Origin": {origin}})
	if code != http.StatusOK {
		t.Fatalf("cross-origin GET: %d %s", code, b)
	}
	if got := h.Get("Access-Control-Allow-Origin"); got != "*" && got != origin {
		t.Errorf("GET Access-Control-Allow-Origin %q", got)
	}

	// Restricted origins.
	restricted := tg.newStore(t, "cors-restricted", s3.WithCORSOrigins(origin))
	u, err = restricted.PresignPut(ctx, "uploads/cors", png, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if code, h := tg.preflight(t, u, origin, http.MethodPut); code != http.StatusOK || h.Get("Access-Control-Allow-Origin") != origin {
		t.Errorf("allowed origin: %d %q", code, h.Get("Access-Control-Allow-Origin"))
	}
	if code, h := tg.preflight(t, u, "http://evil.example.test", http.MethodPut); code != http.StatusForbidden || h.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("other origin: %d %q, want 403 without Access-Control-Allow-Origin", code, h.Get("Access-Control-Allow-Origin"))
	}
	if code, _ := tg.preflight(t, u, origin, http.MethodDelete); code != http.StatusForbidden {
		t.Errorf("DELETE preflight: %d, want 403", code)
	}
}

func checkPingMissingBucket(t *testing.T, tg target) {
	st, err := s3.New(tg.endpoint, "never-created", tg.access, tg.secret, tg.opts...)
	if err != nil {
		t.Fatal(err)
	}
	wantCode(t, st.Ping(ctxT(t)), genpipe.EUNAVAILABLE)
}

// A request signed with the wrong secret is refused (SigV4 is checked, not
// just present).
func checkWrongCredentials(t *testing.T, tg target) {
	st, err := s3.New(tg.endpoint, bucket, tg.access, "not-the-secret", tg.opts...)
	if err != nil {
		t.Fatal(err)
	}
	err = st.Ping(ctxT(t))
	if err == nil {
		t.Fatal("Ping with a wrong secret succeeded")
	}
	wantCode(t, err, genpipe.EINTERNAL)
	if err := st.Put(ctxT(t), "uploads/forged", "image/png", []byte("x")); err == nil {
		t.Fatal("Put with a wrong secret succeeded")
	}
	// And a URL presigned with it is refused too.
	u, err := st.PresignPut(ctxT(t), "uploads/forged", png, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if code, _, b := tg.do(t, http.MethodPut, u, []byte("x"), ct("image/png")); code != http.StatusForbidden {
		t.Errorf("PUT presigned with a wrong secret: %d %s, want 403", code, b)
	}
	good := tg.newStore(t, bucket)
	if _, err := good.Stat(ctxT(t), "uploads/forged"); genpipe.ErrorCode(err) != genpipe.ENOTFOUND {
		t.Errorf("a forged request stored an object: %v", err)
	}
}

// A URL signed for another region does not verify here: the region is part
// of the signing key.
func checkSignatureOfElsewhere(t *testing.T, tg target) {
	st, err := s3.New(tg.endpoint, bucket, tg.access, tg.secret, append(append([]s3.Option(nil), tg.opts...),
		s3.WithRegion("eu-central-1"))...)
	if err != nil {
		t.Fatal(err)
	}
	u, err := st.PresignPut(ctxT(t), "uploads/elsewhere", png, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if code, _, b := tg.do(t, http.MethodPut, u, []byte("x"), ct("image/png")); code == http.StatusOK {
		t.Errorf("PUT signed for another region: %d %s, want a refusal", code, b)
	}
}
