package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/client"
)

// The lifecycle lab drives a running genpipe through its HTTP API, as its
// users do, and checks from the AI services' own records (aisim's GET
// /calls) what the targets are about:
//
//   - lifecycle: at Load × the AI's capacity, CancelShare of the requests
//     are canceled while they wait (DELETE /v1/requests/{id}) and
//     DeadlineShare are given a startBy they cannot meet (before their
//     check can have ended, so their generation can never start in time);
//     AbortShare more are canceled as soon as their generative call runs.
//     It counts the AI calls that started after a cancel was answered or
//     after a request's startBy (target 0), measures how long a running
//     call took to end after its DELETE was answered (target under 200 ms),
//     and reports the final statuses.
//   - step: the load steps through Steps × the capacity; each waiting
//     request's predicted start (its 202 and GETs while it waits) is
//     compared with when its next call actually started, as the AI saw it;
//     the median absolute error, as a fraction of the actual wait, must be
//     under 20%.

// The lab's runs: cancels and deadlines; predicted waits through a step of
// loads; and what genpipe adds to the AIs' own time, as a client that
// follows its request over the SSE stream sees it.
const (
	LifecycleScenario = "lifecycle"
	StepScenario      = "step"
	OverheadScenario  = "overhead"
)

// Defaults of LifecycleConfig.
const (
	DefaultLifecycleDuration = 2 * time.Minute  // unscaled
	DefaultLifecycleLoad     = 2.0              // × the AI's capacity
	DefaultCancelShare       = 0.3              // of the lifecycle's requests
	DefaultDeadlineShare     = 0.2              // of the lifecycle's requests
	DefaultAbortShare        = 0.05             // canceled while their generative call runs
	DefaultStepDuration      = 40 * time.Second // unscaled, each step
	DefaultMinWait           = time.Second      // unscaled: a sample whose call started sooner was not waiting
	// MaxEstimateError is the target: the median absolute error of the
	// predicted start over the actual wait.
	MaxEstimateError = 0.2
	// MaxAbort is the target: a running call ends this soon after its
	// DELETE is answered.
	MaxAbort = 200 * time.Millisecond
)

// DefaultSteps are the step scenario's loads, × the AI's capacity.
var DefaultSteps = []float64{0.5, 1, 2, 3}

// System is the running genpipe a lifecycle run drives: its API, its
// simulated AIs (for their records of calls) and what they were started
// with, unscaled.
type System struct {
	API        string // base URL of the API, e.g. http://127.0.0.1:8080
	CheckAI    string // base URL of the simulated Checking AI
	GenerateAI string // base URL of the simulated Generative AI
	APIKey     string // sent as Bearer when set

	CheckCapacity, GenerateCapacity int
	CheckLatency, GenerateLatency   time.Duration // unscaled
}

// capacity is the AI's throughput, requests a second, unscaled.
func (s System) capacity() float64 {
	return min(float64(s.CheckCapacity)/s.CheckLatency.Seconds(), float64(s.GenerateCapacity)/s.GenerateLatency.Seconds())
}

// LifecycleConfig is one lifecycle lab run.
type LifecycleConfig struct {
	System    System
	Scenarios []string // LifecycleScenario, StepScenario, OverheadScenario; default the first two, in that order
	TimeScale float64  // the system's durations are the unscaled ones × this; default DefaultTimeScale
	Image     []byte   // the PNG every request uses, uploaded once

	Duration      time.Duration // of the lifecycle's load, unscaled; default DefaultLifecycleDuration
	Load          float64       // default DefaultLifecycleLoad
	CancelShare   float64       // default DefaultCancelShare
	DeadlineShare float64       // default DefaultDeadlineShare
	AbortShare    float64       // default DefaultAbortShare

	Steps        []float64     // default DefaultSteps
	StepDuration time.Duration // unscaled; default DefaultStepDuration
	MinWait      time.Duration // unscaled; default DefaultMinWait

	OverheadLoad     float64       // default DefaultOverheadLoad
	OverheadDuration time.Duration // unscaled; default DefaultOverheadDuration

	DrainTimeout time.Duration // unscaled, after the last submission; default DefaultDrainTimeout
	Seed         uint64        // of the roles and timings; 0 is 1
	Progress     func(string)  // lines about the run, about once a second
	Client       *http.Client  // default: one with a 30 s timeout
}

