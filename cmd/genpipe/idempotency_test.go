package main

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/internal/testutil"
)

// Concurrent retries of one submission with one Idempotency-Key, through
// the real API, put exactly one request.submitted record on the requests
// topic, and every retry gets the one id.
func TestE2EIdempotencyKeyConcurrentOneEvent(t *testing.T) {
	const n = 20
	for round := range 3 {
		u := uploadImage(t, "image/png", pngImage(t, 64, 64))
		body := map[string]string{"objectId": u.ObjectID, "style": "minimal", "description": "Once, whatever the retries"}
		key := map[string]string{"Idempotency-Key": "concurrent-" + u.ObjectID}
		var (
			wg    sync.WaitGroup
			start = make(chan struct{})
			mu    sync.Mutex
			ids   = map[string]int{}
		)
		for range n {
			wg.Go(func() {
				<-start
				var got accepted
				resp := call(t, "POST", "/v1/requests", body, key, &got)
				mu.Lock()
				defer mu.Unlock()
				if resp.StatusCode != http.StatusAccepted {
					t.Errorf("POST /v1/requests: %s", resp.Status)
					return
				}
				ids[got.ID]++
			})
		}
		close(start)
		wg.Wait()
		if len(ids) != 1 {
			t.Fatalf("round %d: %d concurrent retries with one key got ids %v; want one", round, n, ids)
		}
		for id := range ids {
			if got := submittedRecords(t, id); got != 1 {
				t.Fatalf("round %d: %d concurrent retries with one key put %d request.submitted records on the topic; want 1", round, n, got)
			}
		}
	}
}

// submittedRecords counts the request.submitted records of request id on
// the requests topic, reading every partition to its end.
func submittedRecords(t *testing.T, id string) int {
	t.Helper()
	topic := genpipe.DefaultTopics().Requests
	ends := testutil.EndOffsets(t, sys.Brokers, topic)
	cl, err := kgo.NewClient(kgo.SeedBrokers(sys.Brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	next := map[int32]int64{} // per partition, the offset after the last record read
	caughtUp := func() bool {
		for p, end := range ends {
			if next[p] < end {
				return false
			}
		}
		return true
	}
	count := 0
	for !caughtUp() {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s to its end offsets %v: read up to %v", topic, ends, next)
		}
		fetches.EachRecord(func(r *kgo.Record) {
			next[r.Partition] = r.Offset + 1
			if string(r.Key) != id {
				return
			}
			if e, err := genpipe.DecodeEvent(r.Value); err == nil && e.Type == genpipe.EventSubmitted {
				count++
			}
		})
	}
	return count
}

// A retry with the key of an accepted request but another webhook URL is
// refused: answering 202 would drop the URL it asked for.
func TestE2EIdempotencyKeyOtherWebhook(t *testing.T) {
	hooks := newWebhookReceiver(t)
	u := uploadImage(t, "image/png", pngImage(t, 64, 64))
	body := map[string]string{"objectId": u.ObjectID, "style": "minimal", "description": "Webhook bound", "webhookUrl": hooks.url}
	key := map[string]string{"Idempotency-Key": "webhook-" + u.ObjectID}
	var first accepted
	if resp := call(t, "POST", "/v1/requests", body, key, &first); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("first POST: %s", resp.Status)
	}
	body["webhookUrl"] = hooks.url + "/elsewhere"
	if resp := call(t, "POST", "/v1/requests", body, key, nil); resp.StatusCode != http.StatusConflict {
		t.Fatalf("same key, other webhookUrl: %s; want 409", resp.Status)
	}
	body["webhookUrl"] = hooks.url
	var again accepted
	if resp := call(t, "POST", "/v1/requests", body, key, &again); resp.StatusCode != http.StatusAccepted || again.ID != first.ID {
		t.Fatalf("same key, same webhookUrl: %s, id %s; want 202 with %s", resp.Status, again.ID, first.ID)
	}
}
