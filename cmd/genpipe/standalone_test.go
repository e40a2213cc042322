//go:build unix

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/genpipe/genpipe/aisim"
	"github.com/genpipe/genpipe/internal/testutil"
	"github.com/genpipe/genpipe/notifier"
)

// These tests run every part as its own OS process, built from this
// package and configured as docs/running.md's "Starting each part"
// shows: flags where it uses flags, GENPIPE_* environment variables for
// the rest.

// TestStandaloneProcesses starts broker, object store, both AI simulators,
// both workers, the notifier and the API as separate processes and takes a
// request from upload to a signed webhook through them.
func TestStandaloneProcesses(t *testing.T) {
	s := newStandalone(t)
	s.startBroker()
	s.startObjectStore()
	s.startAIs()
	s.startWorkers()
	s.startNotifier()
	s.startAPI()

	id, hooks := s.submit("standalone")
	v := s.waitTerminal(id, 60*time.Second)
	if v.Status != "done" || v.Result == nil {
		t.Fatalf("request ended %s (%s), want done with a result", v.Status, v.Error)
	}
	checkPNG(t, download(t, v.Result.PNGURL))
	checkPDF(t, download(t, v.Result.PDFURL))
	checkPPTX(t, download(t, v.Result.PPTXURL))
	s.checkWebhook(hooks, id)
}

// TestBrokerRestartKeepsQueuedRequests accepts a request while no worker
// runs, restarts the broker process on the same port and data dir, and only
// then starts the workers: the queued request must still reach done.
func TestBrokerRestartKeepsQueuedRequests(t *testing.T) {
	s := newStandalone(t)
	broker := s.startBroker()
	s.startObjectStore()
	s.startAIs()
	s.startNotifier()
	api := s.startAPI()

	id, hooks := s.submit("restart")
	var v requestView
	if resp := s.call("GET", "/v1/requests/"+id, nil, &v); resp.StatusCode != http.StatusOK || v.Status != "received" {
		t.Fatalf("GET before the restart: %s, status %q; want 200 received (no worker runs yet)", resp.Status, v.Status)
	}

	s.stop(broker)
	var ready struct {
		Checks map[string]string `json:"checks"`
	}
	if resp := s.call("GET", "/readyz", nil, &ready); resp.StatusCode != http.StatusServiceUnavailable || ready.Checks["kafka"] == "ok" {
		t.Fatalf("readyz with the broker stopped: %s %v, want 503 with kafka failing", resp.Status, ready.Checks)
	}
	s.startBroker()
	s.waitReady(api) // the API finds the new broker by itself
	s.startWorkers()

	v = s.waitTerminal(id, 60*time.Second)
	if v.Status != "done" || v.Result == nil {
		t.Fatalf("request ended %s (%s) after the broker restart, want done with a result", v.Status, v.Error)
	}
	checkPNG(t, download(t, v.Result.PNGURL))
	s.checkWebhook(hooks, id)
}

// standalone is a set of genpipe processes wired by environment variables.
type standalone struct {
	t      *testing.T
	bin    string // the genpipe binary
	dir    string // data dirs and logs
	env    []string
	secret string

	brokerPort                      int
	s3Addr, checkAddr, generateAddr string
	apiAddr, api                    string
	procs                           []*process
}

// stopOrder is the order in which the test stops the parts: each before
// the parts it depends on, as an operator would.
var stopOrder = []string{"api", "notifier", "worker-generate", "worker-check",
	"aisim-generate", "aisim-check", "objectstore", "broker"}

// process is one started genpipe process; its stdout and stderr go to log.
type process struct {
	name    string
	cmd     *exec.Cmd
	log     string
	started time.Time
	done    chan struct{} // closed once Wait returned
	waitErr error

	stopping bool // SIGTERM sent, or about to be
}

