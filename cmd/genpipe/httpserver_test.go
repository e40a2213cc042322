package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// The tests of the HTTP servers' limits shorten them (serveWithLimits) and
// check what happens, not how fast: a timeout's length is measured by the
// process test, TestUpManyIdleConnections.

// testLimits are limits short enough for a test to watch them act.
func testLimits() httpLimits {
	return httpLimits{ReadHeader: 300 * time.Millisecond, Read: 300 * time.Millisecond, Write: time.Minute,
		Idle: 300 * time.Millisecond, MaxConns: 100}
}

// startServer serves h with lim on a loopback port until the test ends,
// and returns its address.
func startServer(t *testing.T, h http.Handler, lim httpLimits) string {
	t.Helper()
	ln, _, err := listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serveWithLimits(ctx, ln, h, slog.New(slog.DiscardHandler), lim) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serveWithLimits: %v", err)
		}
	})
	return ln.Addr().String()
}

// rawConn is a client connection the test drives byte by byte.
type rawConn struct {
	net.Conn
	r *bufio.Reader
}

func dial(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{Conn: c, r: bufio.NewReader(c)}
}

// get sends GET path on c (keep-alive) and returns the answer's status
// and body.
func (c *rawConn) get(path string) (int, string, error) {
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: test\r\n\r\n", path); err != nil {
		return 0, "", err
	}
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// closedByServer waits for the server to close c (EOF or a reset) and
// reports whether it did before wait passed. Only the failing case waits
// that long.
func (c *rawConn) closedByServer(wait time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(wait))
	_, err := io.Copy(io.Discard, c.r)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

var okHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })

// A body trickling in is cut after the read timeout: its handler reads an
// error, and the connection closes, while the client still has most of it
// to send.
func TestServerCutsTricklingBody(t *testing.T) {
	read := make(chan error, 1)
	addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		read <- err
	}), testLimits())
	c := dial(t, addr)
	const size = 1000 // at one byte per 20 ms, 20 s to send
	fmt.Fprintf(c, "POST /v1/requests HTTP/1.1\r\nHost: test\r\nContent-Length: %d\r\n\r\n", size)
	go func() {
		for range size {
			if _, err := c.Write([]byte("x")); err != nil {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	select {
	case err := <-read:
		if err == nil {
			t.Fatal("the handler read the whole trickling body; want the read timeout to cut it")
		}
	case <-time.After(time.Minute):
		t.Fatal("the handler still reads a trickling body after a minute")
	}
	if !c.closedByServer(time.Minute) {
		t.Fatal("the connection of a cut body is still open")
	}
}

// A keep-alive connection with no next request is closed after the idle
// timeout, and one that never sends a request after the header timeout.
func TestServerClosesIdleConnections(t *testing.T) {
	addr := startServer(t, okHandler, testLimits())
	keepAlive := dial(t, addr)
	if status, body, err := keepAlive.get("/"); err != nil || status != http.StatusOK || body != "ok" {
		t.Fatalf("GET: %d %q, %v", status, body, err)
	}
	silent := dial(t, addr)
	for name, c := range map[string]*rawConn{"idle keep-alive": keepAlive, "silent": silent} {
		if !c.closedByServer(time.Minute) {
			t.Errorf("%s connection still open after a minute; want it closed after the timeout", name)
		}
	}
}

// Over the cap, a new connection takes the place of the one idle the
// longest, so idle connections never keep a client out; the others stay.
func TestServerCapClosesLongestIdle(t *testing.T) {
	lim := testLimits()
	lim.ReadHeader, lim.Idle, lim.MaxConns = time.Hour, time.Hour, 3
	addr := startServer(t, okHandler, lim)
	var idle []*rawConn
	for range lim.MaxConns {
		c := dial(t, addr)
		if status, _, err := c.get("/"); err != nil || status != http.StatusOK {
			t.Fatalf("GET under the cap: %d, %v", status, err)
		}
		idle = append(idle, c)
	}
	newcomer := dial(t, addr)
	if status, _, err := newcomer.get("/"); err != nil || status != http.StatusOK {
		t.Fatalf("GET over the cap: %d, %v; want it answered", status, err)
	}
	// Which one went depends on when the server saw each go idle, which
	// the client cannot see (TestConnLimiterClosesLongestIdle checks the
	// order): exactly one was closed, and the others still serve.
	closed := 0
	for _, c := range idle {
		if status, _, err := c.get("/"); err != nil || status != http.StatusOK {
			closed++
		}
	}
	if closed != 1 {
		t.Errorf("%d of the %d idle connections closed for the new one, want 1", closed, len(idle))
	}
}

// The limiter closes the connection idle the longest, in the order the
// server reported them idle, and never one busy with a request.
func TestConnLimiterClosesLongestIdle(t *testing.T) {
	ln, _, err := listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newConnLimiter(ln, 3, slog.New(slog.DiscardHandler))
	defer l.Close()
	conns := make([]*limitedConn, 3)
	for i := range conns {
		client, server := net.Pipe()
		defer client.Close()
		if err := l.acquire(); err != nil {
			t.Fatal(err)
		}
		conns[i] = &limitedConn{Conn: server, l: l}
	}
	l.track(conns[0], http.StateActive) // busy: never closed for a newcomer
	l.track(conns[2], http.StateIdle)
	l.track(conns[1], http.StateIdle)
	if err := l.acquire(); err != nil { // a newcomer over the cap
		t.Fatal(err)
	}
	if !conns[2].closed || conns[1].closed || conns[0].closed {
		t.Errorf("closed: busy %v, idle second %v, idle first %v; want only the first idle closed",
			conns[0].closed, conns[1].closed, conns[2].closed)
	}
}

// When every connection is busy with a request, a new one waits for one
// to end, and the busy ones are answered.
func TestServerCapWaitsWhenAllBusy(t *testing.T) {
	release := make(chan struct{})
	addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/busy" {
			<-release
		}
		io.WriteString(w, "ok")
	}), httpLimits{ReadHeader: time.Hour, Read: time.Hour, Write: time.Hour, Idle: time.Hour, MaxConns: 2})
	type answer struct {
		status int
		err    error
	}
	getAsync := func(path string) <-chan answer {
		c := dial(t, addr)
		ch := make(chan answer, 1)
		go func() {
			status, _, err := c.get(path)
			ch <- answer{status, err}
		}()
		return ch
	}
	busy := []<-chan answer{getAsync("/busy"), getAsync("/busy")}
	time.Sleep(100 * time.Millisecond) // both requests reach their handler
	waiting := getAsync("/")
	select {
	case a := <-waiting:
		t.Fatalf("a connection over the cap was answered (%d, %v) while every slot was busy", a.status, a.err)
	case <-time.After(300 * time.Millisecond):
	}
	close(release)
	for _, ch := range append(busy, waiting) {
		select {
		case a := <-ch:
			if a.err != nil || a.status != http.StatusOK {
				t.Errorf("answer: %d, %v; want 200", a.status, a.err)
			}
		case <-time.After(time.Minute):
			t.Fatal("no answer within a minute of the busy requests' end")
		}
	}
}

