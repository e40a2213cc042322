package main

import (
	"container/list"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// How every HTTP server of genpipe (the API and its page, the simulated
// AIs, the -metrics-addr and -pprof-addr servers) stands up to slow, idle and too many
// clients. A connection costs a file descriptor and some memory however
// little it sends, and the descriptors are shared with the process's Kafka
// clients and database: so every phase of a connection has a deadline
// (httpLimits), and each server holds a bounded number of connections
// (connLimiter), the caps of a process's servers together leaving
// reservedFDs for everything else (maxConns).

// httpLimits are what an HTTP server allows each connection, and how many
// connections it holds at once.
type httpLimits struct {
	// ReadHeader bounds a request's line and headers, from its first
	// byte; on a new connection, from the accept, so a client that
	// connects and sends nothing is cut after it.
	ReadHeader time.Duration
	// Read bounds a whole request, headers and body: a body trickling in
	// is cut, and its handler reads an error. The handler's own time does
	// not count (net/http lifts the deadline once the body is read).
	Read time.Duration
	// Write bounds each answer, from the end of the request's headers to
	// its last byte, so it must outlast the slowest handler. Event
	// streams push their own deadline forward on every write (api/sse.go).
	Write time.Duration
	// Idle bounds how long a keep-alive connection waits for its next
	// request.
	Idle time.Duration
	// StreamLifetime ends an event stream (SSE) that is still open after
	// it; the client reconnects (the page does, as EventSource does) and
	// resumes after the last event it got (Last-Event-ID). 0: no end.
	StreamLifetime time.Duration
	// MaxConns caps the connections open at once; see connLimiter.
	MaxConns int
}

// The limits of genpipe's HTTP servers.
const (
	// defaultReadHeaderTimeout: headers fit in one packet; ten seconds is
	// generous for the slowest client.
	defaultReadHeaderTimeout = 10 * time.Second
	// defaultReadTimeout: the largest body any server takes is the API's
	// 1 MiB of JSON (the image goes to the object store, never through
	// the API), which needs 50 KiB/s to arrive in time; a body trickling
	// at 1 byte/s is cut after 20 s.
	defaultReadTimeout = 20 * time.Second
	// defaultWriteTimeout outlasts the slowest handler: an AI call, which
	// the AI client gives up on after 60 s (aiclient.DefaultTimeout), and
	// a submission, which waits for Kafka for at most
	// genpipe.DefaultPublishWait plus three quarters of
	// genpipe.DefaultPublishLease.
	defaultWriteTimeout = 2 * time.Minute
	// defaultIdleTimeout: a keep-alive connection unused for a minute is
	// closed; clients reopen one when they need it.
	defaultIdleTimeout = time.Minute
	// defaultStreamLifetime: an event stream ends after 30 minutes, far
	// longer than a request normally takes, so that a stream held open
	// by a client that never reads holds its connection for no longer.
	defaultStreamLifetime = 30 * time.Minute
	// maxHeaderBytes bounds a request's line and headers, which a server
	// holds in memory until they end, for any client before it
	// authenticates. The largest genpipe reads is an API key (at most 1
	// KiB); 32 KiB leaves room for a browser's cookies of other apps on the
	// same host. net/http's default is 1 MiB: 300 connections held half
	// sent took 300 MiB.
	maxHeaderBytes = 32 << 10
)

// Connection caps. A Go HTTP server holds an idle connection for about 10
// KiB (a goroutine and a read buffer; see the process test) and one
// descriptor.
const (
	// reservedFDs are the file descriptors that no server's connections
	// may take: the process's Kafka, database and object-store clients,
	// the AI and webhook clients, its files, and in `genpipe up` the
	// embedded broker, object store and database. maxConns keeps them
	// free whatever the clients do.
	reservedFDs = 1024
	// maxAPIConns caps the API's connections however many descriptors
	// the process may open: 50,000 connections cost about 500 MiB.
	maxAPIConns = 50_000
	// aiMaxConns caps a simulated AI's connections: its callers are
	// workers, each holding at most its stage's capacity of connections.
	aiMaxConns = 1024
	// metricsMaxConns caps a -metrics-addr server's connections: a
	// scraper and a health check.
	metricsMaxConns = 64
	// pprofMaxConns caps a -pprof-addr server's connections: a person or
	// two taking profiles.
	pprofMaxConns = 8
)

// defaultFileLimit is the descriptor limit assumed where it cannot be read.
const defaultFileLimit = 8192

// serverRole says which of the process's HTTP servers one is, and so its
// share of the process's file descriptors.
type serverRole int

const (
	apiServer     serverRole = iota // the API and its page: open to every client
	aiServer                        // a simulated AI service
	metricsServer                   // a -metrics-addr server
	pprofServer                     // a -pprof-addr server
)

// maxConns returns how many connections a server of role may hold in a
// process that may open nofile descriptors. reservedFDs (a quarter of
// nofile when that is less) are kept for the rest of the process; the
// servers share what is left, the API taking what the other servers of
// `genpipe up` (two AIs, a metrics and a pprof server) leave, so that together
// they never take the reserve, whichever of them run.
func maxConns(role serverRole, nofile int) int {
	budget := nofile - min(reservedFDs, nofile/4)
	ai, metrics, pprof := min(aiMaxConns, budget/8), min(metricsMaxConns, budget/64), min(pprofMaxConns, budget/128)
	switch role {
	case aiServer:
		return max(1, ai)
	case metricsServer:
		return max(1, metrics)
	case pprofServer:
		return max(1, pprof)
	default:
		return max(1, min(maxAPIConns, budget-2*ai-metrics-pprof))
	}
}

// defaultLimits returns the limits of a server of role in this process.
func defaultLimits(role serverRole) httpLimits {
	return httpLimits{ReadHeader: defaultReadHeaderTimeout, Read: defaultReadTimeout, Write: defaultWriteTimeout,
		Idle: defaultIdleTimeout, StreamLifetime: defaultStreamLifetime, MaxConns: maxConns(role, fileLimit())}
}

// listen opens a TCP listener and returns it with its http:// URL.
func listen(addr string) (net.Listener, string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("listen on %s: %w", addr, err)
	}
	return ln, "http://" + ln.Addr().String(), nil
}

