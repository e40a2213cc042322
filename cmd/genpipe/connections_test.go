//go:build linux

package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestUpManyIdleConnections runs `genpipe up` as its own process allowed
// 1024 file descriptors and opens twice as many connections to its API as
// it could hold, half of them silent and half sending a body that never
// arrives (before, 19,900 such connections took up to its descriptor
// limit: the API stopped answering and its Kafka clients failed). With
// them open, the API answers and a request goes through every stage; the
// server closes every one of them, after its read-header or read timeout
// or to make room for newer ones (measured and logged), and up never runs
// out of descriptors.
func TestUpManyIdleConnections(t *testing.T) {
	// Its own processes on ports of its own, waiting on them most of the
	// time: it runs beside the other long process tests.
	t.Parallel()
	const nofile = 1024
	s := newStandalone(t)
	up := s.startLimited("up", nofile, s.upArgs("--partitions", "4")...)
	s.waitReady(up)
	pid := up.cmd.Process.Pid
	t.Logf("up (pid %d) ready with %d descriptors open, limit %d; API cap %d connections",
		pid, openFDs(t, pid), nofile, maxConns(apiServer, nofile))

	held := holdConnections(t, s.apiAddr, 2*nofile)
	t.Logf("holding %d connections to the API; up has %d descriptors open", len(held), openFDs(t, pid))

	resp, err := http.Get(s.api + "/readyz")
	if err != nil {
		t.Fatalf("GET /readyz with %d connections held: %v", len(held), err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /readyz with %d connections held: %s", len(held), resp.Status)
	}
	id, hooks := s.submit("many connections")
	if v := s.waitTerminal(id, time.Minute); v.Status != "done" {
		t.Fatalf("request %s ended %s (%s) with %d connections held, want done", id, v.Status, v.Error, len(held))
	}
	s.checkWebhook(hooks, id)

	closedAfter := waitClosed(t, held, time.Minute)
	slices.Sort(closedAfter)
	t.Logf("the server closed all %d connections: median after %s, last after %s (read-header timeout %s, read timeout %s)",
		len(closedAfter), closedAfter[len(closedAfter)/2].Round(100*time.Millisecond),
		closedAfter[len(closedAfter)-1].Round(100*time.Millisecond), defaultReadHeaderTimeout, defaultReadTimeout)
	log, err := os.ReadFile(up.log)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(log), "too many open files") {
		t.Errorf("up ran out of file descriptors:\n%s", log)
	}
}

// heldConn is a connection the test opened and leaves the server to close.
type heldConn struct {
	net.Conn
	opened time.Time
}

// holdConnections opens n connections to addr: every other one sends
// nothing, the rest the headers of a POST whose body never comes.
func holdConnections(t *testing.T, addr string, n int) []heldConn {
	t.Helper()
	conns := make([]heldConn, 0, n)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for i := range n {
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			t.Fatalf("connection %d of %d: %v", i+1, n, err)
		}
		conns = append(conns, heldConn{Conn: c, opened: time.Now()})
		if i%2 == 1 {
			fmt.Fprintf(c, "POST /v1/requests HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{", addr)
		}
	}
	return conns
}

// waitClosed reads each connection until the server closes it, and returns
// how long after its opening each was closed. A connection still open
// after within fails the test.
func waitClosed(t *testing.T, conns []heldConn, within time.Duration) []time.Duration {
	t.Helper()
	closedAfter := make([]time.Duration, len(conns))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var open int
	for i, c := range conns {
		wg.Go(func() {
			c.SetReadDeadline(c.opened.Add(within))
			_, err := io.Copy(io.Discard, c) // an answer (408, 400) may come before the close
			closedAfter[i] = time.Since(c.opened)
			if err != nil && !isReset(err) {
				mu.Lock()
				open++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if open > 0 {
		t.Fatalf("%d of %d connections still open %s after they were opened", open, len(conns), within)
	}
	return closedAfter
}

// isReset reports whether err is the server closing a connection that had
// unread data (a reset), which is a close too.
func isReset(err error) bool {
	return strings.Contains(err.Error(), "connection reset by peer")
}

// openFDs counts the file descriptors pid has open.
func openFDs(t *testing.T, pid int) int {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(fds)
}
