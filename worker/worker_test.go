package worker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image/png"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/aisim"
	"github.com/genpipe/genpipe/backoff"
	"github.com/genpipe/genpipe/internal/testenv"
	"github.com/genpipe/genpipe/internal/testutil"
	"github.com/genpipe/genpipe/kafka"
	"github.com/genpipe/genpipe/worker"
)

// fast retries: enough attempts for a busy service, milliseconds apart.
var fast = backoff.Policy{Attempts: 100, Base: 10 * time.Millisecond, Max: 100 * time.Millisecond}

func TestCheckPasses(t *testing.T) {
	env := testenv.New(t)
	check, svc := simulatedStage(t, "check", env, nil)
	id := uuid.NewString()
	job := titledJob(t, "corporate", "Q3", "quarterly results")

	if err := check(testutil.Context(t), testutil.JobEvent(genpipe.EventSubmitted, id, job)); err != nil {
		t.Fatalf("Handle: %v", err)
	}
	results := readAll(t, env, env.Topics.Results)
	if got := statusesOf(t, results); !slices.Equal(got, []genpipe.Status{genpipe.StatusChecking}) || results[0].key != id {
		t.Fatalf("results topic: %v, want [checking] for %s", got, id)
	}
	checked := readAll(t, env, env.Topics.Checked)
	if len(checked) != 1 {
		t.Fatalf("checked topic holds %d records, want 1", len(checked))
	}
	c := checked[0]
	if c.key != id || c.event.Type != genpipe.EventChecked || c.event.RequestID != id || c.event.Job == nil || *c.event.Job != job {
		t.Errorf("checked record key %q event %+v, want request.checked of %s with job %+v", c.key, c.event, id, job)
	}
	if c.timestamp.Before(results[0].timestamp) {
		t.Errorf("checked at %v, before the checking status at %v", c.timestamp, results[0].timestamp)
	}
	if st := svc.Stats(); st.Calls != 1 {
		t.Errorf("the checking AI got %d calls, want 1", st.Calls)
	}
	expectEmpty(t, env, env.Topics.Requests)
}

func TestCheckRejects(t *testing.T) {
	for _, tc := range []struct {
		name, contentType string
		data              []byte // nil: nothing uploaded
		reason            string
	}{
		{"text file", "text/plain", []byte("hello, I am not an image"), "not a PNG or JPEG image"},
		{"too small", genpipe.ContentTypePNG, pngImage(t, 10, 10), "the minimum is 64×64"},
		{"never uploaded", "", nil, "image not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := testenv.New(t)
			check, _ := simulatedStage(t, "check", env, nil)
			objectID := uuid.NewString()
			if tc.data != nil {
				objectID = upload(t, tc.contentType, tc.data)
			}
			id := uuid.NewString()
			job := jobOn(objectID, "minimal")
			if err := check(testutil.Context(t), testutil.JobEvent(genpipe.EventSubmitted, id, job)); err != nil {
				t.Fatalf("Handle: %v", err)
			}
			results := readAll(t, env, env.Topics.Results)
			want := []genpipe.Status{genpipe.StatusChecking, genpipe.StatusRejected}
			if got := statusesOf(t, results); !slices.Equal(got, want) {
				t.Fatalf("results topic: %v, want %v", got, want)
			}
			for _, r := range results {
				if r.key != id {
					t.Errorf("record keyed %q, want %q", r.key, id)
				}
			}
			if reason := results[1].event.Error; !strings.Contains(reason, tc.reason) {
				t.Errorf("rejected with reason %q, want one saying %q", reason, tc.reason)
			}
			expectEmpty(t, env, env.Topics.Checked)
		})
	}
}

