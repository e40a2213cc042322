package s3_test

import (
	"bytes"
	"fmt"
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
	u, err := st.PresignPut(ctx, key, "image/png", time.Minute)
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
	u, err := st.PresignPut(ctx, key, "image/png", time.Minute)
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
	put, err := st.PresignPut(ctx, "uploads/expired", "image/png", time.Second)
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
	u, err := st.PresignPut(ctx, "uploads/cors", "image/png", time.Minute)
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
	u, err = restricted.PresignPut(ctx, "uploads/cors", "image/png", time.Minute)
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
	u, err := st.PresignPut(ctxT(t), "uploads/forged", "image/png", time.Minute)
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
	u, err := st.PresignPut(ctxT(t), "uploads/elsewhere", "image/png", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if code, _, b := tg.do(t, http.MethodPut, u, []byte("x"), ct("image/png")); code == http.StatusOK {
		t.Errorf("PUT signed for another region: %d %s, want a refusal", code, b)
	}
}
