package kafka

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// A broker restarted on its data dir, on another port, still has the topic,
// the records and the group's commits: queued requests survive a restart and
// handled ones are not handled again.
func TestBrokerRestartKeepsRecordsAndCommits(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const topic, group = "queued", "g-queued"

	b1, err := StartBroker(WithDataDir(dir), WithGroupMinSessionTimeout(minSession))
	if err != nil {
		t.Fatal(err)
	}
	defer b1.Close()
	ensureTopic(t, b1.Addrs(), 4, topic)
	p1 := newProducer(t, b1.Addrs())
	handledKeys := publishN(t, p1, topic, "handled", 30)

	seen := newKeyCounter()
	count := func(_ context.Context, r *kgo.Record) error { seen.add(string(r.Key)); return nil }
	run := start(newConsumer(t, b1.Addrs(), group, topic, count))
	waitFor(t, 20*time.Second, "the first records handled", func() bool { return seen.unique() == len(handledKeys) })
	run.stop(t, 10*time.Second)

	queuedKeys := publishN(t, p1, topic, "queued", 20) // published, not yet handled
	p1.Close()
	addr1 := b1.Addrs()[0]
	b1.Close()

	b2 := startBroker(t, WithDataDir(dir))
	t.Logf("restarted: %s, then %s", addr1, b2.Addrs()[0])

	// The group resumes at its commits: only the queued records.
	seen2 := newKeyCounter()
	run2 := start(newConsumer(t, b2.Addrs(), group, topic, func(_ context.Context, r *kgo.Record) error {
		seen2.add(string(r.Key))
		return nil
	}))
	waitFor(t, 20*time.Second, "the queued records handled", func() bool { return seen2.unique() >= len(queuedKeys) })
	time.Sleep(200 * time.Millisecond)
	run2.stop(t, 10*time.Second)
	got := seen2.snapshot()
	for _, k := range queuedKeys {
		if got[k] != 1 {
			t.Errorf("queued %s handled %d times after the restart, want 1", k, got[k])
		}
	}
	if len(got) != len(queuedKeys) {
		t.Errorf("handled %d records after the restart, want the %d queued ones", len(got), len(queuedKeys))
	}

	// A new group sees everything, and producing still works.
	if err := newProducer(t, b2.Addrs()).Publish(context.Background(), topic, "after-restart", nil); err != nil {
		t.Fatal(err)
	}
	all := newKeyCounter()
	run3 := start(newConsumer(t, b2.Addrs(), "g-fresh", topic, func(_ context.Context, r *kgo.Record) error {
		all.add(string(r.Key))
		return nil
	}))
	want := len(handledKeys) + len(queuedKeys) + 1
	waitFor(t, 20*time.Second, "a new group to read every record", func() bool { return all.unique() == want })
	run3.stop(t, 10*time.Second)
}

// The same data dir on a fixed port, as `genpipe broker` runs it.
func TestBrokerFixedPort(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()

	dir := t.TempDir()
	b, err := StartBroker(WithPort(port), WithDataDir(dir), WithBrokerLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	want := "127.0.0.1:" + strconv.Itoa(port)
	if got := b.Addrs(); len(got) != 1 || got[0] != want {
		t.Errorf("Addrs %v, want [%s]", got, want)
	}
	ensureTopic(t, b.Addrs(), 2, "fixed")
	if _, err := StartBroker(WithPort(port)); err == nil {
		t.Error("a second broker on the same port started")
	}
	b.Close()
	b.Close() // twice is fine

	b2 := startBroker(t, WithPort(port), WithDataDir(dir))
	if ends := endOffsets(t, admin(t, b2.Addrs()), "fixed"); len(ends) != 2 {
		t.Errorf("after a restart the topic has %d partitions, want 2", len(ends))
	}
}
