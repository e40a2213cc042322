//go:build unix

package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/internal/testutil"
)

// These tests stop real genpipe processes with real signals, as an
// operator or an orchestrator does (see signals.go).

// TestSIGTERMWorkerFinishesInFlight sends SIGTERM to a generate worker
// while every request is at the Generative AI: the worker finishes them
// (they end done with no generate worker left running), exits 0, and
// commits past them, so a new worker calls the AI for none of them again.
func TestSIGTERMWorkerFinishesInFlight(t *testing.T) {
	const requests = 6
	s := newStandalone(t)
	worker := s.startGenerateWorker("2s", "10s")
	s.startNotifier()
	s.startAPI()

	ids := make([]string, requests)
	for i := range ids {
		ids[i], _ = s.submit(fmt.Sprintf("in flight %d", i))
	}
	s.waitAICounters(s.generateAddr, "every request at the Generative AI", func(c aiCounters) bool { return c.InFlight == requests })
	s.stop(worker)                   // SIGTERM; fails the test unless the worker exits 0 within 15 s
	s.checkGroupEmpty(groupGenerate) // it left: the group need not wait out its session
	if log := readLog(t, worker); strings.Contains(log, "gave up on running handlers") || !strings.Contains(log, "when=shutdown") {
		t.Errorf("the worker did not release its partitions with every handler finished:\n%s", log)
	}
	for _, id := range ids {
		if v := s.waitTerminal(id, 30*time.Second); v.Status != "done" {
			t.Fatalf("request %s ended %s (%s), want done by the worker that was stopping", id, v.Status, v.Error)
		}
	}
	s.checkCommittedToEnd(groupGenerate, genpipe.DefaultTopics().Checked, requests)

	// A new worker starts from the committed offsets: one more request is
	// the only new AI call.
	s.start("worker-generate", nil, "worker", "--stage", "generate")
	last, _ := s.submit("after the restart")
	if v := s.waitTerminal(last, 30*time.Second); v.Status != "done" {
		t.Fatalf("request %s ended %s (%s), want done", last, v.Status, v.Error)
	}
	c := s.aiCounters(s.generateAddr)
	t.Logf("Generative AI: %+v", c)
	if c.Calls != requests+1 || c.UniqueRequests != requests+1 {
		t.Errorf("Generative AI saw %d calls for %d requests, want one call for each of %d", c.Calls, c.UniqueRequests, requests+1)
	}
}

// TestSecondSignalExitsAtOnce sends SIGTERM to a generate worker whose
// request takes the Generative AI a minute, within a shutdown timeout of a
// minute, then SIGINT while it drains: it exits at once with status 130
// and says so.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	s := newStandalone(t)
	worker := s.startGenerateWorker("1m", "1m")
	s.startAPI()
	s.submit("second signal")
	s.waitAICounters(s.generateAddr, "the request at the Generative AI", func(c aiCounters) bool { return c.InFlight == 1 })

	worker.stopping = true // this test stops it
	signalProcess(t, worker, syscall.SIGTERM)
	s.waitLogLine(worker, "shutting down", 10*time.Second)
	signalProcess(t, worker, syscall.SIGINT)
	// Well within the minute the drain would take.
	select {
	case <-worker.done:
	case <-time.After(10 * time.Second):
		_ = worker.cmd.Process.Kill()
		<-worker.done
		t.Fatal("the worker did not exit within 10 s of the second signal")
	}
	if code := worker.cmd.ProcessState.ExitCode(); code != 128+int(syscall.SIGINT) {
		t.Errorf("the worker exited with %v after a second signal (SIGINT), want status %d", worker.waitErr, 128+int(syscall.SIGINT))
	}
	if log := readLog(t, worker); !strings.Contains(log, "second signal: exiting at once") {
		t.Errorf("no log line about the second signal:\n%s", log)
	}
}

// startGenerateWorker starts the broker, the object store, both AIs, the
// Generative AI taking generateLatency a call, and both workers, and returns
// the generate worker, which has shutdownTimeout: the one a test signals.
func (s *standalone) startGenerateWorker(generateLatency, shutdownTimeout string) *process {
	s.t.Helper()
	s.startBroker()
	s.startObjectStore()
	s.startAIsWith([]string{"--latency", "50ms"}, []string{"--latency", generateLatency})
	s.start("worker-check", nil, "worker", "--stage", "check")
	return s.start("worker-generate", []string{"GENPIPE_SHUTDOWN_TIMEOUT=" + shutdownTimeout}, "worker", "--stage", "generate")
}

