package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/broker"
	"github.com/genpipe/genpipe/httpjson"
	"github.com/genpipe/genpipe/kafka"
	"github.com/genpipe/genpipe/objectstore"
	"github.com/genpipe/genpipe/s3"
	"github.com/genpipe/genpipe/sqlstore"
)

// Defaults of `genpipe bench intake`.
const (
	defaultBenchConns    = 32
	defaultBenchDuration = 20 * time.Second
	defaultBenchImages   = 16
	// benchBaselineTopic is where the produce-only server produces: a topic
	// of its own on the same broker, so the check of the requests topic
	// counts genpipe's records only.
	benchBaselineTopic = "genpipe.bench.baseline"
)

const benchUsage = `Usage: genpipe bench intake [flags]

Measures how fast POST /v1/requests takes requests in: it starts an embedded
broker, object store and status database and the API in this process (the
same runner as genpipe api and up, without workers), uploads a pool of
images once, then sends requests for them closed-loop on -conns connections
for -duration. Then, in the same run, it drives a minimal produce-only
server (it decodes the same JSON and produces one keyed acks=all record to
the same broker) the same way, and prints both and the ratio: on a shared
machine the ratio is the fairer figure. -store sqlite,postgres drives the
API on each status database in turn, in the same run, and prints the ratio
of the second to the first too. Last it checks that every request the API
accepted is stored, visible and queued exactly once.

`

// benchConfig is the configuration of `genpipe bench intake`.
type benchConfig struct {
	common
	Conns        int
	Duration     time.Duration
	Images       int
	Store        string
	PostgresURL  string
	JSONFile     string
	CPUProfile   string
	BlockProfile string
}

func (c *benchConfig) register(f *flags) {
	c.common.register(f)
	f.Int(&c.Conns, "conns", "GENPIPE_BENCH_CONNS", defaultBenchConns, "connections sending requests, each one at a time (closed loop)", between(1, 4096))
	f.Duration(&c.Duration, "duration", "GENPIPE_BENCH_DURATION", defaultBenchDuration, "how long each server is driven",
		between(100*time.Millisecond, time.Hour))
	f.Int(&c.Images, "images", "GENPIPE_BENCH_IMAGES", defaultBenchImages, "images uploaded once, which the requests name in turn", between(1, 1000))
	f.String(&c.Store, "store", "GENPIPE_BENCH_STORE", "sqlite",
		"status database: sqlite (a new file) or postgres (-postgres-url), or both, comma-separated, driven in that order", storeList)
	f.SensitiveString(&c.PostgresURL, "postgres-url", "GENPIPE_BENCH_POSTGRES_URL", "",
		"with -store postgres: postgres://user:password@host:port/dbname (its requests table grows by what the run accepts)")
	f.Check(func() error {
		if slices.Contains(c.stores(), "postgres") {
			return requiredFlags("postgres-url", c.PostgresURL)
		}
		return nil
	})
	f.String(&c.JSONFile, "json", "GENPIPE_BENCH_JSON", "", "also write the report as JSON to this file")
	f.String(&c.CPUProfile, "cpu-profile", "GENPIPE_BENCH_CPU_PROFILE", "", "write a CPU profile of the API's run to this file (one store)")
	f.String(&c.BlockProfile, "block-profile", "GENPIPE_BENCH_BLOCK_PROFILE", "",
		"write a block profile (where goroutines wait) of the API's run to this file (one store)")
	f.Check(func() error {
		if len(c.stores()) > 1 && c.CPUProfile+c.BlockProfile != "" {
			return errors.New("-cpu-profile and -block-profile profile one store's run: give -store one store")
		}
		return nil
	})
}

// stores returns the status databases -store names, in the order they
// are driven.
func (c *benchConfig) stores() []string { return splitList(c.Store) }

// storeList wants sqlite or postgres, or both, each once.
func storeList(s string) error {
	stores := splitList(s)
	for i, store := range stores {
		if err := oneOf("sqlite", "postgres")(store); err != nil {
			return err
		}
		if slices.Contains(stores[:i], store) {
			return fmt.Errorf("%s named twice", store)
		}
	}
	if len(stores) == 0 {
		return errors.New("want sqlite, postgres or both")
	}
	return nil
}