func TestGenerateDone(t *testing.T) {
	env := testenv.New(t)
	gen, svc := simulatedStage(t, "generate", env, nil)
	id := uuid.NewString()
	job := titledJob(t, "sunset", "Roadmap", "What we ship next quarter")

	start := time.Now()
	if err := gen(testutil.Context(t), testutil.JobEvent(genpipe.EventChecked, id, job)); err != nil {
		t.Fatalf("Handle: %v", err)
	}
	t.Logf("generated in %v", time.Since(start))
	results := readAll(t, env, env.Topics.Results)
	want := []genpipe.Status{genpipe.StatusGenerating, genpipe.StatusDone}
	if got := statusesOf(t, results); !slices.Equal(got, want) {
		t.Fatalf("results topic: %v, want %v", got, want)
	}
	keys := genpipe.ResultKeys(id)
	keys.Slides = 1
	if res := results[1].event.Result; res == nil || *res != keys {
		t.Fatalf("done with result %+v, want %+v", res, keys)
	}
	if st := svc.Stats(); st.Calls != 1 {
		t.Errorf("the generative AI got %d calls, want 1", st.Calls)
	}

	ctx := testutil.Context(t)
	for key, contentType := range map[string]string{
		keys.PNGKey: genpipe.ContentTypePNG, keys.PDFKey: genpipe.ContentTypePDF, keys.PPTXKey: genpipe.ContentTypePPTX} {
		info, err := env.Objects.Stat(ctx, key)
		if err != nil {
			t.Errorf("stat %s: %v", key, err)
			continue
		}
		if info.ContentType != contentType || info.Size == 0 {
			t.Errorf("%s: %d bytes of %s, want %s", key, info.Size, info.ContentType, contentType)
		}
	}
	pngData, err := env.Objects.Get(ctx, keys.PNGKey)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(pngData))
	if err != nil {
		t.Fatalf("slide.png: %v", err)
	}
	if cfg.Width != 1920 || cfg.Height != 1080 {
		t.Errorf("slide.png is %d×%d, want 1920×1080", cfg.Width, cfg.Height)
	}
	if _, err := png.Decode(bytes.NewReader(pngData)); err != nil {
		t.Errorf("slide.png does not decode: %v", err)
	}
	for key, magic := range map[string]string{keys.PDFKey: "%PDF-", keys.PPTXKey: "PK\x03\x04"} {
		data, err := env.Objects.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(data, []byte(magic)) {
			t.Errorf("%s starts with %q, want %q", key, data[:min(len(data), 8)], magic)
		}
	}
	expectEmpty(t, env, env.Topics.Checked, env.Topics.Requests)
}

// A description too long for one slide continues on further ones: every
// slide's PNG is stored, and the done result counts them.
func TestGenerateDeckOfSlides(t *testing.T) {
	env := testenv.New(t)
	gen, _ := simulatedStage(t, "generate", env, nil)
	id := uuid.NewString()
	long := strings.Repeat("Every word of this description must reach the reader, on one slide or the next. ", 25)
	job := titledJob(t, "minimal", "A long story", long)
	if err := gen(testutil.Context(t), testutil.JobEvent(genpipe.EventChecked, id, job)); err != nil {
		t.Fatalf("Handle: %v", err)
	}
	results := readAll(t, env, env.Topics.Results)
	res := results[len(results)-1].event.Result
	if res == nil || res.Slides < 2 {
		t.Fatalf("done with result %+v; want a deck of at least 2 slides", res)
	}
	for i, key := range res.PNGKeys() {
		data, err := env.Objects.Get(testutil.Context(t), key)
		if err != nil {
			t.Fatalf("slide %d: %v", i+1, err)
		}
		if cfg, err := png.DecodeConfig(bytes.NewReader(data)); err != nil || cfg.Width != 1920 {
			t.Errorf("slide %d (%s): %v, %d px wide; want a 1920-px PNG", i+1, key, err, cfg.Width)
		}
	}
	if _, err := env.Objects.Stat(testutil.Context(t), genpipe.SlidePNGKey(res.PNGKey, res.Slides+1)); err == nil {
		t.Errorf("a PNG past the deck's %d slides is stored", res.Slides)
	}
}

