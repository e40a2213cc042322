package notifier_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/internal/testutil"
	"github.com/genpipe/genpipe/notifier"
)

// TestShutdownFinishesAttemptUnderWay stops the outbox while a POST is under
// way: the POST finishes within the shutdown timeout and its outcome is
// recorded, so the receiver is not sent the same message again.
func TestShutdownFinishesAttemptUnderWay(t *testing.T) {
	rcv := newReceiver(t, nil)
	rcv.delay = 300 * time.Millisecond // still answering when the notifier stops
	e := newEnv(t)                     // the default shutdown timeout, 10 s
	r := e.request(t, rcv.URL)
	e.handle(t, r.ID, genpipe.StatusRejected, nil, "too small")

	stop := e.runWebhooks(t)
	testutil.Eventually(t, 10*time.Second, "the POST", func() bool { return rcv.count() == 1 })
	stop()
	d, ok := e.store.final(r.ID)
	if !ok || d.State != genpipe.WebhookDelivered || d.Attempts != 1 {
		t.Fatalf("outcomes %+v, want the attempt under way at shutdown recorded as delivered", e.store.outcomes(r.ID))
	}
	if p := e.pending(t); len(p) != 0 {
		t.Errorf("still pending after a delivered attempt: %+v", p)
	}
}

// TestShutdownHandsBackAttemptCutShort stops the outbox while a POST hangs
// past the shutdown timeout: the attempt is canceled, not counted, and the
// delivery is due again at once, not at the end of its claim's lease.
func TestShutdownHandsBackAttemptCutShort(t *testing.T) {
	rcv := newReceiver(t, nil)
	rcv.delay = time.Minute
	e := newEnv(t, notifier.WithShutdownTimeout(100*time.Millisecond), notifier.WithClaimLease(time.Hour))
	r := e.request(t, rcv.URL)
	e.handle(t, r.ID, genpipe.StatusRejected, nil, "too small")

	stop := e.runWebhooks(t)
	testutil.Eventually(t, 10*time.Second, "the POST", func() bool { return rcv.count() == 1 })
	stop()
	if out := e.store.outcomes(r.ID); len(out) != 1 || out[0].State != genpipe.WebhookPending || out[0].Attempts != 0 {
		t.Errorf("outcomes %+v, want one hand-back: pending, no attempt counted", out)
	}
	claimed, err := e.store.ClaimDueWebhooks(t.Context(), time.Now(), time.Minute, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(claimed) != 1 || claimed[0].RequestID != r.ID {
		t.Errorf("claim after the shutdown = %+v; want the handed-back delivery, due at once despite the hour-long lease", claimed)
	}
	if !e.logs.Contains("handed back") {
		t.Error("hand-back not logged")
	}
}

// TestTwoNotifiersShareOutbox runs two notifiers on one SQLite file, as two
// processes would: every delivery is POSTed exactly once, and both send.
func TestTwoNotifiersShareOutbox(t *testing.T) {
	const deliveries = 20
	rcv := newReceiver(t, nil)
	rcv.delay = 50 * time.Millisecond
	path := filepath.Join(t.TempDir(), "genpipe.db")
	envs := make([]*env, 2)
	for i := range envs {
		log, logs := testutil.CaptureLogs(t)
		e := openEnv(t, path, logs)
		n, err := notifier.New(e.store, e.store, e.objects, secret, notifier.WithPollInterval(poll), notifier.WithConcurrency(2),
			notifier.WithPrivateWebhooks(true), notifier.WithLogger(log.With("notifier", i)))
		if err != nil {
			t.Fatal(err)
		}
		e.n = n
		envs[i] = e
	}
	ids := make([]string, deliveries)
	for i := range ids {
		ids[i] = envs[0].request(t, rcv.URL).ID
		envs[0].handle(t, ids[i], genpipe.StatusFailed, nil, "no")
	}
	for _, e := range envs {
		e.runWebhooks(t)
	}
	testutil.Eventually(t, 15*time.Second, "every delivery", func() bool {
		return len(envs[0].pending(t)) == 0
	})
	time.Sleep(5 * poll) // a few more polls: nothing is sent again

	seen := map[string]int{}
	for _, d := range rcv.deliveries() {
		seen[d.header.Get(notifier.HeaderID)]++
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("delivery %s POSTed %d times", id, n)
		}
	}
	if len(seen) != deliveries {
		t.Errorf("receiver got %d distinct deliveries, want %d", len(seen), deliveries)
	}
	for i, e := range envs {
		sent := 0
		for _, id := range ids {
			sent += len(e.store.outcomes(id))
		}
		t.Logf("notifier %d sent %d deliveries", i, sent)
		if sent == 0 {
			t.Errorf("notifier %d sent nothing: the test did not share the outbox", i)
		}
	}
}

