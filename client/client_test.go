package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/client"
)

func newClient(t *testing.T, h http.Handler, opts ...client.Option) *client.Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c, err := client.New(append([]client.Option{client.WithBaseURL(srv.URL)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNewRefusesBadOptions(t *testing.T) {
	for _, c := range []struct {
		opt  client.Option
		want string
	}{
		{client.WithBaseURL("ftp://x"), "base URL"},
		{client.WithBaseURL("localhost:8080"), "base URL"},
		{client.WithHTTPClient(nil), "HTTP client"},
		{client.WithReconnects(-1), "reconnects"},
	} {
		if _, err := client.New(c.opt); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New with a bad %s: %v", c.want, err)
		}
	}
}

// An error answer is a *Problem with the API's code, its detail and when
// to retry; one that is not a problem keeps its status and text.
func TestProblem(t *testing.T) {
	c := newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/requests":
			if r.Header.Get("Authorization") != "Bearer k" || r.Header.Get("Idempotency-Key") != "once" {
				t.Errorf("headers %v", r.Header)
			}
			w.Header().Set("Content-Type", "application/problem+json")
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(429)
			io.WriteString(w, `{"type":"urn:genpipe:problem:too_many_requests","title":"Too Many Requests","status":429,"detail":"full","code":"too_many_requests"}`)
		default:
			w.WriteHeader(502)
			io.WriteString(w, "bad gateway\n")
		}
	}), client.WithAPIKey("k"))
	_, err := c.Submit(context.Background(), client.Submission{ObjectID: "o", Style: "s", Description: "d", IdempotencyKey: "once"})
	var p *client.Problem
	if !errors.As(err, &p) || p.Status != 429 || p.Code != "too_many_requests" || p.Detail != "full" || p.RetryAfter != 7*time.Second || !p.Temporary() {
		t.Fatalf("Submit: %#v", err)
	}
	_, err = c.Get(context.Background(), "x")
	if !errors.As(err, &p) || p.Status != 502 || p.Code != "" || p.Detail != "bad gateway" || p.Temporary() {
		t.Fatalf("Get: %#v", err)
	}
}

// eventServer serves a request's status changes, numbered or not, cutting
// each connection short, as a server whose streams end does.
type eventServer struct {
	t        *testing.T
	numbered bool
	per      int
	events   []string
	mu       sync.Mutex
	lastIDs  []string // the Last-Event-ID of each connection
}

func (s *eventServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.lastIDs = append(s.lastIDs, r.Header.Get("Last-Event-ID"))
	s.mu.Unlock()
	// A numbered stream resumes after Last-Event-ID; one without numbers
	// replays the history, one event further each time.
	from, to := 0, s.per*len(s.lastIDs)
	if s.numbered {
		fmt.Sscan(r.Header.Get("Last-Event-ID"), &from)
		to = from + s.per
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(200)
	io.WriteString(w, "retry: 1\n: keep-alive\n\n")
	for i, status := range s.events[from:min(len(s.events), to)] {
		if s.numbered {
			fmt.Fprintf(w, "id: %d\n", from+i+1)
		}
		fmt.Fprintf(w, "event: status\ndata: {\"id\":\"r1\",\"status\":%q,\"at\":\"2026-01-02T15:04:05Z\"}\n\n", status)
	}
}

// Follow passes each status once, in order, across streams that end
// early: with Last-Event-ID when the server numbers its events, by status
// rank when it does not.
func TestFollowReconnects(t *testing.T) {
	for _, numbered := range []bool{true, false} {
		t.Run(fmt.Sprint("numbered=", numbered), func(t *testing.T) {
			s := &eventServer{t: t, numbered: numbered, per: 2, events: []string{"received", "checking", "generating", "rejected"}}
			c := newClient(t, s)
			var got []string
			final, err := c.Follow(context.Background(), "r1", func(e client.Event) error {
				got = append(got, string(e.Status))
				return nil
			})
			if err != nil || final.Status != genpipe.StatusRejected {
				t.Fatalf("Follow = %+v, %v", final, err)
			}
			if strings.Join(got, ",") != "received,checking,generating,rejected" {
				t.Fatalf("statuses %v", got)
			}
			if numbered && strings.Join(s.lastIDs, ",") != ",2" {
				t.Fatalf("Last-Event-IDs sent: %q, want none then 2", s.lastIDs)
			}
		})
	}
}

// A stream that never gets further is given up after WithReconnects, and a
// 404 at once.
func TestFollowGivesUp(t *testing.T) {
	s := &eventServer{t: t, per: 1, events: []string{"received", "checking"}}
	c := newClient(t, s, client.WithReconnects(2))
	if _, err := c.Follow(context.Background(), "r1", nil); err == nil || !strings.Contains(err.Error(), "ended before") {
		t.Fatalf("Follow of a stream that stops: %v", err)
	}
	c = newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(404)
		io.WriteString(w, `{"type":"urn:genpipe:problem:not_found","title":"Not Found","status":404,"detail":"no","code":"not_found"}`)
	}))
	var p *client.Problem
	if _, err := c.Follow(context.Background(), "r1", nil); !errors.As(err, &p) || p.Code != "not_found" {
		t.Fatalf("Follow of an unknown request: %v", err)
	}
}