// A busy Checking AI (capacity 1) answers 429 to all but one call; the
// stage retries with backoff until every request is checked, and no call
// that succeeded is made twice.
func TestCheckRetriesWhenAIBusy(t *testing.T) {
	const n = 4
	env := testenv.New(t)
	check, svc := simulatedStage(t, "check", env, []aisim.Option{aisim.WithCapacity(1), aisim.WithLatency(100 * time.Millisecond)}, worker.WithRetry(fast))
	objectID := upload(t, genpipe.ContentTypePNG, pngImage(t, 128, 128))

	ids := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range ids {
		ids[i] = uuid.NewString()
		event := testutil.JobEvent(genpipe.EventSubmitted, ids[i], jobOn(objectID, "neon"))
		wg.Go(func() { errs[i] = check(testutil.Context(t), event) })
	}
	wg.Wait()
	t.Logf("%d checks through a capacity-1 service in %v", n, time.Since(start))
	for i, err := range errs {
		if err != nil {
			t.Errorf("Handle %s: %v", ids[i], err)
		}
	}

	results, checked := readAll(t, env, env.Topics.Results), readAll(t, env, env.Topics.Checked)
	for _, id := range ids {
		if got := statusesOf(t, of(results, id)); !slices.Equal(got, []genpipe.Status{genpipe.StatusChecking}) {
			t.Errorf("%s: results %v, want [checking] only", id, got)
		}
		if c := of(checked, id); len(c) != 1 || c[0].event.Type != genpipe.EventChecked {
			t.Errorf("%s: %d checked events, want 1", id, len(c))
		}
	}
	if len(checked) != n {
		t.Errorf("checked topic holds %d records, want %d", len(checked), n)
	}
	st := svc.Stats()
	t.Logf("AI stats: %+v", st)
	if st.OverCapacity == 0 {
		t.Error("no call was refused with 429: the test did not exercise retries")
	}
	if st.Calls != n || st.UniqueRequests != n {
		t.Errorf("the AI took %d calls for %d requests, want %d: a call was paid for twice", st.Calls, st.UniqueRequests, n)
	}
	if st.MaxConcurrent != 1 {
		t.Errorf("max concurrent %d, want 1", st.MaxConcurrent)
	}
}

// A stage that cannot get an answer from its AI reports the request failed
// and dead-letters it, naming the attempts and the AI's detail.
func TestAIFailureIsDeadLettered(t *testing.T) {
	for _, tc := range []struct {
		name     string
		status   int
		detail   string
		policy   backoff.Policy
		attempts int
	}{
		// A server error is retried until the attempts run out.
		{"GiveUpAfterAttempts", http.StatusInternalServerError, "the model crashed",
			backoff.Policy{Attempts: 3, Base: time.Millisecond, Max: 5 * time.Millisecond}, 3},
		// A 4xx answer is the AI refusing the input: retrying would not help.
		{"RefusalNotRetried", http.StatusBadRequest, "style.background is not a hex color", fast, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bothStages(t, func(t *testing.T, stage string) {
				env := testenv.New(t)
				ai := &failingAI{status: tc.status, detail: tc.detail}
				handle, event, id, working := stageUnderTest(t, stage, serve(t, ai), env, worker.WithRetry(tc.policy))

				wantDeadLetter(t, handle(testutil.Context(t), event), tc.attempts)
				if calls := ai.calls.Load(); calls != int64(tc.attempts) {
					t.Errorf("the AI got %d calls, want %d", calls, tc.attempts)
				}
				results := of(readAll(t, env, env.Topics.Results), id)
				want := []genpipe.Status{working, genpipe.StatusFailed}
				if got := statusesOf(t, results); !slices.Equal(got, want) {
					t.Fatalf("results topic: %v, want %v", got, want)
				}
				reason := results[1].event.Error
				if !strings.Contains(reason, fmt.Sprintf("after %d attempt(s)", tc.attempts)) || !strings.Contains(reason, tc.detail) {
					t.Errorf("failed with reason %q, want one naming the %d attempt(s) and the AI's detail", reason, tc.attempts)
				}
				expectEmpty(t, env, env.Topics.Checked)
			})
		})
	}
}

// The retry hook hears every retried AI call with its stage and error, and
// nothing else: not the last attempt, not a refusal that is never retried.
func TestRetryHook(t *testing.T) {
	policy := backoff.Policy{Attempts: 3, Base: time.Millisecond, Max: 5 * time.Millisecond}
	for _, tc := range []struct {
		stage    string
		status   int
		attempts int
		want     []string // the codes the hook hears
	}{
		{"check", http.StatusInternalServerError, 3, []string{genpipe.EUNAVAILABLE, genpipe.EUNAVAILABLE}},
		{"generate", http.StatusTooManyRequests, 3, []string{genpipe.ETOOMANY, genpipe.ETOOMANY}},
		{"check", http.StatusBadRequest, 1, nil},
	} {
		t.Run(tc.stage+"/"+http.StatusText(tc.status), func(t *testing.T) {
			var (
				mu    sync.Mutex
				codes []string
			)
			hook := func(ctx context.Context, stage genpipe.Stage, err error) {
				mu.Lock()
				defer mu.Unlock()
				if string(stage) != tc.stage {
					t.Errorf("hook heard stage %q, want %q", stage, tc.stage)
				}
				if ctx == nil || ctx.Err() != nil {
					t.Errorf("hook got a context that is nil or done")
				}
				codes = append(codes, genpipe.ErrorCode(err))
			}
			url := serve(t, &failingAI{status: tc.status, detail: "no"})
			handle, event, _, _ := stageUnderTest(t, tc.stage, url, testenv.New(t), worker.WithRetry(policy), worker.WithRetryHook(hook))
			wantDeadLetter(t, handle(testutil.Context(t), event), tc.attempts)
			mu.Lock()
			defer mu.Unlock()
			if !slices.Equal(codes, tc.want) {
				t.Errorf("hook heard %v, want %v", codes, tc.want)
			}
		})
	}
}