// newStandalone builds the binary for a system of processes that the test
// starts, and stops them when it ends. It skips the test under -short.
func newStandalone(t *testing.T) *standalone {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary and runs the parts as processes")
	}
	dir := t.TempDir()
	addrs := testutil.FreeAddrs(t, 5) // distinct: up takes two of them at once
	_, brokerPort, _ := net.SplitHostPort(addrs[0])
	s := &standalone{
		t: t, dir: dir, secret: "standalone-webhook-secret",
		bin:          buildGenpipe(t),
		s3Addr:       addrs[1],
		checkAddr:    addrs[2],
		generateAddr: addrs[3],
		apiAddr:      addrs[4],
	}
	s.brokerPort, _ = strconv.Atoi(brokerPort)
	s.api = "http://" + s.apiAddr
	described.Watch(s.api) // every part as its own process: checked against the description too
	if err := os.MkdirAll(filepath.Join(dir, "db"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Nothing from the environment the test runs in configures the parts.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GENPIPE_") {
			s.env = append(s.env, kv)
		}
	}
	s.env = append(s.env,
		"GENPIPE_KAFKA_BROKERS="+s.brokerAddr(),
		"GENPIPE_PARTITIONS=4",
		"GENPIPE_S3_ENDPOINT=http://"+s.s3Addr,
		"GENPIPE_S3_BUCKET=genpipe",
		"GENPIPE_S3_ACCESS_KEY=genpipe",
		"GENPIPE_S3_SECRET_KEY=change-me-please",
		"GENPIPE_DATABASE_URL=sqlite:"+filepath.Join(dir, "db", "genpipe.db"),
		"GENPIPE_WEBHOOK_SECRET="+s.secret,
		"GENPIPE_CHECK_AI_URL=http://"+s.checkAddr,
		"GENPIPE_GENERATE_AI_URL=http://"+s.generateAddr,
		// The tests' webhook receivers listen on loopback, which the API
		// refuses unless told.
		"GENPIPE_ALLOW_PRIVATE_WEBHOOKS=true",
	)
	// Stop what still runs, the API before the parts it uses and the broker
	// last, then show the logs if the test failed (or GENPIPE_TEST_LOG is set).
	t.Cleanup(func() {
		for _, name := range stopOrder {
			for _, p := range s.procs {
				if p.name == name {
					s.stop(p)
				}
			}
		}
		for _, p := range s.procs { // any not named in stopOrder
			s.stop(p)
		}
		if t.Failed() || os.Getenv("GENPIPE_TEST_LOG") != "" {
			for _, p := range s.procs {
				out, _ := os.ReadFile(p.log)
				t.Logf("---- %s (%s) output:\n%s", p.name, strings.Join(p.cmd.Args[1:], " "), out)
			}
		}
	})
	return s
}

