package aiclient_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/aiclient"
	"github.com/genpipe/genpipe/internal/testutil"
)

// answer serves one fixed answer to every call.
func answer(t *testing.T, status int, contentType, body string, header ...string) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.Header().Set("Content-Type", contentType)
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func problem(status int, detail string) string {
	b, _ := json.Marshal(map[string]any{"type": "urn:test", "title": http.StatusText(status), "status": status, "detail": detail})
	return string(b)
}

func TestCheckSendsInputAndDecodesVerdict(t *testing.T) {
	var got genpipe.CheckInput
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/check" || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("got %s %s %q", r.Method, r.URL.Path, r.Header.Get("Content-Type"))
		}
		_ = json.NewDecoder(r.Body).Decode(&got)
		_, _ = io.WriteString(w, `{"pass":true,"format":"png","width":100,"height":80}`)
	}))
	defer srv.Close()

	in := genpipe.CheckInput{RequestID: "r1", ImageURL: "http://store/obj"}
	v, err := aiclient.NewChecker(srv.URL+"/").Check(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if got != in {
		t.Errorf("service got %+v, want %+v", got, in)
	}
	if want := (genpipe.CheckVerdict{Pass: true, Format: "png", Width: 100, Height: 80}); v != want {
		t.Errorf("verdict %+v, want %+v", v, want)
	}
}

func TestGenerate(t *testing.T) {
	base := answer(t, http.StatusOK, "application/json", `{"outputs":{"png":{"bytes":1}}}`)
	in := genpipe.GenerateInput{RequestID: "r1", Outputs: genpipe.OutputTargets{PNG: "http://s3.invalid/png"}}
	if err := aiclient.NewGenerator(base).Generate(context.Background(), in); err != nil {
		t.Fatal(err)
	}
}

// A 200 that does not report every requested file written is not success:
// a request must never be done without its slide.
func TestGenerateIncompleteAnswer(t *testing.T) {
	in := genpipe.GenerateInput{RequestID: "r1", Outputs: genpipe.OutputTargets{PNG: "http://s3.invalid/png", PDF: "http://s3.invalid/pdf"}}
	for _, body := range []string{``, `{}`, `{"outputs":{"png":{"bytes":10}}}`, `{"outputs":{"png":{"bytes":10},"pdf":{"bytes":0}}}`} {
		err := aiclient.NewGenerator(answer(t, http.StatusOK, "application/json", body)).Generate(context.Background(), in)
		if genpipe.ErrorCode(err) != genpipe.EUNAVAILABLE {
			t.Errorf("answer %q: Generate = %v; want an EUNAVAILABLE error", body, err)
		}
	}
}

func TestErrorCodes(t *testing.T) {
	for _, tc := range []struct {
		name       string
		base       string
		code       string
		message    string
		retryAfter time.Duration // 0: none
	}{
		{"500", answer(t, 500, "text/plain", "boom"), genpipe.EUNAVAILABLE, "failed (HTTP 500): boom", 0},
		{"502 problem", answer(t, 502, "application/problem+json", problem(502, "fetching the image failed")), genpipe.EUNAVAILABLE, "fetching the image failed", 0},
		{"503 retry", answer(t, 503, "text/html", "<h1>down</h1>", "Retry-After", "7"), genpipe.EUNAVAILABLE, "Service Unavailable", 7 * time.Second},
		{"400 problem", answer(t, 400, "application/problem+json", problem(400, "imageUrl is required")), genpipe.EINVALID, "refused the input (HTTP 400): imageUrl is required", 0},
		{"422 problem", answer(t, 422, "application/problem+json", problem(422, "not a PNG or JPEG image")), genpipe.EINVALID, "not a PNG or JPEG image", 0},
		{"404 bare", answer(t, 404, "", ""), genpipe.EINVALID, "Not Found", 0},
		{"429", answer(t, 429, "application/problem+json", problem(429, "at capacity"), "Retry-After", "3"), genpipe.ETOOMANY, "busy: at capacity", 3 * time.Second},
		{"429 no header", answer(t, 429, "application/problem+json", problem(429, "at capacity")), genpipe.ETOOMANY, "busy", 0},
		{"malformed 200", answer(t, 200, "application/json", `{"pass":`), genpipe.EUNAVAILABLE, "malformed JSON", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := aiclient.NewChecker(tc.base).Check(context.Background(), genpipe.CheckInput{RequestID: "r9"})
			checkError(t, err, tc.code, tc.message)
			if !strings.HasPrefix(err.Error(), "aiclient: check r9: ") {
				t.Errorf("error %q does not say what failed", err)
			}
			d, ok := aiclient.RetryAfter(err)
			if ok != (tc.retryAfter > 0) || d != tc.retryAfter {
				t.Errorf("RetryAfter = %v, %v; want %v", d, ok, tc.retryAfter)
			}
		})
	}
}

func checkError(t *testing.T, err error, code, message string) {
	t.Helper()
	if got := genpipe.ErrorCode(err); got != code {
		t.Fatalf("code %q (%v), want %q", got, err, code)
	}
	if msg := genpipe.ErrorMessage(err); !strings.Contains(msg, message) {
		t.Errorf("message %q, want it to contain %q", msg, message)
	}
}

func TestRetryAfterHTTPDate(t *testing.T) {
	at := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	base := answer(t, 429, "text/plain", "busy", "Retry-After", at)
	err := aiclient.NewGenerator(base).Generate(context.Background(), genpipe.GenerateInput{RequestID: "r1"})
	d, ok := aiclient.RetryAfter(err)
	if !ok || d < 80*time.Second || d > 90*time.Second {
		t.Errorf("RetryAfter = %v, %v; want about 90s", d, ok)
	}
	if genpipe.ErrorCode(err) != genpipe.ETOOMANY {
		t.Errorf("code %q, want %q", genpipe.ErrorCode(err), genpipe.ETOOMANY)
	}
}

func TestConnectionRefused(t *testing.T) {
	_, err := aiclient.NewChecker("http://"+testutil.FreeAddr(t)).Check(context.Background(), genpipe.CheckInput{RequestID: "r1"})
	checkError(t, err, genpipe.EUNAVAILABLE, "the checking AI is unreachable")
}

func TestTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	err := aiclient.NewGenerator(srv.URL, aiclient.WithTimeout(50*time.Millisecond)).
		Generate(context.Background(), genpipe.GenerateInput{RequestID: "r1"})
	checkError(t, err, genpipe.EUNAVAILABLE, "the generative AI did not answer in time")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("%v: want context.DeadlineExceeded in the chain", err)
	}
}

// Workers call with 64 requests at once: a second burst must reuse the
// first burst's connections instead of dialing again.
func TestConnectionsReused(t *testing.T) {
	var dials atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond)
		_, _ = io.WriteString(w, `{"pass":true}`)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			dials.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()

	checker := aiclient.NewChecker(srv.URL)
	burst := func() {
		var wg sync.WaitGroup
		for range 64 {
			wg.Go(func() {
				if _, err := checker.Check(context.Background(), genpipe.CheckInput{RequestID: "r"}); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	}
	burst()
	first := dials.Load()
	burst()
	if again := dials.Load() - first; again > 4 {
		t.Errorf("second burst dialed %d new connections (first: %d), want them reused", again, first)
	}
}