// serveHTTP serves h on ln, as a server of role, until ctx is done, then
// shuts down gracefully. Requests under way finish (for up to 10 s); SSE
// streams end at once (see endStreamsWith).
func serveHTTP(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger, role serverRole) error {
	return serveWithLimits(ctx, ln, h, log, defaultLimits(role))
}

// serveWithLimits is serveHTTP with the limits spelled out: tests shorten
// them.
func serveWithLimits(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger, lim httpLimits) error {
	conns := newConnLimiter(ln, lim.MaxConns, log)
	srv := &http.Server{
		Handler:           endStreamsWith(ctx, limitStreams(h, lim.StreamLifetime)),
		ReadHeaderTimeout: lim.ReadHeader,
		MaxHeaderBytes:    maxHeaderBytes,
		ReadTimeout:       lim.Read,
		WriteTimeout:      lim.Write,
		IdleTimeout:       lim.Idle,
		ConnState:         conns.track,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	url := "http://" + ln.Addr().String()
	log.Info("serving", "url", url, "max_conns", lim.MaxConns)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(conns) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", url, err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shut down %s: %w", url, err)
	}
	return nil
}

// limitStreams ends every event stream after lifetime (0: never).
func limitStreams(h http.Handler, lifetime time.Duration) http.Handler {
	if lifetime <= 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isEventStream(r) {
			ctx, cancel := context.WithTimeout(r.Context(), lifetime)
			defer cancel()
			r = r.WithContext(ctx)
		}
		h.ServeHTTP(w, r)
	})
}