// genpipeBinary is this package's command, built once per test binary:
// linking it takes 5–12 s on two cores, and a dozen process tests use it.
// TestMain removes its directory.
var genpipeBinary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// buildGenpipe returns the path of this package's command, building it on
// first use.
func buildGenpipe(t *testing.T) string {
	t.Helper()
	b, src := &genpipeBinary, packageDir(t)
	b.once.Do(func() {
		start := time.Now()
		if b.dir, b.err = os.MkdirTemp("", "genpipe-bin-"); b.err != nil {
			return
		}
		b.path = filepath.Join(b.dir, "genpipe")
		build := exec.Command("go", "build", "-o", b.path, ".")
		build.Dir = src
		if out, err := build.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		t.Logf("built %s in %s", b.path, time.Since(start).Round(time.Millisecond))
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// packageDir returns this package's source directory. The working
// directory does not say: the embedded object store of the in-process `up`
// (TestMain) changes it while it runs.
func packageDir(t *testing.T) string {
	t.Helper()
	var candidates []string
	if _, file, _, ok := runtime.Caller(0); ok {
		candidates = append(candidates, filepath.Dir(file))
	}
	if pwd := os.Getenv("PWD"); pwd != "" { // go test sets it to the package dir
		candidates = append(candidates, pwd)
	}
	for _, dir := range candidates {
		if _, err := os.Stat(filepath.Join(dir, "standalone_test.go")); err == nil {
			return dir
		}
	}
	t.Fatalf("cannot find the source of cmd/genpipe to build it (tried %v)", candidates)
	return ""
}

// start runs the binary with args and extra environment variables.
func (s *standalone) start(name string, env []string, args ...string) *process {
	s.t.Helper()
	return s.startCmd(name, exec.Command(s.bin, args...), env)
}

// startLimited starts a genpipe process that may open at most nofile file
// descriptors, soft and hard limit (through the shell's ulimit, as an
// operator's unit file or container runtime sets it).
func (s *standalone) startLimited(name string, nofile int, args ...string) *process {
	s.t.Helper()
	script := fmt.Sprintf(`ulimit -n %d && exec "$0" "$@"`, nofile)
	return s.startCmd(name, exec.Command("sh", append([]string{"-c", script, s.bin}, args...)...), nil)
}

// startCmd starts cmd as the process name, with env added to s.env.
func (s *standalone) startCmd(name string, cmd *exec.Cmd, env []string) *process {
	s.t.Helper()
	p := &process{name: name, done: make(chan struct{})}
	p.log = filepath.Join(s.dir, fmt.Sprintf("%02d-%s.log", len(s.procs), name))
	out, err := os.Create(p.log)
	if err != nil {
		s.t.Fatal(err)
	}
	defer out.Close() // the child has its own copy
	p.cmd = cmd
	base := s.env
	if slices.Contains(cmd.Args, "up") {
		// The AI URLs are the workers': up runs AIs of its own unless
		// given others (-check-ai-url, the same variables).
		base = slices.DeleteFunc(slices.Clone(base), func(kv string) bool {
			return strings.HasPrefix(kv, "GENPIPE_CHECK_AI_URL=") || strings.HasPrefix(kv, "GENPIPE_GENERATE_AI_URL=")
		})
	}
	p.cmd.Env = append(append([]string(nil), base...), env...)
	p.cmd.Stdout, p.cmd.Stderr = out, out
	if err := p.cmd.Start(); err != nil {
		s.t.Fatalf("start %s: %v", name, err)
	}
	p.started = time.Now()
	s.procs = append(s.procs, p)
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.done)
	}()
	return p
}

// stop sends SIGTERM, waits up to 15 s for the process to exit, then kills
// it. A process must exit within that time, with status 0.
func (s *standalone) stop(p *process) {
	s.t.Helper()
	if p.stopping {
		return
	}
	p.stopping = true
	select {
	case <-p.done:
		s.t.Errorf("%s (pid %d) had already exited: %v", p.name, p.cmd.Process.Pid, p.waitErr)
		return
	default:
	}
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		s.t.Errorf("SIGTERM %s (pid %d): %v", p.name, p.cmd.Process.Pid, err)
	}
	killed := false
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		killed = true
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	code := p.cmd.ProcessState.ExitCode()
	s.t.Logf("%s (pid %d): SIGTERM -> exit %d in %s", p.name, p.cmd.Process.Pid, code, time.Since(start).Round(time.Millisecond))
	switch {
	case killed:
		s.t.Errorf("%s (pid %d) did not exit within 15s of SIGTERM; killed", p.name, p.cmd.Process.Pid)
	case code != 0:
		s.t.Errorf("%s (pid %d) exited with %v after SIGTERM, want status 0", p.name, p.cmd.Process.Pid, p.waitErr)
	}
}

// checkAlive fails the test if a process that was not stopped has exited.
func (s *standalone) checkAlive() {
	s.t.Helper()
	for _, p := range s.procs {
		if p.stopping {
			continue
		}
		select {
		case <-p.done:
			s.t.Fatalf("%s (pid %d) exited on its own: %v", p.name, p.cmd.Process.Pid, p.waitErr)
		default:
		}
	}
}