// TestDeadNotifiersClaimTakenOverAfterLease claims a delivery as a notifier
// that then dies would: another notifier sends it once the claim's lease
// has ended, and not before.
func TestDeadNotifiersClaimTakenOverAfterLease(t *testing.T) {
	const lease = 500 * time.Millisecond
	rcv := newReceiver(t, nil)
	e := newEnv(t, notifier.WithClaimLease(lease))
	r := e.request(t, rcv.URL)
	e.handle(t, r.ID, genpipe.StatusDone, nil, "")

	claimedAt := time.Now()
	claimed, err := e.store.ClaimDueWebhooks(t.Context(), claimedAt, lease, 10)
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim as the dying notifier = %+v, %v; want the delivery", claimed, err)
	}
	e.runWebhooks(t)
	testutil.Eventually(t, 10*time.Second, "delivery", func() bool { _, ok := e.store.final(r.ID); return ok })
	got := rcv.deliveries()
	if len(got) != 1 {
		t.Fatalf("receiver got %d POSTs, want 1", len(got))
	}
	if leaseEnd := claimedAt.Add(lease); got[0].at.Before(leaseEnd) {
		t.Errorf("POST at %v, before the dead notifier's lease ended at %v", got[0].at, leaseEnd)
	}
}

// Without WithPrivateWebhooks the notifier connects to public addresses
// only, checked on the address it dials: a webhook that points at loopback
// by the time it is sent (DNS rebinding) gets no POST, and the delivery
// ends failed at once with the reason, since dialing again dials the same
// address; the request's view shows it.
func TestWebhookToLoopbackRefusedAtSendTime(t *testing.T) {
	rcv := newReceiver(t, nil)
	e := newEnv(t, notifier.WithPrivateWebhooks(false))
	for _, host := range []string{"localhost", "[::ffff:127.0.0.1]"} {
		r := e.request(t, strings.Replace(rcv.URL, "127.0.0.1", host, 1))
		e.handle(t, r.ID, genpipe.StatusRejected, nil, "too small")
		stop := e.runWebhooks(t)
		testutil.Eventually(t, 10*time.Second, "a failed attempt", func() bool { return len(e.store.outcomes(r.ID)) > 0 })
		time.Sleep(5 * poll) // a few more polls: no retry
		stop()
		if n := rcv.count(); n != 0 {
			t.Errorf("%s: the loopback receiver got %d POSTs; want none", host, n)
		}
		out := e.store.outcomes(r.ID)
		if len(out) != 1 || out[0].State != genpipe.WebhookFailed || out[0].Attempts != 1 || !strings.Contains(out[0].LastError, "refusing to dial") {
			t.Errorf("%s: outcomes %+v; want one, failed, whose error names the refusal", host, out)
		}
		checkView(t, e, r.ID, genpipe.WebhookFailed, "refusing to dial")
	}
}

// checkView checks what the request's view says of its webhook.
func checkView(t *testing.T, e *env, id string, state genpipe.WebhookState, lastError string) {
	t.Helper()
	r, err := e.store.Request(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	v, err := genpipe.NewRequestView(t.Context(), r, e.objects, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if v.Webhook == nil || v.Webhook.State != state || !strings.Contains(v.Webhook.LastError, lastError) {
		t.Errorf("view's webhook %+v; want %s with an error saying %q", v.Webhook, state, lastError)
	}
}

// A redirect is not followed: the signed body goes to the webhook URL
// only, and the delivery ends failed, since the same URL redirects again.
func TestWebhookRedirectNotFollowed(t *testing.T) {
	target := newReceiver(t, nil)
	for _, code := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, target.URL+"/stolen", code)
		}))
		t.Cleanup(redirector.Close)
		e := newEnv(t)
		r := e.request(t, redirector.URL)
		e.handle(t, r.ID, genpipe.StatusRejected, nil, "too small")
		stop := e.runWebhooks(t)
		testutil.Eventually(t, 10*time.Second, "an attempt", func() bool { return len(e.store.outcomes(r.ID)) > 0 })
		time.Sleep(5 * poll)
		stop()
		out := e.store.outcomes(r.ID)
		if len(out) != 1 || out[0].State != genpipe.WebhookFailed || !strings.Contains(out[0].LastError, strconv.Itoa(code)) ||
			!strings.Contains(out[0].LastError, "redirects are not followed") {
			t.Errorf("%d: outcomes %+v; want one, failed, saying redirects are not followed", code, out)
		}
	}
	if n := target.count(); n != 0 {
		t.Errorf("the redirect's target got %d POSTs; want none", n)
	}
}

