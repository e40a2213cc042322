package notifier_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"strings"
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
		seen[d.header.Get("X-Genpipe-Delivery")]++
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
// by the time it is sent (DNS rebinding) gets no POST, and the attempt is
// recorded as failed with the reason.
func TestWebhookToLoopbackRefusedAtSendTime(t *testing.T) {
	rcv := newReceiver(t, nil)
	e := newEnv(t, notifier.WithPrivateWebhooks(false))
	r := e.request(t, strings.Replace(rcv.URL, "127.0.0.1", "localhost", 1))
	e.handle(t, r.ID, genpipe.StatusRejected, nil, "too small")
	e.runWebhooks(t)
	testutil.Eventually(t, 10*time.Second, "a failed attempt", func() bool { return len(e.store.outcomes(r.ID)) > 0 })
	if n := rcv.count(); n != 0 {
		t.Errorf("the loopback receiver got %d POSTs; want none", n)
	}
	if d := e.store.outcomes(r.ID)[0]; d.State != genpipe.WebhookPending || !strings.Contains(d.LastError, "refusing to dial") {
		t.Errorf("first outcome %+v; want a pending retry whose error names the refusal", d)
	}
}

func TestSignVerify(t *testing.T) {
	body := []byte(`{"id":"x","status":"done"}`)
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	sig := notifier.Sign(secret, body)
	if sig != want {
		t.Fatalf("Sign = %q, want %q", sig, want)
	}
	if !notifier.Verify(secret, body, sig) {
		t.Fatal("a signature does not verify its own body")
	}
	if !notifier.Verify(secret, nil, notifier.Sign(secret, nil)) {
		t.Error("the signature of an empty body does not verify")
	}
	last := sig[len(sig)-1]
	flipped := sig[:len(sig)-1] + string("01"[btoi(last == '0')])
	for name, tc := range map[string]struct {
		secret []byte
		body   []byte
		header string
	}{
		"other secret":              {[]byte("other"), body, sig},
		"changed body":              {secret, append(bytes.Clone(body), ' '), sig},
		"empty header":              {secret, body, ""},
		"hex without prefix":        {secret, body, strings.TrimPrefix(sig, "sha256=")},
		"other prefix":              {secret, body, "sha1=" + strings.TrimPrefix(sig, "sha256=")},
		"same length, last differs": {secret, body, flipped},
		"truncated":                 {secret, body, sig[:len(sig)-2]},
		"longer":                    {secret, body, sig + "00"},
		"first byte differs":        {secret, body, "tha256=" + strings.TrimPrefix(sig, "sha256=")},
	} {
		if notifier.Verify(tc.secret, tc.body, tc.header) {
			t.Errorf("%s: Verify = true, want false", name)
		}
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
