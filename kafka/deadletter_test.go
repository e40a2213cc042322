package kafka

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/genpipe/genpipe"
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

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}