// How each answer of a receiver ends an attempt: 2xx delivers; a redirect
// and a 4xx other than 408 and 429 end the delivery failed after one
// attempt; 408, 429 and 5xx are retried.
func TestWebhookAnswers(t *testing.T) {
	for _, tc := range []struct {
		code  int
		state genpipe.WebhookState // of the first attempt
	}{
		{200, genpipe.WebhookDelivered}, {204, genpipe.WebhookDelivered},
		{304, genpipe.WebhookFailed},
		{400, genpipe.WebhookFailed}, {401, genpipe.WebhookFailed}, {403, genpipe.WebhookFailed},
		{404, genpipe.WebhookFailed}, {410, genpipe.WebhookFailed}, {422, genpipe.WebhookFailed},
		{408, genpipe.WebhookPending}, {429, genpipe.WebhookPending},
		{500, genpipe.WebhookPending}, {502, genpipe.WebhookPending}, {503, genpipe.WebhookPending}, {504, genpipe.WebhookPending},
	} {
		rcv := newReceiver(t, func(int) int { return tc.code })
		e := newEnv(t, notifier.WithMaxRetryDelay(time.Hour)) // one attempt in the test's time
		r := e.request(t, rcv.URL)
		e.handle(t, r.ID, genpipe.StatusDone, nil, "")
		stop := e.runWebhooks(t)
		testutil.Eventually(t, 10*time.Second, "an attempt", func() bool { return len(e.store.outcomes(r.ID)) > 0 })
		stop()
		out := e.store.outcomes(r.ID)
		if len(out) != 1 || out[0].State != tc.state || out[0].Attempts != 1 {
			t.Errorf("%d: outcomes %+v; want one, %s", tc.code, out, tc.state)
			continue
		}
		if tc.state != genpipe.WebhookDelivered && !strings.Contains(out[0].LastError, strconv.Itoa(tc.code)) {
			t.Errorf("%d: last error %q does not name the answer", tc.code, out[0].LastError)
		}
		if tc.state == genpipe.WebhookFailed {
			checkView(t, e, r.ID, genpipe.WebhookFailed, strconv.Itoa(tc.code))
		}
	}
}

// A receiver's Retry-After is honoured, beyond the max retry delay, but
// not beyond the retry window.
func TestWebhookRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		code       int
		retryAfter string
		want       time.Duration // at least
		window     time.Duration
	}{
		{429, "120", 2 * time.Minute, time.Hour},
		{503, "120", 2 * time.Minute, time.Hour},
		{429, "86400", 30 * time.Minute, 30 * time.Minute},
	} {
		rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", tc.retryAfter)
			w.WriteHeader(tc.code)
		}))
		t.Cleanup(rcv.Close)
		e := newEnv(t, notifier.WithRetryWindow(tc.window))
		r := e.request(t, rcv.URL)
		e.handle(t, r.ID, genpipe.StatusDone, nil, "")
		stop := e.runWebhooks(t)
		testutil.Eventually(t, 10*time.Second, "an attempt", func() bool { return len(e.store.outcomes(r.ID)) > 0 })
		stop()
		d := e.store.outcomes(r.ID)[0]
		// The receiver asked for minutes; the max retry delay is milliseconds.
		if wait := time.Until(d.NextAttemptAt); d.State != genpipe.WebhookPending || wait < tc.want-time.Minute || wait > tc.want {
			t.Errorf("%d with Retry-After %s: %+v, next attempt in %v; want pending, in about %v", tc.code, tc.retryAfter, d, wait, tc.want)
		}
	}
}