// waitListening waits until addr accepts TCP connections.
func (s *standalone) waitListening(p *process, addr string) {
	s.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			s.t.Logf("%s listening on %s after %s", p.name, addr, time.Since(p.started).Round(time.Millisecond))
			return
		}
		s.checkAlive()
		if time.Now().After(deadline) {
			s.t.Fatalf("%s: nothing accepts on %s after 20s: %v", p.name, addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// brokerAddr is the address of the broker process.
func (s *standalone) brokerAddr() string { return "127.0.0.1:" + strconv.Itoa(s.brokerPort) }

func (s *standalone) startBroker() *process {
	s.t.Helper()
	p := s.start("broker", nil, "broker", "--port", strconv.Itoa(s.brokerPort), "--data-dir", filepath.Join(s.dir, "kafka"))
	s.waitListening(p, s.brokerAddr())
	return p
}

func (s *standalone) startObjectStore() *process {
	s.t.Helper()
	p := s.start("objectstore", nil, "objectstore", "--addr", s.s3Addr, "--data-dir", filepath.Join(s.dir, "objects"))
	s.waitListening(p, s.s3Addr)
	return p
}

// startAIs starts both AI simulators with short latencies.
func (s *standalone) startAIs() {
	s.t.Helper()
	s.startAIsWith([]string{"--latency", "50ms"}, []string{"--latency", "200ms"})
}

// startAIsWith starts both AI simulators, each with its own further flags,
// and waits until they listen.
func (s *standalone) startAIsWith(checkArgs, generateArgs []string) {
	s.t.Helper()
	check := s.start("aisim-check", nil, append([]string{"aisim", "--model", "check", "--addr", s.checkAddr}, checkArgs...)...)
	generate := s.start("aisim-generate", nil, append([]string{"aisim", "--model", "generate", "--addr", s.generateAddr}, generateArgs...)...)
	s.waitListening(check, s.checkAddr)
	s.waitListening(generate, s.generateAddr)
}

func (s *standalone) startWorkers() {
	s.t.Helper()
	s.start("worker-check", nil, "worker", "--stage", "check")
	s.start("worker-generate", nil, "worker", "--stage", "generate")
}

func (s *standalone) startNotifier() {
	s.t.Helper()
	s.start("notifier", nil, "notifier")
}

// startAPI starts the API and waits for /readyz to answer 200.
func (s *standalone) startAPI() *process {
	s.t.Helper()
	p := s.start("api", []string{"GENPIPE_ADDR=" + s.apiAddr}, "api")
	s.waitReady(p)
	return p
}

// waitReady waits for the API's /readyz to answer 200.
func (s *standalone) waitReady(p *process) {
	s.t.Helper()
	start := time.Now()
	deadline := start.Add(30 * time.Second)
	for {
		resp, err := http.Get(s.api + "/readyz")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				s.t.Logf("%s ready after %s", p.name, time.Since(start).Round(time.Millisecond))
				s.checkStartOutput(p)
				return
			}
			err = fmt.Errorf("readyz %s: %s", resp.Status, body)
		}
		s.checkAlive()
		if time.Now().After(deadline) {
			s.t.Fatalf("%s not ready after 30s: %v", p.name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkStartOutput fails the test when p printed anything but log
// records and its own lines while starting: a library's colored error
// line (the embedded object store's "[INTERNAL ERROR]" when two parts
// created the bucket at once) is noise an operator cannot act on.
func (s *standalone) checkStartOutput(p *process) {
	s.t.Helper()
	out, err := os.ReadFile(p.log)
	if err != nil {
		s.t.Fatal(err)
	}
	for line := range strings.Lines(string(out)) {
		if strings.Contains(line, "\x1b[") || strings.Contains(line, "[INTERNAL ERROR]") {
			s.t.Errorf("%s printed while starting: %q", p.name, line)
		}
	}
}

// call sends a JSON request to this system's API and decodes the answer.
func (s *standalone) call(method, path string, body any, out any) *http.Response {
	s.t.Helper()
	return s.callAs("", method, path, body, out)
}

// callAs is call with an API key ("" for none).
func (s *standalone) callAs(key, method, path string, body any, out any) *http.Response {
	s.t.Helper()
	var r io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			s.t.Fatal(err)
		}
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, s.api+path, r)
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			s.t.Fatalf("%s %s: %s: decode %q: %v", method, path, resp.Status, data, err)
		}
	}
	return resp
}

