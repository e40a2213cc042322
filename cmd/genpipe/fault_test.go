//go:build unix

package main

import (
	"bufio"
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/aisim"
	"github.com/genpipe/genpipe/notifier"
)

// The fault tests run the whole system as separate OS processes (the
// standalone broker with its data on disk, the object store, both AIs, two
// workers per stage, the notifier and the API), put a few hundred requests
// through it, and inject one fault while they run. Each then checks what the
// issue promises: every accepted request ends done (or failed, with a
// webhook, where the fault is permanent), none is lost, and no AI call was
// paid for twice, as the AIs' own GET /stats count from outside.
//
// They take minutes, so they run only when asked:
//
//	GENPIPE_FAULT_TESTS=1 go test -count=1 -run TestFault -timeout 15m ./cmd/genpipe/

const (
	faultRequests   = 200 // requests per test
	faultSubmitters = 4   // goroutines submitting them
	// faultArrivals is the submission rate, per second: 200 requests
	// arrive over 8 s, so a fault injected a few seconds in hits the
	// submissions as well as the work in flight.
	faultArrivals = 25
	faultUploads  = 4 // images shared by the requests
	faultCapacity = 8 // each AI's slots, and the workers' capacity setting

	// faultTrigger is how many generate calls must have reached the AI
	// before the fault is injected: the pipeline is busy, most of the load
	// still ahead.
	faultTrigger = 40
	// faultOutage is how long the broker or the object store stays down.
	faultOutage = 3 * time.Second
	// faultSettle bounds the wait for every request to end; a request
	// still not terminal then counts as lost.
	faultSettle = 90 * time.Second
)

func requireFaultTests(t *testing.T) {
	t.Helper()
	if os.Getenv("GENPIPE_FAULT_TESTS") != "1" {
		t.Skip("fault test: starts a dozen processes and runs for up to a minute; " +
			"run with GENPIPE_FAULT_TESTS=1 go test -count=1 -run TestFault -timeout 15m ./cmd/genpipe/")
	}
}

// (a) A generate worker dies with kill -9 in the middle of its AI calls: its
// claims are taken over once their lease (2 s) runs out, its partitions
// once the group notices (session timeout 6 s), and nothing is paid twice.
func TestFaultKillGenerateWorker(t *testing.T) {
	r := newFaultRig(t, faultOptions{})
	rep := r.finish(r.midLoad("the worker was killed", func() { r.kill(r.workers["generate"][0]) }))
	rep.requireAllDone(t)
	if rep.takeovers["generate"] == 0 {
		t.Errorf("no generate claim was taken over: the killed worker held none, the kill missed the load")
	}
}

// (b) Two workers per stage join mid-load, then one of each stage leaves
// with SIGTERM: two rebalances per group while records are in flight.
func TestFaultAddAndRemoveWorkers(t *testing.T) {
	r := newFaultRig(t, faultOptions{})
	load := r.midLoad("the workers joined", func() {
		for range 2 {
			r.addWorker("check")
			r.addWorker("generate")
		}
		r.waitStableGroup(groupCheck, 4)
		r.waitStableGroup(groupGenerate, 4)
	})
	r.stop(r.workers["check"][0])
	r.stop(r.workers["generate"][0])
	rep := r.finish(load)
	rep.requireAllDone(t)
}

// (c) The broker process stops (SIGTERM) for a few seconds and starts again
// on the same port and data dir. Meanwhile submissions wait in the API's
// producer, or get 503 and are retried with their Idempotency-Key; workers
// and the notifier reconnect and rejoin their groups by themselves.
//
// The workers lose their partitions when their session (6 s) runs out with
// the broker away, with the generate calls of the first round (8 s each)
// still under way. Those calls run to their end and are recorded, so none
// is abandoned (a real provider bills an abandoned call) and none is made
// again: the partitions' next owners re-emit the recorded results.
func TestFaultBrokerRestart(t *testing.T) {
	r := newFaultRig(t, faultOptions{requests: 32, trigger: faultCapacity, generateArgs: []string{"--latency", "8s"}})
	rep := r.finish(r.midLoad("the broker restarted", func() { r.outage(&r.broker, r.startBroker) }))
	rep.requireAllDone(t)
	if n := rep.check.Abandoned + rep.generate.Abandoned; n != 0 {
		t.Errorf("%d AI calls abandoned (check %d, generate %d), want 0: a record given up mid-call must let its call finish",
			n, rep.check.Abandoned, rep.generate.Abandoned)
	}
}