func (c *benchConfig) part() string { return "bench" }

// benchReport is what `genpipe bench intake` measured.
type benchReport struct {
	Conns    int           `json:"conns"`
	Duration time.Duration `json:"durationNs"`
	// Runs are the API's runs, one a status database, in the order driven.
	Runs     []benchRun  `json:"runs"`
	Baseline benchResult `json:"produceOnly"`
	// StoreRatio is the second run's requests a second over the first's,
	// when two ran.
	StoreRatio float64 `json:"storeRatio,omitempty"`
	// Unexpected counts the requests topic's records that no run accepted.
	Unexpected int `json:"unexpected"`
}

// benchRun is the API's run on one status database.
type benchRun struct {
	Store   string      `json:"store"`
	Genpipe benchResult `json:"genpipe"`
	// Ratio is Genpipe's requests a second over the produce-only
	// server's.
	Ratio  float64     `json:"ratio"`
	Checks benchChecks `json:"checks"`
}

// benchResult is one server's figures: accepted requests (202) and their
// latency, and the other answers by status.
type benchResult struct {
	Accepted      int            `json:"accepted"`
	PerSecond     float64        `json:"perSecond"`
	P50, P90, P99 time.Duration  `json:"-"`
	Max           time.Duration  `json:"-"`
	Latency       map[string]int `json:"latencyUs"` // p50, p90, p99, max in µs
	// CPUPerRequest is the process's CPU time (user and system: the
	// server, the embedded broker, object store and database, and the
	// load itself) over the run, per accepted request. On a shared machine
	// it moves less than the rates.
	CPUPerRequest time.Duration  `json:"cpuPerRequestNs"`
	Failed        map[string]int `json:"failed,omitempty"`
}

// benchChecks say whether what the API accepted in one run was kept: each
// accepted id is a visible request in the run's store with exactly one
// record in the requests topic.
type benchChecks struct {
	Accepted   int `json:"accepted"`
	Stored     int `json:"stored"`
	Queued     int `json:"queued"`
	Lost       int `json:"lost"`       // accepted, but not stored or not queued
	Duplicated int `json:"duplicated"` // queued more than once
}

func cmdBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "intake" {
		fmt.Fprint(stderr, benchUsage)
		return errors.New("bench: want intake")
	}
	var cfg benchConfig
	f := newFlags("bench intake", stderr)
	f.Usage = func() { fmt.Fprint(stderr, benchUsage); f.PrintDefaults() }
	cfg.register(f)
	if err := f.Parse(args[1:]); err != nil {
		return err
	}
	log, err := cfg.logger(stderr, cfg.part())
	if err != nil {
		return err
	}
	// Absolute, because the embedded object store changes the process's
	// working directory while it runs.
	for _, file := range []*string{&cfg.JSONFile, &cfg.CPUProfile, &cfg.BlockProfile} {
		if *file != "" {
			if *file, err = filepath.Abs(*file); err != nil {
				return err
			}
		}
	}
	rep, err := benchIntake(ctx, cfg, log)
	if err != nil {
		return err
	}
	writeBench(stdout, rep)
	if err := writeJSONFile(cfg.JSONFile, rep); err != nil {
		return err
	}
	lost, twice := 0, 0
	for _, run := range rep.Runs {
		lost, twice = lost+run.Checks.Lost, twice+run.Checks.Duplicated
	}
	if lost+twice+rep.Unexpected > 0 {
		return fmt.Errorf("bench: %d accepted requests lost, %d queued twice, %d queued but never accepted", lost, twice, rep.Unexpected)
	}
	return nil
}

