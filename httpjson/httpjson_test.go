package httpjson_test

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/httpjson"
)

func TestDecode(t *testing.T) {
	cases := []struct {
		body, code, detail string
	}{
		{`{"a":1}`, "", ""},
		{``, genpipe.EINVALID, "empty"},
		{`{"a":`, genpipe.EINVALID, "malformed JSON"},
		{`{"a":1} {"b":2}`, genpipe.EINVALID, "trailing"},
		{`{"a":"` + strings.Repeat("x", 100) + `"}`, genpipe.ETOOLARGE, "over 64 bytes"},
		{`{"a":1}` + strings.Repeat(" ", 100), genpipe.ETOOLARGE, "over 64 bytes"},
	}
	for _, c := range cases {
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(c.body))
		var v map[string]any
		err := httpjson.Decode(httptest.NewRecorder(), r, 64, &v)
		if genpipe.ErrorCode(err) != c.code || !strings.Contains(genpipe.ErrorMessage(err), c.detail) {
			t.Errorf("Decode(%.20q) = %v, want code %q with %q", c.body, err, c.code, c.detail)
		}
	}
}

// A body that stops arriving (the server's read timeout) is not malformed
// JSON, and its error names no socket address.
func TestDecodeBrokenBody(t *testing.T) {
	r := httptest.NewRequest(http.MethodPost, "/", io.MultiReader(strings.NewReader(`{"a":`), timeoutReader{}))
	var v map[string]any
	err := httpjson.Decode(httptest.NewRecorder(), r, 64, &v)
	if msg := genpipe.ErrorMessage(err); genpipe.ErrorCode(err) != genpipe.EINVALID || !strings.Contains(msg, "did not arrive in full") ||
		strings.Contains(msg, "10.1.2.3") {
		t.Errorf("Decode of a body cut by a timeout = %v; want EINVALID saying it did not arrive, without the read error", err)
	}
}

// timeoutReader fails as a connection's read past its deadline does.
type timeoutReader struct{}

func (timeoutReader) Read([]byte) (int, error) {
	return 0, &net.OpError{Op: "read", Net: "tcp", Addr: &net.TCPAddr{IP: net.IPv4(10, 1, 2, 3), Port: 8080}, Err: os.ErrDeadlineExceeded}
}

func TestWriteProblem(t *testing.T) {
	w := httptest.NewRecorder()
	httpjson.WriteProblem(w, http.StatusNotFound, genpipe.ENOTFOUND, "request x not found")
	var p httpjson.Problem
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	if w.Code != 404 || w.Header().Get("Content-Type") != "application/problem+json" ||
		p.Status != 404 || p.Title != "Not Found" || p.Code != genpipe.ENOTFOUND || p.Detail != "request x not found" {
		t.Fatalf("got %d %q %+v", w.Code, w.Header().Get("Content-Type"), p)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		value string
		want  time.Duration
		ok    bool
	}{
		{"", 0, false},
		{"7", 7 * time.Second, true},
		{" 7 ", 7 * time.Second, true},
		{"0", 0, true},
		{"-1", 0, false},
		{"soon", 0, false},
		{"99999999999999", 24 * time.Hour, true},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0, true},
		{now.Add(48 * time.Hour).Format(http.TimeFormat), 24 * time.Hour, true},
	} {
		h := http.Header{}
		if tc.value != "" {
			h.Set("Retry-After", tc.value)
		}
		if got, ok := httpjson.RetryAfter(h, now); got != tc.want || ok != tc.ok {
			t.Errorf("RetryAfter(%q) = %v, %v; want %v, %v", tc.value, got, ok, tc.want, tc.ok)
		}
	}
}