// connLimiter is a listener that holds at most max connections open. A
// connection that arrives over the cap takes the place of the one idle
// the longest (waiting for its first or its next request): an idle
// connection costs its client nothing to keep and the server a descriptor,
// and a client whose idle connection is closed opens another when it needs
// one, so no number of idle or silent connections keeps others out. Only
// when every connection is busy with a request does Accept wait for one to
// end, while the kernel's backlog holds the new ones; the timeouts bound
// how long that can be.
type connLimiter struct {
	net.Listener
	max int
	log *slog.Logger

	mu       sync.Mutex
	open     int
	idle     list.List // of *limitedConn, the longest idle first
	evicted  int       // idle connections closed for new ones since the last warning
	warnedAt time.Time

	wake      chan struct{} // a slot freed or a connection went idle; buffered, so signaling never blocks
	closed    chan struct{} // closed by Close: Accept stops waiting
	closeOnce sync.Once
}

// evictionWarnEvery spaces the warnings that the cap is reached: one a
// minute, however many connections it closes.
const evictionWarnEvery = time.Minute

func newConnLimiter(ln net.Listener, max int, log *slog.Logger) *connLimiter {
	return &connLimiter{Listener: ln, max: max, log: log, wake: make(chan struct{}, 1), closed: make(chan struct{})}
}

// Accept accepts a connection, then makes room for it under the cap.
func (l *connLimiter) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if err := l.acquire(); err != nil {
		c.Close()
		return nil, err
	}
	return &limitedConn{Conn: c, l: l}, nil
}

// acquire takes a slot: a free one, or the longest-idle connection's,
// which it closes; with neither, it waits for a connection to close or to
// go idle.
func (l *connLimiter) acquire() error {
	for {
		l.mu.Lock()
		if l.open < l.max {
			l.open++
			l.mu.Unlock()
			return nil
		}
		var victim *limitedConn
		if front := l.idle.Front(); front != nil {
			victim = l.idle.Remove(front).(*limitedConn)
			victim.elem = nil
			l.noteEviction()
		}
		l.mu.Unlock()
		if victim != nil {
			victim.Close() // releases its slot
			continue
		}
		select {
		case <-l.wake:
		case <-l.closed:
			return net.ErrClosed
		}
	}
}

// noteEviction counts an eviction and warns at most every
// evictionWarnEvery. l.mu is held.
func (l *connLimiter) noteEviction() {
	l.evicted++
	if now := time.Now(); now.Sub(l.warnedAt) >= evictionWarnEvery {
		l.log.Warn("HTTP connection cap reached: closing the longest-idle connections for new ones",
			"addr", l.Addr().String(), "max_conns", l.max, "closed", l.evicted)
		l.warnedAt, l.evicted = now, 0
	}
}

// release gives c's slot back.
func (l *connLimiter) release(c *limitedConn) {
	l.mu.Lock()
	l.open--
	c.closed = true
	if c.elem != nil {
		l.idle.Remove(c.elem)
		c.elem = nil
	}
	l.mu.Unlock()
	l.signal()
}

// signal wakes an Accept waiting for a slot, if any.
func (l *connLimiter) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// track is the server's ConnState hook: it keeps the idle connections in
// the order they became idle.
func (l *connLimiter) track(nc net.Conn, state http.ConnState) {
	c, ok := nc.(*limitedConn)
	if !ok {
		return
	}
	idle := state == http.StateNew || state == http.StateIdle
	l.mu.Lock()
	switch {
	case idle && c.elem == nil && !c.closed:
		c.elem = l.idle.PushBack(c)
	case !idle && c.elem != nil:
		l.idle.Remove(c.elem)
		c.elem = nil
	}
	l.mu.Unlock()
	if idle {
		l.signal() // an Accept waiting for a slot may take this one
	}
}

// Close closes the listener and stops an Accept waiting for a slot.
func (l *connLimiter) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// limitedConn is a connection holding a slot of its connLimiter until it
// closes.
type limitedConn struct {
	net.Conn
	l         *connLimiter
	elem      *list.Element // in l.idle while idle; guarded by l.mu
	closed    bool          // guarded by l.mu
	closeOnce sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(func() { c.l.release(c) })
	return err
}