// A canceled context (the consumer giving up on the record: a revoke, a
// lost partition, shutdown) ends Handle with an error, so the record is not
// committed and nothing goes downstream. The AI call under way is not
// abandoned: it runs to its end and its outcome is recorded in the claim, so
// the record's next owner re-emits the result without paying again.
func TestContextCanceledDuringAICall(t *testing.T) {
	bothStages(t, func(t *testing.T, stage string) {
		env := testenv.New(t)
		svc, url := simulatedAI(t, stage, aisim.WithLatency(time.Second))
		handle, event, id, working := stageUnderTest(t, stage, url, env, worker.WithRetry(fast))

		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- handle(ctx, event) }()
		deadline := time.Now().Add(10 * time.Second)
		for svc.Stats().InFlight == 0 {
			if time.Now().After(deadline) {
				t.Fatal("the AI call never started")
			}
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Handle = %v, want context.Canceled", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("Handle did not return after its context was canceled and its AI call ended")
		}
		if got := statusesOf(t, readAll(t, env, env.Topics.Results)); !slices.Equal(got, []genpipe.Status{working}) {
			t.Errorf("results topic: %v, want [%s] only", got, working)
		}
		expectEmpty(t, env, env.Topics.Checked)
		if st := svc.Stats(); st.Calls != 1 || st.Succeeded != 1 || st.Abandoned != 0 {
			t.Errorf("the AI got %d calls, %d succeeded, %d abandoned; want 1, 1, 0", st.Calls, st.Succeeded, st.Abandoned)
		}
		if stage == "generate" {
			if _, err := env.Objects.Stat(testutil.Context(t), genpipe.ResultKeys(id).PNGKey); err != nil {
				t.Errorf("stat of the slide of the call that ran to its end: %v", err)
			}
		}

		// The record's next owner re-emits the recorded outcome.
		if err := handle(testutil.Context(t), event); err != nil {
			t.Fatalf("Handle by the next owner: %v", err)
		}
		if st := svc.Stats(); st.Calls != 1 {
			t.Errorf("the AI got %d calls after the next owner handled the record, want 1", st.Calls)
		}
	})
}

func TestGenerateUnknownStyle(t *testing.T) {
	env := testenv.New(t)
	gen, svc := simulatedStage(t, "generate", env, nil)
	id := uuid.NewString()
	job := jobOn(upload(t, genpipe.ContentTypePNG, pngImage(t, 128, 128)), "baroque")
	wantDeadLetter(t, gen(testutil.Context(t), testutil.JobEvent(genpipe.EventChecked, id, job)), 0)
	results := readAll(t, env, env.Topics.Results)
	if got := statusesOf(t, results); !slices.Equal(got, []genpipe.Status{genpipe.StatusFailed}) {
		t.Fatalf("results topic: %v, want [failed]", got)
	}
	if reason := results[0].event.Error; !strings.Contains(reason, `"baroque"`) {
		t.Errorf("failed with reason %q, want one naming the style", reason)
	}
	if st := svc.Stats(); st.Calls != 0 {
		t.Errorf("the AI got %d calls for an unknown style", st.Calls)
	}
}

// gatedPublisher holds each publish to topic until release is closed.
type gatedPublisher struct {
	genpipe.Publisher
	topic   string
	release chan struct{}
}