// benchIntake runs the measurement of cfg.
func benchIntake(ctx context.Context, cfg benchConfig, log *slog.Logger) (*benchReport, error) {
	dir, err := os.MkdirTemp("", "genpipe-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	kafkaSrv, err := broker.Start(broker.WithDataDir(filepath.Join(dir, "kafka")), broker.WithPort(0),
		broker.WithPartitions(kafka.DefaultPartitions), broker.WithLogger(log.With("part", "broker")))
	if err != nil {
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	defer kafkaSrv.Close()
	accessKey, secretKey := "bench"+randomHex(6), randomHex(20)
	objects, err := objectstore.Start(ctx, filepath.Join(dir, "objects"), objectstore.WithAddr("127.0.0.1:0"),
		objectstore.WithCredentials(accessKey, secretKey))
	if err != nil {
		return nil, fmt.Errorf("embedded object store: %w", err)
	}
	defer objects.Close()
	b := backends{
		Kafka: kafkaSettings{Brokers: kafkaSrv.Addrs()[0], Partitions: kafka.DefaultPartitions},
		S3: s3Settings{Endpoint: objects.Endpoint(), Bucket: s3.DefaultBucket, Region: objectstore.Region,
			AccessKey: accessKey, SecretKey: secretKey},
	}
	rep := &benchReport{Conns: cfg.Conns, Duration: cfg.Duration}
	var stores []*sqlstore.Store
	var accepted [][]string // each run's accepted ids
	var images []string     // the last run's pool, which the produce-only server's requests name too
	for _, name := range cfg.stores() {
		b.Database = "sqlite:" + filepath.Join(dir, "genpipe.db")
		if name == "postgres" {
			b.Database = cfg.PostgresURL
		}
		if b.store, err = sqlstore.Open(ctx, b.Database, sqlstore.WithLogger(log.With("part", "store"))); err != nil {
			return nil, fmt.Errorf("status database %s: %w", name, err)
		}
		defer b.store.Close() // after the checks
		run, ids, err := benchAPI(ctx, cfg, b, &images, log)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		run.Store = name
		rep.Runs, stores, accepted = append(rep.Runs, run), append(stores, b.store), append(accepted, ids)
	}
	baseURL, stopBase, err := benchStartBaseline(ctx, b.Kafka, log)
	if err != nil {
		return nil, err
	}
	defer stopBase()
	if rep.Baseline, _, err = benchDrive(ctx, baseURL, images, cfg.Conns, cfg.Duration); err != nil {
		return nil, err
	}
	for i, run := range rep.Runs {
		rep.Runs[i].Ratio = ratio(run.Genpipe, rep.Baseline)
	}
	if len(rep.Runs) == 2 {
		rep.StoreRatio = ratio(rep.Runs[1].Genpipe, rep.Runs[0].Genpipe)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	queued, err := benchTopicKeys(ctx, b.Kafka, genpipe.DefaultTopics().Requests)
	if err != nil {
		return nil, err
	}
	for i := range rep.Runs {
		if rep.Runs[i].Checks, err = benchCheck(ctx, stores[i], accepted[i], queued); err != nil {
			return nil, err
		}
	}
	rep.Unexpected = unexpected(queued, accepted)
	return rep, nil
}

// benchAPI serves the API on b, uploads a pool of images through it (into
// *images) and drives it (profiled as cfg asks), and returns its figures
// and the ids it accepted; the API stops before it returns.
func benchAPI(ctx context.Context, cfg benchConfig, b backends, images *[]string, log *slog.Logger) (benchRun, []string, error) {
	apiURL, stopAPI, err := benchStartAPI(ctx, b, log)
	if err != nil {
		return benchRun{}, nil, err
	}
	defer stopAPI()
	if *images, err = benchUpload(ctx, apiURL, cfg.Images); err != nil {
		return benchRun{}, nil, err
	}
	var run benchRun
	var ids []string
	err = benchProfiled(cfg, func() error {
		var err error
		run.Genpipe, ids, err = benchDrive(ctx, apiURL+"/v1/requests", *images, cfg.Conns, cfg.Duration)
		return err
	})
	return run, ids, err
}

// ratio returns a's requests a second over b's, 0 when b took none.
func ratio(a, b benchResult) float64 {
	if b.PerSecond == 0 {
		return 0
	}
	return a.PerSecond / b.PerSecond
}

// benchStartAPI serves the API on a free port, with what runAPI opens, and
// returns its URL once it answers.
func benchStartAPI(ctx context.Context, b backends, log *slog.Logger) (string, func(), error) {
	obs, err := newObservability(ctx, "genpipe-bench", b.Kafka, log)
	if err != nil {
		return "", nil, err
	}
	ln, url, err := listen("127.0.0.1:0")
	if err != nil {
		obs.close()
		return "", nil, err
	}
	cfg := apiConfig{servicePart: servicePart{backends: b}, Addr: ln.Addr().String()}
	cfg.ShutdownTimeout = 5 * time.Second
	cfg.API.register(newFlags("api", io.Discard), false) // the API's defaults, as its flags give them
	// Nothing takes requests off the queue here, so a bound on the backlog
	// would turn the run into 429s once it fills.
	cfg.API.MaxBacklog = 0
	ctx, cancel := context.WithCancel(ctx)
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- runAPI(ctx, cfg, obs, ln, log.With("part", "api"), func() { close(ready) })
	}()
	stop := func() {
		cancel()
		<-done
		obs.close()
	}
	select {
	case <-ready:
	case err := <-done:
		cancel()
		obs.close()
		return "", nil, fmt.Errorf("api: %w", err)
	}
	if err := waitHealthy(ctx, url); err != nil {
		stop()
		return "", nil, err
	}
	return url, stop, nil
}

// waitHealthy waits until the server at url answers /healthz, for up to
// 30 s.
func waitHealthy(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/healthz", nil)
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not answer /healthz: %w", url, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// benchImage is a small PNG, the image every upload of the pool holds.
func benchImage() []byte {
	img := image.NewNRGBA(image.Rect(0, 0, 64, 48))
	for x := range 64 {
		for y := range 48 {
			img.Set(x, y, color.NRGBA{R: uint8(x * 4), G: uint8(y * 5), B: 128, A: 255})
		}
	}
	var buf bytes.Buffer
	_ = png.Encode(&buf, img)
	return buf.Bytes()
}

// benchUpload uploads n images through the API's upload URLs and returns
// their object ids.
func benchUpload(ctx context.Context, apiURL string, n int) ([]string, error) {
	data := benchImage()
	ids := make([]string, 0, n)
	for range n {
		body := fmt.Sprintf(`{"contentType":%q,"contentLength":%d}`, genpipe.ContentTypePNG, len(data))
		var up struct {
			ObjectID  string            `json:"objectId"`
			UploadURL string            `json:"uploadUrl"`
			Headers   map[string]string `json:"headers"`
		}
		if err := benchCall(ctx, http.MethodPost, apiURL+"/v1/uploads", strings.NewReader(body),
			map[string]string{"Content-Type": "application/json"}, http.StatusCreated, &up); err != nil {
			return nil, fmt.Errorf("upload: %w", err)
		}
		if err := benchCall(ctx, http.MethodPut, up.UploadURL, bytes.NewReader(data), up.Headers, http.StatusOK, nil); err != nil {
			return nil, fmt.Errorf("upload: PUT the image: %w", err)
		}
		ids = append(ids, up.ObjectID)
	}
	return ids, nil
}

// benchCall sends one request and decodes its answer into out (when set);
// any other status than want is an error.
func benchCall(ctx context.Context, method, url string, body io.Reader, headers map[string]string, want int, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return err
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if res.StatusCode != want {
		return fmt.Errorf("%s %s: %s: %s", method, url, res.Status, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// benchProfiled runs f, with the CPU and block profiles cfg asks for
// recording while it runs.
func benchProfiled(cfg benchConfig, f func() error) (err error) {
	if cfg.CPUProfile != "" {
		file, err := os.Create(cfg.CPUProfile)
		if err != nil {
			return err
		}
		defer file.Close()
		if err := pprof.StartCPUProfile(file); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if cfg.BlockProfile != "" {
		runtime.SetBlockProfileRate(1000) // a sample every µs blocked, on average
		defer func() {
			runtime.SetBlockProfileRate(0)
			if werr := writeProfile("block", cfg.BlockProfile); err == nil {
				err = werr
			}
		}()
	}
	return f()
}

// writeProfile writes the runtime profile name to file.
func writeProfile(name, file string) error {
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if err := pprof.Lookup(name).WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// benchRequest is what each POST /v1/requests of the run sends: a request
// for one of the pool's images.
func benchRequest(objectID string, n int) []byte {
	return fmt.Appendf(nil, `{"objectId":%q,"style":"minimal","title":"Quarterly results %d","description":"Revenue grew in every region; the slide shows the trend by quarter."}`,
		objectID, n)
}

// benchDrive sends requests to url on conns connections, each waiting for
// its answer before it sends the next, for d, and returns the figures and
// the ids of the accepted requests.
func benchDrive(ctx context.Context, url string, images []string, conns int, d time.Duration) (benchResult, []string, error) {
	tr := &http.Transport{MaxIdleConns: conns, MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns,
		DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	type worker struct {
		lat    []time.Duration
		ids    []string
		failed map[string]int
		err    error
	}
	workers := make([]worker, conns)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start, cpuStart := time.Now(), processCPU()
	end := start.Add(d)
	var wg sync.WaitGroup
	for i := range workers {
		w := &workers[i]
		w.failed = map[string]int{}
		wg.Go(func() {
			var accepted struct {
				ID string `json:"id"`
			}
			for n := i; time.Now().Before(end) && ctx.Err() == nil; n += conns {
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(benchRequest(images[n%len(images)], n)))
				req.Header.Set("Content-Type", "application/json")
				t0 := time.Now()
				res, err := client.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						w.failed["transport"]++
					}
					continue
				}
				body, _ := io.ReadAll(res.Body)
				res.Body.Close()
				took := time.Since(t0)
				if res.StatusCode != http.StatusAccepted {
					w.failed[fmt.Sprint(res.StatusCode)]++
					continue
				}
				if err := json.Unmarshal(body, &accepted); err != nil || accepted.ID == "" {
					w.failed["bad answer"]++
					continue
				}
				w.lat = append(w.lat, took)
				w.ids = append(w.ids, accepted.ID)
			}
		})
	}
	wg.Wait()
	elapsed, cpu := time.Since(start), processCPU()-cpuStart
	var lat []time.Duration
	var ids []string
	r := benchResult{Failed: map[string]int{}}
	for _, w := range workers {
		lat = append(lat, w.lat...)
		ids = append(ids, w.ids...)
		for k, v := range w.failed {
			r.Failed[k] += v
		}
	}
	slices.Sort(lat)
	r.Accepted = len(lat)
	r.PerSecond = float64(len(lat)) / elapsed.Seconds()
	if len(lat) > 0 {
		r.CPUPerRequest = cpu / time.Duration(len(lat))
	}
	if len(lat) > 0 {
		q := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
		r.P50, r.P90, r.P99, r.Max = q(0.50), q(0.90), q(0.99), lat[len(lat)-1]
	}
	r.Latency = map[string]int{"p50": int(r.P50.Microseconds()), "p90": int(r.P90.Microseconds()),
		"p99": int(r.P99.Microseconds()), "max": int(r.Max.Microseconds())}
	if len(r.Failed) == 0 {
		r.Failed = nil
	}
	return r, ids, ctx.Err()
}

// benchStartBaseline serves the produce-only server on a free port: it
// decodes the body, produces it as one keyed record (acks=all, the API's
// producer settings) to the same broker and answers 202 with the id.
func benchStartBaseline(ctx context.Context, k kafkaSettings, log *slog.Logger) (string, func(), error) {
	conn, err := k.conn()
	if err != nil {
		return "", nil, err
	}
	if err := conn.EnsureTopics(ctx, int32(k.Partitions), benchBaselineTopic); err != nil {
		return "", nil, err
	}
	producer, err := conn.NewProducer(kafka.WithProducerLogger(log), kafka.WithDeliveryTimeout(submitPublishTimeout))
	if err != nil {
		return "", nil, err
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in genpipe.SubmitBody
		if err := httpjson.Decode(w, r, 64<<10, &in); err != nil {
			httpjson.WriteProblem(w, http.StatusBadRequest, genpipe.ErrorCode(err), err.Error())
			return
		}
		id := uuid.NewString()
		value, err := json.Marshal(in)
		if err == nil {
			err = producer.Publish(r.Context(), benchBaselineTopic, id, value)
		}
		if err != nil {
			httpjson.WriteProblem(w, http.StatusServiceUnavailable, genpipe.EUNAVAILABLE, err.Error())
			return
		}
		httpjson.Write(w, http.StatusAccepted, map[string]string{"id": id, "status": string(genpipe.StatusReceived)})
	})
	ln, url, err := listen("127.0.0.1:0")
	if err != nil {
		producer.Close()
		return "", nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- serveHTTP(ctx, ln, h, log, apiServer) }()
	return url, func() {
		cancel()
		<-done
		producer.Close()
	}, nil
}

// benchCheck checks that each of ids is a visible request of store with
// exactly one record in the requests topic, whose records queued counts
// by key.
func benchCheck(ctx context.Context, store *sqlstore.Store, ids []string, queued map[string]int) (benchChecks, error) {
	c := benchChecks{Accepted: len(ids)}
	for _, id := range ids {
		_, err := store.Request(ctx, id)
		switch {
		case err == nil:
			c.Stored++
		case genpipe.ErrorCode(err) != genpipe.ENOTFOUND:
			return c, err
		}
		switch n := queued[id]; {
		case n == 0:
		case n == 1:
			c.Queued++
		default:
			c.Queued++
			c.Duplicated++
		}
		if err != nil || queued[id] == 0 {
			c.Lost++
		}
	}
	return c, nil
}

// unexpected counts the keys of queued that no run accepted.
func unexpected(queued map[string]int, accepted [][]string) int {
	known := map[string]bool{}
	for _, ids := range accepted {
		for _, id := range ids {
			known[id] = true
		}
	}
	n := 0
	for id := range queued {
		if !known[id] {
			n++
		}
	}
	return n
}

// benchTopicKeys counts topic's records by key, reading it to its end.
func benchTopicKeys(ctx context.Context, k kafkaSettings, topic string) (map[string]int, error) {
	conn, err := k.conn()
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(conn.Opts()...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("end offsets of %s: %w", topic, err)
	}
	want := map[int32]int64{}
	start := map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
			start[o.Partition] = kgo.NewOffset().AtStart()
		}
	})
	keys := map[string]int{}
	if len(want) == 0 {
		return keys, nil
	}
	cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{topic: start})
	for len(want) > 0 {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("read %s: %w", topic, ctx.Err())
		}
		fetches.EachRecord(func(r *kgo.Record) {
			if end, ok := want[r.Partition]; ok && r.Offset < end {
				keys[string(r.Key)]++
				if r.Offset >= end-1 {
					delete(want, r.Partition)
				}
			}
		})
	}
	return keys, nil
}