// (d) Both AIs answer 10% of calls 500 and 10% 429 on arrival. With 10
// attempts a stage fails for good with probability 0.2^10 ≈ 1e-7, so every
// request ends done; each 429 also slows the engine down (AIMD).
func TestFaultAIErrors(t *testing.T) {
	rates := []string{"--fail-rate", "0.1", "--busy-rate", "0.1"}
	r := newFaultRig(t, faultOptions{aiAttempts: 10, checkArgs: rates, generateArgs: rates})
	rep := r.finish(r.startLoad())
	rep.requireAllDone(t)
	for _, ai := range []struct {
		name string
		st   aisim.Stats
	}{{"check", rep.check}, {"generate", rep.generate}} {
		if ai.st.InjectedFaults == 0 || ai.st.InjectedBusy == 0 {
			t.Errorf("%s AI injected %d 500s and %d 429s; want some of each at 10%%", ai.name, ai.st.InjectedFaults, ai.st.InjectedBusy)
		}
	}
}

// (e) The object store process is down for a few seconds mid-load, then
// restarts on the same address and data dir. AI calls that need it answer
// 502 meanwhile and are retried; 12 attempts give a backoff window of about
// a minute (delays up to 0.25, 0.5, 1, 2, 4, 8, then 10 s each), far longer
// than the outage, so every request ends done.
//
// Down for longer than that window, a request whose attempts run out ends
// failed ("generating the slide failed after 12 attempt(s): ..."), its
// record goes to the dead-letter topic with that reason and the attempt
// count, and the user gets the failed status by GET, SSE and webhook;
// `genpipe dlq replay` tries it again once the store is back.
// TestFaultGenerateAIDownForGood checks that path.
func TestFaultObjectStoreDown(t *testing.T) {
	r := newFaultRig(t, faultOptions{aiAttempts: 12})
	rep := r.finish(r.midLoad("the object store restarted", func() { r.outage(&r.objects, r.startObjectStore) }))
	rep.requireAllDone(t)
	if rep.check.Failed+rep.generate.Failed == 0 {
		t.Errorf("no AI call failed while the object store was down; the fault did not hit the load")
	}
}

// (f) Poison records (undecodable, an unknown version, the wrong event type,
// keyless and empty) are written into the requests, checked and results
// topics mid-load. Each one goes to the dead-letter topic with a reason
// (from the check and generate workers and the notifier). No partition
// stops: every request still ends done.
func TestFaultPoisonRecords(t *testing.T) {
	r := newFaultRig(t, faultOptions{})
	topics := genpipe.DefaultTopics()
	sent := map[string][]*kgo.Record{}
	rep := r.finish(r.midLoad("the poison records were written", func() {
		for _, topic := range []string{topics.Requests, topics.Checked, topics.Results} {
			sent[topic] = poisonRecords(t, topic)
			r.produceRecords(sent[topic]...)
		}
	}))
	rep.requireAllDone(t)

	got := map[string][]deadLetterLine{}
	for _, d := range rep.deadLetters {
		got[d.Topic] = append(got[d.Topic], d)
	}
	for _, topic := range topics.All()[:3] {
		r.requirePoisonDeadLettered(topic, sent[topic], got[topic])
	}
	if len(rep.deadLetters) != len(got[topics.Requests])+len(got[topics.Checked])+len(got[topics.Results]) {
		t.Errorf("dead letters from other topics: %+v", rep.deadLetters)
	}
}