func (g gatedPublisher) Publish(ctx context.Context, topic, key string, value []byte) error {
	if topic == g.topic {
		select {
		case <-g.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return g.Publisher.Publish(ctx, topic, key, value)
}

// claimSpy tells on claimed each claim its stage took.
type claimSpy struct {
	genpipe.ClaimStore
	claimed chan genpipe.ClaimState
}

func (c claimSpy) ClaimStage(ctx context.Context, req genpipe.ClaimRequest) (genpipe.Claim, error) {
	claim, err := c.ClaimStore.ClaimStage(ctx, req)
	if err == nil {
		c.claimed <- claim.State
	}
	return claim, err
}

// A stage gets the request's claim while its status (checking,
// generating) is being published, not after: waiting for Kafka first would
// add to the time between one AI call and the next. The AI is called only
// once the status is out.
func TestStatusPublishedWhileClaiming(t *testing.T) {
	bothStages(t, func(t *testing.T, stage string) {
		env := testenv.New(t)
		svc, url := simulatedAI(t, stage)
		claims := claimSpy{ClaimStore: newClaims(t), claimed: make(chan genpipe.ClaimState, 10)}
		gate := gatedPublisher{Publisher: env.Producer, topic: env.Topics.Results, release: make(chan struct{})}
		handle, in, working := newStagePublishing(t, stage, url, env, gate, claims)
		event := testutil.JobEvent(in, uuid.NewString(), newJob(t))
		done := make(chan error, 1)
		go func() { done <- handle(t.Context(), event) }()

		select {
		case state := <-claims.claimed:
			if state != genpipe.ClaimTaken {
				t.Errorf("claim %s; want taken", state)
			}
		case <-time.After(30 * time.Second):
			close(gate.release)
			t.Fatalf("the stage did not claim the request while its %s status was held", working)
		}
		if st := svc.Stats(); st.Calls != 0 {
			t.Errorf("the AI got %d calls before the %s status was out", st.Calls, working)
		}
		close(gate.release)
		if err := <-done; err != nil {
			t.Fatalf("Handle = %v", err)
		}
		if st := svc.Stats(); st.Calls != 1 {
			t.Errorf("the AI got %d calls; want 1", st.Calls)
		}
		if got := statusesOf(t, readAll(t, env, env.Topics.Results)); len(got) == 0 || got[0] != working {
			t.Errorf("results topic: %v; want %s first", got, working)
		}
	})
}

// Kafka away: the stage retries publishing until its context ends, then
// returns an error (the record is not committed), having paid for no AI
// call.
func TestKafkaDown(t *testing.T) {
	env := testenv.New(t, testenv.WithProducer(kafka.WithDeliveryTimeout(time.Second)))
	env.Kafka.Stop() // the stage publishes through env.Producer, to a broker that is down
	log, logs := testutil.CaptureLogs(t)
	check, svc := simulatedStage(t, "check", env, nil, worker.WithLogger(log))
	job := jobOn(upload(t, genpipe.ContentTypePNG, pngImage(t, 128, 128)), "corporate")

	ctx, cancel := context.WithTimeout(t.Context(), 2500*time.Millisecond)
	defer cancel()
	err := check(ctx, testutil.JobEvent(genpipe.EventSubmitted, uuid.NewString(), job))
	if err == nil {
		t.Fatal("Handle = nil with Kafka down, want an error")
	}
	if !logs.Contains("publish failed, retrying") {
		t.Error("publish retries not logged")
	}
	if st := svc.Stats(); st.Calls != 0 {
		t.Errorf("the AI got %d calls before the checking status was out", st.Calls)
	}
}

// An option out of its range stops the constructor with an error naming
// it, rather than being clamped or ignored.
func TestOptionsOutOfRange(t *testing.T) {
	for _, c := range []struct {
		opt  worker.Option
		want string
	}{
		{worker.WithLease(0), "claim lease"},
		{worker.WithHeldPoll(-time.Second), "held poll"},
		{worker.WithRetry(backoff.Policy{Attempts: 0}), "AI call attempts"},
	} {
		if _, err := worker.NewCheck(nil, nil, nil, nil, genpipe.DefaultTopics(), c.opt); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewCheck with a bad %s = %v; want an error naming it", c.want, err)
		}
		if _, err := worker.NewGenerate(nil, nil, nil, nil, genpipe.DefaultTopics(), c.opt); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewGenerate with a bad %s = %v; want an error naming it", c.want, err)
		}
	}
}