// The result links of a webhook last what WithResultTTL says, as the
// API's do with the same value.
func TestWebhookResultTTL(t *testing.T) {
	const ttl = 3 * time.Hour
	rcv := newReceiver(t, nil)
	e := newEnv(t, notifier.WithResultTTL(ttl))
	r := e.request(t, rcv.URL)
	keys := genpipe.ResultKeys(r.ID)
	e.handle(t, r.ID, genpipe.StatusDone, &keys, "")
	e.runWebhooks(t)
	testutil.Eventually(t, 10*time.Second, "delivery", func() bool { return rcv.count() == 1 })
	var v genpipe.RequestView
	if err := json.Unmarshal(rcv.deliveries()[0].body, &v); err != nil || v.Result == nil {
		t.Fatalf("view %s: %v; want a result", rcv.deliveries()[0].body, err)
	}
	if u, err := url.Parse(v.Result.PDFURL); err != nil || u.Query().Get("X-Amz-Expires") != "10800" {
		t.Errorf("PDF link %s; want it presigned for 10800 s", v.Result.PDFURL)
	}
	if left := time.Until(v.Result.ExpiresAt); left < ttl-time.Minute || left > ttl {
		t.Errorf("expiresAt in %v; want %v", left, ttl)
	}
}

// Without the legacy headers, a webhook carries only the Standard Webhooks
// ones.
func TestWebhookWithoutLegacySignature(t *testing.T) {
	rcv := newReceiver(t, nil)
	e := newEnv(t, notifier.WithLegacySignature(false))
	r := e.request(t, rcv.URL)
	e.handle(t, r.ID, genpipe.StatusRejected, nil, "too small")
	e.runWebhooks(t)
	testutil.Eventually(t, 10*time.Second, "delivery", func() bool { return rcv.count() == 1 })
	msg := rcv.deliveries()[0]
	verify(t, msg)
	for _, h := range []string{notifier.LegacySignatureHeader, notifier.LegacyDeliveryHeader} {
		if v := msg.header.Get(h); v != "" {
			t.Errorf("%s: %q; want none", h, v)
		}
	}
}

// The test vector of the Standard Webhooks reference libraries.
func TestSignStandardWebhooksVector(t *testing.T) {
	key, err := notifier.ParseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Unix(1614265330, 0)
	body := []byte(`{"test": 2432232314}`)
	const want = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	if got := notifier.Sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", at, body); got != want {
		t.Fatalf("Sign = %q; want %q", got, want)
	}
	h := http.Header{}
	h.Set(notifier.HeaderID, "msg_p5jXN8AQM9LWM0D4loKWxJek")
	h.Set(notifier.HeaderTimestamp, "1614265330")
	h.Set(notifier.HeaderSignature, want)
	if err := notifier.VerifyAt("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", h, body, notifier.DefaultTolerance, at); err != nil {
		t.Errorf("VerifyAt of the vector: %v", err)
	}
}

// Verify refuses whatever was not signed with the secret just now: a
// replay, another secret, a changed body, id or timestamp.
func TestVerify(t *testing.T) {
	now := time.Unix(1700000000, 0)
	body := []byte(`{"id":"x","status":"done"}`)
	key, _ := notifier.ParseSecret(secret)
	signed := func(id string, at time.Time, sig string) http.Header {
		h := http.Header{}
		h.Set(notifier.HeaderID, id)
		h.Set(notifier.HeaderTimestamp, strconv.FormatInt(at.Unix(), 10))
		h.Set(notifier.HeaderSignature, sig)
		return h
	}
	good := notifier.Sign(key, "msg_1", now, body)
	other, _ := notifier.ParseSecret(notifier.NewSecret())
	for _, tc := range []struct {
		name   string
		header http.Header
		body   []byte
		want   error
	}{
		{"valid", signed("msg_1", now, good), body, nil},
		{"within the tolerance", signed("msg_1", now.Add(-4*time.Minute), notifier.Sign(key, "msg_1", now.Add(-4*time.Minute), body)), body, nil},
		{"clock ahead within the tolerance", signed("msg_1", now.Add(4*time.Minute), notifier.Sign(key, "msg_1", now.Add(4*time.Minute), body)), body, nil},
		{"among others (rotation)", signed("msg_1", now, "v1a,abc v1,"+base64.StdEncoding.EncodeToString(make([]byte, 32))+" "+good), body, nil},
		{"replayed later", signed("msg_1", now.Add(-6*time.Minute), notifier.Sign(key, "msg_1", now.Add(-6*time.Minute), body)), body, notifier.ErrTimestamp},
		{"from the future", signed("msg_1", now.Add(6*time.Minute), notifier.Sign(key, "msg_1", now.Add(6*time.Minute), body)), body, notifier.ErrTimestamp},
		{"timestamp moved", signed("msg_1", now.Add(time.Second), good), body, notifier.ErrSignature},
		{"timestamp not a number", func() http.Header { h := signed("msg_1", now, good); h.Set(notifier.HeaderTimestamp, "soon"); return h }(), body, notifier.ErrTimestamp},
		{"other id", signed("msg_2", now, good), body, notifier.ErrSignature},
		{"changed body", signed("msg_1", now, good), append(bytes.Clone(body), ' '), notifier.ErrSignature},
		{"other secret", signed("msg_1", now, notifier.Sign(other, "msg_1", now, body)), body, notifier.ErrSignature},
		{"v1a only", signed("msg_1", now, "v1a"+strings.TrimPrefix(good, "v1")), body, notifier.ErrSignature},
		{"no version", signed("msg_1", now, strings.TrimPrefix(good, "v1,")), body, notifier.ErrSignature},
		{"truncated", signed("msg_1", now, good[:len(good)-2]), body, notifier.ErrSignature},
		{"no signature", signed("msg_1", now, ""), body, notifier.ErrMissingHeaders},
		{"no id", signed("", now, good), body, notifier.ErrMissingHeaders},
	} {
		if err := notifier.VerifyAt(secret, tc.header, tc.body, notifier.DefaultTolerance, now); !errors.Is(err, tc.want) {
			t.Errorf("%s: Verify = %v; want %v", tc.name, err, tc.want)
		}
	}
}

