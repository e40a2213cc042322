package api_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/api"
	"github.com/genpipe/genpipe/internal/contract"
	"github.com/genpipe/genpipe/internal/testenv"
	"github.com/genpipe/genpipe/kafka"
)

// The object store is one per test binary (testenv.Run); each test has a
// broker and a database of its own. Every exchange of http.DefaultClient
// with a fixture's server is checked against the OpenAPI description.
func TestMain(m *testing.M) {
	code := testenv.Run(m)
	if err := described.Report(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = max(code, 1)
	}
	os.Exit(code)
}

var described = contract.Install()

type fixture struct {
	env    *testenv.Env
	store  *testenv.StatusStore
	server *httptest.Server
	api    *api.Server
	topics genpipe.Topics
}

// newFixture serves the API against a real broker (persisted, on a fixed
// port so it can be stopped and started again), SQLite and S3.
func newFixture(t *testing.T, opts ...api.Option) *fixture {
	t.Helper()
	return newFixtureOn(t, func(*testenv.StatusStore) []api.Option { return opts })
}

// newFixtureHub is newFixture with the hub the test feeds status changes.
func newFixtureHub(t *testing.T, hub *api.Hub, opts ...api.Option) *fixture {
	t.Helper()
	return newFixtureServed(t, hub, func(*testenv.StatusStore) []api.Option { return opts })
}

// newFixtureOn is newFixture with options that need the fixture's store.
func newFixtureOn(t *testing.T, options func(*testenv.StatusStore) []api.Option) *fixture {
	t.Helper()
	return newFixtureServed(t, api.NewHub(), options)
}

func newFixtureServed(t *testing.T, hub *api.Hub, options func(*testenv.StatusStore) []api.Option) *fixture {
	t.Helper()
	env := testenv.New(t, testenv.WithPartitions(2), testenv.WithProducer(kafka.WithDeliveryTimeout(time.Second)))
	f := &fixture{env: env, store: env.Store, topics: env.Topics}
	opts := options(env.Store)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := api.NewServer(f.store, genpipe.NewSubmitter(f.store, env.Producer, f.topics.Requests), env.Objects, hub, append([]api.Option{api.WithLogger(quiet)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	f.api, f.server = srv, httptest.NewServer(srv.Handler())
	t.Cleanup(f.server.Close)
	described.Watch(f.server.URL)
	return f
}

// uploaded stores a PNG as an upload made without an API key, or as one
// made by each of keys, and returns its object id.
func uploaded(t *testing.T, keys ...string) string {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, image.NewGray(image.Rect(0, 0, 80, 80))); err != nil {
		t.Fatal(err)
	}
	id := fmt.Sprintf("%08d-0000-4000-8000-%012d", time.Now().UnixNano()%1e8, time.Now().UnixNano()%1e12)
	owners := []string{""}
	if len(keys) > 0 {
		owners = owners[:0]
		for _, key := range keys {
			sum := sha256.Sum256([]byte(key))
			owners = append(owners, hex.EncodeToString(sum[:]))
		}
	}
	for _, owner := range owners {
		if err := testenv.Objects(t).Put(context.Background(), genpipe.UploadKey(owner, id), genpipe.ContentTypePNG, buf.Bytes()); err != nil {
			t.Fatal(err)
		}
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
	return f.topicEvents(t, f.topics.Requests)
}

// topicEvents reads the events now in topic, each keyed by its request.
func (f *fixture) topicEvents(t *testing.T, topic string) []genpipe.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(f.env.Kafka.Addrs()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	// Read up to the end offsets of now, not for a while: a slow machine
	// then makes the read slower, never shorter.
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil || ends.Error() != nil {
		t.Fatalf("end offsets of %s: %v %v", topic, err, ends.Error())
	}
	left := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			left[o.Partition] = o.Offset
		}
	})
	var events []genpipe.Event
	for len(left) > 0 && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			if r.Offset+1 >= left[r.Partition] {
				delete(left, r.Partition)
			}
			e, err := genpipe.DecodeEvent(r.Value)
			if err != nil || string(r.Key) != e.RequestID {
				t.Fatalf("record %q key %q: %v", r.Value, r.Key, err)
			}
			events = append(events, e)
		})
	}
	if len(left) > 0 {
		t.Fatalf("reading %s: partitions %v not read to their end: %v", topic, left, ctx.Err())
	}
	return events
}

// With Kafka unreachable the API answers 503 with Retry-After and accepts
// nothing; a retry with the same Idempotency-Key once Kafka is back is
// queued exactly once.
func TestKafkaUnreachableIs503ThenRetrySucceeds(t *testing.T) {
	f := newFixture(t)
	body := map[string]string{"objectId": uploaded(t), "style": "minimal", "description": "while Kafka is away"}
	f.env.Kafka.Stop()

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

	f.env.Kafka.Start(t)
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
	srv, err := api.NewServer(f.store, nil, f.env.Objects, api.NewHub(), api.WithLogger(quiet),
		api.WithReadinessCheck("database", f.store.Ping),
		api.WithReadinessCheck("kafka", func(context.Context) error { return fmt.Errorf("broker away") }))
	if err != nil {
		t.Fatal(err)
	}
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

// An option out of its range stops NewServer with an error naming it,
// rather than being clamped or ignored.
func TestOptionsOutOfRange(t *testing.T) {
	for _, c := range []struct {
		opt  api.Option
		want string
	}{
		{api.WithUploadTTL(0), "upload TTL"},
		{api.WithUploadTTL(8 * 24 * time.Hour), "upload TTL"},
		{api.WithResultTTL(-time.Second), "result TTL"},
		{api.WithMaxUploadSize(0), "max upload size"},
		{api.WithMaxBacklog(-1), "max backlog"},
		{api.WithRateLimit(-1, 5), "rate limit"},
		{api.WithRateLimit(1, 0), "rate burst"},
	} {
		_, err := api.NewServer(nil, nil, nil, api.NewHub(), c.opt)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewServer with a bad %s = %v; want an error naming it", c.want, err)
		}
	}
	if _, err := api.NewServer(nil, nil, nil, api.NewHub(), api.WithMaxBacklog(0), api.WithRateLimit(0, 0)); err != nil {
		t.Errorf("no backlog bound and no rate limit: %v", err)
	}
}
