package worker_test

import (
	"bytes"
	"encoding/json"
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

// upload stores data as an upload and returns its object id.
func upload(t *testing.T, contentType string, data []byte) string {
	t.Helper()
	id := uuid.NewString()
	if err := testenv.Objects(t).Put(testutil.Context(t), genpipe.UploadKey(id), contentType, data); err != nil {
		t.Fatal(err)
	}
	return id
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

func checkAI(t *testing.T, opts ...aisim.Option) (*aisim.Service, *aiclient.Checker) {
	t.Helper()
	svc := testutil.Must(aisim.NewCheckService(append([]aisim.Option{aisim.WithLatency(0)}, opts...)...))(t)
	return svc, aiclient.NewChecker(serve(t, svc.Handler()))
}

func generateAI(t *testing.T, opts ...aisim.Option) (*aisim.Service, *aiclient.Generator) {
	t.Helper()
	svc := testutil.Must(aisim.NewGenerateService(append([]aisim.Option{aisim.WithLatency(0)}, opts...)...))(t)
	return svc, aiclient.NewGenerator(serve(t, svc.Handler()))
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