// The permanent fault: the Generative AI answers every call 500. With 2
// attempts each request fails for good, and the user is told: status
// failed with a reason, a failed webhook, and one dead letter per request
// with the reason and the attempt count.
func TestFaultGenerateAIDownForGood(t *testing.T) {
	const requests = 40
	r := newFaultRig(t, faultOptions{requests: requests, aiAttempts: 2, generateArgs: []string{"--fail-rate", "1"}})
	rep := r.finish(r.startLoad())
	rep.requireTerminal(t)
	if rep.failed != rep.accepted || rep.generate.Succeeded != 0 {
		t.Errorf("%d of %d requests failed, generate AI succeeded %d times; want every request failed, no success",
			rep.failed, rep.accepted, rep.generate.Succeeded)
	}
	if rep.generate.InjectedFaults != int64(2*rep.accepted) {
		t.Errorf("generate AI injected %d faults, want 2 attempts × %d requests", rep.generate.InjectedFaults, rep.accepted)
	}
	byKey := map[string]deadLetterLine{}
	for _, d := range rep.deadLetters {
		byKey[d.Key] = d
	}
	for _, id := range rep.ids {
		v := rep.views[id]
		d, ok := byKey[id]
		switch {
		case !strings.Contains(v.Error, "failed after 2 attempt(s)"):
			t.Errorf("request %s: error %q, want the reason with the attempts", id, v.Error)
		case !ok || d.Stage != "generate" || d.Attempts != 2 || d.Reason != v.Error || d.Topic != genpipe.DefaultTopics().Checked:
			t.Errorf("request %s: dead letter %+v (found %v), want one from generate with 2 attempts and reason %q", id, d, ok, v.Error)
		}
	}
	if len(rep.deadLetters) != rep.accepted {
		t.Errorf("%d dead letters for %d failed requests, want one each", len(rep.deadLetters), rep.accepted)
	}
}

// faultOptions configure a faultRig. Zero values are the defaults.
type faultOptions struct {
	requests                int      // default faultRequests
	trigger                 int64    // generate calls before the fault; default faultTrigger
	aiAttempts              int      // the workers' -ai-attempts; default the command's
	checkArgs, generateArgs []string // extra flags for each AI simulator
}

// faultRig is a standalone system under load, with handles on the
// processes a fault test stops, kills or adds.
type faultRig struct {
	*standalone
	opts            faultOptions
	broker, objects *process
	workers         map[string][]*process // by stage
	workerEnv       []string
	hooks           *hookLog
	objectIDs       []string
	checkAI, genAI  string // the AIs' base URLs
}

func newFaultRig(t *testing.T, o faultOptions) *faultRig {
	t.Helper()
	requireFaultTests(t)
	if o.requests == 0 {
		o.requests = faultRequests
	}
	if o.trigger == 0 {
		o.trigger = faultTrigger
	}
	r := &faultRig{standalone: newStandalone(t), opts: o, workers: map[string][]*process{}}
	r.checkAI, r.genAI = "http://"+r.checkAddr, "http://"+r.generateAddr
	capacity := strconv.Itoa(faultCapacity)
	r.workerEnv = []string{"GENPIPE_CHECK_CAPACITY=" + capacity, "GENPIPE_GENERATE_CAPACITY=" + capacity,
		"GENPIPE_CLAIM_LEASE=2s", "GENPIPE_SESSION_TIMEOUT=6s"} // 6 s: the broker's minimum session timeout
	if o.aiAttempts > 0 {
		r.workerEnv = append(r.workerEnv, "GENPIPE_AI_ATTEMPTS="+strconv.Itoa(o.aiAttempts))
	}
	r.broker = r.startBroker()
	r.objects = r.startObjectStore()
	r.startAIsWith(append([]string{"--latency", "20ms", "--capacity", capacity}, o.checkArgs...),
		append([]string{"--latency", "100ms", "--capacity", capacity}, o.generateArgs...))
	for range 2 {
		r.addWorker("check")
		r.addWorker("generate")
	}
	r.startNotifier()
	r.startAPI()
	r.waitStableGroup(groupCheck, 2)
	r.waitStableGroup(groupGenerate, 2)
	r.hooks = newHookLog(t, r.secret)
	for range faultUploads {
		r.objectIDs = append(r.objectIDs, r.uploadImage())
	}
	return r
}

func (r *faultRig) addWorker(stage string) {
	r.t.Helper()
	p := r.start("worker-"+stage, r.workerEnv, "worker", "--stage", stage)
	r.workers[stage] = append(r.workers[stage], p)
}

// uploadImage gets an upload URL from the API and PUTs a PNG to it.
func (r *faultRig) uploadImage() string {
	r.t.Helper()
	var u upload
	img := pngImage(r.t, 320, 200)
	if resp := r.call("POST", "/v1/uploads", map[string]any{"contentType": "image/png", "contentLength": len(img)}, &u); resp.StatusCode != http.StatusCreated {
		r.t.Fatalf("POST /v1/uploads: %s", resp.Status)
	}
	if status := put(r.t, u.UploadURL, "image/png", img); status != http.StatusOK {
		r.t.Fatalf("PUT upload: %d", status)
	}
	return u.ObjectID
}

