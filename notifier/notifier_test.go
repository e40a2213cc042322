package notifier_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/internal/testutil"
	"github.com/genpipe/genpipe/notifier"
)

func statuses(h []genpipe.StatusChange) []genpipe.Status {
	var out []genpipe.Status
	for _, c := range h {
		out = append(out, c.Status)
	}
	return out
}

func TestHandleAppliesStatusesInOrder(t *testing.T) {
	e := newEnv(t)
	r := e.request(t, "")
	keys := genpipe.ResultKeys(r.ID)
	e.handle(t, r.ID, genpipe.StatusChecking, nil, "")
	e.handle(t, r.ID, genpipe.StatusGenerating, nil, "")
	e.handle(t, r.ID, genpipe.StatusDone, &keys, "")

	want := []genpipe.Status{genpipe.StatusReceived, genpipe.StatusChecking, genpipe.StatusGenerating, genpipe.StatusDone}
	h, err := e.store.History(t.Context(), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got := statuses(h); !slices.Equal(got, want) {
		t.Fatalf("history %v, want %v", got, want)
	}
	if res := h[3].Result; res == nil || *res != keys {
		t.Errorf("done change carries result %+v, want %+v", res, keys)
	}
	got, err := e.store.Request(t.Context(), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != genpipe.StatusDone || got.Result == nil || *got.Result != keys {
		t.Errorf("request is %s with result %+v, want done with %+v", got.Status, got.Result, keys)
	}

	// Redelivered and late events change nothing.
	e.handle(t, r.ID, genpipe.StatusChecking, nil, "")
	e.handle(t, r.ID, genpipe.StatusDone, &keys, "")
	e.handle(t, r.ID, genpipe.StatusFailed, nil, "late failure")
	h2, err := e.store.History(t.Context(), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(h, h2, func(a, b genpipe.StatusChange) bool { return a.Status == b.Status && a.At.Equal(b.At) }) {
		t.Errorf("history changed by redelivered events:\n%v\nnow\n%v", h, h2)
	}
	if p := e.pending(t); len(p) != 0 {
		t.Errorf("a request without webhookUrl queued deliveries: %+v", p)
	}
}

func TestRedeliveredTerminalEventQueuesNoSecondWebhook(t *testing.T) {
	rcv := newReceiver(t, nil)
	e := newEnv(t)
	r := e.request(t, rcv.URL)
	e.handle(t, r.ID, genpipe.StatusChecking, nil, "")
	e.handle(t, r.ID, genpipe.StatusRejected, nil, "not a PNG or JPEG image")
	e.handle(t, r.ID, genpipe.StatusRejected, nil, "not a PNG or JPEG image") // redelivered
	// Another terminal status, as when a record is handled twice with a
	// different outcome, loses to the first and must not queue a message.
	e.handle(t, r.ID, genpipe.StatusFailed, nil, "checking the image failed")

	p := e.pending(t)
	if len(p) != 1 || p[0].Status != genpipe.StatusRejected || p[0].URL != rcv.URL {
		t.Fatalf("pending deliveries %+v, want one for rejected to %s", p, rcv.URL)
	}
	e.runWebhooks(t)
	testutil.Eventually(t, 10*time.Second, "delivery", func() bool { _, ok := e.store.final(r.ID); return ok })
	time.Sleep(5 * poll)
	if n := rcv.count(); n != 1 {
		t.Fatalf("receiver got %d POSTs, want 1", n)
	}
	var v genpipe.RequestView
	if err := json.Unmarshal(rcv.deliveries()[0].body, &v); err != nil {
		t.Fatal(err)
	}
	if v.Status != genpipe.StatusRejected || v.Error != "not a PNG or JPEG image" {
		t.Errorf("webhook says %s (%q), want rejected with its reason", v.Status, v.Error)
	}
	if v.Tenant != "acme" || v.Priority != genpipe.PriorityLow {
		t.Errorf("webhook names tenant %q, priority %q; want the request's, acme and low", v.Tenant, v.Priority)
	}
}

func TestWebhookDone(t *testing.T) {
	ctx := testutil.Context(t)
	rcv := newReceiver(t, nil)
	e := newEnv(t)
	r := e.request(t, rcv.URL)
	keys := genpipe.ResultKeys(r.ID)
	files := []struct{ key, contentType, body string }{
		{keys.PNGKey, genpipe.ContentTypePNG, "png of " + r.ID},
		{keys.PDFKey, genpipe.ContentTypePDF, "pdf of " + r.ID},
		{keys.PPTXKey, genpipe.ContentTypePPTX, "pptx of " + r.ID},
	}
	for _, f := range files {
		if err := e.objects.Put(ctx, f.key, f.contentType, []byte(f.body)); err != nil {
			t.Fatal(err)
		}
	}
	e.handle(t, r.ID, genpipe.StatusChecking, nil, "")
	e.handle(t, r.ID, genpipe.StatusGenerating, nil, "")
	e.handle(t, r.ID, genpipe.StatusDone, &keys, "")
	e.runWebhooks(t)

	testutil.Eventually(t, 10*time.Second, "delivery", func() bool { _, ok := e.store.final(r.ID); return ok })
	if d, _ := e.store.final(r.ID); d.State != genpipe.WebhookDelivered || d.Attempts != 1 || d.LastError != "" {
		t.Errorf("delivery ended %+v, want delivered on the first attempt", d)
	}
	time.Sleep(5 * poll) // a few more polls: nothing is sent again
	got := rcv.deliveries()
	if len(got) != 1 {
		t.Fatalf("receiver got %d POSTs, want 1", len(got))
	}
	msg := got[0]
	if msg.method != http.MethodPost || msg.header.Get("Content-Type") != "application/json" {
		t.Errorf("got %s with Content-Type %q, want a JSON POST", msg.method, msg.header.Get("Content-Type"))
	}
	if id := msg.header.Get(notifier.HeaderID); id != "msg_"+r.ID+"_done" {
		t.Errorf("webhook-id %q; want msg_%s_done", id, r.ID)
	}
	if ts, err := strconv.ParseInt(msg.header.Get(notifier.HeaderTimestamp), 10, 64); err != nil ||
		ts < msg.at.Add(-time.Minute).Unix() || ts > msg.at.Unix() {
		t.Errorf("webhook-timestamp %q; want the unix seconds of the attempt (%d)", msg.header.Get(notifier.HeaderTimestamp), msg.at.Unix())
	}
	verify(t, msg)
	if err := notifier.Verify(notifier.NewSecret(), msg.header, msg.body, notifier.DefaultTolerance); err == nil {
		t.Error("signature verifies with another secret")
	}
	changed := bytes.Replace(msg.body, []byte(`"done"`), []byte(`"failed"`), 1)
	if err := notifier.Verify(secret, msg.header, changed, notifier.DefaultTolerance); bytes.Equal(changed, msg.body) || err == nil {
		t.Error("signature verifies a changed body")
	}
	// The legacy headers, kept by default while receivers move on, signed
	// as before: the body alone, keyed with the secret as configured.
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(msg.body)
	if got, want := msg.header.Get(notifier.LegacySignatureHeader), "sha256="+hex.EncodeToString(mac.Sum(nil)); got != want {
		t.Errorf("%s %q; want %q", notifier.LegacySignatureHeader, got, want)
	}
	if msg.header.Get(notifier.LegacyDeliveryHeader) == "" {
		t.Errorf("no %s header by default", notifier.LegacyDeliveryHeader)
	}

	var v genpipe.RequestView
	if bytes.Contains(msg.body, []byte(`"webhook"`)) {
		t.Errorf("the webhook's body tells of the webhook itself: %s", msg.body)
	}
	dec := json.NewDecoder(bytes.NewReader(msg.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("body is not a request view: %v\n%s", err, msg.body)
	}
	if v.ID != r.ID || v.Status != genpipe.StatusDone || v.Style != r.Style || v.Title != r.Title ||
		v.Description != r.Description || v.Error != "" || v.CreatedAt.IsZero() || v.UpdatedAt.IsZero() {
		t.Errorf("view %+v does not match request %+v", v, r)
	}
	if v.Result == nil {
		t.Fatal("done view without result links")
	}
	// The API's default lifetime: one for every channel.
	if ttl := time.Until(v.Result.ExpiresAt); ttl < genpipe.DefaultResultTTL-time.Minute || ttl > genpipe.DefaultResultTTL {
		t.Errorf("links expire in %v, want about %v", ttl, genpipe.DefaultResultTTL)
	}
	if u, err := url.Parse(v.Result.PNGURL); err != nil || u.Query().Get("X-Amz-Expires") != "3600" {
		t.Errorf("PNG link %s; want it presigned for 3600 s", v.Result.PNGURL)
	}
	for i, u := range []string{v.Result.PNGURL, v.Result.PDFURL, v.Result.PPTXURL} {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(body) != files[i].body ||
			resp.Header.Get("Content-Type") != files[i].contentType {
			t.Errorf("GET %s link: %s %q (%s), want 200 %q (%s)", files[i].key, resp.Status, body,
				resp.Header.Get("Content-Type"), files[i].body, files[i].contentType)
		}
	}
}

func TestWebhookFailedCarriesReason(t *testing.T) {
	rcv := newReceiver(t, nil)
	e := newEnv(t)
	r := e.request(t, rcv.URL)
	const reason = "generating the slide failed after 6 attempt(s): the generative AI is unreachable"
	e.handle(t, r.ID, genpipe.StatusFailed, nil, reason)
	e.runWebhooks(t)
	testutil.Eventually(t, 10*time.Second, "delivery", func() bool { return rcv.count() == 1 })
	msg := rcv.deliveries()[0]
	verify(t, msg)
	var v genpipe.RequestView
	if err := json.Unmarshal(msg.body, &v); err != nil {
		t.Fatal(err)
	}
	if v.Status != genpipe.StatusFailed || v.Error != reason || v.Result != nil {
		t.Errorf("view %+v, want failed with the reason and no result", v)
	}
}

func TestWebhookRetriedUntilDelivered(t *testing.T) {
	rcv := newReceiver(t, func(n int) int {
		if n <= 2 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	e := newEnv(t)
	r := e.request(t, rcv.URL)
	e.handle(t, r.ID, genpipe.StatusRejected, nil, "too small")
	start := time.Now()
	e.runWebhooks(t)

	testutil.Eventually(t, 10*time.Second, "delivery", func() bool { _, ok := e.store.final(r.ID); return ok })
	t.Logf("delivered after %v", time.Since(start))
	time.Sleep(5 * poll)
	if n := rcv.count(); n != 3 {
		t.Fatalf("receiver got %d POSTs, want 3", n)
	}
	out := e.store.outcomes(r.ID)
	if len(out) != 3 {
		t.Fatalf("recorded outcomes %+v, want 3", out)
	}
	for i, d := range out[:2] {
		if d.State != genpipe.WebhookPending || d.Attempts != i+1 || !strings.Contains(d.LastError, "500") {
			t.Errorf("attempt %d recorded %+v, want pending with a 500 error", i+1, d)
		}
		if d.NextAttemptAt.Sub(time.Now()) > maxDelay {
			t.Errorf("attempt %d: next attempt at %v is beyond the max retry delay %v", i+1, d.NextAttemptAt, maxDelay)
		}
	}
	if d := out[2]; d.State != genpipe.WebhookDelivered || d.Attempts != 3 || d.LastError != "" {
		t.Errorf("last outcome %+v, want delivered after 3 attempts", d)
	}
	// Every attempt is signed anew, with the id of the message: the
	// receiver can tell a retry from a new message.
	for i, msg := range rcv.deliveries() {
		verify(t, msg)
		if id := msg.header.Get(notifier.HeaderID); id != "msg_"+r.ID+"_rejected" {
			t.Errorf("attempt %d: webhook-id %q; want msg_%s_rejected on every attempt", i+1, id, r.ID)
		}
	}
	if p := e.pending(t); len(p) != 0 {
		t.Errorf("still pending: %+v", p)
	}
}

func TestWebhookAbandonedAfterRetryWindow(t *testing.T) {
	const window = 300 * time.Millisecond
	for _, tc := range []struct {
		name    string
		failing bool // a receiver that answers 503; else nothing listens
		errText string
	}{
		{"503", true, "503"},
		{"unreachable", false, "connection refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rcv := newReceiver(t, func(int) int { return http.StatusServiceUnavailable })
			url := rcv.URL
			if !tc.failing {
				rcv.Close()
			}
			e := newEnv(t, notifier.WithRetryWindow(window))
			r := e.request(t, url)
			const reason = "the generative AI is unreachable"
			start := time.Now() // before Handle queues the delivery
			e.handle(t, r.ID, genpipe.StatusFailed, nil, reason)
			e.runWebhooks(t)

			testutil.Eventually(t, 10*time.Second, "abandonment", func() bool { _, ok := e.store.final(r.ID); return ok })
			took := time.Since(start)
			d, _ := e.store.final(r.ID)
			if d.State != genpipe.WebhookAbandoned || d.Attempts < 2 || !strings.Contains(d.LastError, tc.errText) {
				t.Errorf("delivery ended %+v, want abandoned after several failures (%s)", d, tc.errText)
			}
			if took < window {
				t.Errorf("abandoned after %v, before the retry window of %v", took, window)
			}
			if !e.logs.Contains("webhook abandoned") {
				t.Error("abandonment not logged")
			}
			// No more attempts, and the request keeps its terminal status.
			n, updates := rcv.count(), len(e.store.outcomes(r.ID))
			time.Sleep(10 * poll)
			if rcv.count() != n || len(e.store.outcomes(r.ID)) != updates || len(e.pending(t)) != 0 {
				t.Errorf("an abandoned delivery was tried again")
			}
			if tc.failing && n != d.Attempts {
				t.Errorf("receiver got %d POSTs, the delivery counts %d attempts", n, d.Attempts)
			}
			got, err := e.store.Request(t.Context(), r.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != genpipe.StatusFailed || got.Error != reason {
				t.Errorf("request is %s (%q), want failed (%q)", got.Status, got.Error, reason)
			}
		})
	}
}

func TestStatusOfUnknownRequestSkipped(t *testing.T) {
	e := newEnv(t)
	id := uuid.NewString()
	if err := e.n.Handle(testutil.Context(t), testutil.StatusEvent(id, genpipe.StatusDone, nil, "")); err != nil {
		t.Fatalf("Handle: %v", err)
	}
	if !e.logs.Contains("status for an unknown request") || !e.logs.Contains(id) {
		t.Error("the unknown request was not logged")
	}
	if p := e.pending(t); len(p) != 0 {
		t.Errorf("queued webhooks: %+v", p)
	}
}

// A request whose event is in Kafka but whose MarkPublished failed: the
// client got no 202. Its terminal status must not stall the notifier.
func TestTerminalStatusOfUnpublishedRequest(t *testing.T) {
	const wait = 200 * time.Millisecond
	e := newEnv(t, notifier.WithPublishWait(wait))
	r := &genpipe.Request{ID: uuid.NewString(), WebhookURL: "http://127.0.0.1:1/hook",
		Job: genpipe.Job{ObjectID: uuid.NewString(), Style: "minimal", Description: "d"}}
	if _, _, err := e.store.CreateRequest(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	e.handle(t, r.ID, genpipe.StatusChecking, nil, "")
	start := time.Now()
	e.handle(t, r.ID, genpipe.StatusRejected, nil, "too small")
	if took := time.Since(start); took < wait || took > wait+6*time.Second {
		t.Errorf("Handle returned after %v, want about %v", took, wait)
	}
	if !e.logs.Contains("never published") {
		t.Error("the skipped webhook was not logged")
	}
	if p := e.pending(t); len(p) != 0 {
		t.Errorf("queued webhooks for a request the client never got: %+v", p)
	}
}

// The pipeline may finish before the API's MarkPublished returns: the
// webhook is queued once it does.
func TestTerminalStatusBeforeMarkPublished(t *testing.T) {
	e := newEnv(t) // the default wait: 10 s
	r := &genpipe.Request{ID: uuid.NewString(), WebhookURL: "http://127.0.0.1:1/hook",
		Job: genpipe.Job{ObjectID: uuid.NewString(), Style: "minimal", Description: "d"}}
	if _, _, err := e.store.CreateRequest(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- e.n.Handle(testutil.Context(t), testutil.StatusEvent(r.ID, genpipe.StatusRejected, nil, "too small"))
	}()
	testutil.Eventually(t, 5*time.Second, "Handle to wait", func() bool { return e.logs.Contains("not published yet") })
	if err := e.store.MarkPublished(t.Context(), r.ID); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Handle: %v", err)
		}
	case <-time.After(8 * time.Second):
		t.Fatal("Handle did not return after MarkPublished")
	}
	if p := e.pending(t); len(p) != 1 || p[0].Status != genpipe.StatusRejected {
		t.Errorf("pending %+v, want the rejected webhook", p)
	}
}

func TestHandleRetriesFailingStore(t *testing.T) {
	e := newEnv(t)
	r := e.request(t, "")
	e.store.mu.Lock()
	e.store.failApply = 3
	e.store.mu.Unlock()
	e.handle(t, r.ID, genpipe.StatusChecking, nil, "")
	if got, _ := e.store.Request(t.Context(), r.ID); got.Status != genpipe.StatusChecking {
		t.Errorf("request is %s after the store recovered, want checking", got.Status)
	}
	if !e.logs.Contains("status store failed, retrying") {
		t.Error("store failures not logged")
	}

	// A store that stays down: Handle gives up only with its context, so
	// the record is not committed.
	e.store.mu.Lock()
	e.store.failApply = 1 << 30
	e.store.mu.Unlock()
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	err := e.n.Handle(ctx, testutil.StatusEvent(r.ID, genpipe.StatusGenerating, nil, ""))
	if err == nil || !strings.Contains(err.Error(), "injected") {
		t.Errorf("Handle with the store down = %v, want the store's error", err)
	}
}

// A status the store refuses as invalid is not retried: Handle returns at
// once with a dead letter, so the record goes to the dead-letter topic
// instead of holding a slot and its key for ever.
func TestHandleDeadLettersWhatTheStoreRefuses(t *testing.T) {
	e := newEnv(t)
	r := e.request(t, "")
	e.store.mu.Lock()
	e.store.refuse = true
	e.store.mu.Unlock()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	err := e.n.Handle(ctx, testutil.StatusEvent(r.ID, genpipe.StatusChecking, nil, ""))
	var dl *genpipe.DeadLetterError
	if !errors.As(err, &dl) || !strings.Contains(dl.Reason, "refuses the data") || ctx.Err() != nil {
		t.Errorf("Handle of a refused status = %v; want a dead letter with the store's reason, at once", err)
	}
}

func TestRunWebhooksConcurrentlyAndOnce(t *testing.T) {
	const (
		concurrency = 3
		requests    = 10
	)
	rcv := newReceiver(t, nil)
	rcv.delay = 100 * time.Millisecond
	e := newEnv(t, notifier.WithConcurrency(concurrency))
	ids := make([]string, requests)
	for i := range ids {
		ids[i] = e.request(t, rcv.URL).ID
		e.handle(t, ids[i], genpipe.StatusFailed, nil, "no")
	}
	if p := e.pending(t); len(p) != requests {
		t.Fatalf("%d deliveries pending, want %d", len(p), requests)
	}
	start := time.Now()
	e.runWebhooks(t)
	testutil.Eventually(t, 15*time.Second, "every delivery", func() bool {
		for _, id := range ids {
			if _, ok := e.store.final(id); !ok {
				return false
			}
		}
		return true
	})
	took := time.Since(start)
	time.Sleep(5 * poll)

	got := rcv.deliveries()
	if len(got) != requests {
		t.Errorf("receiver got %d POSTs, want %d", len(got), requests)
	}
	seen := map[string]bool{}
	for _, d := range got {
		id := d.header.Get(notifier.HeaderID)
		if seen[id] {
			t.Errorf("delivery %s POSTed twice", id)
		}
		seen[id] = true
	}
	for _, id := range ids {
		if out := e.store.outcomes(id); len(out) != 1 || out[0].State != genpipe.WebhookDelivered || out[0].Attempts != 1 {
			t.Errorf("request %s: outcomes %+v, want one delivery", id, out)
		}
	}
	rcv.mu.Lock()
	maxInFlight := rcv.maxInFlight
	rcv.mu.Unlock()
	if maxInFlight != concurrency {
		t.Errorf("at most %d POSTs ran at once, want %d", maxInFlight, concurrency)
	}
	// Sequentially it would take requests × delay.
	if serial := requests * rcv.delay; took >= serial {
		t.Errorf("took %v, no faster than one at a time (%v)", took, serial)
	}
}

// An option out of its range, or no secret, stops New with an error naming
// it, rather than being clamped or ignored.
func TestOptionsOutOfRange(t *testing.T) {
	for _, c := range []struct {
		opt  notifier.Option
		want string
	}{
		{notifier.WithConcurrency(0), "concurrency"},
		{notifier.WithClaimLease(0), "claim lease"},
		{notifier.WithShutdownTimeout(-time.Second), "shutdown timeout"},
		{notifier.WithPollInterval(0), "poll interval"},
		{notifier.WithRetryWindow(0), "retry window"},
		{notifier.WithMaxRetryDelay(-time.Second), "max retry delay"},
		{notifier.WithResultTTL(0), "result TTL"},
		{notifier.WithResultTTL(genpipe.MaxPresignTTL + time.Second), "result TTL"},
	} {
		if _, err := notifier.New(nil, nil, nil, secret, c.opt); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New with a bad %s = %v; want an error naming it", c.want, err)
		}
	}
	for _, bad := range []string{"", "whsec_not base64!", "whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 16))} {
		if _, err := notifier.New(nil, nil, nil, bad); err == nil || !strings.Contains(err.Error(), "secret") {
			t.Errorf("New with secret %q = %v; want an error", bad, err)
		}
	}
	if _, err := notifier.New(nil, nil, nil, secret, notifier.WithShutdownTimeout(0)); err != nil {
		t.Errorf("a shutdown timeout of 0 (hand back at once): %v", err)
	}
}