func (c *LifecycleConfig) defaults() error {
	if c.TimeScale <= 0 {
		c.TimeScale = DefaultTimeScale
	}
	if len(c.Scenarios) == 0 {
		c.Scenarios = []string{LifecycleScenario, StepScenario}
	}
	for _, s := range c.Scenarios {
		if s != LifecycleScenario && s != StepScenario && s != OverheadScenario {
			return fmt.Errorf("loadtest: unknown lifecycle scenario %q", s)
		}
	}
	setDefault(&c.Duration, DefaultLifecycleDuration)
	setDefault(&c.Load, DefaultLifecycleLoad)
	setDefault(&c.CancelShare, DefaultCancelShare)
	setDefault(&c.DeadlineShare, DefaultDeadlineShare)
	setDefault(&c.AbortShare, DefaultAbortShare)
	setDefault(&c.StepDuration, DefaultStepDuration)
	setDefault(&c.MinWait, DefaultMinWait)
	setDefault(&c.OverheadLoad, DefaultOverheadLoad)
	setDefault(&c.OverheadDuration, DefaultOverheadDuration)
	setDefault(&c.DrainTimeout, DefaultDrainTimeout)
	if len(c.Steps) == 0 {
		c.Steps = DefaultSteps
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Progress == nil {
		c.Progress = func(string) {}
	}
	if c.Client == nil {
		c.Client = &http.Client{Timeout: 30 * time.Second}
	}
	s := c.System
	switch {
	case s.API == "" || s.CheckAI == "" || s.GenerateAI == "":
		return errors.New("loadtest: the system's API and AI URLs are needed")
	case s.CheckCapacity < 1 || s.GenerateCapacity < 1 || s.CheckLatency <= 0 || s.GenerateLatency <= 0:
		return errors.New("loadtest: the system's AI capacities and latencies are needed")
	case c.CancelShare+c.DeadlineShare+c.AbortShare > 1:
		return errors.New("loadtest: the cancel, deadline and abort shares add up to more than 1")
	case len(c.Image) == 0:
		return errors.New("loadtest: an image is needed")
	}
	return nil
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// RunLifecycle runs cfg's scenarios one after the other against the
// running system and reports what happened. What was measured is returned
// with an error that stopped the run.
func RunLifecycle(ctx context.Context, cfg LifecycleConfig) (*LifecycleReport, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	api, err := client.New(client.WithBaseURL(cfg.System.API), client.WithAPIKey(cfg.System.APIKey), client.WithHTTPClient(cfg.Client))
	if err != nil {
		return nil, fmt.Errorf("loadtest: %w", err)
	}
	l := &lab{cfg: cfg, client: cfg.Client, api: api, rng: rand.New(rand.NewPCG(cfg.Seed, 0x6c6966))}
	rep := &LifecycleReport{TimeScale: cfg.TimeScale, StartedAt: time.Now(), CapacityRps: cfg.System.capacity()}
	objectID, err := l.upload(ctx)
	if err != nil {
		return nil, err
	}
	l.objectID = objectID
	for _, s := range cfg.Scenarios {
		var err error
		switch s {
		case LifecycleScenario:
			rep.Lifecycle, err = l.lifecycle(ctx)
		case StepScenario:
			rep.Step, err = l.step(ctx)
		case OverheadScenario:
			rep.Overhead, err = l.overhead(ctx)
		}
		if err != nil {
			return rep, fmt.Errorf("loadtest: %s: %w", s, err)
		}
	}
	return rep, nil
}

// lab is a run's state.
type lab struct {
	cfg      LifecycleConfig
	client   *http.Client   // the AI services' /calls
	api      *client.Client // the API, as its users call it
	objectID string
	mu       sync.Mutex // rng
	rng      *rand.Rand
}

// real is d unscaled as the system runs it.
func (l *lab) real(d time.Duration) time.Duration { return time.Duration(float64(d) * l.cfg.TimeScale) }

// unscaled is d of the system's as the report states it.
func (l *lab) unscaled(d time.Duration) time.Duration {
	return time.Duration(float64(d) / l.cfg.TimeScale)
}

func (l *lab) float() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rng.Float64()
}

// role is what the lifecycle does with a request.
type role int

const (
	plain    role = iota
	cancel        // canceled while it waits
	deadline      // given a startBy it cannot meet
	abort         // canceled once its generative call runs
)

// tracked is one submitted request and what the lab did and saw.
type tracked struct {
	id        string
	role      role
	submitted time.Time // when the POST was sent
	startBy   time.Time
	refused   string // the problem code of a refusal at submission
	step      float64

	mu          sync.Mutex
	deleteSent  time.Time
	deleteAt    time.Time // when the DELETE was answered; zero when none
	deleteCode  int
	final       string // its last status seen
	samples     []sample
	estimateErr bool
}

// sample is one predicted start: when it was read and what it said.
type sample struct {
	at        time.Time // when the GET (or the POST) was sent
	predicted time.Time
	fromPost  bool
}

// submit posts one request and returns it tracked, with the 202's
// estimate as its first sample.
func (l *lab) submit(ctx context.Context, r role, startBy time.Time, step float64) *tracked {
	t := &tracked{role: r, startBy: startBy, submitted: time.Now(), step: step}
	a, err := l.api.Submit(ctx, client.Submission{ObjectID: l.objectID, Style: "minimal", Description: "lifecycle lab", StartBy: startBy})
	var p *client.Problem
	switch {
	case errors.As(err, &p):
		t.refused = p.Code
		if t.refused == "" {
			t.refused = http.StatusText(p.Status)
		}
	case err != nil:
		t.refused = "error: " + err.Error()
	default:
		t.id = a.ID
		t.final = "received"
		if !a.EstimatedStartAt.IsZero() {
			t.samples = append(t.samples, sample{at: t.submitted, predicted: a.EstimatedStartAt, fromPost: true})
		}
	}
	return t
}

// get reads t's view and, with keep, its predicted start as a sample:
// the drain's polls, dense and made with no load coming, are not kept.
func (l *lab) get(ctx context.Context, t *tracked, keep bool) (*genpipe.RequestView, error) {
	at := time.Now()
	v, err := l.api.Get(ctx, t.id)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", t.id, err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.final = string(v.Status)
	if keep && !v.EstimatedStartAt.IsZero() {
		t.samples = append(t.samples, sample{at: at, predicted: v.EstimatedStartAt})
	}
	return v, nil
}

// cancelNow sends t's DELETE and records when it was answered.
func (l *lab) cancelNow(ctx context.Context, t *tracked) {
	sent := time.Now()
	v, err := l.api.Cancel(ctx, t.id)
	at := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.deleteSent, t.deleteAt, t.deleteCode = sent, at, http.StatusOK
	var p *client.Problem
	switch {
	case errors.As(err, &p):
		t.deleteCode = p.Status
	case err != nil:
		t.deleteCode = -1
	case v.Status != "":
		t.final = string(v.Status)
	}
}

// call sends a JSON request and decodes a JSON answer into out, whatever
// its status.
func (l *lab) call(ctx context.Context, method, url string, body, out any) (int, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, r)
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if k := l.cfg.System.APIKey; k != "" {
		req.Header.Set("Authorization", "Bearer "+k)
	}
	resp, err := l.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return resp.StatusCode, err
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: answer: %w", method, url, err)
		}
	}
	return resp.StatusCode, nil
}