// TestUpSIGTERMFinishesInFlight sends SIGTERM to `genpipe up` while its
// Generative AI works on a request: every part stops together, yet the AI
// call finishes and is committed, so the restarted system completes the
// request without calling the AI for it again.
func TestUpSIGTERMFinishesInFlight(t *testing.T) {
	s := newStandalone(t)
	args := s.upArgs("--check-latency", "50ms", "--generate-latency", "2s", "--partitions", "4")
	up := s.start("up", nil, args...)
	s.waitReady(up)
	id, _ := s.submit("up in flight")
	s.waitAICounters(printedURL(t, up, "Generative AI"), "the request at the Generative AI", func(c aiCounters) bool { return c.InFlight == 1 })
	s.stop(up) // SIGTERM; fails the test unless it exits 0 within 15 s
	if log := readLog(t, up); strings.Contains(log, "gave up on running handlers") {
		t.Errorf("up gave up on a running handler:\n%s", log)
	}

	again := s.start("up", nil, args...)
	s.waitReady(again)
	v := s.waitTerminal(id, 30*time.Second)
	if v.Status != "done" || v.Result == nil {
		t.Fatalf("request %s ended %s (%s) after the restart, want done with a result", id, v.Status, v.Error)
	}
	checkPNG(t, download(t, v.Result.PNGURL)) // the AI call really finished: its slide is stored
	if c := s.aiCounters(printedURL(t, again, "Generative AI")); c.Calls != 0 {
		t.Errorf("the restarted Generative AI was called %d times, want 0: the call in flight at SIGTERM was finished and committed", c.Calls)
	}
}

// TestUpSIGINTLeavesNoStaleStatus sends SIGINT to `genpipe up` while its
// Generative AI works on a request. up stops its parts in dependency order —
// the API, then the workers, which finish the call and publish done, then
// the notifier once it has recorded that, the AIs last — so when up has
// exited the status database already says done, not generating until the
// next start.
func TestUpSIGINTLeavesNoStaleStatus(t *testing.T) {
	s := newStandalone(t)
	up := s.start("up", nil, s.upArgs("--check-latency", "50ms", "--generate-latency", "2s", "--partitions", "4")...)
	s.waitReady(up)
	id, _ := s.submit("up interrupted mid-call")
	s.waitAICounters(printedURL(t, up, "Generative AI"), "the request at the Generative AI", func(c aiCounters) bool { return c.InFlight == 1 })

	up.stopping = true // this test stops it
	signalProcess(t, up, syscall.SIGINT)
	select {
	case <-up.done:
	case <-time.After(30 * time.Second):
		_ = up.cmd.Process.Kill()
		<-up.done
		t.Fatal("up did not exit within 30 s of SIGINT")
	}
	if code := up.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("up exited with %v after SIGINT, want status 0", up.waitErr)
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(s.dir, "up", "genpipe.db")+"?mode=ro") // in upArgs's data directory
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var status string
	if err := db.QueryRow(`SELECT status FROM requests WHERE id = ?`, id).Scan(&status); err != nil {
		t.Fatal(err)
	}
	if status != "done" {
		t.Errorf("after up exited the status database has request %s %s, want done: the call finished, its status was left unrecorded", id, status)
	}
}

// printedURL returns the address of the part that `up` printed its URL
// for, as in "  Generative AI   http://127.0.0.1:PORT".
func printedURL(t *testing.T, p *process, part string) string {
	t.Helper()
	for _, line := range strings.Split(readLog(t, p), "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), part+" "); ok {
			return strings.TrimPrefix(strings.TrimSpace(rest), "http://")
		}
	}
	t.Fatalf("%s printed no URL for %s", p.name, part)
	return ""
}

