package kafka

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/internal/testutil"
)

// Replaying an event raises its replay count (so a failed stage is tried
// again) and marks where it came from; replaying one dead letter twice
// writes the same generation twice, which pays only once.
func TestReplayDeadLetter(t *testing.T) {
	b, p := startWithTopic(t, "checked", 1)
	e := genpipe.NewJobEvent(genpipe.EventChecked, "req-1", genpipe.Job{ObjectID: "o", Style: "forest"}, time.Now())
	e.Replay = 1
	v, err := genpipe.EncodeEvent(e)
	if err != nil {
		t.Fatal(err)
	}
	d := StoredDeadLetter{ID: "0:7"}
	d.Topic, d.Key, d.Value = "checked", []byte("req-1"), v
	for range 2 {
		if err := ReplayDeadLetter(t.Context(), p, d); err != nil {
			t.Fatal(err)
		}
	}
	poison := StoredDeadLetter{ID: "0:8"}
	poison.Topic, poison.Value = "checked", []byte("garbage")
	if err := ReplayDeadLetter(t.Context(), p, poison); err != nil {
		t.Fatal(err)
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...), kgo.ConsumeTopics("checked"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for len(recs) < 3 && ctx.Err() == nil {
		recs = append(recs, cl.PollFetches(ctx).Records()...)
	}
	if len(recs) != 3 {
		t.Fatalf("read %d replayed records; want 3", len(recs))
	}
	for i, r := range recs[:2] {
		got, err := genpipe.DecodeEvent(r.Value)
		if err != nil || got.Replay != 2 || string(r.Key) != "req-1" || header(r, HeaderReplayedFrom) != "0:7" {
			t.Errorf("replay %d: %+v (key %s, from %q), %v; want replay 2 of req-1 from 0:7", i, got, r.Key, header(r, HeaderReplayedFrom), err)
		}
	}
	if r := recs[2]; string(r.Value) != "garbage" || string(r.Key) != "0:8" {
		t.Errorf("replayed poison = %q under key %q; want it unchanged under its dead-letter id", r.Value, r.Key)
	}
	if err := ReplayDeadLetter(t.Context(), p, StoredDeadLetter{ID: "0:9"}); err == nil || !strings.Contains(err.Error(), "no source topic") {
		t.Errorf("replay without a source topic = %v; want an error", err)
	}
}

// A dead letter keeps at most maxDeadLetterValue of its record's value and
// says how long the value was; a dead-letter topic that takes even less
// (its max.message.bytes) gets the dead letter without the value. Either
// way the record is done, not retried for ever, and a cut dead letter is
// not replayed.
func TestDeadLetterOfALargeRecord(t *testing.T) {
	b := testutil.StartBroker(t)
	adm := testutil.Admin(t, b.Addrs())
	small := "2000"
	for topic, configs := range map[string]map[string]*string{"dlq": nil, "small-dlq": {"max.message.bytes": &small}} {
		if _, err := adm.CreateTopic(t.Context(), 1, 1, configs, topic); err != nil {
			t.Fatal(err)
		}
	}
	p := newProducer(t, b.Addrs())
	conn := plainConn(t, b.Addrs())
	value := []byte(strings.Repeat("x", 1200<<10)) // over the producer's 1 MB record
	for topic, kept := range map[string]int{"dlq": maxDeadLetterValue, "small-dlq": 0} {
		d := genpipe.DeadLetter{Topic: "checked", Partition: 3, Offset: 9, Key: []byte(strings.Repeat("k", 5000)), Value: value,
			Stage: "generate", Reason: "undecodable event", At: time.Now()}
		if err := NewDeadLetters(p, topic).SendDeadLetter(t.Context(), d); err != nil {
			t.Fatalf("%s: %v", topic, err)
		}
		letters, err := conn.ReadDeadLetters(t.Context(), topic)
		if err != nil || len(letters) != 1 {
			t.Fatalf("%s: read %d dead letters, %v; want 1", topic, len(letters), err)
		}
		got := letters[0]
		if len(got.Value) != kept || got.ValueBytes != len(value) || len(got.Key) != maxDeadLetterKey || got.Offset != 9 || got.Reason != d.Reason {
			t.Errorf("%s: dead letter of %d bytes (of %d), key of %d, offset %d, reason %q; want %d bytes of %d, a key of %d, the record's place and reason",
				topic, len(got.Value), got.ValueBytes, len(got.Key), got.Offset, got.Reason, kept, len(value), maxDeadLetterKey)
		}
		if err := ReplayDeadLetter(t.Context(), p, got); err == nil || !strings.Contains(err.Error(), "another record") {
			t.Errorf("%s: replay of a cut dead letter = %v; want it refused", topic, err)
		}
	}
}