// writeBench prints rep for people.
func writeBench(w io.Writer, rep *benchReport) {
	stores := make([]string, len(rep.Runs))
	for i, run := range rep.Runs {
		stores[i] = run.Store
	}
	fmt.Fprintf(w, "intake: POST /v1/requests, %d connections closed-loop, %s each, status store %s\n",
		rep.Conns, rep.Duration, strings.Join(stores, " then "))
	fmt.Fprintf(w, "%-18s %9s %9s %9s %9s %9s %9s %9s  %s\n", "server", "accepted", "req/s", "p50", "p90", "p99", "max", "cpu/req", "failed")
	row := func(name string, r benchResult) {
		fmt.Fprintf(w, "%-18s %9d %9.0f %9s %9s %9s %9s %9s  %s\n", name, r.Accepted, r.PerSecond,
			ms(r.P50), ms(r.P90), ms(r.P99), ms(r.Max), ms(r.CPUPerRequest), failedText(r.Failed))
	}
	for _, run := range rep.Runs {
		row(runName(rep, run), run.Genpipe)
	}
	row("produce-only", rep.Baseline)
	for _, run := range rep.Runs {
		fmt.Fprintf(w, "ratio %s / produce-only: %.3f\n", runName(rep, run), run.Ratio)
	}
	if len(rep.Runs) == 2 {
		fmt.Fprintf(w, "ratio %s / %s: %.3f\n", rep.Runs[1].Store, rep.Runs[0].Store, rep.StoreRatio)
	}
	for _, run := range rep.Runs {
		c := run.Checks
		fmt.Fprintf(w, "checked %s: %d accepted, %d stored and visible, %d queued; %d lost, %d queued twice\n",
			run.Store, c.Accepted, c.Stored, c.Queued, c.Lost, c.Duplicated)
	}
	fmt.Fprintf(w, "queued but never accepted: %d\n", rep.Unexpected)
}

// runName names a run's row: genpipe, and its store when several ran.
func runName(rep *benchReport, run benchRun) string {
	if len(rep.Runs) == 1 {
		return "genpipe"
	}
	return "genpipe (" + run.Store + ")"
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d.Microseconds())/1000) }

func failedText(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}