// upload puts the lab's image through POST /v1/uploads and its URL, once:
// every request pins its own copy of it.
func (l *lab) upload(ctx context.Context) (string, error) {
	objectID, err := l.api.UploadImage(ctx, "image/png", l.cfg.Image)
	if err != nil {
		return "", fmt.Errorf("loadtest: %w", err)
	}
	return objectID, nil
}

// Call is one AI call as the simulated services list it (aisim.Call).
type Call struct {
	RequestID string    `json:"requestId"`
	Start     time.Time `json:"start"`
	End       time.Time `json:"end"`
	Outcome   string    `json:"outcome"`
	Stage     string    `json:"stage"`
}

// calls reads the calls both AIs listed, by request, each request's in
// start order.
func (l *lab) calls(ctx context.Context, running bool) (map[string][]Call, error) {
	out := map[string][]Call{}
	for _, ai := range []string{l.cfg.System.CheckAI, l.cfg.System.GenerateAI} {
		url := ai + "/calls"
		if running {
			url += "?running=1"
		}
		var calls []Call
		status, err := l.call(ctx, http.MethodGet, url, nil, &calls)
		if err == nil && status != http.StatusOK {
			err = fmt.Errorf("GET %s: %d", url, status)
		}
		if err != nil {
			return nil, err
		}
		for _, c := range calls {
			out[c.RequestID] = append(out[c.RequestID], c)
		}
	}
	for _, cs := range out {
		slices.SortFunc(cs, func(a, b Call) int { return a.Start.Compare(b.Start) })
	}
	return out, nil
}

