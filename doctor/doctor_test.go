package doctor_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/genpipe/genpipe/doctor"
	"github.com/genpipe/genpipe/internal/testenv"
)

func traps(fs []doctor.Finding) string {
	var ids []string
	for _, f := range fs {
		ids = append(ids, f.Trap)
	}
	return strings.Join(ids, ",")
}

// The article's starting point: Java defaults, keyless events, a 3 s AI.
func TestJavaDefaultsFallIntoTheArticlesTraps(t *testing.T) {
	fs := doctor.Diagnose(doctor.JavaDefaults())
	if got := traps(fs); got != "poll-interval,keyless-batching" {
		t.Fatalf("traps = %s, want poll-interval,keyless-batching", got)
	}
	if !strings.Contains(fs[0].Detail, "500 × 3s") || !strings.Contains(fs[0].Detail, "25m0s per poll > max.poll.interval.ms 5m0s") {
		t.Fatalf("poll-interval numbers: %s", fs[0].Detail)
	}
	if !strings.Contains(fs[0].Fix, "at most 50") {
		t.Fatalf("poll-interval fix: %s", fs[0].Fix)
	}
	if !strings.Contains(fs[1].Detail, "≈ 54 events per batch") {
		t.Fatalf("keyless numbers: %s", fs[1].Detail)
	}
}

func TestArticleFixWithFewPartitionsUnderusesTheAI(t *testing.T) {
	s := doctor.JavaDefaults()
	s.Keyless, s.MaxPollRecords, s.AutoCommit = false, 1, false
	s.Partitions, s.Consumers = 8, 8
	fs := doctor.Diagnose(s)
	if traps(fs) != "capacity-mismatch" || !strings.Contains(fs[0].Detail, "at most 12% utilization") {
		t.Fatalf("findings = %+v", fs)
	}
}

func TestGenpipeSettingsAreClean(t *testing.T) {
	s := doctor.JavaDefaults()
	s.Keyless, s.AutoCommit, s.MaxPollRecords = false, false, 64
	s.Partitions, s.Consumers, s.InFlight = 8, 1, 64 // one process, 64 in flight over 8 partitions
	if fs := doctor.Diagnose(s); len(fs) != 0 {
		t.Fatalf("findings = %+v, want none", fs)
	}
}

func TestAutoCommitWithAsyncHandlers(t *testing.T) {
	s := doctor.JavaDefaults()
	s.Keyless, s.MaxPollRecords, s.InFlight, s.Partitions, s.Consumers = false, 16, 16, 4, 4
	fs := doctor.Diagnose(s)
	if traps(fs) != "auto-commit" {
		t.Fatalf("traps = %s (%+v)", traps(fs), fs)
	}
}

func TestOversubscribedAI(t *testing.T) {
	s := doctor.JavaDefaults()
	s.Keyless, s.MaxPollRecords, s.AutoCommit, s.InFlight, s.Partitions, s.Consumers = false, 8, false, 4, 64, 64
	fs := doctor.Diagnose(s)
	if traps(fs) != "capacity-mismatch" || !strings.Contains(fs[0].Title, "oversubscribed") {
		t.Fatalf("findings = %+v", fs)
	}
}

func TestParseProperties(t *testing.T) {
	props := `# a consumer's settings
linger.ms=20
batch.size = 32768
partitioner.class=org.apache.kafka.clients.producer.RoundRobinPartitioner
max.poll.records: 10
max.poll.interval.ms=60000
enable.auto.commit=false
bootstrap.servers=ignored:9092
genpipe.handler.time.ms=500
genpipe.ai.capacity=32
`
	s, err := doctor.ParseProperties(strings.NewReader(props), doctor.JavaDefaults())
	if err != nil {
		t.Fatal(err)
	}
	want := doctor.JavaDefaults()
	want.Linger, want.BatchBytes, want.Partitioner = 20*time.Millisecond, 32768, "uniform"
	want.MaxPollRecords, want.MaxPollInterval, want.AutoCommit = 10, time.Minute, false
	want.HandlerTime, want.AICapacity = 500*time.Millisecond, 32
	if s != want {
		t.Fatalf("parsed %+v\nwant   %+v", s, want)
	}
	if _, err := doctor.ParseProperties(strings.NewReader("max.poll.records=lots"), s); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("bad value: err = %v", err)
	}
}

// Live: keyless records produced with the sticky partitioner and a linger
// bunch up; the doctor sees the skew and the missing keys on the cluster.
func TestLiveKeylessStickyBurstIsFound(t *testing.T) {
	b := testenv.StartKafka(t)
	ctx := context.Background()
	b.EnsureTopics(t, 8, "keyless", "keyed")
	produce(t, b.Addrs(), "keyless", false)
	produce(t, b.Addrs(), "keyed", true)

	live, err := doctor.Inspect(ctx, b.Addrs(), "keyless", "", 400)
	if err != nil {
		t.Fatal(err)
	}
	fs := doctor.DiagnoseLive(doctor.JavaDefaults(), live)
	if live.Partitions != 8 || live.Keyless != live.Sampled || !strings.Contains(traps(fs), "partition-skew") {
		t.Fatalf("keyless: live %+v (spread %.2f), traps %s", live, live.BurstSpread(), traps(fs))
	}

	live, err = doctor.Inspect(ctx, b.Addrs(), "keyed", "", 400)
	if err != nil {
		t.Fatal(err)
	}
	fs = doctor.DiagnoseLive(doctor.JavaDefaults(), live)
	if live.Keyless != 0 || strings.Contains(traps(fs), "partition-skew") || strings.Contains(traps(fs), "keyless") {
		t.Fatalf("keyed: live %+v (spread %.2f), traps %s", live, live.BurstSpread(), traps(fs))
	}
}

// produce writes 10 bursts of 40 records of ~300 bytes, 100 ms apart, with
// a 16 KiB batch and a linger, as the Java producer would: each keyless
// burst fits one batch, so it lands in one partition.
func produce(t *testing.T, brokers []string, topic string, keyed bool) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)), kgo.ProducerLinger(50*time.Millisecond),
		kgo.ProducerBatchMaxBytes(16384))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	value := []byte(strings.Repeat("x", 300))
	for burst := range 10 {
		for i := range 40 {
			r := &kgo.Record{Value: value}
			if keyed {
				r.Key = fmt.Appendf(nil, "request-%d-%d", burst, i)
			}
			cl.Produce(context.Background(), r, func(_ *kgo.Record, err error) {
				if err != nil {
					t.Errorf("produce: %v", err)
				}
			})
		}
		if err := cl.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
