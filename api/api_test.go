package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/api"
	"github.com/genpipe/genpipe/kafka"
	"github.com/genpipe/genpipe/s3"
	"github.com/genpipe/genpipe/sqlstore"
)

// objects is the embedded S3 store shared by this package's tests (one
// embedded server per process).
var objects *s3.Store

func TestMain(m *testing.M) {
	os.Exit(func() int {
		dir, err := os.MkdirTemp("", "genpipe-api-test-")
		if err != nil {
			panic(err)
		}
		defer os.RemoveAll(dir)
		srv, err := s3.StartServer(context.Background(), dir)
		if err != nil {
			fmt.Fprintln(os.Stderr, "start s3:", err)
			return 1
		}
		defer srv.Close()
		access, secret := srv.Credentials()
		if objects, err = s3.New(srv.Endpoint(), "api-test", access, secret); err == nil {
			err = objects.EnsureBucket(context.Background())
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "s3 store:", err)
			return 1
		}
		return m.Run()
	}())
}

type fixture struct {
	store  *sqlstore.Store
	broker *kafka.Broker
	port   int
	dir    string
	server *httptest.Server
	topics genpipe.Topics
}

// newFixture serves the API against a real broker (persisted, on a fixed
// port so it can be stopped and started again), SQLite and S3.
func newFixture(t *testing.T, opts ...api.Option) *fixture {
	t.Helper()
	f := &fixture{dir: t.TempDir(), port: freePort(t), topics: genpipe.DefaultTopics()}
	f.startBroker(t)
	ctx := context.Background()
	if err := kafka.EnsureTopics(ctx, f.broker.Addrs(), 2, f.topics.All()...); err != nil {
		t.Fatal(err)
	}
	var err error
	if f.store, err = sqlstore.Open(ctx, "sqlite:"+filepath.Join(f.dir, "api.db")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.store.Close() })
	producer, err := kafka.NewProducer(f.broker.Addrs(), kafka.WithDeliveryTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(producer.Close)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := api.NewServer(f.store, genpipe.NewSubmitter(f.store, producer, f.topics.Requests), objects, api.NewHub(), append([]api.Option{api.WithLogger(quiet)}, opts...)...)
	f.server = httptest.NewServer(srv.Handler())
	t.Cleanup(f.server.Close)
	return f
}

func (f *fixture) startBroker(t *testing.T) {
	t.Helper()
	b, err := kafka.StartBroker(kafka.WithDataDir(filepath.Join(f.dir, "kafka")), kafka.WithPort(f.port))
	if err != nil {
		t.Fatal(err)
	}
	f.broker = b
	t.Cleanup(b.Close)
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// uploaded stores a PNG as an upload and returns its object id.
func uploaded(t *testing.T) string {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, image.NewGray(image.Rect(0, 0, 80, 80))); err != nil {
		t.Fatal(err)
	}
	id := fmt.Sprintf("%08d-0000-4000-8000-%012d", time.Now().UnixNano()%1e8, time.Now().UnixNano()%1e12)
	if err := objects.Put(context.Background(), genpipe.UploadKey(id), genpipe.ContentTypePNG, buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	return id
}

func (f *fixture) post(t *testing.T, body map[string]string, key string) (*http.Response, map[string]any) {
	t.Helper()
	var headers map[string]string
	if key != "" {
		headers = map[string]string{"Idempotency-Key": key}
	}
	return f.do(t, http.MethodPost, "/v1/requests", body, headers)
}

// do sends a request with a JSON body (none if nil) and decodes a JSON answer.
func (f *fixture) do(t *testing.T, method, path string, body any, headers map[string]string) (*http.Response, map[string]any) {
	t.Helper()
	var r io.Reader
	if body != nil {
		data, _ := json.Marshal(body)
		r = bytes.NewReader(data)
	}
	req, _ := http.NewRequest(method, f.server.URL+path, r)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp, out
}

// requestEvents reads the submitted events now in the requests topic.
func (f *fixture) requestEvents(t *testing.T) []genpipe.Event {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(f.broker.Addrs()...), kgo.ConsumeTopics(f.topics.Requests),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var events []genpipe.Event
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			e, err := genpipe.DecodeEvent(r.Value)
			if err != nil || string(r.Key) != e.RequestID {
				t.Fatalf("record %q key %q: %v", r.Value, r.Key, err)
			}
			events = append(events, e)
		})
	}
	return events
}

// With Kafka unreachable the API answers 503 with Retry-After and accepts
// nothing; a retry with the same Idempotency-Key once Kafka is back is
// queued exactly once.
func TestKafkaUnreachableIs503ThenRetrySucceeds(t *testing.T) {
	f := newFixture(t)
	body := map[string]string{"objectId": uploaded(t), "style": "minimal", "description": "while Kafka is away"}
	f.broker.Close()

	resp, problem := f.post(t, body, "retry-me")
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("Kafka down: %s %s, want 503 problem+json", resp.Status, resp.Header.Get("Content-Type"))
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || s < 1 {
		t.Fatalf("Retry-After = %q, want seconds", resp.Header.Get("Retry-After"))
	}
	if problem["detail"] == "" {
		t.Fatalf("503 without a detail: %v", problem)
	}

	f.startBroker(t)
	var first map[string]any
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, first = f.post(t, body, "retry-me")
		if resp.StatusCode == http.StatusAccepted || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("retry after Kafka came back: %s %v", resp.Status, first)
	}
	_, second := f.post(t, body, "retry-me")
	if first["id"] != second["id"] {
		t.Fatalf("retries got ids %v and %v, want one", first["id"], second["id"])
	}
	var mine int
	for _, e := range f.requestEvents(t) {
		if e.RequestID == first["id"] {
			mine++
		}
	}
	// The first attempt may still reach Kafka after its 503 (the producer
	// keeps an in-flight record); consumers are idempotent, but the API must
	// not add one per retry.
	if mine < 1 || mine > 2 {
		t.Fatalf("%d submitted events for request %v, want 1 (2 at most if the 503'd attempt landed late)", mine, first["id"])
	}
}

func TestReadyzReportsEachDependency(t *testing.T) {
	f := newFixture(t)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := api.NewServer(f.store, nil, objects, api.NewHub(), api.WithLogger(quiet),
		api.WithReadinessCheck("database", f.store.Ping),
		api.WithReadinessCheck("kafka", func(context.Context) error { return fmt.Errorf("broker away") }))
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	resp, err := http.Get(ts.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ready struct {
		Ready  bool              `json:"ready"`
		Checks map[string]string `json:"checks"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&ready)
	if resp.StatusCode != http.StatusServiceUnavailable || ready.Ready || ready.Checks["database"] != "ok" || ready.Checks["kafka"] != "broker away" {
		t.Fatalf("readyz = %d %+v, want 503 naming kafka", resp.StatusCode, ready)
	}
}