// pace submits n requests at rate a second (real), each made by make in
// its own goroutine, which wg tracks.
func pace(ctx context.Context, n int, rate float64, wg *sync.WaitGroup, make func(i int)) {
	start := time.Now()
	for i := range n {
		due := start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
		if d := time.Until(due); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			make(i)
		}()
	}
}

// lifecycle runs the lifecycle scenario.
func (l *lab) lifecycle(ctx context.Context) (*LifecycleResult, error) {
	cfg := l.cfg
	capacity := cfg.System.capacity()
	n := int(cfg.Duration.Seconds() * capacity * cfg.Load)
	rate := capacity * cfg.Load / cfg.TimeScale
	genLatency := l.real(cfg.System.GenerateLatency)
	// A startBy before the check can have ended: the generation, which
	// starts after it, can never start by then; and late enough to be in
	// the future when the API reads it.
	tooSoon := l.real(cfg.System.CheckLatency) * 9 / 10
	var (
		mu      sync.Mutex
		all     = make([]*tracked, 0, n)
		probes  = map[string]*tracked{}
		wg      sync.WaitGroup
		started = time.Now()
	)
	progress := l.progressEvery(func() string {
		mu.Lock()
		defer mu.Unlock()
		return fmt.Sprintf("lifecycle: submitted %d/%d in %s", len(all), n, time.Since(started).Round(time.Second))
	})
	defer progress()
	stopWatch := l.watchProbes(ctx, &mu, probes)
	pace(ctx, n, rate, &wg, func(int) {
		x := l.float()
		r := plain
		switch {
		case x < cfg.CancelShare:
			r = cancel
		case x < cfg.CancelShare+cfg.DeadlineShare:
			r = deadline
		case x < cfg.CancelShare+cfg.DeadlineShare+cfg.AbortShare:
			r = abort
		}
		var startBy time.Time
		if r == deadline {
			startBy = time.Now().Add(tooSoon)
		}
		t := l.submit(ctx, r, startBy, cfg.Load)
		mu.Lock()
		all = append(all, t)
		if r == abort && t.id != "" {
			probes[t.id] = t
		}
		mu.Unlock()
		if r == cancel && t.id != "" {
			// While it waits: within two generative calls of its
			// submission, in a queue that grows at twice the capacity.
			delay := time.Duration((0.1 + 1.9*l.float()) * float64(genLatency))
			select {
			case <-time.After(delay):
				l.cancelNow(ctx, t)
			case <-ctx.Done():
			}
		}
	})
	wg.Wait()
	err := l.drain(ctx, all)
	stopWatch()
	calls, cerr := l.calls(context.WithoutCancel(ctx), false)
	if cerr != nil {
		return nil, errors.Join(err, cerr)
	}
	return l.judgeLifecycle(all, calls), err
}

// watchProbes cancels each probe as soon as its generative call runs, as
// the Generative AI lists it, until the returned func is called.
func (l *lab) watchProbes(ctx context.Context, mu *sync.Mutex, probes map[string]*tracked) (stop func()) {
	ctx, cancelWatch := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			var running []Call
			status, err := l.call(ctx, http.MethodGet, l.cfg.System.GenerateAI+"/calls?running=1", nil, &running)
			if err != nil || status != http.StatusOK {
				continue
			}
			for _, c := range running {
				mu.Lock()
				t, ok := probes[c.RequestID]
				delete(probes, c.RequestID)
				mu.Unlock()
				if ok {
					go l.cancelNow(ctx, t)
				}
			}
		}
	}()
	return func() {
		cancelWatch()
		<-done
	}
}

