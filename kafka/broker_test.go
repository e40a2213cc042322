package kafka

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"testing"
	"time"
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

	if got := readGroup(t, b1.Addrs(), group, topic, len(handledKeys), 20*time.Second); len(got) != len(handledKeys) {
		t.Fatalf("read %d records before the restart, want %d", len(got), len(handledKeys))
	}

	queuedKeys := publishN(t, p1, topic, "queued", 20) // published, not yet read
	p1.Close()
	addr1 := b1.Addrs()[0]
	b1.Close()

	b2 := startBroker(t, WithDataDir(dir))
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
	if err := newProducer(t, b2.Addrs()).Publish(context.Background(), topic, "after-restart", nil); err != nil {
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
