package broker_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/genpipe/genpipe/broker"
	"github.com/genpipe/genpipe/internal/testenv"
	"github.com/genpipe/genpipe/internal/testutil"
	"github.com/genpipe/genpipe/kafka"
)

// Scaled-down group timings (see testutil.FastGroups): a member that stops
// heartbeating is out after session.
const (
	session   = 1 * time.Second
	rebalance = 2 * time.Second
)

// A broker restarted on its data dir, on another port, still has the topic,
// the records and the group's commits: queued requests survive a restart and
// handled ones are not handled again.
func TestBrokerRestartKeepsRecordsAndCommits(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const topic, group = "queued", "g-queued"

	b1, err := broker.Start(broker.WithDataDir(dir), testutil.FastGroups())
	if err != nil {
		t.Fatal(err)
	}
	defer b1.Close()
	testenv.EnsureTopics(t, b1.Addrs(), 4, topic)
	p1 := testenv.NewProducer(t, b1.Addrs())
	handledKeys := publishN(t, p1, topic, "handled", 30)

	if got := readGroup(t, b1.Addrs(), group, topic, len(handledKeys), 20*time.Second); len(got) != len(handledKeys) {
		t.Fatalf("read %d records before the restart, want %d", len(got), len(handledKeys))
	}

	queuedKeys := publishN(t, p1, topic, "queued", 20) // published, not yet read
	p1.Close()
	addr1 := b1.Addrs()[0]
	b1.Close()

	b2 := testutil.StartBroker(t, broker.WithDataDir(dir), testutil.FastGroups())
	t.Logf("restarted: %s, then %s", addr1, b2.Addrs()[0])

	// The group resumes at its commits: only the queued records.
	got := readGroup(t, b2.Addrs(), group, topic, len(queuedKeys), 20*time.Second)
	for _, k := range queuedKeys {
		if got[k] != 1 {
			t.Errorf("queued %s read %d times after the restart, want 1", k, got[k])
		}
	}
	if len(got) != len(queuedKeys) {
		t.Errorf("read %d records after the restart, want the %d queued ones", len(got), len(queuedKeys))
	}

	// A new group sees everything, and producing still works.
	if err := testenv.NewProducer(t, b2.Addrs()).Publish(context.Background(), topic, "after-restart", nil); err != nil {
		t.Fatal(err)
	}
	want := len(handledKeys) + len(queuedKeys) + 1
	if all := readGroup(t, b2.Addrs(), "g-fresh", topic, want, 20*time.Second); len(all) != want {
		t.Errorf("a new group read %d records, want %d", len(all), want)
	}
}

// The same data dir on a fixed port, as `genpipe broker` runs it.
func TestBrokerFixedPort(t *testing.T) {
	t.Parallel()
	port := testutil.FreePort(t)
	dir := t.TempDir()
	b, err := broker.Start(broker.WithPort(port), broker.WithDataDir(dir), broker.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	want := "127.0.0.1:" + strconv.Itoa(port)
	if got := b.Addrs(); len(got) != 1 || got[0] != want {
		t.Errorf("Addrs %v, want [%s]", got, want)
	}
	testenv.EnsureTopics(t, b.Addrs(), 2, "fixed")
	if _, err := broker.Start(broker.WithPort(port)); err == nil {
		t.Error("a second broker on the same port started")
	}
	b.Close()
	b.Close() // twice is fine

	b2 := testutil.StartBroker(t, broker.WithPort(port), broker.WithDataDir(dir), testutil.FastGroups())
	if ends := testutil.EndOffsets(t, b2.Addrs(), "fixed"); len(ends) != 2 {
		t.Errorf("after a restart the topic has %d partitions, want 2", len(ends))
	}
}

// publishN publishes n records with keys prefix-0000... and returns the keys.
func publishN(t *testing.T, p *kafka.Producer, topic, prefix string, n int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("%s-%04d", prefix, i)
		if err := p.Publish(ctx, topic, keys[i], []byte("value of "+keys[i])); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

// readGroup reads topic in group until want distinct keys were seen or
// limit passes, commits what it read, and leaves the group: a plain kgo
// group member, enough to check what a broker kept.
func readGroup(t *testing.T, brokers []string, group, topic string, want int, limit time.Duration) map[string]int {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.DisableAutoCommit(), kgo.SessionTimeout(session), kgo.HeartbeatInterval(session/3), kgo.RebalanceTimeout(rebalance),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	seen := map[string]int{}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	for len(seen) < want && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { seen[string(r.Key)]++ })
	}
	if err := cl.CommitUncommittedOffsets(context.Background()); err != nil {
		t.Fatalf("commit: %v", err)
	}
	return seen
}

