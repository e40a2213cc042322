package s3_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/internal/testenv"
	"github.com/genpipe/genpipe/internal/testutil"
	"github.com/genpipe/genpipe/s3"
)

// The tests run against the test binary's embedded object store
// (testenv.Run), and a separately started versitygw (versitygw_test.go).
func TestMain(m *testing.M) { os.Exit(testenv.Run(m)) }

// startWD is the working directory before the embedded store moved it.
var startWD, _ = os.Getwd()

const bucket = testenv.Bucket

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// embedded is the embedded object store as a conformance target.
func embedded(t *testing.T) target {
	return target{endpoint: testenv.ObjectStoreEndpoint(t), access: testenv.AccessKey, secret: testenv.SecretKey}
}

// newStore returns a Store for bkt on the embedded store, its bucket ensured.
func newStore(t *testing.T, bkt string, opts ...s3.Option) *s3.Store {
	t.Helper()
	return embedded(t).newStore(t, bkt, opts...)
}

func do(t *testing.T, method, rawURL string, body []byte, header http.Header) (int, http.Header, []byte) {
	t.Helper()
	return embedded(t).do(t, method, rawURL, body, header)
}

func TestEmbeddedServerConformance(t *testing.T) {
	runConformance(t, embedded(t))
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
	u, err := st.PresignPut(ctxT(t), "k", png, time.Minute)
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
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(testenv.ObjectStoreEndpoint(t), "http://"))
	public := "http://localhost:" + port
	st := newStore(t, bucket, s3.WithPresignEndpoint(public))
	u, err := st.PresignPut(ctxT(t), "uploads/public", png, time.Minute)
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

func TestPingUnavailable(t *testing.T) {
	closed := "http://" + testutil.FreeAddr(t)
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

// A store keeps its connections for the next request, and gives them up
// when told: a server shutting down waits for open connections (versitygw
// up to 10 s).
func TestCloseIdleConnections(t *testing.T) {
	var mu sync.Mutex
	states := map[http.ConnState]int{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		mu.Lock()
		defer mu.Unlock()
		states[s]++
	}
	srv.Start()
	defer srv.Close()
	count := func(s http.ConnState) int {
		mu.Lock()
		defer mu.Unlock()
		return states[s]
	}
	st, err := s3.New(srv.URL, bucket, "access", "secret")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Ping(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if opened, closed := count(http.StateNew), count(http.StateClosed); opened == 0 || closed != 0 {
		t.Fatalf("after a request: %d connections opened, %d closed; want some opened and kept", opened, closed)
	}
	st.CloseIdleConnections()
	testutil.Eventually(t, 5*time.Second, "the store's connections closed after CloseIdleConnections",
		func() bool { return count(http.StateClosed) == count(http.StateNew) })
}
