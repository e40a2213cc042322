package testenv_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/internal/testenv"
	"github.com/genpipe/genpipe/kafka"
)

func TestMain(m *testing.M) { os.Exit(testenv.Run(m)) }

// An environment has what it promises: genpipe's topics on a broker that
// takes the producer's records, the object store's bucket, and a status
// store in its file.
func TestNew(t *testing.T) {
	env := testenv.New(t, testenv.WithPartitions(2))
	ctx := t.Context()
	for i, key := range []string{"a", "b", "c"} {
		if err := env.Producer.Publish(ctx, env.Topics.Requests, key, []byte{byte('0' + i)}); err != nil {
			t.Fatal(err)
		}
	}
	recs := env.Kafka.Records(t, env.Topics.Requests)
	if len(recs) != 3 {
		t.Fatalf("read %d records back, want 3", len(recs))
	}
	for i := 1; i < len(recs); i++ {
		if a, b := recs[i-1], recs[i]; a.Partition > b.Partition || (a.Partition == b.Partition && a.Offset >= b.Offset) {
			t.Errorf("records out of order: %d@%d before %d@%d", a.Partition, a.Offset, b.Partition, b.Offset)
		}
	}
	for _, topic := range env.Topics.All() {
		if recs := env.Kafka.Records(t, topic); topic != env.Topics.Requests && len(recs) != 0 {
			t.Errorf("%s holds %d records, want none", topic, len(recs))
		}
	}

	if err := env.Objects.Put(ctx, "testenv/object", "text/plain", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if got, err := testenv.Objects(t).Get(ctx, "testenv/object"); err != nil || string(got) != "hello" {
		t.Errorf("Get = %q, %v", got, err)
	}

	if err := env.Store.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(env.StorePath); err != nil || !filepath.IsAbs(env.StorePath) {
		t.Errorf("store file %q: %v", env.StorePath, err)
	}
}

// A stopped broker refuses records; started again it has its topics and
// records, at the same address, and the producer reaches it again.
func TestKafkaStopStart(t *testing.T) {
	env := testenv.New(t, testenv.WithProducer(kafka.WithDeliveryTimeout(time.Second)))
	topic := env.Topics.Results
	if err := env.Producer.Publish(t.Context(), topic, "before", nil); err != nil {
		t.Fatal(err)
	}
	addrs := env.Kafka.Addrs()
	env.Kafka.Stop()
	env.Kafka.Stop() // twice is fine
	if err := env.Producer.Publish(t.Context(), topic, "while-down", nil); genpipe.ErrorCode(err) != genpipe.EUNAVAILABLE {
		t.Fatalf("Publish to a stopped broker = %v, want EUNAVAILABLE", err)
	}
	env.Kafka.Start(t)
	if got := env.Kafka.Addrs(); len(got) != 1 || got[0] != addrs[0] {
		t.Errorf("addresses %v after the restart, want %v", got, addrs)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for {
		err := env.Producer.Publish(ctx, topic, "after", nil)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("Publish after the restart: %v", err)
		}
	}
	keys := map[string]bool{}
	for _, r := range env.Kafka.Records(t, topic) {
		keys[string(r.Key)] = true
	}
	if !keys["before"] || !keys["after"] {
		t.Errorf("keys %v after the restart, want before and after", keys)
	}
}

// Two status stores on one file share their data, as two processes do.
func TestOpenStatusStoreTwice(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shared.db")
	a, b := testenv.OpenStatusStore(t, path), testenv.OpenStatusStore(t, path)
	r := &genpipe.Request{ID: "00000000-0000-4000-8000-000000000001", Job: genpipe.Job{ObjectID: "o", Style: "corporate", Description: "d"}}
	if _, _, err := a.CreateRequest(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	if err := a.MarkPublished(t.Context(), r.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Request(t.Context(), r.ID); err != nil {
		t.Errorf("the second store does not see the first one's request: %v", err)
	}
}