// drainBatch bounds the requests one round of the drain reads: requests
// end about in the order they came, so the oldest open ones are the ones
// to ask about, and reading all of a deep backlog every round would load
// the system the lab measures.
const drainBatch = 16

// drain polls the requests not yet ended, the oldest first, until all end
// or the drain timeout passes.
func (l *lab) drain(ctx context.Context, all []*tracked) error {
	deadline := time.Now().Add(l.real(l.cfg.DrainTimeout))
	poll := max(l.real(l.cfg.System.CheckLatency), 50*time.Millisecond)
	for {
		open, asked := 0, 0
		for _, t := range all {
			t.mu.Lock()
			ended := t.id == "" || genpipe.Status(t.final).Terminal()
			t.mu.Unlock()
			if ended {
				continue
			}
			open++
			if asked++; asked > drainBatch {
				continue
			}
			if _, err := l.get(ctx, t, false); err != nil && ctx.Err() != nil {
				return ctx.Err()
			}
		}
		if open == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d requests did not end within the drain timeout", open)
		}
		l.cfg.Progress(fmt.Sprintf("draining: %d requests not ended", open))
		select {
		case <-time.After(poll):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// progressEvery reports line() once a second until the returned func is
// called.
func (l *lab) progressEvery(line func() string) (stop func()) {
	done := make(chan struct{})
	go func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				l.cfg.Progress(line())
			}
		}
	}()
	return func() { close(done) }
}

// step runs the step scenario: each load in turn, sampling the predicted
// start of the waiting requests.
func (l *lab) step(ctx context.Context) (*StepResult, error) {
	cfg := l.cfg
	capacity := cfg.System.capacity()
	genLatency := l.real(cfg.System.GenerateLatency)
	var (
		mu  sync.Mutex
		all []*tracked
		wg  sync.WaitGroup
	)
	for _, load := range cfg.Steps {
		n := int(cfg.StepDuration.Seconds() * capacity * load)
		l.cfg.Progress(fmt.Sprintf("step: %g× the capacity, %d requests", load, n))
		pace(ctx, n, capacity*load/cfg.TimeScale, &wg, func(int) {
			t := l.submit(ctx, plain, time.Time{}, load)
			mu.Lock()
			all = append(all, t)
			mu.Unlock()
			if t.id == "" {
				return
			}
			// A few GETs while it waits, early and deep in the queue.
			for _, span := range [][2]float64{{0.5, 1.5}, {2, 6}, {8, 20}} {
				at := time.Duration((span[0] + (span[1]-span[0])*l.float()) * float64(genLatency))
				select {
				case <-time.After(time.Until(t.submitted.Add(at))):
				case <-ctx.Done():
					return
				}
				v, err := l.get(ctx, t, true)
				if err != nil || v.EstimatedStartAt.IsZero() {
					return // running or ended: nothing more to predict
				}
			}
		})
	}
	wg.Wait()
	err := l.drain(ctx, all)
	calls, cerr := l.calls(context.WithoutCancel(ctx), false)
	if cerr != nil {
		return nil, errors.Join(err, cerr)
	}
	return l.judgeStep(all, calls), err
}

// statusCounts counts requests by final status (or refusal code).
func statusCounts(ts []*tracked) map[string]int {
	out := map[string]int{}
	for _, t := range ts {
		t.mu.Lock()
		switch {
		case t.refused != "":
			out["refused: "+t.refused]++
		default:
			out[t.final]++
		}
		t.mu.Unlock()
	}
	return out
}

// roleName names a role in the report.
func (r role) String() string {
	return [...]string{"plain", "canceled while waiting", "startBy they cannot meet", "canceled while running"}[r]
}

// joinCounts writes counts as "a 3, b 2", largest first.
func joinCounts(counts map[string]int) string {
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if counts[a] != counts[b] {
			return counts[b] - counts[a]
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, counts[k])
	}
	return strings.Join(parts, ", ")
}