// submit uploads a PNG straight to the object store and asks for a slide
// with a webhook; it returns the request's id and the webhook receiver.
func (s *standalone) submit(title string) (string, *webhookReceiver) {
	s.t.Helper()
	return s.submitImage(pngImage(s.t, 320, 200), title)
}

// submitImage uploads img, a PNG, through the API and asks for a slide of
// it, with a webhook to a receiver of its own.
func (s *standalone) submitImage(img []byte, title string) (string, *webhookReceiver) {
	s.t.Helper()
	hooks := newWebhookReceiver(s.t)
	objectID := s.uploadAs("", img)
	if objectID == "" {
		s.t.FailNow()
	}
	var a accepted
	resp := s.call("POST", "/v1/requests", map[string]string{
		"objectId": objectID, "style": "forest", "title": title,
		"description": "Every part of the pipeline runs as its own process.",
		"webhookUrl":  hooks.url,
	}, &a)
	if resp.StatusCode != http.StatusAccepted || a.Status != "received" || a.ID == "" {
		s.t.Fatalf("POST /v1/requests: %s %+v, want 202 received", resp.Status, a)
	}
	return a.ID, hooks
}

// uploadAs uploads img, a PNG, through the API with key ("" for none) and
// returns its objectId; "" after a failure it reported (it may run on a
// goroutine of the test's).
func (s *standalone) uploadAs(key string, img []byte) string {
	s.t.Helper()
	var u upload
	if resp := s.callAs(key, "POST", "/v1/uploads", map[string]any{"contentType": "image/png", "contentLength": len(img)}, &u); resp.StatusCode != http.StatusCreated {
		s.t.Errorf("POST /v1/uploads: %s", resp.Status)
		return ""
	}
	if !strings.HasPrefix(u.UploadURL, "http://"+s.s3Addr+"/") {
		s.t.Errorf("upload URL %s is not on the object store process at %s", u.UploadURL, s.s3Addr)
		return ""
	}
	if status := put(s.t, u.UploadURL, "image/png", img); status != http.StatusOK {
		s.t.Errorf("PUT upload: %d", status)
		return ""
	}
	return u.ObjectID
}

// upArgs are the arguments of `genpipe up` on this system's addresses,
// its data in the test's directory, followed by extra.
func (s *standalone) upArgs(extra ...string) []string {
	return append([]string{"up", "--addr", s.apiAddr, "--s3-addr", s.s3Addr, "--data-dir", filepath.Join(s.dir, "up")}, extra...)
}

