package worker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/aiclient"
	"github.com/genpipe/genpipe/aisim"
	"github.com/genpipe/genpipe/internal/testenv"
	"github.com/genpipe/genpipe/internal/testutil"
	"github.com/genpipe/genpipe/worker"
)

// The object store is one per test binary (testenv.Run); each test has a
// broker, topics and objects of its own (testenv.New).
func TestMain(m *testing.M) { os.Exit(testenv.Run(m)) }

// record is one record read back from a topic.
type record struct {
	key       string
	event     genpipe.Event
	timestamp time.Time
}

// readAll returns every record of topic, in offset order per partition
// (so one request's records are in the order they were published). The
// stages publish with acks=all before Handle returns, so what a finished
// Handle published is all there.
func readAll(t *testing.T, env *testenv.Env, topic string) []record {
	t.Helper()
	recs := env.Kafka.Records(t, topic)
	out := make([]record, 0, len(recs))
	for _, r := range recs {
		e, err := genpipe.DecodeEvent(r.Value)
		if err != nil {
			t.Fatalf("%s/%d@%d: %v: %s", topic, r.Partition, r.Offset, err, r.Value)
		}
		out = append(out, record{key: string(r.Key), event: e, timestamp: r.Timestamp})
	}
	return out
}

// of returns the records of one request.
func of(recs []record, id string) []record {
	var out []record
	for _, r := range recs {
		if r.key == id {
			out = append(out, r)
		}
	}
	return out
}

// statusesOf lists the statuses in status records, checking that each is
// keyed by its request id.
func statusesOf(t *testing.T, recs []record) []genpipe.Status {
	t.Helper()
	var out []genpipe.Status
	for _, r := range recs {
		if r.event.Type != genpipe.EventStatus {
			t.Errorf("%s event on the results topic", r.event.Type)
		}
		if r.key != r.event.RequestID {
			t.Errorf("record key %q, want the request id %q", r.key, r.event.RequestID)
		}
		out = append(out, r.event.Status)
	}
	return out
}

// expectEmpty fails the test when any of the topics holds a record.
func expectEmpty(t *testing.T, env *testenv.Env, topics ...string) {
	t.Helper()
	for _, topic := range topics {
		if recs := readAll(t, env, topic); len(recs) != 0 {
			t.Errorf("%s holds %d record(s), want none: %+v", topic, len(recs), recs)
		}
	}
}

// upload stores data as an upload made without an API key and returns
// its object id; a job names it with jobOn.
func upload(t *testing.T, contentType string, data []byte) string {
	t.Helper()
	id := uuid.NewString()
	if err := testenv.Objects(t).Put(testutil.Context(t), genpipe.UploadKey("", id), contentType, data); err != nil {
		t.Fatal(err)
	}
	return id
}

// jobOn returns a job in style on the upload objectID, read where it is,
// as the API submits a write-once upload.
func jobOn(objectID, style string) genpipe.Job {
	return genpipe.Job{ObjectID: objectID, Image: genpipe.UploadKey("", objectID), Style: style, Description: "d"}
}

// pngImage is a w×h PNG with a gradient.
func pngImage(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.SetRGBA(x, y, color.RGBA{uint8(x), uint8(y), uint8(x ^ y), 0xff})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// serve runs an AI service over HTTP on loopback and returns its URL.
func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// simulatedAI runs the simulated AI of the named stage ("check" or
// "generate"), without latency unless opts set one, and returns it with
// its URL.
func simulatedAI(t *testing.T, stage string, opts ...aisim.Option) (*aisim.Service, string) {
	t.Helper()
	svc := testutil.Must(aisim.New(stage, append([]aisim.Option{aisim.WithLatency(0)}, opts...)...))(t)
	return svc, serve(t, svc.Handler())
}

// failingAI answers every call with status and an RFC 9457 problem, and
// counts the calls.
type failingAI struct {
	calls  atomic.Int64
	status int
	detail string
}

func (f *failingAI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.calls.Add(1)
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(f.status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"type": "about:blank", "title": http.StatusText(f.status), "status": f.status, "detail": f.detail})
}

// newClaims returns a fresh status database for the stages' claims.
func newClaims(t *testing.T) genpipe.ClaimStore {
	t.Helper()
	return testenv.NewStatusStore(t)
}

// newJob returns a job on a fresh 128×128 upload, in a style that exists.
func newJob(t *testing.T) genpipe.Job {
	t.Helper()
	return jobOn(upload(t, genpipe.ContentTypePNG, pngImage(t, 128, 128)), "forest")
}

// titledJob returns a job as a user fills it in, on a fresh 320×200
// upload.
func titledJob(t *testing.T, style, title, description string) genpipe.Job {
	t.Helper()
	job := jobOn(upload(t, genpipe.ContentTypePNG, pngImage(t, 320, 200)), style)
	job.Title, job.Description = title, description
	return job
}

// stageHandler is a stage's Handle.
type stageHandler = func(context.Context, genpipe.Event) error

// newStage returns the Handle of the named stage ("check" or "generate")
// against the AI at url, on env, with claims in claims and its logs in the
// test's; it returns too the type of the events the stage handles and the
// status it reports first.
func newStage(t *testing.T, stage, url string, env *testenv.Env, claims genpipe.ClaimStore, opts ...worker.Option) (
	handle stageHandler, in genpipe.EventType, working genpipe.Status) {
	t.Helper()
	return newStagePublishing(t, stage, url, env, env.Producer, claims, opts...)
}