// A secret not in the whsec_ form is its own key, so the secrets of
// earlier releases sign as before; a Standard Webhooks library takes it
// as whsec_ and its base64.
func TestParseSecret(t *testing.T) {
	raw := "4f1c2a9e0b7d6c5a4f1c2a9e0b7d6c5a4f1c2a9e0b7d6c5a4f1c2a9e0b7d6c5a" // what up generated before: hex
	key, err := notifier.ParseSecret(raw)
	if err != nil || string(key) != raw {
		t.Fatalf("ParseSecret(raw) = %q, %v; want the secret's bytes", key, err)
	}
	std, err := notifier.ParseSecret("whsec_" + base64.StdEncoding.EncodeToString([]byte(raw)))
	if err != nil || !bytes.Equal(std, key) {
		t.Errorf("the whsec_ form of a raw secret = %q, %v; want the same key", std, err)
	}
	fresh := notifier.NewSecret()
	if key, err := notifier.ParseSecret(fresh); err != nil || len(key) != 32 || !strings.HasPrefix(fresh, "whsec_") {
		t.Errorf("NewSecret %q: key %d bytes, %v; want whsec_ and 32 bytes", fresh, len(key), err)
	}
	if fresh == notifier.NewSecret() {
		t.Error("NewSecret returned one secret twice")
	}
	for _, bad := range []string{"", "whsec_", "whsec_***", "whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 23)),
		"whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 65))} {
		if _, err := notifier.ParseSecret(bad); err == nil {
			t.Errorf("ParseSecret(%q) = nil error; want one", bad)
		}
	}
}

// The attempt hook hears every attempt's outcome, as the delivery's state
// after it: the webhook metrics count failing receivers from it.
func TestAttemptHook(t *testing.T) {
	var mu sync.Mutex
	var got []genpipe.WebhookState
	hook := notifier.WithAttemptHook(func(s genpipe.WebhookState, took time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		if took <= 0 {
			t.Errorf("attempt ending %s took %v", s, took)
		}
		got = append(got, s)
	})
	seen := func() []genpipe.WebhookState {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got)
	}
	flaky := newReceiver(t, func(n int) int {
		if n <= 2 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	gone := newReceiver(t, func(int) int { return http.StatusGone })
	e := newEnv(t, hook)
	r1, r2 := e.request(t, flaky.URL), e.request(t, gone.URL)
	e.handle(t, r1.ID, genpipe.StatusDone, nil, "")
	e.runWebhooks(t)
	testutil.Eventually(t, 10*time.Second, "delivery", func() bool { _, ok := e.store.final(r1.ID); return ok })
	e.handle(t, r2.ID, genpipe.StatusDone, nil, "")
	testutil.Eventually(t, 10*time.Second, "refusal", func() bool { _, ok := e.store.final(r2.ID); return ok })
	want := []genpipe.WebhookState{genpipe.WebhookPending, genpipe.WebhookPending, genpipe.WebhookDelivered, genpipe.WebhookFailed}
	testutil.Eventually(t, 10*time.Second, "the hook's last call", func() bool { return len(seen()) == len(want) })
	if s := seen(); !slices.Equal(s, want) {
		t.Errorf("hook heard %v, want %v", s, want)
	}
}
