package worker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/aiclient"
	"github.com/genpipe/genpipe/aisim"
	"github.com/genpipe/genpipe/kafka"
	"github.com/genpipe/genpipe/s3"
	"github.com/genpipe/genpipe/sqlstore"
)

// One embedded S3 server per test binary (an embedgw limit) and one Kafka
// broker, started in TestMain. Each test has topics and objects of its own.
var (
	objects   *s3.Store
	brokers   []string
	publisher *kafka.Producer
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	fail := func(err error) int { fmt.Fprintln(os.Stderr, err); return 1 }
	dir, err := os.MkdirTemp("", "genpipe-worker-test-")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(dir)
	srv, err := s3.StartServer(context.Background(), dir)
	if err != nil {
		return fail(err)
	}
	defer srv.Close()
	access, secret := srv.Credentials()
	if objects, err = s3.New(srv.Endpoint(), "genpipe-worker-test", access, secret); err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := objects.EnsureBucket(ctx); err != nil {
		return fail(err)
	}
	broker, err := kafka.StartBroker()
	if err != nil {
		return fail(err)
	}
	defer broker.Close()
	brokers = broker.Addrs()
	if publisher, err = kafka.NewProducer(brokers); err != nil {
		return fail(err)
	}
	defer publisher.Close()
	return m.Run()
}

var topicSeq atomic.Int64

// newTopics creates a fresh set of topics for one test.
func newTopics(t *testing.T) genpipe.Topics {
	t.Helper()
	p := fmt.Sprintf("t%d.", topicSeq.Add(1))
	topics := genpipe.Topics{Requests: p + "requests", Checked: p + "checked", Results: p + "results", DeadLetters: p + "deadletters"}
	if err := kafka.EnsureTopics(ctxT(t), brokers, 4, topics.All()...); err != nil {
		t.Fatal(err)
	}
	return topics
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

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
func readAll(t *testing.T, topic string) []record {
	t.Helper()
	ctx := ctxT(t)
	admCl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer admCl.Close()
	ends, err := kadm.NewClient(admCl).ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	want := map[int32]int64{} // partition → end offset
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
		}
	})
	if len(want) == 0 {
		return nil
	}
	start := map[int32]kgo.Offset{}
	for p := range want {
		start[p] = kgo.NewOffset().AtStart()
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: start}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for len(want) > 0 {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s: %v (still waiting for partitions %v)", topic, ctx.Err(), want)
		}
		fetches.EachError(func(_ string, p int32, err error) { t.Logf("fetch %s/%d: %v", topic, p, err) })
		fetches.EachRecord(func(r *kgo.Record) {
			recs = append(recs, r)
			if end, ok := want[r.Partition]; ok && r.Offset >= end-1 {
				delete(want, r.Partition)
			}
		})
	}
	slices.SortFunc(recs, func(a, b *kgo.Record) int {
		if a.Partition != b.Partition {
			return int(a.Partition - b.Partition)
		}
		return int(a.Offset - b.Offset)
	})
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
func expectEmpty(t *testing.T, topics ...string) {
	t.Helper()
	for _, topic := range topics {
		if recs := readAll(t, topic); len(recs) != 0 {
			t.Errorf("%s holds %d record(s), want none: %+v", topic, len(recs), recs)
		}
	}
}

// upload stores data as an upload and returns its object id.
func upload(t *testing.T, contentType string, data []byte) string {
	t.Helper()
	id := uuid.NewString()
	if err := objects.Put(ctxT(t), genpipe.UploadKey(id), contentType, data); err != nil {
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

// jobEvent returns the record value of a submitted or checked event.
func jobEvent(t *testing.T, typ genpipe.EventType, id string, job genpipe.Job) []byte {
	t.Helper()
	v, err := genpipe.EncodeEvent(genpipe.NewJobEvent(typ, id, job, time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	return v
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
	svc := aisim.NewCheckService(append([]aisim.Option{aisim.WithLatency(0)}, opts...)...)
	return svc, aiclient.NewChecker(serve(t, svc.Handler()))
}

func generateAI(t *testing.T, opts ...aisim.Option) (*aisim.Service, *aiclient.Generator) {
	t.Helper()
	svc := aisim.NewGenerateService(append([]aisim.Option{aisim.WithLatency(0)}, opts...)...)
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

// logBuffer collects log lines and copies them to the test log until the
// test ends.
type logBuffer struct {
	t    *testing.T
	mu   sync.Mutex
	buf  bytes.Buffer
	done bool
}

func newLogger(t *testing.T) (*slog.Logger, *logBuffer) {
	l := &logBuffer{t: t}
	t.Cleanup(func() { l.mu.Lock(); l.done = true; l.mu.Unlock() })
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug})), l
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	if !l.done {
		l.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

func (l *logBuffer) contains(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Contains(l.buf.String(), s)
}

// newClaims returns a fresh status database for the stages' claims.
func newClaims(t *testing.T) genpipe.ClaimStore {
	t.Helper()
	s, err := sqlstore.Open(t.Context(), "sqlite:"+filepath.Join(t.TempDir(), "genpipe.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