// waitTerminal polls GET until the request reaches a terminal status.
func (s *standalone) waitTerminal(id string, timeout time.Duration) requestView {
	s.t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		var v requestView
		if resp := s.call("GET", "/v1/requests/"+id, nil, &v); resp.StatusCode != http.StatusOK {
			s.t.Fatalf("GET request %s: %s", id, resp.Status)
		}
		switch v.Status {
		case "done", "rejected", "failed":
			s.t.Logf("request %s %s after %s of polling", id, v.Status, time.Since(start).Round(time.Millisecond))
			return v
		}
		s.checkAlive()
		if time.Now().After(deadline) {
			s.t.Fatalf("request %s still %s after %s", id, v.Status, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkWebhook waits for the signed done webhook of request id.
func (s *standalone) checkWebhook(hooks *webhookReceiver, id string) {
	s.t.Helper()
	d := hooks.wait(s.t, 15*time.Second)
	if err := notifier.Verify(s.secret, d.header, d.body, notifier.DefaultTolerance); err != nil {
		s.t.Fatalf("webhook does not verify with the secret given to the notifier: %v (headers %v)", err, d.header)
	}
	if notifier.Verify(s.secret+"x", d.header, d.body, notifier.DefaultTolerance) == nil {
		s.t.Fatal("webhook signature verifies with another secret too")
	}
	var v requestView
	if err := json.Unmarshal(d.body, &v); err != nil {
		s.t.Fatalf("webhook body %q: %v", d.body, err)
	}
	if v.ID != id || v.Status != "done" || v.Result == nil {
		s.t.Fatalf("webhook payload = %+v, want done with a result for %s", v, id)
	}
}

// TestThreeWorkersPerStageShareCapacity runs three worker processes per
// stage in front of AIs that take 6 calls at once: the workers' shares of
// the capacity (by partitions owned) must add up to at most 6, so the AIs,
// asked from outside, never saw more than 6 calls at once, refused none,
// and were called once per request.
func TestThreeWorkersPerStageShareCapacity(t *testing.T) {
	const capacity, requests = 6, 24
	s := newStandalone(t)
	s.startBroker()
	s.startObjectStore()
	capEnv := []string{"GENPIPE_CHECK_CAPACITY=" + strconv.Itoa(capacity), "GENPIPE_GENERATE_CAPACITY=" + strconv.Itoa(capacity)}
	s.startAIsWith([]string{"--latency", "100ms", "--capacity", strconv.Itoa(capacity)},
		[]string{"--latency", "300ms", "--capacity", strconv.Itoa(capacity)})
	for range 3 {
		s.start("worker-check", capEnv, "worker", "--stage", "check")
		s.start("worker-generate", capEnv, "worker", "--stage", "generate")
	}
	s.startNotifier()
	s.startAPI()
	s.waitStableGroup("genpipe-check", 3)
	s.waitStableGroup("genpipe-generate", 3)

	ids := make([]string, requests)
	for i := range ids {
		ids[i], _ = s.submit(fmt.Sprintf("shared capacity %d", i))
	}
	for _, id := range ids {
		if v := s.waitTerminal(id, 90*time.Second); v.Status != "done" {
			t.Fatalf("request %s ended %s (%s), want done", id, v.Status, v.Error)
		}
	}
	for name, addr := range map[string]string{"check": s.checkAddr, "generate": s.generateAddr} {
		var st struct {
			Calls, UniqueRequests, MaxConcurrent, OverCapacity int
		}
		resp, err := http.Get("http://" + addr + "/stats")
		if err != nil {
			t.Fatal(err)
		}
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s AI: %+v", name, st)
		if st.MaxConcurrent > capacity || st.OverCapacity != 0 || st.Calls != requests || st.UniqueRequests != requests {
			t.Errorf("%s AI saw %+v; want at most %d at once, no 429, one call per request (%d)", name, st, capacity, requests)
		}
	}
}

// waitStableGroup waits until group has members and is stable, so that no
// rebalance is under way when the load starts.
func (s *standalone) waitStableGroup(group string, members int) {
	s.t.Helper()
	adm := testutil.Admin(s.t, []string{s.brokerAddr()})
	deadline := time.Now().Add(30 * time.Second)
	for {
		described, err := adm.DescribeGroups(context.Background(), group)
		g := described[group]
		if err == nil && g.State == "Stable" && len(g.Members) == members {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("group %s not stable with %d members after 30s: state %q, %d members, err %v", group, members, g.State, len(g.Members), err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// kill ends p with SIGKILL, as a crash would: none of its shutdown code
// runs. The cleanup then leaves it alone.
func (s *standalone) kill(p *process) {
	s.t.Helper()
	p.stopping = true
	if err := p.cmd.Process.Kill(); err != nil {
		s.t.Fatalf("SIGKILL %s (pid %d): %v", p.name, p.cmd.Process.Pid, err)
	}
	<-p.done
	s.t.Logf("%s (pid %d): SIGKILL", p.name, p.cmd.Process.Pid)
}

// aiStats reads an AI simulator's GET /stats; base is its http:// URL.
func aiStats(base string) (aisim.Stats, error) {
	var st aisim.Stats
	resp, err := http.Get(base + "/stats")
	if err != nil {
		return st, fmt.Errorf("AI stats: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("AI stats: GET %s/stats: %s", base, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return st, fmt.Errorf("AI stats: decode: %w", err)
	}
	return st, nil
}

// produceRecords writes records straight to the broker (acks=all), past
// the API: how a test puts poison records into the pipeline's topics.
func (s *standalone) produceRecords(records ...*kgo.Record) {
	s.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.brokerAddr()))
	if err != nil {
		s.t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, records...).FirstErr(); err != nil {
		s.t.Fatalf("produce %d records: %v", len(records), err)
	}
}