// UploadImage PUTs the image to the URL it was given, with its headers;
// DownloadResult saves every file under the request's name.
func TestUploadAndDownload(t *testing.T) {
	image := []byte("\x89PNG pretend")
	var put []byte
	var mux http.ServeMux
	var base string
	mux.HandleFunc("POST /v1/uploads", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(201)
		fmt.Fprintf(w, `{"objectId":"o1","uploadUrl":"%s/bucket/o1?sig=1","method":"PUT","headers":{"Content-Type":"image/png"}}`, base)
	})
	mux.HandleFunc("PUT /bucket/o1", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Content-Type") != "image/png" || r.Header.Get("Authorization") != "" {
			t.Errorf("PUT headers %v", r.Header)
		}
		put, _ = io.ReadAll(r.Body)
	})
	mux.HandleFunc("GET /files/{name}", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "file "+r.PathValue("name")) })
	mux.HandleFunc("GET /files/missing", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "gone", 403) })
	srv := httptest.NewServer(&mux)
	defer srv.Close()
	base = srv.URL
	c, err := client.New(client.WithBaseURL(srv.URL), client.WithAPIKey("secret"))
	if err != nil {
		t.Fatal(err)
	}
	id, err := c.UploadImage(context.Background(), "image/png", image)
	if err != nil || id != "o1" || !bytes.Equal(put, image) {
		t.Fatalf("UploadImage = %q, %v; PUT %q", id, err, put)
	}
	dir := t.TempDir()
	paths, err := c.DownloadResult(context.Background(), &genpipe.ResultView{PNGURL: base + "/files/a", PDFURL: base + "/files/b", PPTXURL: base + "/files/c",
		PNGURLs: []string{base + "/files/a", base + "/files/d"}}, dir, "slide")
	if err != nil || len(paths) != 4 {
		t.Fatalf("DownloadResult = %v, %v; want 4 files, a deck of two slides", paths, err)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "slide.2.png")); string(data) != "file d" {
		t.Fatalf("slide.2.png = %q; want the second slide's", data)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "slide.pdf")); string(data) != "file b" {
		t.Fatalf("slide.pdf = %q", data)
	}
	if info, err := os.Stat(filepath.Join(dir, "slide.png")); err != nil || info.Mode().Perm() != 0o644 {
		t.Fatalf("slide.png: %v, %v; want a file readable by all, as any other", info.Mode(), err)
	}
	_, err = c.DownloadResult(context.Background(), &genpipe.ResultView{PNGURL: base + "/files/missing"}, dir, "broken")
	if err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("a refused download: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 4 {
		t.Fatalf("a failed download left files: %v", entries)
	}
}