// TestServeHTTPShutdown cancels an HTTP server's context while an ordinary
// request and an event stream are under way: the server stops accepting
// connections and ends the stream at once, and the request still finishes.
func TestServeHTTPShutdown(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 2)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		if isEventStream(r) {
			<-r.Context().Done()
			return
		}
		select {
		case <-release:
			fmt.Fprint(w, "finished")
		case <-r.Context().Done():
			http.Error(w, "canceled", http.StatusServiceUnavailable)
		}
	})
	ln, url, err := listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- serveHTTP(ctx, ln, h, slog.New(slog.DiscardHandler), apiServer) }()
	request, stream := get(url+"/v1/slow"), get(url+"/v1/requests/x/events")
	<-started
	<-started

	cancel()
	select {
	case r := <-stream:
		if r.err != nil {
			t.Errorf("stream: %v", r.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the event stream did not end within 5 s of the shutdown")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second)
		if err != nil {
			break // no longer accepting
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("still accepting connections 5 s after the shutdown began")
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(release)
	if r := <-request; r.err != nil || r.status != http.StatusOK || r.body != "finished" {
		t.Errorf("request under way at shutdown: %d %q, %v; want 200 finished", r.status, r.body, r.err)
	}
	if err := <-served; err != nil {
		t.Errorf("serveHTTP: %v", err)
	}
}

type getResult struct {
	status int
	body   string
	err    error
}

// get GETs url in the background.
func get(url string) <-chan getResult {
	out := make(chan getResult, 1)
	go func() {
		resp, err := http.Get(url)
		if err != nil {
			out <- getResult{err: err}
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		out <- getResult{resp.StatusCode, string(body), err}
	}()
	return out
}

// aiCounters are the simulated AI's /stats.
type aiCounters struct {
	Calls, UniqueRequests, MaxConcurrent, OverCapacity, InFlight int
}

func (s *standalone) aiCounters(addr string) aiCounters {
	s.t.Helper()
	resp, err := http.Get("http://" + addr + "/stats")
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var c aiCounters
	if err := json.NewDecoder(resp.Body).Decode(&c); err != nil {
		s.t.Fatalf("AI stats: %v", err)
	}
	return c
}

// waitAICounters waits up to 30 s until the AI's counters satisfy cond.
func (s *standalone) waitAICounters(addr, what string, cond func(aiCounters) bool) {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c := s.aiCounters(addr)
		if cond(c) {
			s.t.Logf("%s: %+v", what, c)
			return
		}
		s.checkAlive()
		if time.Now().After(deadline) {
			s.t.Fatalf("not %s after 30s: %+v", what, c)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkCommittedToEnd checks that group committed every partition of topic
// up to its end, and that topic holds records records.
func (s *standalone) checkCommittedToEnd(group, topic string, records int) {
	s.t.Helper()
	adm := testutil.Admin(s.t, []string{s.brokerAddr()})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		s.t.Fatalf("end offsets of %s: %v", topic, err)
	}
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		s.t.Fatalf("committed offsets of %s: %v", group, err)
	}
	total := 0
	ends.Each(func(end kadm.ListedOffset) {
		total += int(end.Offset)
		c, ok := committed.Lookup(topic, end.Partition)
		if end.Offset > 0 && (!ok || c.At != end.Offset) {
			s.t.Errorf("%s committed %s/%d at %d (found: %v), want its end %d", group, topic, end.Partition, c.At, ok, end.Offset)
		}
	})
	if total != records {
		s.t.Errorf("%s holds %d records, want %d", topic, total, records)
	}
}

// checkGroupEmpty checks that group has no members.
func (s *standalone) checkGroupEmpty(group string) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	described, err := testutil.Admin(s.t, []string{s.brokerAddr()}).DescribeGroups(ctx, group)
	if err != nil {
		s.t.Fatalf("describe group %s: %v", group, err)
	}
	if g := described[group]; g.Err != nil || len(g.Members) != 0 {
		s.t.Errorf("group %s: state %q, %d members, err %v; want no members", group, g.State, len(g.Members), g.Err)
	}
}

// waitLogLine waits until p's output contains text.
func (s *standalone) waitLogLine(p *process, text string, timeout time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(readLog(s.t, p), text) {
		if time.Now().After(deadline) {
			s.t.Fatalf("%s did not log %q within %s", p.name, text, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func readLog(t *testing.T, p *process) string {
	t.Helper()
	out, err := os.ReadFile(p.log)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func signalProcess(t *testing.T, p *process, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("%s to %s (pid %d): %v", sig, p.name, p.cmd.Process.Pid, err)
	}
}

// `genpipe up -check-ai-url -generate-ai-url` calls the AI services it is
// given, each its own process here, and starts no simulated AI of its own:
// the request's calls are counted by the given services, and up prints
// their URLs.
func TestUpCallsTheGivenAIs(t *testing.T) {
	s := newStandalone(t)
	s.startAIs()
	checkURL, generateURL := "http://"+s.checkAddr, "http://"+s.generateAddr
	up := s.start("up", nil, s.upArgs("--check-ai-url", checkURL, "--generate-ai-url", generateURL, "--partitions", "4")...)
	s.waitReady(up)
	if got := printedURL(t, up, "Generative AI"); got != s.generateAddr {
		t.Errorf("up prints the Generative AI at %s; want the given %s", got, s.generateAddr)
	}
	id, _ := s.submit("up with AIs of its caller's")
	if v := s.waitTerminal(id, 30*time.Second); v.Status != "done" {
		t.Fatalf("request %s; want done", v.Status)
	}
	for what, url := range map[string]string{"Checking AI": checkURL, "Generative AI": generateURL} {
		if st, err := aiStats(url); err != nil || st.Calls != 1 {
			t.Errorf("the given %s counted %d calls (%v); want the request's 1", what, st.Calls, err)
		}
	}
}