// Records beyond the retention are dropped, read or not: with room for
// fewer bytes a partition than were produced, the oldest go and the
// newest stay; with the defaults, nothing goes.
func TestBrokerRetention(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		opts    []broker.Option
		dropped bool
	}{
		{"defaults", nil, false},
		{"bytes", []broker.Option{broker.WithRetention(broker.DefaultRetention, 500)}, true},
		{"age", []broker.Option{broker.WithRetention(time.Millisecond, -1)}, true},
		{"kept", []broker.Option{broker.WithRetention(time.Millisecond, 500), broker.WithKeep("other", "kept")}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := testutil.StartBroker(t, append([]broker.Option{broker.WithDataDir(t.TempDir())}, tc.opts...)...)
			const topic = "kept"
			testenv.EnsureTopics(t, b.Addrs(), 1, topic)
			cl := testutil.Must(kgo.NewClient(kgo.SeedBrokers(b.Addrs()...)))(t)
			defer cl.Close()
			for i := range 20 { // one batch each
				rec := &kgo.Record{Topic: topic, Value: []byte(strconv.Itoa(i))} // about 70 bytes a batch
				if err := cl.ProduceSync(context.Background(), rec).FirstErr(); err != nil {
					t.Fatalf("produce %d: %v", i, err)
				}
			}
			time.Sleep(5 * time.Millisecond) // older than the age bound
			b.ApplyRetention()
			adm := kadm.NewClient(cl)
			start, err := adm.ListStartOffsets(context.Background(), topic)
			if err != nil {
				t.Fatal(err)
			}
			end, err := adm.ListEndOffsets(context.Background(), topic)
			if err != nil {
				t.Fatal(err)
			}
			first, _ := start.Lookup(topic, 0)
			last, _ := end.Lookup(topic, 0)
			t.Logf("offsets %d to %d", first.Offset, last.Offset)
			if last.Offset != 20 || (first.Offset > 0) != tc.dropped {
				t.Errorf("partition keeps offsets %d to %d; want 20 produced, dropped=%v", first.Offset, last.Offset, tc.dropped)
			}
			if tc.name == "bytes" && (first.Offset == 0 || first.Offset >= 20) {
				t.Errorf("start offset %d after retention by bytes; want the oldest dropped, the newest kept", first.Offset)
			}
		})
	}
}

func TestBrokerRetentionOption(t *testing.T) {
	for _, o := range []broker.Option{broker.WithRetention(0, 1), broker.WithRetention(time.Hour, 0)} {
		if b, err := broker.Start(o); err == nil {
			b.Close()
			t.Error("a zero retention: no error")
		}
	}
}

// WithDropRead drops the records every group reading a topic has committed
// past, and with them their segments: a broker whose consumers keep up
// keeps only their backlog. A partition one of the groups has not committed
// on keeps everything, and a topic not named is left to the retention.
func TestBrokerDropsWhatEveryGroupRead(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const topic, other = "read", "unnamed"
	b := testutil.StartBroker(t, broker.WithDataDir(dir), broker.WithDropRead(topic, "g-a", "g-b"))
	testenv.EnsureTopics(t, b.Addrs(), 2, topic, other)
	cl := testutil.Must(kgo.NewClient(kgo.SeedBrokers(b.Addrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner())))(t)
	defer cl.Close()
	value := make([]byte, 256<<10) // four a segment, random so that compression keeps them that size
	rand.Read(value)
	for _, tp := range []struct {
		topic     string
		partition int32
	}{{topic, 0}, {topic, 1}, {other, 0}} {
		for i := range 12 {
			rec := &kgo.Record{Topic: tp.topic, Partition: tp.partition, Value: value}
			if err := cl.ProduceSync(t.Context(), rec).FirstErr(); err != nil {
				t.Fatalf("produce %d to %s/%d: %v", i, tp.topic, tp.partition, err)
			}
		}
	}
	adm := kadm.NewClient(cl)
	commit := func(group, topic string, partition int32, offset int64) {
		var o kadm.Offsets
		o.AddOffset(topic, partition, offset, -1)
		if err := adm.CommitAllOffsets(t.Context(), group, o); err != nil {
			t.Fatalf("commit %s %s/%d at %d: %v", group, topic, partition, offset, err)
		}
	}
	commit("g-a", topic, 0, 12)
	commit("g-b", topic, 0, 9) // the slower group bounds what goes
	commit("g-a", topic, 1, 12)
	commit("g-a", other, 0, 12)
	commit("g-b", other, 0, 12)
	before := segmentFiles(t, dir)
	b.ApplyRetention()

	starts, err := adm.ListStartOffsets(t.Context(), topic, other)
	if err != nil || starts.Error() != nil {
		t.Fatalf("list start offsets: %v %v", err, starts.Error())
	}
	for _, want := range []struct {
		topic     string
		partition int32
		start     int64
	}{{topic, 0, 9}, {topic, 1, 0}, {other, 0, 0}} {
		if got, _ := starts.Lookup(want.topic, want.partition); got.Offset != want.start {
			t.Errorf("%s/%d starts at %d after the check; want %d", want.topic, want.partition, got.Offset, want.start)
		}
	}
	after := segmentFiles(t, dir)
	t.Logf("segment files before %v, after %v", before, after)
	if dropped := before[topic+"-0"] - after[topic+"-0"]; dropped < 2 {
		t.Errorf("%s-0 went from %d to %d segment files; want the two read ones gone", topic, before[topic+"-0"], after[topic+"-0"])
	}
	for _, kept := range []string{topic + "-1", other + "-0"} {
		if after[kept] != before[kept] {
			t.Errorf("%s went from %d to %d segment files; want all kept", kept, before[kept], after[kept])
		}
	}
}

// segmentFiles counts the segment files of each partition under a broker's
// data dir.
func segmentFiles(t *testing.T, dir string) map[string]int {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "partitions", "*", "*.dat"))
	if err != nil {
		t.Fatal(err)
	}
	n := make(map[string]int)
	for _, f := range files {
		n[filepath.Base(filepath.Dir(f))]++
	}
	return n
}

func TestBrokerDropReadOption(t *testing.T) {
	if b, err := broker.Start(broker.WithDropRead("t")); err == nil {
		b.Close()
		t.Error("dropping what no group read: no error")
	}
}