// waitGenerateCalls waits until the Generative AI has taken n calls of
// load l: the moment to inject a fault.
func (r *faultRig) waitGenerateCalls(l *load, n int64) {
	r.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, err := aiStats(r.genAI)
		if err == nil && st.Calls >= n {
			r.t.Logf("injecting the fault after %d generate calls (%d succeeded)", st.Calls, st.Succeeded)
			return
		}
		r.checkAlive()
		l.requireSubmitting(r.t)
		if time.Now().After(deadline) {
			r.t.Fatalf("the Generative AI took fewer than %d calls in 60s (%+v, %v)", n, st, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// midLoad starts the load and, once the Generative AI has taken
// the trigger's calls of it (faultTrigger by default), injects fault; it
// returns the load, under way. what names what fault did, for
// requireMidLoad.
func (r *faultRig) midLoad(what string, fault func()) *load {
	r.t.Helper()
	l := r.startLoad()
	r.waitGenerateCalls(l, r.opts.trigger)
	fault()
	r.requireMidLoad(what)
	return l
}

// outage stops the part *p (SIGTERM), leaves it down for faultOutage, and
// starts it again with start, on the same address and data dir.
func (r *faultRig) outage(p **process, start func() *process) {
	r.t.Helper()
	r.stop(*p)
	time.Sleep(faultOutage)
	*p = start()
}

// requireMidLoad fails the test if the load was over by the time a fault
// (what) took effect: the test would then prove nothing.
func (r *faultRig) requireMidLoad(what string) {
	r.t.Helper()
	st, err := aiStats(r.genAI)
	if err != nil {
		r.t.Fatal(err)
	}
	if st.UniqueSucceeded >= int64(r.opts.requests) {
		r.t.Fatalf("every request was generated before %s: the fault missed the load", what)
	}
	r.t.Logf("%s with %d of %d requests generated", what, st.UniqueSucceeded, r.opts.requests)
}

// load is a batch of requests arriving at faultArrivals a second,
// submitted by faultSubmitters goroutines, each retrying what the API cannot
// take now (429, 5xx, no connection) with the same Idempotency-Key, as a
// careful client does.
type load struct {
	start   time.Time
	done    chan struct{}
	mu      sync.Mutex
	ids     []string // accepted (202)
	retries int
	errs    []error // submissions given up
}

// requireSubmitting fails the test when every submission has ended and
// some were given up: what follows would wait for requests never made.
func (l *load) requireSubmitting(t *testing.T) {
	t.Helper()
	select {
	case <-l.done:
	default:
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.errs) > 0 {
		t.Fatalf("%d submissions given up, the first: %v", len(l.errs), l.errs[0])
	}
}

func (r *faultRig) startLoad() *load {
	l := &load{start: time.Now(), done: make(chan struct{})}
	next := make(chan int)
	go func() {
		defer close(next)
		tick := time.NewTicker(time.Second / faultArrivals)
		defer tick.Stop()
		for i := range r.opts.requests {
			next <- i
			<-tick.C
		}
	}()
	var wg sync.WaitGroup
	for range faultSubmitters {
		wg.Go(func() {
			for i := range next {
				id, retries, err := r.submitOne(i)
				l.mu.Lock()
				l.retries += retries
				if err != nil {
					l.errs = append(l.errs, err)
				} else {
					l.ids = append(l.ids, id)
				}
				l.mu.Unlock()
			}
		})
	}
	go func() { wg.Wait(); close(l.done) }()
	return l
}

var submitClient = &http.Client{Timeout: 15 * time.Second}

// submitOne submits request number i until the API accepts it, or for a
// minute at most; it runs outside the test goroutine, so it returns errors.
func (r *faultRig) submitOne(i int) (id string, retries int, err error) {
	body, _ := json.Marshal(map[string]string{
		"objectId": r.objectIDs[i%len(r.objectIDs)], "style": genpipe.Styles[i%len(genpipe.Styles)].ID,
		"title": fmt.Sprintf("Fault test %d", i), "description": "A request under load while a part of the system fails.",
		"webhookUrl": r.hooks.url,
	})
	key := fmt.Sprintf("%s-%d", r.t.Name(), i)
	deadline := time.Now().Add(time.Minute)
	for ; ; retries++ {
		ans, err := postRequest(r.api, key, body)
		switch {
		case err == nil && ans.status == http.StatusAccepted:
			return ans.id, retries, nil
		case err == nil && ans.status != http.StatusTooManyRequests && ans.status < 500:
			return "", retries, fmt.Errorf("request %d: POST /v1/requests answered %d, not retryable: %s", i, ans.status, ans.body)
		case time.Now().After(deadline):
			return "", retries, fmt.Errorf("request %d: not accepted within a minute: last %d %s %v", i, ans.status, ans.body, err)
		}
		time.Sleep(max(ans.retryAfter, 200*time.Millisecond))
	}
}

// answer is the API's answer to a POST /v1/requests.
type answer struct {
	status     int
	id         string // of an accepted request
	retryAfter time.Duration
	body       string
}

// postRequest sends one POST /v1/requests.
func postRequest(api, idempotencyKey string, body []byte) (answer, error) {
	var ans answer
	req, err := http.NewRequest(http.MethodPost, api+"/v1/requests", bytes.NewReader(body))
	if err != nil {
		return ans, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", idempotencyKey)
	resp, err := submitClient.Do(req)
	if err != nil {
		return ans, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	ans.status, ans.body = resp.StatusCode, string(data)
	if err != nil {
		return ans, fmt.Errorf("read the answer: %w", err)
	}
	if secs, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil {
		ans.retryAfter = time.Duration(secs) * time.Second
	}
	if ans.status == http.StatusAccepted {
		var a accepted
		if err := json.Unmarshal(data, &a); err != nil || a.ID == "" {
			return ans, fmt.Errorf("202 with body %q: %v", data, err)
		}
		ans.id = a.ID
	}
	return ans, nil
}

// faultReport is what a fault test saw once the load settled.
type faultReport struct {
	ids                       []string // accepted
	views                     map[string]requestView
	submitted, accepted       int
	retries, givenUp          int
	done, failed, rejected    int
	lost                      []string // accepted, never terminal
	webhooks, missingWebhooks int
	deadLetters               []deadLetterLine
	check, generate           aisim.Stats
	takeovers                 map[string]int // claims taken over, by stage
	elapsed                   time.Duration
}

// finish waits for the submissions, then for every accepted request to
// end and its webhook to arrive, collects the figures and logs them.
func (r *faultRig) finish(l *load) *faultReport {
	r.t.Helper()
	select {
	case <-l.done:
	case <-time.After(3 * time.Minute): // submitOne gives up after a minute
		r.t.Fatal("submissions did not finish")
	}
	rep := &faultReport{ids: l.ids, submitted: r.opts.requests, accepted: len(l.ids),
		retries: l.retries, givenUp: len(l.errs)}
	for _, err := range l.errs {
		r.t.Errorf("submission given up: %v", err)
	}
	rep.views = r.waitAllTerminal(l.ids)
	rep.elapsed = time.Since(l.start)
	rep.count()
	rep.webhooks, rep.missingWebhooks = r.hooks.waitFor(r.t, rep.views, 30*time.Second)
	rep.deadLetters = r.listDeadLetters()
	var err error
	if rep.check, err = aiStats(r.checkAI); err != nil {
		r.t.Fatal(err)
	}
	if rep.generate, err = aiStats(r.genAI); err != nil {
		r.t.Fatal(err)
	}
	rep.takeovers = r.takeovers()
	rep.log(r.t)
	r.requireNoDuplicates(rep)
	r.requireLedgerAgrees(rep)
	r.checkAlive()
	return rep
}

// waitAllTerminal polls GET /v1/requests/{id} for every id until all are
// done, rejected or failed, or faultSettle passes. It returns the last view
// of each.
func (r *faultRig) waitAllTerminal(ids []string) map[string]requestView {
	r.t.Helper()
	views := map[string]requestView{}
	pending := slices.Clone(ids)
	deadline := time.Now().Add(faultSettle)
	for len(pending) > 0 && time.Now().Before(deadline) {
		var still []string
		for _, id := range pending {
			var v requestView
			if resp := r.call("GET", "/v1/requests/"+id, nil, &v); resp.StatusCode != http.StatusOK {
				r.t.Fatalf("GET request %s: %s", id, resp.Status)
			}
			views[id] = v
			if !terminal(v.Status) {
				still = append(still, id)
			}
		}
		pending = still
		if len(pending) > 0 {
			r.checkAlive()
			time.Sleep(250 * time.Millisecond)
		}
	}
	return views
}

func terminal(status string) bool {
	return status == "done" || status == "rejected" || status == "failed"
}

func (rep *faultReport) count() {
	for _, id := range rep.ids {
		switch v := rep.views[id]; v.Status {
		case "done":
			rep.done++
		case "failed":
			rep.failed++
		case "rejected":
			rep.rejected++
		default:
			rep.lost = append(rep.lost, id+" ("+v.Status+")")
		}
	}
}

func (rep *faultReport) log(t *testing.T) {
	t.Helper()
	t.Logf("requests: %d submitted, %d accepted (%d submit retries, %d given up); %d done, %d failed, %d rejected, %d lost; in %s",
		rep.submitted, rep.accepted, rep.retries, rep.givenUp, rep.done, rep.failed, rep.rejected, len(rep.lost), rep.elapsed.Round(time.Millisecond))
	t.Logf("webhooks: %d received, %d terminal statuses without one; dead letters: %d; claims taken over: %d check, %d generate",
		rep.webhooks, rep.missingWebhooks, len(rep.deadLetters), rep.takeovers["check"], rep.takeovers["generate"])
	for _, ai := range []struct {
		name string
		st   aisim.Stats
	}{{"check", rep.check}, {"generate", rep.generate}} {
		s := ai.st
		t.Logf("%s AI: %d calls (%d requests), %d succeeded (%d requests, %d paid twice), %d failed, %d abandoned, "+
			"429s: %d at capacity + %d injected, 500s injected: %d, max %d at once",
			ai.name, s.Calls, s.UniqueRequests, s.Succeeded, s.UniqueSucceeded, s.Succeeded-s.UniqueSucceeded, s.Failed, s.Abandoned,
			s.OverCapacity, s.InjectedBusy, s.InjectedFaults, s.MaxConcurrent)
	}
}

// requireNoDuplicates checks that neither AI was paid twice for a request.
// When one was, it names the requests (the AI's GET /duplicates) and their
// claims in the status database, whose takes say whether a second worker
// took the claim over.
func (r *faultRig) requireNoDuplicates(rep *faultReport) {
	r.t.Helper()
	for _, ai := range []struct {
		stage, base string
		st          aisim.Stats
	}{{"check", r.checkAI, rep.check}, {"generate", r.genAI, rep.generate}} {
		d := ai.st.Succeeded - ai.st.UniqueSucceeded
		if d == 0 {
			continue
		}
		var dups []aisim.Duplicate
		if err := getJSON(ai.base+"/duplicates", &dups); err != nil {
			r.t.Error(err)
		}
		var named []string
		for _, dup := range dups {
			named = append(named, fmt.Sprintf("%s (%d successes; %s)", dup.RequestID, dup.Succeeded, r.claim(dup.RequestID, ai.stage)))
		}
		r.t.Errorf("%s AI: %d duplicate paid calls (%d succeeded for %d requests): %s",
			ai.stage, d, ai.st.Succeeded, ai.st.UniqueSucceeded, strings.Join(named, "; "))
	}
}

// statusDB opens the status database the processes share, read-only.
func (r *faultRig) statusDB() *sql.DB {
	r.t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(r.dir, "db", "genpipe.db")+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		r.t.Fatal(err)
	}
	return db
}

// claim describes a request's claim on a stage, as the status database has it.
func (r *faultRig) claim(id, stage string) string {
	db := r.statusDB()
	defer db.Close()
	var state, owner string
	var takes int
	err := db.QueryRow(`SELECT state, owner, takes FROM stage_claims WHERE request_id = ? AND stage = ?`, id, stage).Scan(&state, &owner, &takes)
	if err != nil {
		return fmt.Sprintf("claim: %v", err)
	}
	return fmt.Sprintf("claim %s by %s after %d take(s)", state, owner, takes)
}

// takeovers counts, per stage, the claims a worker took over from another
// whose lease ran out (a dead or interrupted worker).
func (r *faultRig) takeovers() map[string]int {
	r.t.Helper()
	db := r.statusDB()
	defer db.Close()
	rows, err := db.Query(`SELECT stage, COUNT(*) FROM stage_claims WHERE takes > 1 GROUP BY stage`)
	if err != nil {
		r.t.Fatalf("count claim takeovers: %v", err)
	}
	defer rows.Close()
	n := map[string]int{}
	for rows.Next() {
		var stage string
		var count int
		if err := rows.Scan(&stage, &count); err != nil {
			r.t.Fatal(err)
		}
		n[stage] = count
	}
	if err := rows.Err(); err != nil {
		r.t.Fatal(err)
	}
	return n
}

// getJSON GETs url and decodes its JSON answer into out.
func getJSON(url string, out any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	return nil
}

// requireTerminal checks that every submission was accepted and every
// accepted request ended (lost = 0) with a webhook of its final status.
func (rep *faultReport) requireTerminal(t *testing.T) {
	t.Helper()
	if rep.accepted != rep.submitted {
		t.Errorf("%d of %d requests accepted", rep.accepted, rep.submitted)
	}
	if len(rep.lost) > 0 {
		t.Errorf("%d requests lost (never terminal within %s): %v", len(rep.lost), faultSettle, firstN(rep.lost, 10))
	}
	if rep.missingWebhooks > 0 {
		t.Errorf("%d terminal requests got no webhook of their status", rep.missingWebhooks)
	}
}

// requireAllDone checks requireTerminal, that every request ended done
// with a result, and that each AI succeeded exactly once per request:
// nothing failed, nothing was dead-lettered but poison.
func (rep *faultReport) requireAllDone(t *testing.T) {
	t.Helper()
	rep.requireTerminal(t)
	if rep.done != rep.accepted {
		var notDone []string
		for _, id := range rep.ids {
			if v := rep.views[id]; v.Status != "done" {
				notDone = append(notDone, fmt.Sprintf("%s %s (%s)", id, v.Status, v.Error))
			}
		}
		t.Errorf("%d of %d requests done; not done: %v", rep.done, rep.accepted, firstN(notDone, 10))
	}
	for _, id := range rep.ids {
		v := rep.views[id]
		if v.Status != "done" {
			continue
		}
		if v.Result == nil {
			t.Errorf("request %s done without a result", id)
			break
		}
		if png := download(t, v.Result.PNGURL); !bytes.HasPrefix(png, []byte("\x89PNG")) {
			t.Errorf("request %s is done, but its slide.png is not a PNG (%d bytes)", id, len(png))
			break
		}
	}
	// A generate worker killed after the AI wrote the slide, before the
	// answer reached it, leaves a call the AI counts as abandoned; the
	// worker that takes the claim over finds the files and does not call
	// again. So every done request had one generation that succeeded, or
	// one that was abandoned after writing its files (checked above).
	gen := rep.generate
	if rep.check.UniqueSucceeded != int64(rep.accepted) || gen.UniqueSucceeded > int64(rep.done) ||
		gen.UniqueSucceeded+gen.Abandoned < int64(rep.done) {
		t.Errorf("AIs succeeded for %d (check) and %d (generate, %d abandoned) requests; want %d and %d",
			rep.check.UniqueSucceeded, gen.UniqueSucceeded, gen.Abandoned, rep.accepted, rep.done)
	}
	for _, d := range rep.deadLetters {
		if !isPoison(d) {
			t.Errorf("dead letter of a request: %+v", d)
		}
	}
}

func firstN(s []string, n int) []string { return s[:min(n, len(s))] }

// hookLog receives the webhooks of every request of a test and checks
// their signatures.
type hookLog struct {
	url    string
	secret string
	mu     sync.Mutex
	byID   map[string][]string // statuses delivered, in order
	total  int
	forged int // bodies whose signature does not verify
}

func newHookLog(t *testing.T, secret string) *hookLog {
	h := &hookLog{secret: secret, byID: map[string][]string{}}
	h.url = newLoopbackServer(t, http.HandlerFunc(h.receive)) + "/hook"
	return h
}

func (h *hookLog) receive(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	var v requestView
	err := json.Unmarshal(body, &v)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.total++
	if err != nil || notifier.Verify(h.secret, req.Header, body, notifier.DefaultTolerance) != nil {
		h.forged++
		return
	}
	h.byID[v.ID] = append(h.byID[v.ID], v.Status)
}

// waitFor waits until every request in views has a webhook of its
// terminal status, or timeout; it returns the webhooks received and how
// many terminal statuses still have none.
func (h *hookLog) waitFor(t *testing.T, views map[string]requestView, timeout time.Duration) (total, missing int) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		h.mu.Lock()
		missing = 0
		for id, v := range views {
			if terminal(v.Status) && !slices.Contains(h.byID[id], v.Status) {
				missing++
			}
		}
		total, forged := h.total, h.forged
		h.mu.Unlock()
		if missing == 0 || time.Now().After(deadline) {
			if forged > 0 {
				t.Errorf("%d webhooks with a bad signature or body", forged)
			}
			return total, missing
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// isPoison reports whether d is one of poisonRecords' records, by its value.
func isPoison(d deadLetterLine) bool {
	return strings.Contains(d.Value, poisonMarker) || d.Value == ""
}

// listDeadLetters runs `genpipe dlq list -json` with the built binary, as
// an operator would.
func (r *faultRig) listDeadLetters() []deadLetterLine {
	r.t.Helper()
	cmd := exec.Command(r.bin, "dlq", "list", "-json")
	cmd.Env = r.env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		r.t.Fatalf("genpipe dlq list -json: %v\n%s", err, stderr.Bytes())
	}
	var letters []deadLetterLine
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 4<<20)
	for sc.Scan() {
		var d deadLetterLine
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
			r.t.Fatalf("genpipe dlq list -json: line %q: %v", sc.Bytes(), err)
		}
		letters = append(letters, d)
	}
	return letters
}

// poisonMarker is in the value of every poison record but the empty one.
const poisonMarker = "fault-test-poison"

// poisonRecords returns records no stage can use, for topic: undecodable,
// an unknown version, an event of another topic's type, and a keyless
// empty one. Each value but the empty one carries the marker
// "fault-test-poison".
func poisonRecords(t *testing.T, topic string) []*kgo.Record {
	t.Helper()
	wrongType := genpipe.NewStatusEvent(genpipe.StatusChange{RequestID: "fault-test-poison-3", Status: genpipe.StatusDone, At: time.Now()})
	if topic == genpipe.DefaultTopics().Results {
		wrongType = genpipe.NewJobEvent(genpipe.EventSubmitted, "fault-test-poison-3",
			genpipe.Job{ObjectID: "fault-test-poison", Style: "forest", Description: "x"}, time.Now())
	}
	wrongValue, err := genpipe.EncodeEvent(wrongType)
	if err != nil {
		t.Fatal(err)
	}
	return []*kgo.Record{
		{Topic: topic, Key: []byte("fault-test-poison-1"), Value: []byte("fault-test-poison: not JSON")},
		{Topic: topic, Key: []byte("fault-test-poison-2"), Value: []byte(`{"v":99,"type":"request.submitted","requestId":"fault-test-poison-2"}`)},
		{Topic: topic, Key: []byte("fault-test-poison-3"), Value: wrongValue},
		{Topic: topic}, // keyless, empty
	}
}

// requirePoisonDeadLettered checks that each record sent to topic is in
// the dead-letter topic exactly once, with a reason.
func (r *faultRig) requirePoisonDeadLettered(topic string, sent []*kgo.Record, got []deadLetterLine) {
	r.t.Helper()
	if len(got) != len(sent) {
		r.t.Errorf("%s: %d poison records sent, %d dead letters: %+v", topic, len(sent), len(got), got)
	}
	for _, rec := range sent {
		n := 0
		for _, d := range got {
			if d.Value == string(rec.Value) && (len(rec.Key) == 0 || d.Key == string(rec.Key)) {
				n++
				if d.Reason == "" {
					r.t.Errorf("%s: dead letter %s has no reason", topic, d.ID)
				}
			}
		}
		if n != 1 {
			r.t.Errorf("%s: poison record %q (key %q) is in the dead-letter topic %d times, want once", topic, rec.Value, rec.Key, n)
		}
	}
	for _, d := range got {
		r.t.Logf("dead letter %s from %s (stage %s): %s", d.ID, topic, d.Stage, d.Reason)
	}
}