// An event stream ends after its lifetime; other requests have none.
func TestServerEndsStreamsAfterLifetime(t *testing.T) {
	lim := testLimits()
	lim.Idle, lim.StreamLifetime = time.Hour, 200*time.Millisecond
	addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		http.NewResponseController(w).Flush()
		<-r.Context().Done()
	}), lim)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/v1/requests/x/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatalf("the stream did not end by itself: %v", err)
	}
}

// The servers' caps leave reservedFDs (or a quarter of a small limit) for
// the rest of the process, even with all of `up`'s servers running.
func TestMaxConnsLeavesDescriptors(t *testing.T) {
	for _, c := range []struct{ nofile, api, ai, metrics int }{
		{nofile: 1 << 20, api: maxAPIConns, ai: aiMaxConns, metrics: metricsMaxConns},
		{nofile: 20000, api: 20000 - reservedFDs - 2*aiMaxConns - metricsMaxConns - pprofMaxConns, ai: aiMaxConns, metrics: metricsMaxConns},
		{nofile: 1024, api: 768 - 2*96 - 12 - 6, ai: 96, metrics: 12},
		{nofile: 16, api: 12 - 2*1, ai: 1, metrics: 1},
	} {
		api, ai, metrics := maxConns(apiServer, c.nofile), maxConns(aiServer, c.nofile), maxConns(metricsServer, c.nofile)
		if api != c.api || ai != c.ai || metrics != c.metrics {
			t.Errorf("maxConns with %d descriptors: api %d, ai %d, metrics %d; want %d, %d, %d", c.nofile, api, ai, metrics, c.api, c.ai, c.metrics)
		}
		if reserve := c.nofile - (api + 2*ai + metrics + maxConns(pprofServer, c.nofile)); c.nofile >= 1024 && reserve < min(reservedFDs, c.nofile/4) {
			t.Errorf("with %d descriptors the servers may take all but %d", c.nofile, reserve)
		}
	}
}

// Headers over maxHeaderBytes are refused (431) as they arrive: a client
// that has not authenticated cannot make the server hold a megabyte.
func TestServerRefusesLargeHeaders(t *testing.T) {
	addr := startServer(t, okHandler, testLimits())
	c := dial(t, addr)
	fmt.Fprintf(c, "GET /v1/styles HTTP/1.1\r\nHost: test\r\nX-Big: %s\r\n\r\n", strings.Repeat("x", 2*maxHeaderBytes))
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("a request with %d bytes of headers: %v, %v; want 431", 2*maxHeaderBytes, resp, err)
	}
	resp.Body.Close()
}

// isEventStream is what limitStreams and endStreamsWith go by: a GET of a
// path in /events, whatever Accept says.
func TestIsEventStream(t *testing.T) {
	for _, c := range []struct {
		method, path, accept string
		want                 bool
	}{
		{http.MethodGet, "/v1/requests/x/events", "", true},
		{http.MethodGet, "/v1/requests/x/events", "text/event-stream", true},
		{http.MethodPost, "/v1/requests", "text/event-stream", false},
		{http.MethodGet, "/v1/requests/x", "text/event-stream", false},
		{http.MethodHead, "/v1/requests/x/events", "", false},
	} {
		r := httptest.NewRequest(c.method, c.path, nil)
		r.Header.Set("Accept", c.accept)
		if got := isEventStream(r); got != c.want {
			t.Errorf("isEventStream(%s %s, Accept %q) = %v; want %v", c.method, c.path, c.accept, got, c.want)
		}
	}
}

func TestStreamLifetimeOnlyForStreams(t *testing.T) {
	lim := testLimits()
	lim.StreamLifetime = time.Nanosecond
	addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, fmt.Sprint(r.Context().Err()))
	}), lim)
	c := dial(t, addr)
	if _, body, err := c.get("/v1/styles"); err != nil || !strings.Contains(body, "nil") {
		t.Fatalf("an ordinary request's context: %q, %v; want it alive", body, err)
	}
}