// newStagePublishing is newStage publishing through publisher.
func newStagePublishing(t *testing.T, stage, url string, env *testenv.Env, publisher genpipe.Publisher, claims genpipe.ClaimStore, opts ...worker.Option) (
	handle stageHandler, in genpipe.EventType, working genpipe.Status) {
	t.Helper()
	log, _ := testutil.CaptureLogs(t)
	opts = append([]worker.Option{worker.WithLogger(log)}, opts...)
	switch stage {
	case "check":
		return testutil.Must(worker.NewCheck(aiclient.NewChecker(url), env.Objects, publisher, claims, env.Topics, opts...))(t).Handle,
			genpipe.EventSubmitted, genpipe.StatusChecking
	case "generate":
		return testutil.Must(worker.NewGenerate(aiclient.NewGenerator(url), env.Objects, publisher, claims, env.Topics, opts...))(t).Handle,
			genpipe.EventChecked, genpipe.StatusGenerating
	}
	t.Fatalf("unknown stage %q", stage)
	return nil, "", ""
}

// stageUnderTest returns a stage's Handle against the AI at url, with
// claims of its own (see newStage), an event for it, the event's request
// id, and the status the stage reports first.
func stageUnderTest(t *testing.T, stage, url string, env *testenv.Env, opts ...worker.Option) (
	handle stageHandler, event genpipe.Event, id string, working genpipe.Status) {
	t.Helper()
	handle, in, working := newStage(t, stage, url, env, newClaims(t), opts...)
	id = uuid.NewString()
	return handle, testutil.JobEvent(in, id, newJob(t)), id, working
}

// simulatedStage returns the named stage on env, with claims of its own,
// against its simulated AI, started with ai; opts configure the stage.
func simulatedStage(t *testing.T, stage string, env *testenv.Env, ai []aisim.Option, opts ...worker.Option) (stageHandler, *aisim.Service) {
	t.Helper()
	svc, url := simulatedAI(t, stage, ai...)
	handle, _, _ := newStage(t, stage, url, env, newClaims(t), opts...)
	return handle, svc
}

// bothStages runs test as a subtest for each stage.
func bothStages(t *testing.T, test func(t *testing.T, stage string)) {
	for _, stage := range []string{"check", "generate"} {
		t.Run(stage, func(t *testing.T) { test(t, stage) })
	}
}

// wantDeadLetter fails t unless err is a dead letter with a reason and
// the given attempts.
func wantDeadLetter(t *testing.T, err error, attempts int) {
	t.Helper()
	var dl *genpipe.DeadLetterError
	if !errors.As(err, &dl) || dl.Reason == "" || dl.Attempts != attempts {
		t.Fatalf("Handle = %v; want a dead letter with a reason after %d attempt(s)", err, attempts)
	}
}

// claimedStage is one stage's handler over a claim store the test shares,
// with the AI's /stats and an event for the stage, on an environment of its
// own.
type claimedStage struct {
	env     *testenv.Env
	handle  stageHandler
	stats   func() aisim.Stats
	event   genpipe.Event
	id      string
	job     genpipe.Job
	topics  genpipe.Topics
	claims  genpipe.ClaimStore
	working genpipe.Status
}

func newClaimedStage(t *testing.T, stage string, claims genpipe.ClaimStore, latency time.Duration, opts ...worker.Option) claimedStage {
	t.Helper()
	svc, url := simulatedAI(t, stage, aisim.WithLatency(latency))
	env := testenv.New(t)
	cs := claimedStage{env: env, stats: svc.Stats, id: uuid.NewString(), job: newJob(t), topics: env.Topics, claims: claims}
	var in genpipe.EventType
	opts = append([]worker.Option{worker.WithHeldPoll(20 * time.Millisecond)}, opts...)
	cs.handle, in, cs.working = newStage(t, stage, url, env, claims, opts...)
	cs.event = testutil.JobEvent(in, cs.id, cs.job)
	return cs
}

// emitted is what the stage sent downstream for its request: checked
// events (check) or done statuses (generate).
func (cs claimedStage) emitted(t *testing.T) int {
	t.Helper()
	if cs.working == genpipe.StatusChecking {
		return len(of(readAll(t, cs.env, cs.topics.Checked), cs.id))
	}
	n := 0
	for _, st := range statusesOf(t, of(readAll(t, cs.env, cs.topics.Results), cs.id)) {
		if st == genpipe.StatusDone {
			n++
		}
	}
	return n
}

// wantPaidOnce fails t unless the AI was paid once for the n handlings of
// the request (what says which), each of which sent the result downstream.
func (cs claimedStage) wantPaidOnce(t *testing.T, n int, what string) {
	t.Helper()
	if st := cs.stats(); st.Calls != 1 {
		t.Errorf("the AI got %d calls for %s of one request; want 1", st.Calls, what)
	}
	if got := cs.emitted(t); got != n {
		t.Errorf("the result went downstream %d times; want %d (every delivery re-emits it)", got, n)
	}
}
